"""Row helpers shared by the SQLite operations: canonical JSON and timeline entries."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
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


# Rows per statement: a bound on the SQL text SQLite parses at once (and caches), and
# within the parameter limit of SQLite builds before 3.32 (999) for rows of one value.
_MAX_ROWS = 500
# The SQL text of each (head, row width, row count, tail) already spelled.
_texts: dict[tuple[str, int, int, str], str] = {}
_TEXTS_MAX = 2_000


def execute_values(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = "",
    tail_params: Sequence[Any] = (),
) -> list[Any]:
    """Run `<head> VALUES (...), (...) <tail>` for many rows, in as few statements as
    possible; the rows the statements return.

    One statement for a whole batch rather than one per row: every statement releases and
    retakes the GIL, and under load retaking it waits for the event loop's thread.
    Values are bound, never spliced into the SQL, so floats keep every bit.
    """
    if not rows:
        return []
    width = len(rows[0])
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - len(tail_params)
    per = max(1, min(_MAX_ROWS, limit // width))
    found: list[Any] = []
    for start in range(0, len(rows), per):
        chunk = rows[start:start + per]
        key = (head, width, len(chunk), tail)
        text = _texts.get(key)
        if text is None:
            if len(_texts) >= _TEXTS_MAX:
                _texts.clear()
            one = "(" + ", ".join("?" * width) + ")"
            text = _texts[key] = f"{head} VALUES {', '.join([one] * len(chunk))} {tail}"
        params = [value for row in chunk for value in row]
        params.extend(tail_params)
        found.extend(conn.execute(text, params))
    return found


def execute_in(
    conn: sqlite3.Connection, head: str, values: Sequence[Any], tail: str = "",
    params: Sequence[Any] = (),
) -> list[Any]:
    """Run `<head> IN (?, ?, ...) <tail>` over `values` (bound after `params`), in as few
    statements as possible; the rows they return. One value is an equality to SQLite."""
    found: list[Any] = []
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - len(params)
    per = max(1, min(_MAX_ROWS, limit))
    for start in range(0, len(values), per):
        chunk = values[start:start + per]
        key = (head, -1, len(chunk), tail)
        text = _texts.get(key)
        if text is None:
            if len(_texts) >= _TEXTS_MAX:
                _texts.clear()
            text = _texts[key] = f"{head} IN ({', '.join('?' * len(chunk))}) {tail}"
        found.extend(conn.execute(text, [*params, *chunk]))
    return found
