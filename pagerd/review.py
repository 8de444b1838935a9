"""A post-incident review draft: the record of one incident, and room for people to write.

The draft holds facts only, all taken from the incident and its timeline: when the impact
started and ended, how long acknowledging, mitigating and resolving took against the
severity's targets, who was paged and who responded, and every timeline entry. Contributing
causes, lessons and follow-up actions are empty headings. Only the people who were there
can write them, and a generated guess would read as if someone had.

The timeline vocabulary it reads:

- `page.sent`: a person was paged; the person is `user`, the method `method` or `notifier`.
- `notification.sent`: a receiver (webhook, chat) was notified; it is `receiver`.
- A person responded: an entry with `by: person` (state and severity changes say who made
  them this way), or one of `PERSON_KINDS`, which only people make, unless it says it came
  from a source or from pagerd. The responder is its `actor`.
- `incident.severity`: a change of severity, `from` and `to`.
- `incident.mitigated`: service restored, when the incident has no `mitigated_at` field.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PAGE_KINDS = frozenset({"page.sent"})
NOTIFY_KINDS = frozenset({"notification.sent"})
PERSON_KINDS = frozenset({
    "incident.note", "note.added", "incident.assigned", "role.assigned", "status.published",
})
# Entries that say they were made by something other than a person.
_NOT_A_PERSON = frozenset({"source", "pagerd", "policy", "system"})
SECTIONS_TO_WRITE = ("Contributing causes", "Lessons", "Follow-up actions")


@dataclass(frozen=True, slots=True)
class Targets:
    """One severity's response targets in seconds after opening; None where none is set."""

    ack: float | None = None
    mitigate: float | None = None
    resolve: float | None = None


def epoch(value: Any) -> float | None:
    """Seconds since the epoch from a number, a datetime or an ISO 8601 string, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo else value.replace(tzinfo=UTC).timestamp()
    if isinstance(value, str) and value:
        try:
            return epoch(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def iso(seconds: float | None) -> str | None:
    """An epoch time as ISO 8601 in UTC."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def paged_user(entry: Mapping[str, Any]) -> str | None:
    """The person a timeline entry paged, or None when it is not a page."""
    if entry.get("kind") not in PAGE_KINDS:
        return None
    # Not the actor: that is pagerd, which sent the page.
    user = entry.get("user")
    return str(user) if user else None


def is_response(entry: Mapping[str, Any]) -> bool:
    """Whether a timeline entry records something a person did."""
    by = entry.get("by")
    if by == "person":
        return True
    return entry.get("kind") in PERSON_KINDS and by not in _NOT_A_PERSON


def review(
    incident: Mapping[str, Any], *, severities: Mapping[str, Targets], now: float | datetime
) -> dict[str, Any]:
    """The review draft of one incident as a JSON-ready dict."""
    now_s = epoch(now)
    if now_s is None:
        raise ValueError("now must be a time")
    # The store's order is the order things happened in, even if a clock stepped back.
    timeline = list(incident.get("timeline") or ())
    opened = epoch(incident.get("opened_at")) or now_s
    targets = severities.get(str(incident.get("severity")), Targets())
    return {
        "incident": {
            key: incident.get(key)
            for key in ("id", "title", "state", "severity", "owner", "route_id", "group_labels")
        },
        "opened_at": iso(opened),
        "generated_at": iso(now_s),
        "alerts": [_alert(alert) for alert in incident.get("alerts") or ()],
        "impact": _impact(incident, timeline, opened),
        "severity_changes": [_severity_change(entry) for entry in timeline
                             if entry.get("kind") == "incident.severity"],
        "response": _response(incident, timeline, targets, opened, now_s),
        "people": {
            "paged": _paged(timeline),
            "notified": _notified(timeline),
            "responders": _responders(timeline),
        },
        "timeline": [_entry(entry, opened) for entry in timeline],
        "to_write": list(SECTIONS_TO_WRITE),
    }


def _alert(alert: Mapping[str, Any]) -> dict[str, Any]:
    labels = alert.get("labels") or {}
    annotations = alert.get("annotations") or {}
    return {
        "fingerprint": alert.get("fingerprint"),
        "alertname": labels.get("alertname", ""),
        "status": alert.get("status"),
        "summary": annotations.get("summary", ""),
        "starts_at": iso(epoch(alert.get("starts_at"))),
        "ends_at": iso(epoch(alert.get("ends_at"))),
        "labels": dict(labels),
    }


def _mitigation(
    incident: Mapping[str, Any], timeline: list[Mapping[str, Any]]
) -> tuple[float | None, str | None]:
    at = epoch(incident.get("mitigated_at"))
    if at is not None:
        return at, incident.get("mitigated_by")
    for entry in timeline:
        if entry.get("kind") == "incident.mitigated":
            return epoch(entry.get("at")), entry.get("actor")
    return None, None


