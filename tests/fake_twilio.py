"""A local Twilio for tests: the Messages and Calls APIs, and signed webhooks back to pagerd.

It speaks the documented REST shapes: basic auth with the account SID and auth token,
form-encoded requests to `/2010-04-01/Accounts/{AccountSid}/{Messages,Calls}.json`, a 201
JSON resource on success and `{code, message, more_info, status}` on error. Every request is
recorded. Tests can make it fail (a status, a Twilio error code, a dropped connection, a
slow answer), refuse numbers as Twilio would (21211 invalid, 21610 opted out, 21614 not a
mobile), and make it call pagerd the way Twilio does: message and call status callbacks,
inbound texts, and a callee pressing a key, each signed with `X-Twilio-Signature`.

Error codes other than the ones named above are chosen to look like Twilio's, not checked
against it; nothing here should be read as documentation of Twilio.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import secrets
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from pagerd.notifiers.twilio_sms import gsm7_septets
from pagerd.receivers.twilio import SIGNATURE_HEADER, twilio_signature

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-twilio-auth-token"
API = "2010-04-01"
MESSAGE_FAILURE_STATUSES = ("undelivered", "failed")

# Refusals Twilio documents for the Messages API.
REFUSALS = {
    21211: "The 'To' number {to} is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
}


@dataclass
class Recorded:
    """One request the fake received, as it arrived."""

    method: str
    path: str
    form: dict[str, list[str]]
    headers: dict[str, str]
    authorized: bool
    status: int = 0

    def field(self, name: str) -> str:
        """The first value of a form field, or ''."""
        return (self.form.get(name) or [""])[0]


@dataclass(frozen=True)
class Failure:
    """How the fake answers one API request instead of succeeding.

    `status` with an optional Twilio `code`; `drop` closes the connection without an answer;
    `delay` waits first (long enough trips the client's timeout).
    """

    status: int = 500
    code: int | None = None
    message: str = "Internal Server Error"
    drop: bool = False
    delay: float = 0.0


@dataclass
class Message:
    """An SMS the fake took."""

    sid: str
    to: str
    from_: str
    body: str
    status_callback: str
    status: str = "queued"


@dataclass
class Call:
    """A call the fake placed; `gather_action` is set once the callee has heard a `<Gather>`."""

    sid: str
    to: str
    from_: str
    twiml: str
    url: str
    status_callback: str
    status: str = "queued"
    gather_action: str = ""


@dataclass
class Delivered:
    """A webhook the fake sent to pagerd, and pagerd's answer."""

    url: str
    form: dict[str, str]
    status: int
    text: str


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({
        "code": code, "message": message, "status": status,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
    }, status=status)


def _segments(body: str) -> int:
    septets = gsm7_septets(body)
    single, part, size = (160, 153, septets) if septets is not None else (70, 67, len(body))
    return 1 if size <= single else -(-size // part)


@dataclass
class FakeTwilio:
    """The fake's state; serve it with `fake_twilio()`."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    # The token webhooks are signed with; change it to act out a token rotation.
    signing_token: str = AUTH_TOKEN
    base_url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    messages: dict[str, Message] = field(default_factory=dict)
    calls: dict[str, Call] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    invalid_numbers: set[str] = field(default_factory=set)
    opted_out: set[str] = field(default_factory=set)
    not_mobile: set[str] = field(default_factory=set)
    # Statuses sent to each new message's StatusCallback, in order, e.g. ("sent", "delivered").
    auto_status: tuple[str, ...] = ()
    auto_error_code: int = 30003
    delivered: list[Delivered] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _session: aiohttp.ClientSession | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _idempotency: itertools.count[int] = field(default_factory=itertools.count)

    # --- setting it up ---

    def fail_next(self, *failures: Failure) -> None:
        """Answer the next API requests with these failures, one each, in order."""
        self.failures.extend(failures)

    def app(self) -> web.Application:
        """The aiohttp application: the two list resources, every request recorded."""
        app = web.Application(middlewares=[self._record])
        app.router.add_post(f"/{API}/Accounts/{{account}}/Messages.json", self._create_message)
        app.router.add_post(f"/{API}/Accounts/{{account}}/Calls.json", self._create_call)
        return app

    # --- the REST API ---

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        posted = await request.post()
        form = {key: [str(value) for value in posted.getall(key)] for key in set(posted)}
        entry = Recorded(request.method, request.path, form, dict(request.headers),
                         authorized=self._authorized(request))
        self.requests.append(entry)
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            entry.status = exc.status
            raise
        entry.status = response.status
        self.changed.set()
        return response

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return (secrets.compare_digest(user, self.account_sid)
                and secrets.compare_digest(password, self.auth_token))

    async def _refuse(self, request: web.Request) -> web.Response | None:
        """An auth error, or a failure the test queued, or None to go on."""
        if not self.requests[-1].authorized:
            return _error(401, 20003, "Authenticate")
        if request.match_info["account"] != self.account_sid:
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        if not self.failures:
            return None
        failure = self.failures.pop(0)
        await asyncio.sleep(failure.delay)
        if failure.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=599)  # Never reaches the client.
        if failure.code is None:
            return web.Response(status=failure.status, text=failure.message)
        return _error(failure.status, failure.code, failure.message)

    def _resource(self, kind: str, sid: str, form: Recorded, extra: dict[str, Any]) -> Any:
        now = formatdate(usegmt=True).replace("GMT", "+0000")
        return {
            "account_sid": self.account_sid, "api_version": API, "sid": sid,
            "date_created": now, "date_updated": now, "direction": "outbound-api",
            "from": form.field("From"), "to": form.field("To"), "price": None,
            "price_unit": "USD", "status": "queued",
            "uri": f"/{API}/Accounts/{self.account_sid}/{kind}/{sid}.json",
        } | extra

    async def _create_message(self, request: web.Request) -> web.Response:
        if refusal := await self._refuse(request):
            return refusal
        form = self.requests[-1]
        to, body = form.field("To"), form.field("Body")
        for code, needed in ((21604, "To"), (21603, "From"), (21602, "Body")):
            if not form.field(needed):
                return _error(400, code, f"A '{needed}' is required.")
        if len(body) > 1600:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 "
                          "character limit.")
        refused = (21211 if to in self.invalid_numbers or not to.startswith("+")
                   else 21610 if to in self.opted_out
                   else 21614 if to in self.not_mobile else None)
        if refused:
            return _error(400, refused, REFUSALS[refused].format(to=to))
        message = Message(_sid("SM"), to, form.field("From"), body, form.field("StatusCallback"))
        self.messages[message.sid] = message
        if message.status_callback and self.auto_status:
            self._spawn(self._progress(message))
        return web.json_response(self._resource("Messages", message.sid, form, {
            "body": body, "date_sent": None, "error_code": None, "error_message": None,
            "messaging_service_sid": None, "num_media": "0",
            "num_segments": str(_segments(body)),
            "subresource_uris": {"media": f"/{API}/Accounts/{self.account_sid}/Messages/"
                                          f"{message.sid}/Media.json"},
        }), status=201)

    async def _create_call(self, request: web.Request) -> web.Response:
        if refusal := await self._refuse(request):
            return refusal
        form = self.requests[-1]
        if not form.field("To"):
            return _error(400, 21201, "No 'To' number is specified")
        if not form.field("From"):
            return _error(400, 21213, "No 'From' number is specified")
        if not (form.field("Url") or form.field("Twiml")):
            return _error(400, 21205, "Url or Twiml is required")
        if len(form.field("Twiml")) > 4000:
            return _error(400, 32018, "Twiml size exceeded maximum allowed value of 4000 "
                          "characters")
        if form.field("To") in self.invalid_numbers or not form.field("To").startswith("+"):
            return _error(400, 21211, REFUSALS[21211].format(to=form.field("To")))
        call = Call(_sid("CA"), form.field("To"), form.field("From"), form.field("Twiml"),
                    form.field("Url"), form.field("StatusCallback"))
        self.calls[call.sid] = call
        return web.json_response(self._resource("Calls", call.sid, form, {
            "answered_by": None, "caller_name": None, "duration": None, "end_time": None,
            "parent_call_sid": None, "start_time": None, "queue_time": "0",
        }), status=201)

    # --- Twilio calling pagerd ---

    async def _post_signed(self, url: str, form: Mapping[str, str]) -> Delivered:
        assert self._session is not None, "serve the fake with fake_twilio()"
        headers = {
            SIGNATURE_HEADER: twilio_signature(self.signing_token, url, dict(form)),
            "I-Twilio-Idempotency-Token": f"fake-{next(self._idempotency)}",
            "User-Agent": "TwilioProxy/1.1",
        }
        async with self._session.post(url, data=dict(form), headers=headers) as response:
            sent = Delivered(url, dict(form), response.status, await response.text())
        self.delivered.append(sent)
        self.changed.set()
        return sent

    async def send_status(self, message_sid: str, status: str, *,
                          error_code: int | None = None, url: str = "") -> Delivered:
        """A signed status callback for a message, to its StatusCallback (or `url`)."""
        message = self.messages[message_sid]
        message.status = status
        form = {
            "MessageStatus": status, "ApiVersion": API, "SmsSid": message.sid,
            "SmsStatus": status, "To": message.to, "From": message.from_,
            "MessageSid": message.sid, "AccountSid": self.account_sid,
        }
        if status in MESSAGE_FAILURE_STATUSES:
            form["ErrorCode"] = str(error_code or self.auto_error_code)
        return await self._post_signed(url or message.status_callback, form)

    async def send_sms(self, url: str, *, from_: str, body: str,
                       to: str = "+15005550006") -> Delivered:
        """A signed inbound text from `from_`, shaped like a real one (blank fields too)."""
        sid = _sid("SM")
        form = {
            "ToCountry": "US", "ToState": "", "SmsMessageSid": sid, "NumMedia": "0",
            "ToCity": "", "FromZip": "", "SmsSid": sid, "FromState": "",
            "SmsStatus": "received", "FromCity": "", "Body": body, "FromCountry": "US",
            "To": to, "ToZip": "", "NumSegments": "1", "MessageSid": sid,
            "AccountSid": self.account_sid, "From": from_, "ApiVersion": API,
        }
        return await self._post_signed(url, form)

    def _call_form(self, call: Call, status: str) -> dict[str, str]:
        return {
            "AccountSid": self.account_sid, "ApiVersion": API, "CallSid": call.sid,
            "CallStatus": status, "Called": call.to, "Caller": call.from_,
            "Direction": "outbound-api", "From": call.from_, "To": call.to,
        }

    async def send_call_status(self, call_sid: str, status: str, *, url: str = ""
                               ) -> Delivered:
        """A signed call status callback (`completed`, `busy`, `no-answer`, `failed`)."""
        call = self.calls[call_sid]
        call.status = status
        return await self._post_signed(url or call.status_callback,
                                       self._call_form(call, status))

    async def answer(self, call_sid: str) -> str:
        """The callee picks up: the call's TwiML (fetched from its Url if it has one)."""
        call = self.calls[call_sid]
        call.status = "in-progress"
        twiml = call.twiml
        if call.url:
            twiml = (await self._post_signed(call.url, self._call_form(call, "ringing"))).text
        gather = ET.fromstring(twiml).find("Gather")
        if gather is not None:
            call.gather_action = urljoin(call.url, gather.get("action", "") or call.url)
        return twiml

    async def press(self, call_sid: str, digit: str) -> Delivered:
        """The callee presses a key at the `<Gather>` heard on `answer()`."""
        call = self.calls[call_sid]
        assert call.gather_action, "answer() the call first; its TwiML needs a <Gather>"
        form = self._call_form(call, "in-progress") | {
            "Digits": digit, "FinishedOnKey": "", "msg": "Gather End",
        }
        return await self._post_signed(call.gather_action, form)

    # --- background ---

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _progress(self, message: Message) -> None:
        for status in self.auto_status:
            await asyncio.sleep(0.01)  # After the 201, as Twilio would.
            try:
                await self.send_status(message.sid, status)
            except aiohttp.ClientError:
                return  # pagerd is down: Twilio gives up on the callback as well.

    async def wait_for(self, count: int, *, resource: str = "Messages", within: float = 5.0
                       ) -> list[Recorded]:
        """Wait until `count` successful creations of `resource` have arrived."""
        async with asyncio.timeout(within):
            while len(done := [r for r in self.requests if r.status == 201
                               and r.path.endswith(f"/{resource}.json")]) < count:
                self.changed.clear()
                await self.changed.wait()
        return done

    async def close(self) -> None:
        """Let pending callbacks finish."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def fake_twilio(**settings: Any) -> AsyncIterator[FakeTwilio]:
    """A running fake; `base_url` is set to its loopback URL."""
    fake = FakeTwilio(**settings)
    # TestServer, not the daemon's test helpers: the fake must not depend on the daemon.
    async with aiohttp.ClientSession() as session, TestServer(fake.app(),
                                                               host="127.0.0.1") as server:
        fake.base_url = str(server.make_url("")).rstrip("/")
        fake._session = session
        try:
            yield fake
        finally:
            await fake.close()
