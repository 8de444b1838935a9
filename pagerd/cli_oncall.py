"""CLI commands for on-call: who is on call, overrides, iCal feed URLs."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from pagerd.cli_client import ApiError, Client, fail
from pagerd.daemon.api_oncall import parse_at, who_is_on_call
from pagerd.daemon.statedir import StateDir, feed_secret
from pagerd.oncall import override_codec
from pagerd.oncall.overrides import Override, OverrideError
from pagerd.receivers.errors import PayloadError
from pagerd.settings import Settings
from pagerd.store import sqlite_paging
from pagerd.store.sqlite import connect, read_overrides


def add_parsers(commands: Any, common: Any) -> None:
    """Register `oncall`, `override` and `ical`."""
    oncall = commands.add_parser("oncall", help="who is on call, per schedule, and until when")
    common(oncall)
    oncall.add_argument("schedule", nargs="?")
    oncall.add_argument("--at", help="ISO 8601 instant, e.g. 2026-03-08T07:30:00Z")
    oncall.add_argument("--json", action="store_true")

    override = commands.add_parser("override", help="change a schedule for a while")
    verbs = override.add_subparsers(dest="verb", required=True)
    for verb, help_ in (("take", "cover a time range (someone's shift)"),
                        ("add", "put a person on call beside the rotation"),
                        ("swap", "exchange two shifts")):
        parser = verbs.add_parser(verb, help=help_)
        common(parser)
        parser.add_argument("schedule")
        if verb == "swap":
            for side in ("first", "second"):
                parser.add_argument(f"--{side}", required=True, help="user")
                parser.add_argument(f"--{side}-start", required=True)
                parser.add_argument(f"--{side}-end", required=True)
        else:
            parser.add_argument("--user", required=True)
            parser.add_argument("--start", required=True)
            parser.add_argument("--end", required=True)
        if verb == "take":
            parser.add_argument("--covering", help="only where this person would be on call")
        parser.add_argument("--reason", default="")
        parser.add_argument("--by", help="who is acting, with the admin token")
        parser.add_argument("--url", help="daemon base URL")
    listing = verbs.add_parser("list", help="overrides in force")
    common(listing)
    listing.add_argument("schedule", nargs="?")
    listing.add_argument("--url", help="daemon base URL")
    remove = verbs.add_parser("remove", help="retire an override")
    common(remove)
    remove.add_argument("id", type=int)
    remove.add_argument("--by")
    remove.add_argument("--url")

    ical = commands.add_parser("ical", help="a user's secret iCal feed URLs")
    common(ical)
    ical.add_argument("user")


def oncall(args: argparse.Namespace, settings: Settings, state: StateDir) -> int:
    """`pagerd oncall`: computed here from config and stored overrides; no daemon needed."""
    try:
        at = parse_at(args.at, datetime.now(UTC))
    except PayloadError as exc:
        return fail(f"--at: {exc.reason}")
    if args.schedule and args.schedule not in settings.oncall.schedules:
        return fail(f"unknown schedule {args.schedule!r}")
    opted_out = opted_out_phones(state)
    found = who_is_on_call(settings.oncall, _stored_overrides(settings, state), at,
                           args.schedule, opted_out)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for entry in found:
        people = ", ".join(
            f"{o['user']} until {o['until']}"
            + (f" (unreachable by {', '.join(o['unreachable'])})" if o["unreachable"] else "")
            for o in entry["on_call"])
        print(f"{entry['schedule']}: {people or 'nobody'}")
    return 0


def opted_out_phones(state: StateDir) -> set[str]:
    """Phones that sent STOP, read from the store."""
    if not state.database.exists():
        return set()
    return sqlite_paging.opted_out(connect(state.database, readonly=True))


def _stored_overrides(settings: Settings, state: StateDir) -> dict[str, list[Override]]:
    if not state.database.exists():
        return {}
    found: dict[str, list[Override]] = {}
    for row in read_overrides(connect(state.database, readonly=True), None):
        try:
            override = override_codec.decode(row["kind"], row["data"], settings.oncall.users)
        except OverrideError:
            continue  # its user left the config; the daemon logs it
        found.setdefault(row["schedule"], []).append(override)
    return found


def override(args: argparse.Namespace, settings: Settings, state: StateDir) -> int:
    """`pagerd override ...`: through the daemon, audited."""
    try:
        client = Client.for_cli(settings, state, getattr(args, "url", None))
        if args.verb == "list":
            query = f"?schedule={args.schedule}" if args.schedule else ""
            for row in client.call("GET", f"/api/v1/overrides{query}"):
                print(f"{row['id']:>4} {row['schedule']} {row['kind']} {row['data']} "
                      f"by {row['created_by']}: {row['reason']}")
            return 0
        if args.verb == "remove":
            by = f"?by={args.by}" if args.by else ""
            client.call("DELETE", f"/api/v1/overrides/{args.id}{by}")
            print(f"override {args.id} removed")
            return 0
        body = {key: value for key, value in vars(args).items()
                if key in {"user", "start", "end", "covering", "first", "first_start",
                           "first_end", "second", "second_start", "second_end", "reason",
                           "by"} and value is not None}
        created = client.call("POST", f"/api/v1/schedules/{args.schedule}/overrides",
                              {"kind": args.verb, **body})
    except ApiError as exc:
        return fail(str(exc))
    print(f"override {created['id']} in force on {created['schedule']}")
    return 0


def ical(args: argparse.Namespace, settings: Settings, state: StateDir) -> int:
    """`pagerd ical USER`: the user's feed URLs (keep them secret)."""
    if args.user not in settings.oncall.users:
        return fail(f"unknown user {args.user!r}")
    key = state.read_token("ical")
    if key is None:
        return fail("no feed key yet: run the daemon once with this state dir")
    base = f"{settings.external_url}/ical/{args.user}/{feed_secret(key, args.user)}"
    print(f"{base}/me.ics")
    for name in sorted(settings.oncall.schedules):
        print(f"{base}/{name}.ics")
    return 0