def _impact(
    incident: Mapping[str, Any], timeline: list[Mapping[str, Any]], opened: float
) -> dict[str, Any]:
    """From the first alert's start (or the opening) to mitigation (or resolution)."""
    starts = [epoch(alert.get("starts_at")) for alert in incident.get("alerts") or ()]
    first_alert = min((start for start in starts if start is not None), default=None)
    start, start_from = opened, "opened"
    if first_alert is not None and first_alert <= opened:
        start, start_from = first_alert, "first alert started"
    mitigated, _ = _mitigation(incident, timeline)
    resolved = epoch(incident.get("resolved_at"))
    end, end_from = (mitigated, "mitigated") if mitigated is not None else (resolved, "resolved")
    return {
        "start": iso(start), "start_from": start_from,
        "end": iso(end), "end_from": end_from if end is not None else None,
        "duration_seconds": end - start if end is not None else None,
        "ongoing": end is None,
    }


def _response(
    incident: Mapping[str, Any], timeline: list[Mapping[str, Any]], targets: Targets,
    opened: float, now: float,
) -> list[dict[str, Any]]:
    resolved = epoch(incident.get("resolved_at"))
    mitigated, mitigated_by = _mitigation(incident, timeline)
    steps = [
        ("acknowledge", epoch(incident.get("acknowledged_at")),
         incident.get("acknowledged_by"), targets.ack),
        ("mitigate", mitigated, mitigated_by, targets.mitigate),
        ("resolve", resolved, incident.get("resolved_by"), targets.resolve),
    ]
    rows = []
    for step, at, by, target in steps:
        if step == "mitigate" and at is None:
            if target is None:
                continue
            if resolved is not None:
                # Service was restored at the latest when the incident resolved.
                row = _step(step, resolved, None, target, opened, None, now)
                rows.append(row | {"at": None, "seconds": None, "implied_by": "resolve"})
                continue
        ended = resolved if step != "resolve" else None
        rows.append(_step(step, at, by, target, opened, ended, now))
    return rows


def _step(
    step: str, at: float | None, by: Any, target: float | None, opened: float,
    ended: float | None, now: float,
) -> dict[str, Any]:
    """One response step judged against its target.

    met/missed when the step happened; when it did not: missed if its deadline passed
    while the incident was open, else pending (still open) or skipped (ended without it).
    """
    seconds = at - opened if at is not None else None
    if target is None:
        outcome = "no_target"
    elif seconds is not None:
        outcome = "met" if seconds <= target else "missed"
    else:
        waited_until = ended if ended is not None else now
        if waited_until - opened > target:
            outcome = "missed"
        else:
            outcome = "pending" if ended is None else "skipped"
    return {"step": step, "at": iso(at), "by": by, "seconds": seconds,
            "target_seconds": target, "outcome": outcome}


def _severity_change(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"at": iso(epoch(entry.get("at"))), "from": entry.get("from"),
            "to": entry.get("to"), "actor": entry.get("actor"),
            "by_person": is_response(entry)}


