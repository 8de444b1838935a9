"""CLI commands for the incident practice: page, note, assign, review, actions, report."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from pagerd.cli_client import ApiError, Client, fail
from pagerd.daemon.statedir import StateDir
from pagerd.review import Targets, render_markdown, review
from pagerd.settings import Settings
from pagerd.store.sqlite import connect, read_incident


def add_parsers(commands: Any, common: Any) -> None:
    """Register the practice commands."""
    page = commands.add_parser("page", help="open an incident for a component (frontline)")
    common(page)
    page.add_argument("--component", required=True)
    page.add_argument("--severity", required=True)
    page.add_argument("--summary", required=True)
    page.add_argument("--impact", default="", help="customer impact")
    page.add_argument("--case", default="", help="support case reference")
    page.add_argument("--by", help="who reports, with the admin token")
    page.add_argument("--url")

    note = commands.add_parser("note", help="add a note to an incident's timeline")
    common(note)
    note.add_argument("incident")
    note.add_argument("text")
    note.add_argument("--by")
    note.add_argument("--url")

    assign = commands.add_parser("assign", help="make someone lead or comms manager")
    common(assign)
    assign.add_argument("incident")
    assign.add_argument("role", choices=["lead", "comms"])
    assign.add_argument("user")
    assign.add_argument("--by")
    assign.add_argument("--url")

    draft = commands.add_parser("review", help="a post-incident review draft")
    common(draft)
    draft.add_argument("incident")
    draft.add_argument("--format", choices=["md", "json"], default="md")

    action = commands.add_parser("action", help="remediation actions")
    verbs = action.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add")
    common(add)
    add.add_argument("incident")
    add.add_argument("text")
    add.add_argument("--owner", required=True)
    add.add_argument("--due", required=True, help="ISO 8601 date, e.g. 2027-01-15")
    add.add_argument("--by")
    add.add_argument("--url")
    listing = verbs.add_parser("list")
    common(listing)
    listing.add_argument("--all", action="store_true", help="closed ones too")
    listing.add_argument("--url")
    close = verbs.add_parser("close")
    common(close)
    close.add_argument("id", type=int)
    close.add_argument("--by")
    close.add_argument("--url")

    status = commands.add_parser("status", help="status page updates: draft, publish")
    status_verbs = status.add_subparsers(dest="verb", required=True)
    for verb in ("draft", "publish"):
        parser = status_verbs.add_parser(verb)
        common(parser)
        parser.add_argument("incident")
        if verb == "draft":
            parser.add_argument("--text", help="the update (default: the severity's template)")
        else:
            parser.add_argument("--status", choices=["investigating", "identified",
                                                     "monitoring", "resolved"])
        parser.add_argument("--by")
        parser.add_argument("--url")

    stats = commands.add_parser("report", help="MTTA, MTTR and pages over a period")
    common(stats)
    stats.add_argument("--since", default="30d")
    stats.add_argument("--url")


def run(args: argparse.Namespace, settings: Settings, state: StateDir) -> int:
    """Run one practice command."""
    if args.command == "review":
        return _review(args, settings, state)
    try:
        client = Client.for_cli(settings, state, getattr(args, "url", None))
        answer = _call(args, client)
    except ApiError as exc:
        return fail(str(exc))
    print(json.dumps(answer, indent=2) if not isinstance(answer, str) else answer)
    return 0


def _call(args: argparse.Namespace, client: Client) -> Any:
    by = {"by": args.by} if getattr(args, "by", None) else {}
    incident = getattr(args, "incident", "").lstrip("#")
    if args.command == "page":
        return client.call("POST", "/api/v1/incidents", {
            "component": args.component, "severity": args.severity, "summary": args.summary,
            "customer_impact": args.impact, "support_case": args.case, **by})
    if args.command == "note":
        return client.call("POST", f"/api/v1/incidents/{incident}/notes",
                           {"text": args.text, **by})
    if args.command == "assign":
        return client.call("POST", f"/api/v1/incidents/{incident}/assign",
                           {"role": args.role, "user": args.user, **by})
    if args.command == "status":
        extra = {k: v for k, v in (("text", getattr(args, "text", None)),
                                   ("status", getattr(args, "status", None))) if v}
        return client.call("POST", f"/api/v1/incidents/{incident}/status/{args.verb}",
                           {**extra, **by})
    if args.command == "report":
        return client.call("GET", f"/api/v1/report?since={args.since}")
    if args.verb == "add":
        return client.call("POST", f"/api/v1/incidents/{incident}/actions",
                           {"owner": args.owner, "due": args.due, "text": args.text, **by})
    if args.verb == "close":
        suffix = f"?by={args.by}" if args.by else ""
        return client.call("POST", f"/api/v1/actions/{args.id}/close{suffix}")
    return client.call("GET", "/api/v1/actions" + ("" if args.all else "?open=1"))


def _review(args: argparse.Namespace, settings: Settings, state: StateDir) -> int:
    """Read straight from the store: a review is wanted when the daemon may be down."""
    raw = args.incident.lstrip("#")
    if not raw.isdigit() or not state.database.exists():
        return fail(f"no incident {args.incident}")
    incident = read_incident(connect(state.database, readonly=True), int(raw))
    if incident is None:
        return fail(f"no incident {args.incident}")
    targets = {level.name: Targets(level.ack_target, level.mitigate_target,
                                   level.resolve_target)
               for level in settings.severities.levels}
    draft = review(incident, severities=targets, now=time.time())
    print(render_markdown(draft) if args.format == "md" else json.dumps(draft, indent=2))
    return 0
