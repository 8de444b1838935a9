"""The incident page: a small server-rendered page per incident, reached by a signed link.

It shows the state, the severity and its targets, the owner with key contacts, vendors and
runbook, and the timeline, with buttons (POST, with a CSRF value) to acknowledge, mitigate,
resolve and add a note, and, where a status page is configured, to draft a customer update
and publish it (a person's press, never pagerd's own). No script, no outside resources: it
must load on a phone at 3 a.m.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from html import escape
from typing import Any

from pagerd.durations import format_duration
from pagerd.notifiers.statuspage import INCIDENT_STATUSES, default_status
from pagerd.routing.severity import SeverityLevel
from pagerd.settings import Component

ACTIONS = (("ack", "Acknowledge"), ("mitigate", "Mitigated"), ("resolve", "Resolve"))
# The states each button makes sense in.
AVAILABLE = {"ack": {"triggered"}, "mitigate": {"triggered", "acknowledged"},
             "resolve": {"triggered", "acknowledged", "mitigated"}}

STYLE = (
    "body{font:1rem/1.5 system-ui,sans-serif;margin:0;padding:1rem;color:#1a1a1a}"
    "main{max-width:46rem;margin:auto}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.5rem}"
    ".state{display:inline-block;padding:.1rem .5rem;border-radius:.25rem;background:#eee}"
    ".triggered{background:#fde2e1}.acknowledged{background:#fff3cd}"
    ".mitigated{background:#e2f0fb}.resolved{background:#dff3e3}"
    "table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25rem .5rem;"
    "border-bottom:1px solid #ddd;vertical-align:top}form{display:inline-block;margin:.25rem}"
    "button{font:inherit;padding:.5rem 1rem;border:0;border-radius:.25rem;color:#fff;"
    "background:#1f4fbf}textarea{width:100%;font:inherit}"
)
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}


def _when(at: float | None) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "-"


def _target(label: str, seconds: float | None, opened: float, done: float | None) -> str:
    if not seconds:
        return ""
    deadline = opened + seconds
    verdict = ("met" if done <= deadline else "missed") if done else "open"
    return (f"<tr><th>{label}</th><td>{format_duration(seconds)}</td>"
            f"<td>{_when(deadline)}</td><td class=\"{verdict}\">{verdict}</td></tr>")


def _contacts(component: Component | None) -> str:
    if component is None:
        return "<p>No owner.</p>"
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(contact.get(key, ''))}</td>" for key in
                         ("name", "role", "phone", "email", "case_url")) + "</tr>"
        for contact in component.page_contacts())
    runbook = (f'<p>Runbook: <a href="{escape(component.runbook_url)}">'
               f"{escape(component.runbook_url)}</a></p>" if component.runbook_url else "")
    return (f"<p>Owner: <strong>{escape(component.name)}</strong> (team "
            f"{escape(component.team)})</p>{runbook}"
            f'<table id="contacts"><tr><th>Name</th><th>Role</th><th>Phone</th><th>E-mail</th>'
            f"<th>Case</th></tr>{rows}</table>")


def _timeline(entries: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{_when(e['at'])}</td><td>{escape(e['kind'])}</td><td>{escape(e['actor'])}"
        f"</td><td>{escape(str(e.get('text') or e.get('note') or e.get('users') or ''))}</td>"
        "</tr>" for e in entries)
    return (f'<table id="timeline"><tr><th>When</th><th>What</th><th>Who</th><th></th></tr>'
            f"{rows}</table>")


def _changes(changes: list[dict[str, Any]]) -> str:
    if not changes:
        return "<p>No changes recorded in the day before it opened.</p>"
    rows = "".join(f"<tr><td>{_when(c['at'])}</td><td>{escape(c['summary'])}</td>"
                   f"<td>{escape(c['source'])}</td></tr>" for c in changes)
    return f'<table id="changes">{rows}</table>'


def _status_page(status_page: bool, state: str, draft: str | None, hidden: str) -> str:
    if not status_page:
        return ""
    if draft is None:
        return ("<h2>Status page</h2><p>No update is waiting to be published.</p>"
                f'<form method="post" action="act/draft">{hidden}'
                '<button type="submit" id="draft">Draft an update</button></form>')
    chosen = default_status(state)
    options = "".join(
        f'<option value="{status}"{" selected" if status == chosen else ""}>{status}</option>'
        for status in INCIDENT_STATUSES)
    return ("<h2>Status page</h2><p>Draft, not published yet:</p>"
            f'<blockquote id="status-draft">{escape(draft)}</blockquote>'
            f'<form method="post" action="act/publish">{hidden}'
            f'<label for="status">Status</label> <select id="status" name="status">{options}'
            '</select> <button type="submit" id="publish">Publish to the status page</button>'
            "</form>")


def render(incident: dict[str, Any], level: SeverityLevel | None, component: Component | None,
           csrf: str, changes: list[dict[str, Any]] | None = None, *,
           status_page: bool = False, draft: str | None = None) -> str:
    """The page for one incident; `csrf` goes in every form. Recent `changes` (deploys) to
    its component are shown, because a rollback is often the fastest recovery. With a
    `status_page`, the pending `draft` of a customer update and a button to publish it."""
    state = incident["state"]
    opened = incident["opened_at"]
    targets = "" if level is None else (
        "<table id=\"targets\"><tr><th>Target</th><th>Within</th><th>Due</th><th></th></tr>"
        + _target("Acknowledge", level.ack_target, opened, incident["acknowledged_at"])
        + _target("Mitigate", level.mitigate_target, opened,
                  incident["mitigated_at"] or incident["resolved_at"])
        + _target("Resolve", level.resolve_target, opened, incident["resolved_at"])
        + "</table>")
    hidden = f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
    buttons = "".join(
        f'<form method="post" action="act/{action}">{hidden}'
        f'<button type="submit" id="{action}">{label}</button></form>'
        for action, label in ACTIONS if state in AVAILABLE[action])
    note = (f'<form method="post" action="act/note">{hidden}<label for="text">Note</label>'
            f'<textarea id="text" name="text" rows="2" required></textarea>'
            f'<button type="submit" id="note">Add note</button></form>')
    title = f"#{incident['id']} {incident['title']}"
    body = (
        f'<p>State: <span id="state" class="state {escape(state)}">{escape(state)}</span> '
        f'Severity: <strong id="severity">{escape(incident["severity"])}</strong></p>'
        f"<p>{escape(level.description) if level else ''}</p>"
        f"<p>Opened {_when(opened)}; lead: {escape(incident.get('lead') or '-')}; "
        f"communications: {escape(incident.get('comms') or '-')}</p>"
        f"{buttons}<h2>Targets</h2>{targets}<h2>Owner and contacts</h2>"
        f"{_contacts(component)}<h2>Recent changes</h2>{_changes(changes or [])}"
        f"{_status_page(status_page, state, draft, hidden)}"
        f"<h2>Timeline</h2>{_timeline(incident['timeline'])}{note}"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} - pagerd</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>\n"
    )
