"""Versioned schema migrations: numbered SQL files applied in order, once each."""

from __future__ import annotations

import sqlite3
from importlib import resources

import structlog

log = structlog.get_logger("pagerd.store")


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("pagerd.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; returns it. Each step is one transaction."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    steps = _migrations()
    newest = steps[-1][0] if steps else 0
    if current > newest:
        raise RuntimeError(
            f"state was written by a newer pagerd (schema {current}, this one knows {newest})"
        )
    for version, name, sql in steps:
        if version <= current:
            continue
        # executescript commits first; wrap the step so it applies whole or not at all.
        conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
        log.info("store.migrated", migration=name, version=version)
    return max(current, newest)
