"""The `status_page:` section: an Atlassian Statuspage page that people publish to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pagerd.errors import ConfigError, refuse_unknown
from pagerd.secrets import env_name, resolve_secret
from pagerd.yamlsource import position

DEFAULT_TEMPLATE = ("We are investigating a problem affecting {component}. "
                    "Next update within {update_every}.")


@dataclass(frozen=True)
class StatusPageConfig:
    """Where customer updates go, and the drafts pagerd proposes for them."""

    page_id: str
    api_key: str = field(repr=False)
    base_url: str = "https://api.statuspage.io/v1"
    # pagerd component -> status page component id
    components: dict[str, str] = field(default_factory=dict)
    # severity -> draft text; placeholders {component}, {severity}, {title}, {update_every}
    templates: dict[str, str] = field(default_factory=dict)

    def template(self, severity: str) -> str:
        """The draft text for a severity."""
        return self.templates.get(severity) or self.templates.get("default") or DEFAULT_TEMPLATE


def parse_status_page(node: Any, errors: list[ConfigError], base_dir: Path,
                      components: set[str]) -> StatusPageConfig | None:
    """Read `status_page:`; None when absent or without credentials."""
    if node is None:
        return None
    if not isinstance(node, dict):
        errors.append(ConfigError(position(node), "status_page must be a mapping"))
        return None
    refuse_unknown(node, {"page_id", "api_key", "api_key_file", "base_url", "components",
                          "templates"}, errors)
    key = resolve_secret(node, "api_key", env_name("status_page", "api_key"), errors, base_dir)
    page_id = node.get("page_id")
    if not isinstance(page_id, str) or not page_id:
        errors.append(ConfigError(position(node, "page_id"), "page_id is required"))
        return None
    mapping = node.get("components") or {}
    for name in mapping:
        if name not in components:
            errors.append(ConfigError(position(mapping, name), f"unknown component {name!r}"))
    if not key:
        return None
    return StatusPageConfig(page_id, key, str(node.get("base_url",
                                                      "https://api.statuspage.io/v1")),
                            {str(k): str(v) for k, v in mapping.items()},
                            {str(k): str(v) for k, v in (node.get("templates") or {}).items()})
