"""Row helpers shared by the SQLite operations: canonical JSON and timeline entries."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson


def dumps(value: Any) -> str:
    """Compact JSON with sorted keys, so equal label sets store as equal text."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def audit(conn: sqlite3.Connection, now: float, actor: str, action: str,
          data: dict[str, Any]) -> None:
    """Record a person's change outside any incident (overrides, config)."""
    conn.execute("INSERT INTO audit (at, actor, action, data) VALUES (?, ?, ?, ?)",
                 (now, actor, action, dumps(data)))


def append(
    conn: sqlite3.Connection, incident_id: int, now: float, kind: str, actor: str,
    data: dict[str, Any],
) -> None:
    """Append one timeline entry."""
    conn.execute(
        "INSERT INTO timeline (incident_id, at, kind, actor, data) VALUES (?, ?, ?, ?, ?)",
        (incident_id, now, kind, actor, dumps(data)),
    )
