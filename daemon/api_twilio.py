"""Twilio's webhooks: replies by SMS, delivery status callbacks and voice key presses.

Every request must carry a valid `X-Twilio-Signature` over the URL Twilio was given
(external_url + path), checked against the auth token and, during a rotation, the
secondary one; a forged request gets 403 and changes nothing.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from pagerd.daemon.core import Daemon
from pagerd.links import LinkError
from pagerd.notifiers.twilio_voice import action_for_digit, twiml_after_keypress
from pagerd.receivers.twilio import (
    FormError,
    form_params,
    parse_inbound_sms,
    parse_keypress,
    parse_message_status,
    parse_reply,
    twiml_message,
    validate,
)

log = structlog.get_logger("pagerd.twilio")

HELP_LIMIT = 3
HELP_WINDOW = 3600.0
HELP_TEXT = ("pagerd: reply with the code of a page and a letter: 4a acknowledge, "
             "4r resolve, 4e escalate; or ack / resolve for the newest page.")
ACTIONS = {"ack": "acknowledged", "resolve": "resolved", "escalate": "escalate"}


def twiml(text: str | None = None) -> web.Response:
    """A TwiML answer (a reply message, or nothing)."""
    return web.Response(text=twiml_message(text), content_type="text/xml")


class TwilioApi:
    """Handlers bound to one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def _verified_form(self, request: web.Request) -> dict[str, list[str]] | None:
        twilio = self.daemon.settings.paging.twilio
        body = await request.read()
        params = form_params(body)
        if twilio is None:
            return None
        tokens = [t for t in (twilio.auth_token, twilio.secondary_auth_token) if t]
        url = f"{self.daemon.settings.external_url}{request.path_qs}"
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validate(tokens, url, params, signature):
            self.daemon.metrics.auth_failures.labels("twilio").inc()
            return None
        return params

    async def sms(self, request: web.Request) -> web.Response:
        """POST /api/v1/twilio/sms: a text from someone's phone."""
        params = await self._verified_form(request)
        if params is None:
            return web.Response(status=403, text="forbidden\n")
        try:
            inbound = parse_inbound_sms(params)
        except FormError as exc:
            return web.json_response({"error": "missing", "field": exc.field}, status=400)
        user = self.daemon.user_by_phone(inbound.from_number)
        if user is None:
            # Unknown senders get nothing back: no reply to be abused, nothing to probe.
            log.info("sms.unknown_sender")
            return twiml()
        reply = parse_reply(inbound.body)
        now = self.daemon.clock.time()
        if reply.kind in ("opt_out", "opt_in"):
            await self.daemon.set_opt_out(user, inbound.from_number, reply.kind == "opt_out")
            return twiml()  # Twilio itself confirms STOP and START
        if reply.kind == "help":
            if reply.keyword:  # HELP / INFO: Twilio answers those on its own
                return twiml()
            allowed = await self.daemon.store.allow_help(inbound.from_number, now, HELP_LIMIT,
                                                         HELP_WINDOW)
            # Capped, so that two bots can never keep texting each other.
            return twiml(HELP_TEXT if allowed else None)
        return twiml(await self._act(user, inbound.from_number, reply.action or "",
                                     reply.code, now))

    async def _act(self, user: str, phone: str, action: str, code: str | None,
                   now: float) -> str:
        if code is not None:
            incident_id = await self.daemon.store.incident_for_code(phone, int(code), now)
            if incident_id is None:
                return f"pagerd: code {code} is unknown or expired."
            incidents = [incident_id]
        else:
            last = await self.daemon.store.last_page(address=phone)
            if last is None:
                return "pagerd: no page to act on."
            incidents = list(last["incidents"])
        done = []
        for incident_id in incidents:
            if await self.daemon.act(incident_id, ACTIONS[action], f"user:{user}", via="sms"):
                done.append(f"#{incident_id}")
        verb = {"ack": "acknowledged", "resolve": "resolved", "escalate": "escalated"}[action]
        if not done:
            return f"pagerd: nothing to do; {', '.join(f'#{i}' for i in incidents)} unchanged."
        return f"pagerd: {verb} {', '.join(done)}."

    async def status(self, request: web.Request) -> web.Response:
        """POST /api/v1/twilio/status: delivery of a text; a failure fails over."""
        params = await self._verified_form(request)
        if params is None:
            return web.Response(status=403, text="forbidden\n")
        try:
            status = parse_message_status(params)
        except FormError as exc:
            return web.json_response({"error": "missing", "field": exc.field}, status=400)
        await self.daemon.delivery_status(status.message_sid, status.status,
                                          status.reason if status.failed else None)
        return web.Response(status=204)

    async def call_status(self, request: web.Request) -> web.Response:
        """POST /api/v1/twilio/call-status: a call's end; busy or no answer fails over."""
        params = await self._verified_form(request)
        if params is None:
            return web.Response(status=403, text="forbidden\n")
        sid = (params.get("CallSid") or [""])[0]
        state = (params.get("CallStatus") or [""])[0]
        failed = state in ("busy", "no-answer", "failed", "canceled")
        await self.daemon.delivery_status(sid, state, f"call_{state}" if failed else None)
        return web.Response(status=204)

    async def voice(self, request: web.Request) -> web.Response:
        """POST /api/v1/twilio/voice/{token}: the key a callee pressed."""
        params = await self._verified_form(request)
        if params is None:
            return web.Response(status=403, text="forbidden\n")
        try:
            claims = self.daemon.signer.verify(request.match_info["token"])
            digit = parse_keypress(params).digits
        except (LinkError, FormError):
            return web.Response(text=twiml_after_keypress(""), content_type="text/xml")
        action = action_for_digit(digit)
        if action is not None:
            await self.daemon.act(claims.incident_id, ACTIONS[action], f"user:{claims.user}",
                                  via="voice")
        return web.Response(text=twiml_after_keypress(digit), content_type="text/xml")


def add_routes(app: web.Application, daemon: Daemon) -> None:
    """Mount Twilio's webhooks."""
    api = TwilioApi(daemon)
    app.router.add_post("/api/v1/twilio/sms", api.sms)
    app.router.add_post("/api/v1/twilio/status", api.status)
    app.router.add_post("/api/v1/twilio/call-status", api.call_status)
    app.router.add_post("/api/v1/twilio/voice/{token}", api.voice)


__all__: list[Any] = ["add_routes"]
