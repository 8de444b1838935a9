"""The `pagerd` command: run the daemon, check a config, test routes, list incidents."""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pagerd import __version__, checks, cli_oncall, cli_practice
from pagerd.cli_client import ApiError, Client, fail
from pagerd.daemon import logging as daemon_logging
from pagerd.daemon.core import Options
from pagerd.daemon.lifecycle import serve
from pagerd.daemon.statedir import StateDir, default_state_dir
from pagerd.errors import ConfigErrors
from pagerd.settings import Settings, load_settings, locate
from pagerd.store.sqlite import connect, read_incidents


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $PAGERD_CONFIG, "
                        "/etc/pagerd/pagerd.yml, then the packaged default)")
    parser.add_argument("--state-dir", type=Path, help="state directory (default: "
                        "$PAGERD_STATE_DIR or ~/.local/state/pagerd)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command."""
    parser = argparse.ArgumentParser(prog="pagerd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pagerd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the daemon")
    _common(run)
    run.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:9797)")

    check = commands.add_parser("check", help="validate a config file")
    check.add_argument("file")

    routes = commands.add_parser("routes", help="routing tree tools")
    routes_commands = routes.add_subparsers(dest="routes_command", required=True)
    test = routes_commands.add_parser("test", help="show the routes a label set matches")
    _common(test)
    test.add_argument("labels", nargs="+", metavar="label=value")

    incidents = commands.add_parser("incidents", help="list incidents")
    _common(incidents)
    incidents.add_argument("--json", action="store_true", help="print JSON")
    incidents.add_argument("--open", action="store_true", help="only open incidents")

    for action in ("ack", "resolve"):
        act = commands.add_parser(action, help=f"{action} an incident (via the daemon)")
        _common(act)
        act.add_argument("incident")
        act.add_argument("--by", help="who is acting, with the admin token (for the audit)")
        act.add_argument("--note", default="")
        act.add_argument("--url", help="daemon base URL (default: from the config's listen)")
    test_page = commands.add_parser("test-page", help="check that pages reach a person")
    _common(test_page)
    test_page.add_argument("user")
    test_page.add_argument("--method", choices=["sms", "voice", "email", "webhook"])
    test_page.add_argument("--url", help="daemon base URL")
    cli_oncall.add_parsers(commands, _common)
    cli_practice.add_parsers(commands, _common)
    act = commands.add_parser("mitigate", help="service restored, cause still open")
    _common(act)
    act.add_argument("incident")
    act.add_argument("--by")
    act.add_argument("--note", default="")
    act.add_argument("--url")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pagerd` command."""
    args = build_parser().parse_args(argv)
    # Logs go to stderr, so that stdout stays the command's output (e.g. JSON).
    daemon_logging.configure()
    handlers = {"run": _run, "check": _check, "routes": _routes_test,
                "incidents": _incidents, "ack": _act, "resolve": _act,
                "oncall": _oncall_command, "override": _oncall_command,
                "ical": _oncall_command, "test-page": _test_page, "mitigate": _act,
                **dict.fromkeys(("page", "note", "assign", "review", "action", "report",
                                 "status"), _practice)}
    return handlers[args.command](args)


def _settings_or_exit(config: str | None) -> Settings:
    try:
        file, text = locate(config)
        return load_settings(file, text)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:
        print(f"{config}: {exc.strerror}", file=sys.stderr)
        raise SystemExit(1) from None


def _run(args: argparse.Namespace) -> int:
    options = Options(config=args.config, listen=args.listen, state_dir=args.state_dir)
    return asyncio.run(serve(options))


def _check(args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text()
    except OSError as exc:
        print(f"{args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        settings = load_settings(args.file, text)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    for warning in checks.warnings(settings, datetime.now(UTC)):
        print(f"{warning.position}: warning: {warning.reason}", file=sys.stderr)
    routes = sum(1 for _ in settings.routing.tree.routes())
    print(f"{args.file}: ok ({routes} routes, {len(settings.receivers)} receivers)")
    return 0


def _routes_test(args: argparse.Namespace) -> int:
    settings = _settings_or_exit(args.config)
    labels: dict[str, str] = {}
    for item in args.labels:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"not a label=value pair: {item!r}", file=sys.stderr)
            return 2
        labels[name] = value
    level, _ = settings.severities.classify(labels)
    tree = settings.routing.tree
    for route in tree.match(labels):
        print(f"route={route.id} receiver={route.receiver} "
              f"severity={route.severity or level} owner={route.owner or '-'} "
              f"group_key={tree.group_key(route, labels)}")
    return 0


def _incidents(args: argparse.Namespace) -> int:
    state = StateDir(args.state_dir or default_state_dir())
    incidents: list[dict[str, Any]] = []
    if state.database.exists():
        # Read-only and lock-free: works beside a running daemon (WAL) and without one.
        try:
            conn = connect(state.database, readonly=True)
            incidents = read_incidents(conn, args.open, 1000)
        except sqlite3.Error as exc:
            print(f"{state.database}: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(incidents, indent=2))
        return 0
    for incident in incidents:
        firing = sum(1 for alert in incident["alerts"] if alert["status"] == "firing")
        print(f"#{incident['id']:<5} {incident['state']:<12} {incident['severity']:<5} "
              f"{incident['owner'] or '-':<12} {firing}/{len(incident['alerts'])} firing  "
              f"{incident['title']}")
    return 0


def _act(args: argparse.Namespace) -> int:
    settings = _settings_or_exit(args.config)
    state = StateDir(args.state_dir or default_state_dir())
    incident = args.incident.lstrip("#")
    try:
        client = Client.for_cli(settings, state, args.url)
        answer = client.call("POST", f"/api/v1/incidents/{incident}/{args.command}",
                             {"by": args.by, "note": args.note})
    except ApiError as exc:
        return fail(str(exc))
    print(answer["state"] if answer["changed"] else f"already {answer['state']}")
    return 0


def _test_page(args: argparse.Namespace) -> int:
    settings = _settings_or_exit(args.config)
    state = StateDir(args.state_dir or default_state_dir())
    body = {"method": args.method} if args.method else {}
    try:
        client = Client.for_cli(settings, state, args.url)
        result = client.call("POST", f"/api/v1/users/{args.user}/test-page", body)
    except ApiError as exc:
        return fail(str(exc))
    print(f"test page to {result['user']} by {result['method']}: delivered")
    return 0


def _practice(args: argparse.Namespace) -> int:
    settings = _settings_or_exit(args.config)
    return cli_practice.run(args, settings, StateDir(args.state_dir or default_state_dir()))


def _oncall_command(args: argparse.Namespace) -> int:
    settings = _settings_or_exit(args.config)
    state = StateDir(args.state_dir or default_state_dir())
    command = {"oncall": cli_oncall.oncall, "override": cli_oncall.override,
               "ical": cli_oncall.ical}[args.command]
    return command(args, settings, state)


if __name__ == "__main__":
    sys.exit(main())
