"""The documentation: its settings tables come from the component's schema, and the README's links lead somewhere."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from entropy_assets.dagster import SelectionPipelineComponent
from entropy_assets.stages import TrainingSettings

REPO = Path(__file__).resolve().parents[1]


def settings_reference() -> str:
    pytest.importorskip("jsonschema_markdown", reason="needs the dev extra: pip install -e '.[dev]'")
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", REPO / "scripts" / "mkdocs_hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks.settings_reference()


def test_the_settings_page_lists_every_field_the_component_accepts_with_its_default() -> None:
    page = settings_reference()
    rows = dict(re.findall(r"^\| (\w+) \| (.*)$", page, re.MULTILINE))
    accepted = SelectionPipelineComponent.model().model_fields  # the YAML schema dg validates defs.yaml against
    assert set(accepted) <= set(rows), sorted(set(accepted) - set(rows))
    assert set(TrainingSettings.model_fields) <= set(rows)
    assert "`10000`" in rows["k1"] and "ZIP stage 1" in rows["k1"]
    assert '`"builtin"`' in rows["backend"]


def test_the_readmes_links_and_pictures_lead_to_files_of_the_repository() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert len(targets) >= 15
    assert [target for target in targets if not (REPO / target).is_file()] == []
