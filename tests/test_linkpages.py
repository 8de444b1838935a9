"""Link pages: the confirm form, that GET acts on nothing, CSRF and origin checks, refusals.

The last tests wire the pages into a tiny aiohttp app the way the daemon is meant to (GET
confirms, POST acts once), to show the whole exchange over real HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

import aiohttp
import pytest
from aiohttp import web

from pagerd.clock import FakeClock
from pagerd.daemon.linkpages import (
    CSRF_FIELD,
    HEADERS,
    confirm_page,
    csrf_ok,
    csrf_token,
    done_page,
    error_page,
    origin_ok,
    status_for,
)
from pagerd.links import LinkClaims, LinkError, LinkSigner

from helpers import serve_app

CSRF_KEY = b"csrf-key-for-tests-0123456789"
CLAIMS = LinkClaims("k1", 123, "ack", "alice", 1_767_229_200, "AAAAAAAAAAA")


class Tags(HTMLParser):
    """Every start tag with its attributes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


def test_confirm_page_has_one_post_form_back_to_the_link() -> None:
    page = confirm_page(CLAIMS, "SEV1 payments: checkout error rate high", "the-csrf-value")
    found = tags(page)
    forms = [attrs for tag, attrs in found if tag == "form"]
    assert forms == [{"method": "post"}]
    hidden = [a for t, a in found if t == "input" and a.get("type") == "hidden"]
    assert hidden == [{"type": "hidden", "name": CSRF_FIELD, "value": "the-csrf-value"}]
    buttons = [a for t, a in found if t == "button"]
    assert buttons == [{"type": "submit"}]
    assert "Acknowledge incident #123</button>" in page
    assert "Opening this page changed nothing" in page
    assert "2026-01-01 01:00 UTC" in page


def test_pages_are_self_contained_and_accessible() -> None:
    for page in (confirm_page(CLAIMS, "x", "y"), done_page(CLAIMS, "x"), error_page("expired")):
        found = tags(page)
        names = [tag for tag, _ in found]
        assert page.startswith("<!doctype html>")
        assert ("html", {"lang": "en"}) in found
        assert names.count("h1") == 1 and "main" in names and "title" in names
        assert "script" not in names and "img" not in names
        # No fetches of anything: no src or href anywhere.
        assert all("src" not in attrs and "href" not in attrs for _, attrs in found)


