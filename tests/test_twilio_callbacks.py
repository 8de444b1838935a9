"""The fake Twilio calling back over loopback HTTP: signed status callbacks, inbound texts,
key presses, each checked the way pagerd's endpoints will check them.

`Endpoint` stands in for pagerd's side: it validates `X-Twilio-Signature` against the URL
it was called at (403 when forged), parses the form and answers TwiML.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pagerd.notifiers.base import Page, PageItem
from pagerd.notifiers.twilio_sms import TwilioSMS
from pagerd.notifiers.twilio_voice import TwilioVoice, twiml_after_keypress, twiml_for_page
from pagerd.receivers.twilio import (
    SIGNATURE_HEADER,
    parse_call_status,
    parse_inbound_sms,
    parse_keypress,
    parse_message_status,
    parse_reply,
    twiml_message,
    validate,
)

from fake_twilio import AUTH_TOKEN, FakeTwilio, fake_twilio

PHONE = "+14155550100"
PAGE = Page("ann", PHONE, (PageItem(42, "SEV1", "Disk full", owner="dba", reply_code="4"),),
            "k1")


@dataclass
class Endpoint:
    """pagerd's Twilio endpoints, reduced to checking and recording what arrives."""

    tokens: list[str] = field(default_factory=lambda: [AUTH_TOKEN])
    base: str = ""
    seen: list[tuple[str, Any]] = field(default_factory=list)
    forged: int = 0

    async def _checked(self, request: web.Request) -> dict[str, list[str]]:
        posted = await request.post()
        params = {key: [str(value) for value in posted.getall(key)] for key in set(posted)}
        if not validate(self.tokens, str(request.url), params,
                        request.headers.get(SIGNATURE_HEADER)):
            self.forged += 1
            raise web.HTTPForbidden(text="bad signature")
        return params

    async def sms(self, request: web.Request) -> web.Response:
        inbound = parse_inbound_sms(await self._checked(request))
        reply = parse_reply(inbound.body)
        self.seen.append(("sms", (inbound, reply)))
        text = "Acknowledged #42" if reply.kind == "action" else None
        return web.Response(text=twiml_message(text), content_type="text/xml")

    async def message_status(self, request: web.Request) -> web.Response:
        self.seen.append(("status", parse_message_status(await self._checked(request))))
        return web.Response(status=204)

    async def call_status(self, request: web.Request) -> web.Response:
        self.seen.append(("call", parse_call_status(await self._checked(request))))
        return web.Response(status=204)

    async def twiml(self, request: web.Request) -> web.Response:
        await self._checked(request)
        return web.Response(text=twiml_for_page(PAGE, f"{self.base}/gather?page=k1"),
                            content_type="text/xml")

    async def gather(self, request: web.Request) -> web.Response:
        keypress = parse_keypress(await self._checked(request))
        self.seen.append(("key", keypress))
        return web.Response(text=twiml_after_keypress(keypress.digits), content_type="text/xml")


@contextlib.asynccontextmanager
async def endpoint(**settings: Any) -> AsyncIterator[Endpoint]:
    side = Endpoint(**settings)
    app = web.Application()
    for path, handler in [("/sms", side.sms), ("/status", side.message_status),
                          ("/call-status", side.call_status), ("/twiml", side.twiml),
                          ("/gather", side.gather)]:
        app.router.add_post(path, handler)
    async with TestServer(app, host="127.0.0.1") as server:
        side.base = str(server.make_url("")).rstrip("/")
        yield side


@contextlib.asynccontextmanager
async def both(**settings: Any) -> AsyncIterator[tuple[FakeTwilio, Endpoint,
                                                       aiohttp.ClientSession]]:
    async with fake_twilio(**settings) as fake, endpoint() as side, \
            aiohttp.ClientSession() as session:
        yield fake, side, session


def sms(fake: FakeTwilio, session: aiohttp.ClientSession, callback: str) -> TwilioSMS:
    return TwilioSMS(session, account_sid=fake.account_sid, auth_token=fake.auth_token,
                     from_number="+15005550006", base_url=fake.base_url,
                     status_callback_url=callback, wait_base=0.01)


