"""Paging state in SQLite: reply codes, the page log, opt-outs, spent links, help replies."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from pagerd.store.sqlite_rows import dumps

CODE_LIFETIME = 24 * 3600.0


def assign_code(conn: sqlite3.Connection, phone: str, incident_id: int, now: float) -> int:
    """The reply code of an incident on a phone: the one it has, else the smallest number
    not used on that phone in 24 h, so a late reply can never reach a newer incident."""
    since = now - CODE_LIFETIME
    rows = conn.execute(
        "SELECT code, incident_id FROM reply_codes WHERE phone = ? AND assigned_at > ?",
        (phone, since),
    ).fetchall()
    for code, incident in rows:
        if incident == incident_id:
            return int(code)
    used = {code for code, _ in rows}
    code = next(n for n in range(1, len(used) + 2) if n not in used)
    conn.execute(
        "INSERT INTO reply_codes (phone, code, incident_id, assigned_at) VALUES (?, ?, ?, ?)",
        (phone, code, incident_id, now),
    )
    return code


def incident_for_code(conn: sqlite3.Connection, phone: str, code: int,
                      now: float) -> int | None:
    """The incident a reply code names on a phone, if given in the last 24 h."""
    row = conn.execute(
        "SELECT incident_id FROM reply_codes WHERE phone = ? AND code = ? AND assigned_at > ?"
        " ORDER BY assigned_at DESC LIMIT 1",
        (phone, code, now - CODE_LIFETIME),
    ).fetchone()
    return int(row[0]) if row else None


def log_page(conn: sqlite3.Connection, entry: dict[str, Any], now: float) -> None:
    """Remember a page that was sent."""
    conn.execute(
        "INSERT INTO page_log (provider_id, incidents, user, method, address, step, sent_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (entry.get("provider_id"), dumps(entry["incidents"]), entry["user"], entry["method"],
         entry["address"], entry.get("step", ""), now),
    )


def last_page(conn: sqlite3.Connection, *, user: str | None = None, method: str | None = None,
              address: str | None = None) -> dict[str, Any] | None:
    """The newest page to a person by a method, or to an address."""
    args: tuple[str, ...]
    if address is not None:
        where, args = "address = ?", (address,)
    else:
        where, args = "user = ? AND method = ?", (user or "", method or "")
    row = conn.execute(
        f"SELECT provider_id, incidents, user, method, address, sent_at, status FROM page_log"
        f" WHERE {where} ORDER BY sent_at DESC, id DESC LIMIT 1", args,
    ).fetchone()
    return _page(row) if row else None


def page_by_provider(conn: sqlite3.Connection, provider_id: str) -> dict[str, Any] | None:
    """The page a provider's id (Twilio's message SID) belongs to."""
    row = conn.execute(
        "SELECT provider_id, incidents, user, method, address, sent_at, status FROM page_log"
        " WHERE provider_id = ?", (provider_id,),
    ).fetchone()
    return _page(row) if row else None


def _page(row: tuple[Any, ...]) -> dict[str, Any]:
    provider_id, incidents, user, method, address, sent_at, status = row
    return {"provider_id": provider_id, "incidents": orjson.loads(incidents), "user": user,
            "method": method, "address": address, "sent_at": sent_at, "status": status}


def set_page_status(conn: sqlite3.Connection, provider_id: str, status: str) -> bool:
    """Record a delivery status; False if it was already final (callbacks repeat)."""
    return bool(conn.execute(
        "UPDATE page_log SET status = ? WHERE provider_id = ?"
        " AND status NOT IN ('delivered', 'undelivered', 'failed')",
        (status, provider_id),
    ).rowcount)


def set_opt_out(conn: sqlite3.Connection, phone: str, out: bool, now: float) -> None:
    """STOP (out) or START (back in) from a phone."""
    if out:
        conn.execute("INSERT OR REPLACE INTO opt_outs (phone, at) VALUES (?, ?)", (phone, now))
    else:
        conn.execute("DELETE FROM opt_outs WHERE phone = ?", (phone,))


def opted_out(conn: sqlite3.Connection) -> set[str]:
    """Every phone that sent STOP."""
    return {phone for (phone,) in conn.execute("SELECT phone FROM opt_outs")}


def spend_link(conn: sqlite3.Connection, nonce: str, expires_at: float, now: float) -> bool:
    """Mark an action link used; False if it was used before. Expired entries go."""
    conn.execute("DELETE FROM used_links WHERE expires_at < ?", (now,))
    return bool(conn.execute(
        "INSERT INTO used_links (nonce, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (nonce, expires_at),
    ).rowcount)


def allow_help(conn: sqlite3.Connection, phone: str, now: float, limit: int,
               window: float) -> bool:
    """Whether a help reply may go to `phone` (at most `limit` per `window`); records it."""
    conn.execute("DELETE FROM help_replies WHERE at < ?", (now - window,))
    (count,) = conn.execute(
        "SELECT COUNT(*) FROM help_replies WHERE phone = ?", (phone,)).fetchone()
    if count >= limit:
        return False
    conn.execute("INSERT INTO help_replies (phone, at) VALUES (?, ?)", (phone, now))
    return True