def test_style_is_allowed_by_its_hash_in_the_csp() -> None:
    style = re.search(r"<style>(.*)</style>", error_page("expired"), re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in HEADERS["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in HEADERS["Content-Security-Policy"]
    assert HEADERS["Cache-Control"] == "no-store"


def test_everything_shown_is_escaped() -> None:
    claims = LinkClaims("k1", 1, "resolve", "<b>eve</b>", 1_767_229_200, "n")
    page = confirm_page(claims, '<script>alert("x")</script>', '"><script>')
    assert "<script>" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;eve&lt;/b&gt;" in page
    done = done_page(claims, "<i>x</i>", note="<u>n</u>")
    assert "<i>" not in done and "<u>" not in done


def test_view_link_has_nothing_to_post() -> None:
    page = confirm_page(LinkClaims("k1", 9, "view", "alice", 0, "n"), "summary", "c")
    assert "form" not in [tag for tag, _ in tags(page)]


@pytest.mark.parametrize(("action", "heading"), [
    ("ack", "Incident #123 acknowledged"),
    ("resolve", "Incident #123 resolved"),
    ("escalate", "Incident #123 escalated"),
])
def test_done_page(action: str, heading: str) -> None:
    claims = LinkClaims("k1", 123, action, "alice", 0, "n")  # type: ignore[arg-type]
    page = done_page(claims, "SEV2 db: replication lag", note="Bob had acknowledged it already.")
    assert f"<h1>{heading}</h1>" in page
    assert "Bob had acknowledged it already." in page and "alice" in page


@pytest.mark.parametrize(("reason", "status", "words"), [
    ("malformed", 400, "incomplete"),
    ("unknown_key", 403, "not valid"),
    ("bad_signature", 403, "not valid"),
    ("expired", 410, "expired"),
    ("used", 409, "already been used"),
    ("csrf", 403, "could not be checked"),
    ("something-else", 400, "cannot be used"),
])
def test_error_pages(reason: str, status: int, words: str) -> None:
    page = error_page(reason)
    assert words in page
    assert status_for(reason) == status
    assert "form" not in [tag for tag, _ in tags(page)]


def test_csrf_value_belongs_to_one_token_and_one_key() -> None:
    value = csrf_token(CSRF_KEY, "k1.token-a")
    assert csrf_ok(CSRF_KEY, "k1.token-a", value)
    assert not csrf_ok(CSRF_KEY, "k1.token-b", value)
    assert not csrf_ok(b"another-key-0123456789", "k1.token-a", value)
    assert not csrf_ok(CSRF_KEY, "k1.token-a", None)
    assert not csrf_ok(CSRF_KEY, "k1.token-a", "")
    assert not csrf_ok(CSRF_KEY, "k1.token-a", value[:-1] + "é")


@pytest.mark.parametrize(("origin", "allowed"), [
    (None, True),
    ("https://pagerd.example.com", True),
    ("https://evil.example.com", False),
    ("http://pagerd.example.com", False),
    ("https://pagerd.example.com:8443", False),
    ("null", False),
])
def test_origin(origin: str | None, allowed: bool) -> None:
    assert origin_ok(origin, "https://pagerd.example.com/pagerd") is allowed


# A sketch of the daemon's wiring: GET confirms, POST checks CSRF, origin and the nonce, acts.

def link_app(signer: LinkSigner, acted: list[tuple[int, str, str]]) -> web.Application:
    used: set[str] = set()

    def page(text: str, status: int = 200) -> web.Response:
        headers = dict(HEADERS)
        return web.Response(body=text.encode(), status=status, headers=headers)

    def refuse(reason: str) -> web.Response:
        return page(error_page(reason), status_for(reason))

    async def get(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        try:
            claims = signer.verify(token)
        except LinkError as exc:
            return refuse(exc.reason)
        if claims.nonce in used:
            return refuse("used")
        return page(confirm_page(claims, "SEV1 checkout", csrf_token(CSRF_KEY, token)))

    async def post(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        try:
            claims = signer.verify(token)
        except LinkError as exc:
            return refuse(exc.reason)
        form = await request.post()
        presented = form.get(CSRF_FIELD)
        if not isinstance(presented, str) or not csrf_ok(CSRF_KEY, token, presented):
            return refuse("csrf")
        if claims.nonce in used:
            return refuse("used")
        used.add(claims.nonce)
        acted.append((claims.incident_id, claims.action, claims.user))
        return page(done_page(claims, "SEV1 checkout"))

    app = web.Application()
    app.router.add_get("/l/{token}", get)
    app.router.add_post("/l/{token}", post)
    return app


def hidden_csrf(page: str) -> str:
    value = next(a["value"] for t, a in tags(page) if t == "input" and a["name"] == CSRF_FIELD)
    assert value is not None
    return value


async def test_get_changes_nothing_and_the_form_acts_once() -> None:
    clock = FakeClock()
    signer = LinkSigner({"k1": b"k" * 32}, "k1", clock=clock.time)
    acted: list[tuple[int, str, str]] = []
    token = signer.sign(123, "ack", "alice")
    async with serve_app(link_app(signer, acted)) as base, aiohttp.ClientSession() as http:
        url = f"{base}/l/{token}"
        # Previews and scanners: any number of GETs and HEADs, nothing happens.
        for _ in range(3):
            async with http.get(url) as response:
                assert response.status == 200
                assert response.headers["Cache-Control"] == "no-store"
                page = await response.text()
        async with http.head(url) as response:
            assert response.status == 200
        assert acted == []

        # A bare POST (no form field) is refused and acts on nothing.
        async with http.post(url) as response:
            assert response.status == 403
        async with http.post(url, data={CSRF_FIELD: "guess"}) as response:
            assert response.status == 403
        assert acted == []

        # The button: acts once.
        async with http.post(url, data={CSRF_FIELD: hidden_csrf(page)}) as response:
            assert response.status == 200
            assert "Incident #123 acknowledged" in await response.text()
        assert acted == [(123, "ack", "alice")]

        # Replayed: a clear page and a 4xx, no second action.
        async with http.post(url, data={CSRF_FIELD: hidden_csrf(page)}) as response:
            assert response.status == 409
            assert "already been used" in await response.text()
        async with http.get(url) as response:
            assert response.status == 409
        assert acted == [(123, "ack", "alice")]


async def test_forged_and_expired_links_get_a_page_and_a_4xx() -> None:
    clock = FakeClock()
    signer = LinkSigner({"k1": b"k" * 32}, "k1", clock=clock.time)
    acted: list[tuple[int, str, str]] = []
    token = signer.sign(5, "resolve", "bob")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BA")
    async with serve_app(link_app(signer, acted)) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/l/{forged}") as response:
            assert response.status == 403
            assert "not valid" in await response.text()
        clock.advance(3600)
        async with http.get(f"{base}/l/{token}") as response:
            assert response.status == 410
            assert "expired" in await response.text()
    assert acted == []
