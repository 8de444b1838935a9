"""Secret settings: `x` in the config, or `x_file`, or the environment variable that
overrides both. Secrets are never logged; errors name the setting, not its value."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pagerd.errors import ConfigError
from pagerd.yamlsource import position


def env_name(*parts: str) -> str:
    """`PAGERD_` and the parts, upper-cased, other characters as underscores."""
    return "PAGERD_" + "_".join(re.sub(r"[^A-Za-z0-9]", "_", part).upper() for part in parts)


def resolve_secret(
    node: dict[str, Any], key: str, env: str, errors: list[ConfigError], base_dir: Path
) -> str | None:
    """The secret `key` of `node`: $env beats `key_file` beats `key`; None if unset."""
    from_env = os.environ.get(env)
    if from_env:
        return from_env.strip()
    inline, file = node.get(key), node.get(f"{key}_file")
    if inline is not None and file is not None:
        errors.append(ConfigError(position(node, key), f"{key} and {key}_file are exclusive"))
        return None
    if file is not None:
        if not isinstance(file, str) or not file:
            errors.append(ConfigError(position(node, f"{key}_file"), "must be a file path"))
            return None
        path = base_dir / file
        try:
            return path.read_text().strip()
        except OSError as exc:
            errors.append(ConfigError(
                position(node, f"{key}_file"), f"cannot read {key}_file: {exc.strerror}"
            ))
            return None
    if inline is not None and not isinstance(inline, str):
        errors.append(ConfigError(position(node, key), "must be a string"))
        return None
    return inline or None
