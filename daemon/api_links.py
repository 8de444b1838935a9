"""Signed action links: GET shows what the link will do and changes nothing (chat and
mail previews fetch links); the page's button POSTs, with a CSRF value, and acts once."""

from __future__ import annotations

import structlog
from aiohttp import web

from pagerd.daemon.core import Daemon
from pagerd.daemon.linkpages import (
    CSRF_FIELD,
    HEADERS,
    confirm_page,
    csrf_token,
    done_page,
    error_page,
    post_allowed,
    status_for,
)
from pagerd.links import LinkClaims, LinkError

log = structlog.get_logger("pagerd.links")

STATES = {"ack": "acknowledged", "resolve": "resolved", "escalate": "escalate"}


def page(text: str, status: int = 200) -> web.Response:
    """An HTML page with the link pages' security headers."""
    return web.Response(body=text.encode(), status=status, headers=dict(HEADERS))


class LinkApi:
    """Handlers bound to one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _refuse(self, reason: str) -> web.Response:
        self.daemon.metrics.link_refusals.labels(reason).inc()
        return page(error_page(reason), status_for(reason))

    def _verify(self, token: str) -> LinkClaims:
        return self.daemon.signer.verify(token)

    async def _summary(self, claims: LinkClaims) -> str | None:
        incident = await self.daemon.store.incident(claims.incident_id, timeline=False)
        if incident is None:
            return None
        return (f"#{incident['id']} {incident['severity']} {incident['title']} "
                f"({incident['state']})")

    def _csrf_key(self, claims: LinkClaims) -> bytes:
        return self.daemon.signer_key(claims.kid)

    async def show(self, request: web.Request) -> web.Response:
        """GET /l/{token}: what the link does, and a button."""
        token = request.match_info["token"]
        try:
            claims = self._verify(token)
        except LinkError as exc:
            return self._refuse(exc.reason)
        summary = await self._summary(claims)
        if summary is None:
            return self._refuse("malformed")
        return page(confirm_page(claims, summary, csrf_token(self._csrf_key(claims), token)))

    async def act(self, request: web.Request) -> web.Response:
        """POST /l/{token}: the button; acts once."""
        token = request.match_info["token"]
        try:
            claims = self._verify(token)
        except LinkError as exc:
            return self._refuse(exc.reason)
        form = await request.post()
        if not post_allowed(self._csrf_key(claims), token, form.get(CSRF_FIELD),
                            request.headers.get("Origin"), self.daemon.settings.external_url):
            return self._refuse("csrf")
        if claims.action not in STATES:
            return self._refuse("malformed")
        now = self.daemon.clock.time()
        if not await self.daemon.store.spend_link(claims.nonce, claims.expires_at, now):
            return self._refuse("used")
        changed = await self.daemon.act(claims.incident_id, STATES[claims.action],
                                        f"user:{claims.user}", via="link")
        summary = await self._summary(claims) or f"#{claims.incident_id}"
        note = "" if changed else "Nothing changed: someone got there first."
        return page(done_page(claims, summary, note=note))


def add_routes(app: web.Application, daemon: Daemon) -> None:
    """Mount the link pages."""
    api = LinkApi(daemon)
    app.router.add_get("/l/{token}", api.show)
    app.router.add_post("/l/{token}", api.act)
