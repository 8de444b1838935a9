"""Serving the incident page at /i/{token}: a signed "view" link, for one person.

The link may be opened many times (it is a page, not an action); each button is a POST
carrying the page's CSRF value and acts as the link's person.
"""

from __future__ import annotations

import contextlib

from aiohttp import web

from pagerd.daemon.api_status import draft_text, latest_draft, publish_draft
from pagerd.daemon.core import Daemon
from pagerd.daemon.incident_page import HEADERS, render
from pagerd.daemon.linkpages import csrf_token, error_page, post_allowed, status_for
from pagerd.links import LinkClaims, LinkError
from pagerd.notifiers.base import DeliveryError
from pagerd.receivers.errors import PayloadError

STATES = {"ack": "acknowledged", "mitigate": "mitigated", "resolve": "resolved"}


class IncidentPage:
    """Handlers bound to one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _claims(self, token: str) -> LinkClaims:
        claims = self.daemon.signer.verify(token)
        if claims.action != "view":
            raise LinkError("malformed")
        return claims

    def _refuse(self, reason: str) -> web.Response:
        self.daemon.metrics.link_refusals.labels(reason).inc()
        return web.Response(body=error_page(reason).encode(), status=status_for(reason),
                            headers=HEADERS)

    async def show(self, request: web.Request) -> web.Response:
        """GET /i/{token}/: the page."""
        token = request.match_info["token"]
        try:
            claims = self._claims(token)
        except LinkError as exc:
            return self._refuse(exc.reason)
        incident = await self.daemon.store.incident(claims.incident_id)
        if incident is None:
            return self._refuse("malformed")
        settings = self.daemon.settings
        opened = incident["opened_at"]
        changes = await self.daemon.store.recent_changes(
            incident["owner"], opened - 24 * 3600, max(opened, self.daemon.clock.time()))
        page = render(incident, settings.severities.level(incident["severity"]),
                      settings.components.get(incident["owner"] or ""),
                      csrf_token(self.daemon.signer_key(claims.kid), token), changes,
                      status_page=settings.status_page is not None,
                      draft=latest_draft(incident))
        return web.Response(body=page.encode(), headers=HEADERS)

    async def act(self, request: web.Request) -> web.Response:
        """POST /i/{token}/act/{action}: a button, as the link's person."""
        token = request.match_info["token"]
        try:
            claims = self._claims(token)
        except LinkError as exc:
            return self._refuse(exc.reason)
        form = await request.post()
        if not post_allowed(self.daemon.signer_key(claims.kid), token, form.get("csrf"),
                            request.headers.get("Origin"), self.daemon.settings.external_url):
            return self._refuse("csrf")
        action = request.match_info["action"]
        who = f"user:{claims.user}"
        if action == "note":
            text = form.get("text")
            if isinstance(text, str) and text.strip():
                await self.daemon.store.append_timeline(
                    claims.incident_id, self.daemon.clock.time(), "note", who,
                    {"text": text.strip()[:4000], "by": "person"})
        elif action in ("draft", "publish"):
            await self._status_update(claims.incident_id, action, who, form.get("status"))
        else:
            await self.daemon.act(claims.incident_id, STATES[action], who, via="page")
        # Back to the page (POST-redirect-GET), which now shows the new state.
        raise web.HTTPSeeOther(f"/i/{token}/")

    async def _status_update(self, incident_id: int, action: str, who: str,
                             status: object) -> None:
        """Draft a customer update from the template (unless one is pending), or publish
        the pending draft. A refusal by the status page is logged and on the timeline; the
        person is sent back to the page either way, and it shows what happened."""
        daemon = self.daemon
        incident = await daemon.store.incident(incident_id)
        if incident is None or daemon.settings.status_page is None:
            return
        if action == "draft":
            if latest_draft(incident) is None:
                await daemon.store.append_timeline(incident_id, daemon.clock.time(),
                                                   "status.drafted", who,
                                                   {"text": draft_text(daemon, incident)})
            return
        # A refusal is logged and on the timeline; with no draft left, there is nothing to do.
        with contextlib.suppress(PayloadError, DeliveryError):
            await publish_draft(daemon, incident, who, status)


def add_routes(app: web.Application, daemon: Daemon) -> None:
    """Mount the incident page."""
    page = IncidentPage(daemon)
    app.router.add_get("/i/{token}/", page.show)
    app.router.add_post("/i/{token}/act/{action:ack|mitigate|resolve|note|draft|publish}", page.act)
