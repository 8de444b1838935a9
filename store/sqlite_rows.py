"""Row helpers shared by the SQLite operations: canonical JSON and timeline entries."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
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


TIMELINE_INSERT = "INSERT INTO timeline (incident_id, at, kind, actor, data)"


def append(
    conn: sqlite3.Connection, incident_id: int, now: float, kind: str, actor: str,
    data: dict[str, Any],
) -> None:
    """Append one timeline entry."""
    conn.execute(f"{TIMELINE_INSERT} VALUES (?, ?, ?, ?, ?)",
                 (incident_id, now, kind, actor, dumps(data)))


# Rows per statement: a bound on the SQL text SQLite parses at once (and caches), and
# within the parameter limit of SQLite builds before 3.32 (999) for rows of one value.
_MAX_ROWS = 500
# The SQL text of each (head, row width, row count, tail) already spelled.
_texts: dict[tuple[str, int, int, str], str] = {}
_TEXTS_MAX = 2_000


def _chunks(conn: sqlite3.Connection, items: Sequence[Any], width: int, others: int
            ) -> list[Sequence[Any]]:
    """`items` cut into runs that fit one statement: at most _MAX_ROWS of them, and
    `width` parameters each plus `others` within the connection's variable limit, each
    run a power of two long."""
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - others
    per = 1 << (max(1, min(_MAX_ROWS, limit // width)).bit_length() - 1)
    runs = []
    start = 0
    while start < len(items):
        # Runs of a power of two rows: a batch of any size then needs one of a few texts,
        # so the connection's statement cache keeps them all prepared, instead of holding
        # (and preparing again) a long statement for every batch size that comes by.
        left = len(items) - start
        size = min(per, 1 << (left.bit_length() - 1))
        runs.append(items[start:start + size])
        start += size
    return runs


def _text(key: tuple[str, int, int, str], spell: Callable[[int], str]) -> str:
    """The SQL text for `key` (its third part a row count), spelled once by `spell(count)`
    and then remembered (within a bound)."""
    text = _texts.get(key)
    if text is None:
        if len(_texts) >= _TEXTS_MAX:
            _texts.clear()
        text = _texts[key] = spell(key[2])
    return text


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
    one = "(" + ", ".join("?" * width) + ")"
    found: list[Any] = []
    for chunk in _chunks(conn, rows, width, len(tail_params)):
        text = _text((head, width, len(chunk), tail),
                     lambda n: f"{head} VALUES {', '.join([one] * n)} {tail}")
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
    for chunk in _chunks(conn, values, 1, len(params)):
        text = _text((head, -1, len(chunk), tail),
                     lambda n: f"{head} IN ({', '.join('?' * n)}) {tail}")
        found.extend(conn.execute(text, [*params, *chunk]))
    return found
