"""Figures on the code's shape, for reviews of refactors: the longest functions of a package, and the modules that
spell a metadata key as a string literal.

    python scripts/code_shape.py --dagster-home .dagster_home [--package entropy_assets/dagster] [--scan entropy_assets]

The metadata keys are those of every materialization, observation and check evaluation in the Dagster instance
(run ``scripts/main.sh`` first). A module spells a key when the key's string literal is a subscript, the first
argument of ``.get``/``.pop``, a key of a dict display, or an operand of ``in``. Dagster's own keys
(``dagster/...``) are left out.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator
from pathlib import Path

LINEAGE_KEYS = frozenset(
    {
        "file",
        "path",
        "version",
        "pool_version",
        "pool_file",
        "shard_file",
        "shard_fingerprints",
        "subset_file",
        "subset_version",
        "selected_subset_version",
        "raw_data_version",
        "fit_methods",
    }
)
"""The keys through which steps, the command line, audits and retention find each other's outputs."""


def longest_functions(package: Path, count: int) -> list[tuple[int, str]]:
    """(lines, ``file:line name``) of the longest functions under ``package``, nested ones counted on their own."""
    found = []
    for file in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                found.append((lines, f"{file}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)[:count]


def metadata_keys(home: str) -> set[str]:
    """Every metadata key the instance at ``home`` recorded."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(home)
    keys: set[str] = set()
    for asset in instance.get_asset_keys():
        for record in instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset), limit=1000).records:
            if record.asset_materialization is not None:
                keys.update(record.asset_materialization.metadata)
        for record in instance.fetch_observations(asset, limit=1000).records:
            if record.asset_observation is not None:
                keys.update(record.asset_observation.metadata)
    for record in instance.fetch_run_status_changes(dg.DagsterEventType.RUN_SUCCESS, limit=1000).records:
        for entry in instance.all_logs(record.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            keys.update(entry.dagster_event.event_specific_data.metadata)  # type: ignore[union-attr]
    return {key for key in keys if not key.startswith("dagster/")}


def _key_literals(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            yield from _strings(node.slice)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "pop"):
            yield from _strings(node.args[0]) if node.args else ()
        elif isinstance(node, ast.Dict):
            for key in node.keys:
                yield from _strings(key)
        elif isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            yield from _strings(node.left)


def _strings(node: ast.AST | None) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value


def _touches_metadata(module: Path) -> bool:
    """Whether ``module`` names anything ``*metadata*``: a variable, argument, attribute, keyword or function."""
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        name = (
            node.id
            if isinstance(node, ast.Name)
            else node.attr
            if isinstance(node, ast.Attribute)
            else node.arg
            if isinstance(node, ast.keyword | ast.arg)
            else node.name
            if isinstance(node, ast.FunctionDef)
            else None
        )
        if name and "metadata" in name.lower():
            return True
    return False


def modules_spelling(keys: set[str], roots: list[Path]) -> dict[str, list[str]]:
    """The modules under ``roots`` that spell any of ``keys``, with the keys they spell."""
    spelled = {}
    for root in roots:
        for file in sorted(root.rglob("*.py")):
            found = sorted(set(_key_literals(ast.parse(file.read_text(encoding="utf-8")))) & keys)
            if found:
                spelled[str(file)] = found
    return spelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dagster-home", required=True, help="an instance that ran the graph (scripts/main.sh)")
    parser.add_argument("--package", default="entropy_assets/dagster", help="where to look for long functions")
    parser.add_argument("--scan", nargs="+", default=["entropy_assets", "dagster_project"], help="modules to scan")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    print(f"longest functions in {args.package}:")
    for lines, where in longest_functions(Path(args.package), args.top):
        print(f"  {lines:4d} lines  {where}")
    spelled = modules_spelling(metadata_keys(args.dagster_home), [Path(p) for p in args.scan])
    print(f"modules that spell a metadata key as a string literal: {len(spelled)}")
    for module, found in spelled.items():
        print(f"  {module}: {', '.join(found)}")
    touching = {module: found for module, found in spelled.items() if _touches_metadata(Path(module))}
    print(f"of them, modules that also handle metadata (an identifier or attribute named *metadata*): {len(touching)}")
    for module, found in touching.items():
        print(f"  {module}: {', '.join(found)}")
    lineage = {module: sorted(set(found) & LINEAGE_KEYS) for module, found in spelled.items()}
    lineage = {module: found for module, found in lineage.items() if found}
    print(f"of them, modules that spell a lineage key ({', '.join(sorted(LINEAGE_KEYS))}): {len(lineage)}")
    for module, found in lineage.items():
        print(f"  {module}: {', '.join(found)}")


if __name__ == "__main__":
    main()
