"""The voice notifier: the TwiML it reads out, and calls placed at the fake Twilio."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import aiohttp
import pytest

from pagerd.notifiers.base import DeliveryError, Page, PageItem
from pagerd.notifiers.twilio_voice import (
    MAX_TWIML,
    TwilioVoice,
    action_for_digit,
    twiml_after_keypress,
    twiml_for_page,
)

from fake_twilio import Failure, FakeTwilio, fake_twilio

PHONE = "+14155550100"
FROM = "+15005550006"
TWIML = "https://pd.example.com/twiml"
ACTION = "https://pd.example.com/api/v1/twilio/voice/gather?page=7&sig=a"


def item(n: int = 4, title: str = "Disk full on db-1", **fields: object) -> PageItem:
    values: dict[str, object] = {"severity": "SEV1", "owner": "dba", "reply_code": str(n)}
    return PageItem(n, title=title, **(values | fields))  # type: ignore[arg-type]


def page(*items: PageItem) -> Page:
    return Page(user="ann", address=PHONE, items=items or (item(),), idempotency_key="k1")


def says(document: str) -> list[str]:
    return [say.text or "" for say in ET.fromstring(document).iter("Say")]


class TestTwiml:
    def test_reads_the_page_and_gathers_one_key_twice(self) -> None:
        root = ET.fromstring(twiml_for_page(page(), ACTION))
        gathers = root.findall("Gather")
        assert len(gathers) == 2
        for gather in gathers:
            assert gather.attrib == {"input": "dtmf", "numDigits": "1", "timeout": "8",
                                     "method": "POST", "action": ACTION}
        spoken = [say.text for say in gathers[0].iter("Say")]
        assert spoken == ["This is pagerd. SEV1 for dba: Disk full on db-1.",
                          "Press 4 to acknowledge. Press 6 to resolve."]
        assert root[-1].tag == "Hangup"

    def test_text_is_escaped(self) -> None:
        document = twiml_for_page(page(item(title='<b> & "c"\x07', owner="a&b")), ACTION)
        assert says(document)[0] == 'This is pagerd. SEV1 for a&b: <b> & "c".'

    def test_bundle_reads_a_count_and_the_first_incidents(self) -> None:
        items = tuple(item(n, f"Alert {n}") for n in range(4, 9))
        spoken = says(twiml_for_page(page(*items), ACTION))
        assert spoken[0] == ("This is pagerd with 5 incidents. First, SEV1 for dba: Alert 4. "
                             "Second, SEV1 for dba: Alert 5. Third, SEV1 for dba: Alert 6. "
                             "And 2 more.")
        assert spoken[1] == "Press 4 to acknowledge all of them. Press 6 to resolve all of them."

    def test_stays_under_twilios_inline_limit(self) -> None:
        items = tuple(item(n, "very long title " * 200, owner="o" * 300) for n in range(20))
        document = twiml_for_page(page(*items), ACTION + "&x=" + "y" * 300)
        assert len(document) <= MAX_TWIML
        ET.fromstring(document)

    def test_empty_page_is_refused(self) -> None:
        with pytest.raises(ValueError):
            twiml_for_page(Page("ann", PHONE, (), "k"), ACTION)

    @pytest.mark.parametrize(("digit", "action"), [
        ("4", "ack"), ("6", "resolve"), ("1", None), ("", None), ("#", None), ("46", "ack"),
    ])
    def test_keys(self, digit: str, action: str | None) -> None:
        assert action_for_digit(digit) == action

    def test_after_keypress(self) -> None:
        assert says(twiml_after_keypress("4")) == ["Acknowledged. Escalation stopped. Goodbye."]
        assert says(twiml_after_keypress("6")) == ["Resolved. Goodbye."]
        assert says(twiml_after_keypress("1")) == ["That key does nothing. Goodbye."]

    def test_unknown_key_offers_the_menu_again(self) -> None:
        root = ET.fromstring(twiml_after_keypress("1", page=page(), gather_action_url=ACTION))
        assert root[0].text == "That key does nothing."
        assert root[1].tag == "Gather" and root[1].get("action") == ACTION


def voice(fake: FakeTwilio, session: aiohttp.ClientSession, **overrides: object
          ) -> TwilioVoice:
    settings: dict[str, object] = {
        "account_sid": fake.account_sid, "auth_token": fake.auth_token, "from_number": FROM,
        "base_url": fake.base_url, "gather_action_url": ACTION, "wait_base": 0.01,
        "status_callback_url": "https://pd.example.com/api/v1/twilio/call-status",
    } | overrides
    return TwilioVoice(session, **settings)  # type: ignore[arg-type]


class TestCall:
    async def test_places_the_call_with_inline_twiml(self) -> None:
        async with fake_twilio() as fake, aiohttp.ClientSession() as session:
            receipt = await voice(fake, session).send_page(page())
            (request,) = fake.requests
            assert request.path.endswith("/Calls.json") and request.status == 201
            assert {key: request.field(key) for key in request.form} == {
                "To": PHONE, "From": FROM, "Timeout": "30",
                "Twiml": twiml_for_page(page(), ACTION),
                "StatusCallback": "https://pd.example.com/api/v1/twilio/call-status"}
            assert receipt.provider_id in fake.calls
            assert receipt.provider_id.startswith("CA")

    async def test_action_and_twiml_urls_per_page(self) -> None:
        async with fake_twilio() as fake, aiohttp.ClientSession() as session:
            notifier = voice(fake, session, status_callback_url=None,
                             twiml_url=lambda p: f"{TWIML}/{p.idempotency_key}")
            await notifier.send_page(page())
            form = fake.requests[0].form
            assert form["Url"] == [f"{TWIML}/k1"]
            assert "Twiml" not in form and "StatusCallback" not in form
        by_page = TwilioVoice(session, account_sid="AC1", auth_token="t", from_number=FROM,
                              gather_action_url=lambda p: f"{ACTION}&u={p.user}")
        assert by_page.action_url(page()) == f"{ACTION}&u=ann"

    async def test_invalid_number_is_permanent(self) -> None:
        async with fake_twilio() as fake, aiohttp.ClientSession() as session:
            fake.invalid_numbers.add(PHONE)
            with pytest.raises(DeliveryError) as caught:
                await voice(fake, session).send_page(page())
            assert (caught.value.reason, caught.value.retryable) == ("twilio_21211", False)

    async def test_5xx_is_retried(self) -> None:
        async with fake_twilio() as fake, aiohttp.ClientSession() as session:
            fake.fail_next(Failure(502))
            receipt = await voice(fake, session).send_page(page())
            assert [r.status for r in fake.requests] == [502, 201]
            assert receipt.provider_id in fake.calls