def _paged(timeline: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    people: dict[str, dict[str, Any]] = {}
    for entry in timeline:
        user = paged_user(entry)
        if user is None:
            continue
        row = people.setdefault(user, {"user": user, "first_at": iso(epoch(entry.get("at"))),
                                       "pages": 0, "via": []})
        row["pages"] += 1
        via = entry.get("method") or entry.get("notifier")
        if via and via not in row["via"]:
            row["via"].append(via)
    return list(people.values())


def _notified(timeline: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    receivers: dict[str, dict[str, Any]] = {}
    for entry in timeline:
        receiver = entry.get("receiver")
        if entry.get("kind") not in NOTIFY_KINDS or not receiver:
            continue
        row = receivers.setdefault(str(receiver), {
            "receiver": str(receiver), "first_at": iso(epoch(entry.get("at"))), "count": 0,
        })
        row["count"] += 1
    return list(receivers.values())


def _responders(timeline: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    people: dict[str, dict[str, Any]] = {}
    for entry in timeline:
        actor = entry.get("actor")
        if not actor or not is_response(entry):
            continue
        row = people.setdefault(str(actor), {
            "actor": str(actor), "first_at": iso(epoch(entry.get("at"))), "actions": [],
        })
        if entry.get("kind") not in row["actions"]:
            row["actions"].append(entry.get("kind"))
    return list(people.values())


def _entry(entry: Mapping[str, Any], opened: float) -> dict[str, Any]:
    at = epoch(entry.get("at"))
    details = {key: value for key, value in entry.items() if key not in ("at", "kind", "actor")}
    return {"at": iso(at), "offset_seconds": at - opened if at is not None else None,
            "kind": entry.get("kind"), "actor": entry.get("actor"), "details": details}


# Markdown.

def render_markdown(draft: Mapping[str, Any]) -> str:
    """The review draft as Markdown, with empty sections for people to write."""
    incident = draft["incident"]
    parts = [
        f"# Post-incident review: #{incident['id']} {_text(incident.get('title'))}",
        f"_Draft from pagerd's record, generated {_when(draft['generated_at'])}. "
        "Everything above the last three headings is taken from the incident; "
        "those headings are for the people involved to write._",
        _summary(draft),
        _alerts(draft["alerts"]),
        _impact_md(draft["impact"]),
        _response_md(draft),
        _people(draft["people"]),
        _timeline_md(draft["timeline"]),
        *(f"## {title}\n\n<!-- To be written by the people involved. -->"
          for title in SECTIONS_TO_WRITE),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _summary(draft: Mapping[str, Any]) -> str:
    incident = draft["incident"]
    rows = [("Incident", f"#{incident['id']}"), ("Title", incident.get("title")),
            ("State", incident.get("state")), ("Severity", incident.get("severity")),
            ("Owner", incident.get("owner") or "none"), ("Opened", _when(draft["opened_at"]))]
    return "## Summary\n\n" + _table(("Field", "Value"), rows)


def _alerts(alerts: list[Mapping[str, Any]]) -> str:
    if not alerts:
        return ""
    rows = [(a["alertname"], a["status"], _when(a["starts_at"]), _when(a["ends_at"]),
             a["summary"]) for a in alerts]
    return "### Alerts\n\n" + _table(("Alert", "Status", "Started", "Ended", "Summary"), rows)


def _impact_md(impact: Mapping[str, Any]) -> str:
    end = "ongoing" if impact["ongoing"] else f"{_when(impact['end'])} ({impact['end_from']})"
    return "\n".join([
        "## Impact window", "",
        f"- Start: {_when(impact['start'])} ({impact['start_from']})",
        f"- End: {end}",
        f"- Duration: {_duration(impact['duration_seconds'])}",
    ])


def _response_md(draft: Mapping[str, Any]) -> str:
    rows = []
    for step in draft["response"]:
        took = _duration(step["seconds"])
        if step.get("implied_by"):
            took = f"{took} (no separate mitigation; judged at resolve)"
        rows.append((step["step"], _when(step["at"]), step["by"] or "", took,
                     _duration(step["target_seconds"]), step["outcome"]))
    severity = _text(draft["incident"].get("severity"))
    text = (f"## Severity and targets\n\nSeverity: {severity} (the targets below are this "
            "level's)\n\n" + _table(("Step", "At", "By", "Took", "Target", "Outcome"), rows))
    changes = draft["severity_changes"]
    if changes:
        lines = [f"- {_when(c['at'])}: {_text(c['from'])} → {_text(c['to'])} by "
                 f"{_text(c['actor'])}" for c in changes]
        text += "\n\nSeverity changes:\n\n" + "\n".join(lines)
    return text


def _people(people: Mapping[str, Any]) -> str:
    paged = _table(("Person", "First paged", "Pages", "Via"), [
        (p["user"], _when(p["first_at"]), p["pages"], ", ".join(p["via"]))
        for p in people["paged"]
    ]) if people["paged"] else "Nobody was paged."
    notified = _table(("Receiver", "First notified", "Notifications"), [
        (n["receiver"], _when(n["first_at"]), n["count"]) for n in people["notified"]
    ]) if people["notified"] else "No receiver was notified."
    responders = _table(("Person", "First action", "Actions"), [
        (r["actor"], _when(r["first_at"]), ", ".join(r["actions"]))
        for r in people["responders"]
    ]) if people["responders"] else "Nobody responded on the record."
    return (f"## Who was paged and who responded\n\n### Paged\n\n{paged}\n\n"
            f"### Notified\n\n{notified}\n\n### Responded\n\n{responders}")


def _timeline_md(timeline: list[Mapping[str, Any]]) -> str:
    rows = [(_when(e["at"]), _offset(e["offset_seconds"]), e["kind"], e["actor"],
             _details(e["details"])) for e in timeline]
    return "## Timeline\n\n" + _table(("Time (UTC)", "Since opened", "Event", "By", "Details"),
                                      rows)


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_text(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _text(value: Any) -> str:
    """A value safe inside a Markdown table cell: no HTML, no pipes, one line."""
    if value is None:
        return ""
    text = html.escape(str(value), quote=False).replace("|", "\\|")
    return " ".join(text.split())


def _details(details: Mapping[str, Any]) -> str:
    shown = {key: value for key, value in details.items() if value not in (None, "", [], {})}
    return ", ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, default=str)}"
        for key, value in shown.items()
    )


def _when(value: str | None) -> str:
    if not value:
        return ""
    return value.replace("T", " ").replace("Z", " UTC")


def _offset(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return ("-" if seconds < 0 else "+") + _duration(abs(seconds))


def _duration(seconds: float | None) -> str:
    """4m 10s, 1h 2m, 2d 3h: the two largest units, rounded down to the second."""
    if seconds is None:
        return ""
    total = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size or (unit == "s" and not parts):
            parts.append(f"{total // size}{unit}")
            total %= size
    return " ".join(parts[:2])
