"""MkDocs hooks of the documentation site (mkdocs.yml): the settings page's tables, rendered from the component's
JSON schema at every build, so that the page says what the installed code accepts."""

from __future__ import annotations

import re
from typing import Any

PLACEHOLDER = "<!-- settings-reference -->"


def settings_reference() -> str:
    """Every field of ``SelectionPipelineComponent`` and of the models inside it, as Markdown tables (by
    jsonschema-markdown), their headings a level below the page's sections."""
    import jsonschema_markdown
    from loguru import logger

    from entropy_assets.dagster import SelectionPipelineComponent

    logger.disable("jsonschema_markdown")  # it logs a warning for every typed additionalProperties
    schema = SelectionPipelineComponent.model_json_schema()
    text = jsonschema_markdown.generate(
        schema, title="SelectionPipelineComponent", footer=False, hide_empty_columns=True
    )
    text = re.sub(r"^#+ Type: `object`\n+", "", text, flags=re.MULTILINE)
    return re.sub(r"^(#+) ", lambda m: "#" * min(len(m.group(1)) + 2, 6) + " ", text, flags=re.MULTILINE)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if PLACEHOLDER not in markdown:
        return markdown
    return markdown.replace(PLACEHOLDER, settings_reference())
