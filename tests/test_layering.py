"""The package's layers (STYLE.md: one direction of flow): no import cycle, the core never imports the steps or the
Dagster plugin, the steps never import the plugin, and the command line reaches the plugin only through its one
entry (``entropy_assets.dagster.history``). Every import counts, at the top of a module, in a function or under
``TYPE_CHECKING``: each is a dependency a reader follows."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import entropy_assets

PACKAGE = Path(entropy_assets.__file__).parent
PLUGIN = "entropy_assets.dagster"
STEPS = "entropy_assets.stages"
CLI = "entropy_assets.cli"
PLUGIN_ENTRY = "entropy_assets.dagster.history"


def module_files() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name, for its ``__init__.py``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The package's modules that module ``name`` imports: for ``from x import y``, ``x.y`` where that is a
    module, else ``x``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {module for module in found if module in modules}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as the modules along it (the first again at the end), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            if (cycle := visit(target, [*path, node])) is not None:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        if (cycle := visit(start, [])) is not None:
            return cycle
    return None


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def edges(graph: Mapping[str, set[str]]) -> Iterator[tuple[str, str]]:
    for source, targets in sorted(graph.items()):
        yield from ((source, target) for target in sorted(targets))


def test_the_cycle_finder_finds_a_cycle_through_several_modules() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_import_graph_sees_the_steps_and_the_plugin() -> None:
    """The graph is read right: the subset step imports the shard step, and the command line the plugin's entry."""
    graph = import_graph()
    assert "entropy_assets.stages.shard_selection" in graph["entropy_assets.stages.subset"]
    assert "entropy_assets.stages.subset_settings" in graph["entropy_assets.stages.shard_selection"]
    assert PLUGIN_ENTRY in graph[CLI]


def test_the_package_has_no_import_cycle() -> None:
    assert find_cycle(import_graph()) is None


def test_the_core_imports_neither_the_steps_nor_the_plugin_nor_the_command_line() -> None:
    """Records, sources, compression, selection, training, the law and the rest know only each other."""
    upward = [
        f"{source} imports {target}"
        for source, target in edges(import_graph())
        if not any(within(source, layer) for layer in (STEPS, PLUGIN, CLI))
        and any(within(target, layer) for layer in (STEPS, PLUGIN, CLI))
    ]
    assert upward == []


def test_the_steps_never_import_the_plugin_and_nothing_imports_the_command_line() -> None:
    upward = [
        f"{source} imports {target}"
        for source, target in edges(import_graph())
        if (within(source, STEPS) and within(target, PLUGIN)) or target == CLI
    ]
    assert upward == []


def test_only_the_command_line_reaches_the_plugin_and_only_through_its_entry() -> None:
    into_plugin = [
        f"{source} imports {target}"
        for source, target in edges(import_graph())
        if not within(source, PLUGIN) and within(target, PLUGIN) and (source, target) != (CLI, PLUGIN_ENTRY)
    ]
    assert into_plugin == []


def test_compression_and_records_never_import_selection_or_training() -> None:
    """Data flows records -> compression -> selection -> training -> the law: never back."""
    later = ("entropy_assets.selection", "entropy_assets.training", "entropy_assets.entropy_law")
    upward = [
        f"{source} imports {target}"
        for source, target in edges(import_graph())
        if any(within(source, early) for early in ("entropy_assets.records", "entropy_assets.compression"))
        and any(within(target, layer) for layer in later)
    ]
    assert upward == []
