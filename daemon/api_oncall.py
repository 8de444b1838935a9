"""The on-call API: who is on call, schedule overrides, and the iCal feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiohttp import web

from pagerd.daemon.core import Daemon
from pagerd.daemon.responses import json_response, read_json, unauthorized
from pagerd.oncall import override_codec
from pagerd.oncall.directory import OnCall
from pagerd.oncall.overrides import OverrideError
from pagerd.receivers.auth import presented_token
from pagerd.receivers.errors import PayloadError

log = structlog.get_logger("pagerd.oncall")

FEED_PAST = timedelta(days=7)
FEED_FUTURE = timedelta(days=90)


def parse_at(value: str | None, now: datetime) -> datetime:
    """`at` from a query string: ISO 8601 with an offset (or Z); now when absent."""
    if not value:
        return now
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError("at", "must be an ISO 8601 time, e.g. 2026-03-08T07:30:00Z") from None
    if at.tzinfo is None:
        raise PayloadError("at", "needs a time zone or offset")
    return at


def who_is_on_call(oncall: OnCall, overrides: dict[str, list[Any]], at: datetime,
                   only: str | None = None,
                   opted_out: set[str] | None = None) -> list[dict[str, Any]]:
    """Per schedule: who is on call at `at`, since and until when, and by which methods
    they cannot be reached (a phone that sent STOP)."""
    opted_out = opted_out or set()
    found = []
    for name, schedule in sorted(oncall.schedules.items()):
        if only and name != only:
            continue
        shifts = schedule.current_shifts(at, overrides.get(name, ()))
        found.append({
            "schedule": name,
            "at": at.isoformat(),
            "on_call": [
                {"user": s.user, "since": s.start.isoformat(), "until": s.end.isoformat(),
                 "unreachable": unreachable(oncall, s.user, opted_out)}
                for s in shifts
            ],
        })
    return found


def unreachable(oncall: OnCall, user: str, opted_out: set[str]) -> list[str]:
    """The person's methods that cannot reach them now (SMS to a phone that sent STOP)."""
    person = oncall.users.get(user)
    if person is None or person.contacts.sms not in opted_out:
        return []
    return ["sms"]


class OncallApi:
    """Handlers bound to one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _actor(self, request: web.Request) -> str | None:
        return self.daemon.actor_for(presented_token(request.headers, request.query))

    async def oncall(self, request: web.Request) -> web.Response:
        """GET /api/v1/oncall[?schedule=NAME][&at=TIME]."""
        if self._actor(request) is None:
            return unauthorized(self.daemon, "oncall")
        schedule = request.query.get("schedule")
        oncall = self.daemon.settings.oncall
        if schedule and schedule not in oncall.schedules:
            return json_response({"error": f"unknown schedule {schedule!r}",
                                  "field": "schedule"}, 404)
        try:
            at = parse_at(request.query.get("at"), self.daemon.clock.now())
        except PayloadError as exc:
            return json_response(exc.to_json(), exc.status)
        return json_response(who_is_on_call(oncall, self.daemon.overrides, at, schedule,
                                            self.daemon.opted_out))

    async def list_overrides(self, request: web.Request) -> web.Response:
        """GET /api/v1/overrides[?schedule=NAME]."""
        if self._actor(request) is None:
            return unauthorized(self.daemon, "overrides")
        return json_response(await self.daemon.store.overrides(request.query.get("schedule")))

    async def add_override(self, request: web.Request) -> web.Response:
        """POST /api/v1/schedules/{schedule}/overrides: take, swap or add, audited."""
        actor = self._actor(request)
        if actor is None:
            return unauthorized(self.daemon, "overrides")
        schedule = request.match_info["schedule"]
        oncall = self.daemon.settings.oncall
        if schedule not in oncall.schedules:
            return json_response({"error": f"unknown schedule {schedule!r}",
                                  "field": "schedule"}, 404)
        try:
            body = await read_json(request, 65536)
            if not isinstance(body, dict):
                raise PayloadError("body", "must be a JSON object")
            reason = body.get("reason", "")
            if not isinstance(reason, str):
                raise PayloadError("reason", "must be a string")
            override = override_codec.decode(body.get("kind"), body, oncall.users)
        except PayloadError as exc:
            return json_response(exc.to_json(), exc.status)
        except OverrideError as exc:
            return json_response({"error": exc.reason, "field": exc.field}, 400)
        actor = self.daemon.named_actor(actor, body.get("by"))
        override_id = await self.daemon.add_override(schedule, override, actor, reason)
        return json_response({"id": override_id, "schedule": schedule, "kind": override.kind,
                              **override_codec.encode(override)}, 201)

    async def remove_override(self, request: web.Request) -> web.Response:
        """DELETE /api/v1/overrides/{id}."""
        actor = self._actor(request)
        if actor is None:
            return unauthorized(self.daemon, "overrides")
        raw = request.match_info["id"]
        if not raw.isdigit():
            return json_response({"error": "must be an integer", "field": "id"}, 400)
        actor = self.daemon.named_actor(actor, request.query.get("by"))
        if not await self.daemon.remove_override(int(raw), actor):
            return json_response({"error": "no such override in force", "field": "id"}, 404)
        return json_response({"status": "success"})

    async def ical(self, request: web.Request) -> web.Response:
        """GET /ical/{user}/{secret}/{feed}.ics: a user's shifts, or a schedule's."""
        # Imported at the first feed asked for: icalendar costs 4 MB a daemon may never use.
        from pagerd.oncall.ical import schedule_calendar, user_calendar

        user, secret = request.match_info["user"], request.match_info["secret"]
        if not self.daemon.ical_secret_ok(user, secret):
            # Same answer for an unknown user and a wrong secret: no probing for names.
            return web.Response(status=404, text="not found\n")
        oncall = self.daemon.settings.oncall
        now = self.daemon.clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
        start, end = now - FEED_PAST, now + FEED_FUTURE
        feed = request.match_info["feed"]
        generated = datetime.fromtimestamp(self.daemon.settings_loaded_at, UTC)
        if feed == "me":
            body = user_calendar(oncall, user, start, end, generated_at=generated,
                                 overrides=self.daemon.overrides)
        elif feed in oncall.schedules:
            body = schedule_calendar(oncall.schedules[feed], start, end, generated_at=generated,
                                     overrides=self.daemon.overrides.get(feed, ()))
        else:
            return web.Response(status=404, text="no such schedule\n")
        return web.Response(body=body, content_type="text/calendar", charset="utf-8")


def add_routes(app: web.Application, daemon: Daemon) -> None:
    """Mount the on-call endpoints."""
    api = OncallApi(daemon)
    app.router.add_get("/api/v1/oncall", api.oncall)
    app.router.add_get("/api/v1/overrides", api.list_overrides)
    app.router.add_post("/api/v1/schedules/{schedule}/overrides", api.add_override)
    app.router.add_delete("/api/v1/overrides/{id}", api.remove_override)
    app.router.add_get("/ical/{user}/{secret}/{feed}.ics", api.ical)