class TestMessageStatus:
    @pytest.mark.parametrize("status", ["queued", "sent", "delivered", "undelivered", "failed"])
    async def test_signed_status_callback(self, status: str) -> None:
        async with both() as (fake, side, session):
            receipt = await sms(fake, session, f"{side.base}/status").send_page(PAGE)
            assert receipt.provider_id is not None
            sent = await fake.send_status(receipt.provider_id, status, error_code=30005)
            assert sent.status == 204
            ((kind, update),) = side.seen
            assert kind == "status" and update.message_sid == receipt.provider_id
            assert update.status == status
            assert update.failed is (status in {"undelivered", "failed"})
            assert update.error_code == (30005 if update.failed else None)

    async def test_automatic_progress_after_a_send(self) -> None:
        async with both(auto_status=("sent", "undelivered"), auto_error_code=30003) as (
                fake, side, session):
            receipt = await sms(fake, session, f"{side.base}/status?attempt=9").send_page(PAGE)
            await fake.close()
            updates = [update for _, update in side.seen]
            assert [u.status for u in updates] == ["sent", "undelivered"]
            assert {u.message_sid for u in updates} == {receipt.provider_id}
            assert updates[-1].reason == "twilio_30003"
            assert fake.messages[str(receipt.provider_id)].status == "undelivered"


class TestInboundSms:
    async def test_signed_reply_is_read(self) -> None:
        async with both() as (fake, side, _):
            sent = await fake.send_sms(f"{side.base}/sms", from_=PHONE, body="4 A")
            assert sent.status == 200
            assert "<Message>Acknowledged #42</Message>" in sent.text
            ((_, (inbound, reply)),) = side.seen
            assert inbound.from_number == PHONE and inbound.body == "4 A"
            assert (reply.action, reply.code) == ("ack", "4")

    async def test_url_with_query_and_blank_fields_validates(self) -> None:
        async with both() as (fake, side, _):
            sent = await fake.send_sms(f"{side.base}/sms?tenant=a%20b&x=", from_=PHONE,
                                       body="")
            assert sent.status == 200
            assert sent.text.endswith("<Response/>")

    async def test_forged_signature_is_refused(self) -> None:
        async with both(signing_token="someone-elses-token") as (fake, side, _):
            sent = await fake.send_sms(f"{side.base}/sms", from_=PHONE, body="4a")
            assert sent.status == 403
            assert side.forged == 1 and side.seen == []

    async def test_secondary_token_during_rotation(self) -> None:
        async with fake_twilio(signing_token="new-token") as fake, \
                endpoint(tokens=["new-token", AUTH_TOKEN]) as side:
            assert (await fake.send_sms(f"{side.base}/sms", from_=PHONE, body="ack")).status \
                == 200
            fake.signing_token = AUTH_TOKEN
            assert (await fake.send_sms(f"{side.base}/sms", from_=PHONE, body="ack")).status \
                == 200
            fake.signing_token = "retired-token"
            assert (await fake.send_sms(f"{side.base}/sms", from_=PHONE, body="ack")).status \
                == 403


class TestVoice:
    async def test_keypress_on_inline_twiml(self) -> None:
        async with both() as (fake, side, session):
            voice = TwilioVoice(session, account_sid=fake.account_sid,
                                auth_token=fake.auth_token, from_number="+15005550006",
                                base_url=fake.base_url, gather_action_url=f"{side.base}/gather",
                                status_callback_url=f"{side.base}/call-status")
            receipt = await voice.send_page(PAGE)
            call_sid = str(receipt.provider_id)
            assert "Disk full" in await fake.answer(call_sid)
            pressed = await fake.press(call_sid, "4")
            assert pressed.status == 200 and "Acknowledged" in pressed.text
            done = await fake.send_call_status(call_sid, "completed")
            assert done.status == 204
            assert [kind for kind, _ in side.seen] == ["key", "call"]
            assert side.seen[0][1].call_sid == call_sid and side.seen[0][1].digits == "4"
            assert not side.seen[1][1].failed

    async def test_twiml_fetched_from_pagerd(self) -> None:
        async with both() as (fake, side, session):
            voice = TwilioVoice(session, account_sid=fake.account_sid,
                                auth_token=fake.auth_token, from_number="+15005550006",
                                base_url=fake.base_url, gather_action_url="unused",
                                twiml_url=lambda page: f"{side.base}/twiml?page=k1")
            call_sid = str((await voice.send_page(PAGE)).provider_id)
            await fake.answer(call_sid)
            pressed = await fake.press(call_sid, "6")
            assert "Resolved" in pressed.text
            assert fake.delivered[-1].url == f"{side.base}/gather?page=k1"

    async def test_unanswered_call_fails_over(self) -> None:
        async with both() as (fake, side, session):
            voice = TwilioVoice(session, account_sid=fake.account_sid,
                                auth_token=fake.auth_token, from_number="+15005550006",
                                base_url=fake.base_url, gather_action_url=f"{side.base}/gather",
                                status_callback_url=f"{side.base}/call-status")
            call_sid = str((await voice.send_page(PAGE)).provider_id)
            await fake.send_call_status(call_sid, "no-answer")
            ((_, status),) = side.seen
            assert status.failed and status.status == "no-answer"
