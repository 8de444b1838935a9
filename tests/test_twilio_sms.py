"""The SMS notifier: page text in one GSM-7 segment, and sends to the fake Twilio."""

from __future__ import annotations

import base64
import json
import time

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from pagerd.notifiers.base import DeliveryError, Page, PageItem
from pagerd.notifiers.twilio_sms import (
    SEGMENT,
    TwilioSMS,
    format_sms,
    gsm7_septets,
    mask_number,
    shorten,
    to_gsm7,
)

from conftest import FIXTURES
from fake_twilio import Failure, FakeTwilio, fake_twilio

PHONE = "+14155550100"
FROM = "+15005550006"
LINK = "https://pd.example.com/l/Ab3dE9xYz"


def item(n: int = 4, title: str = "Disk full on db-1", **fields: object) -> PageItem:
    values: dict[str, object] = {"severity": "SEV1", "owner": "dba", "reply_code": str(n),
                                 "links": {"ack": LINK}} | fields
    return PageItem(n, title=title, **values)  # type: ignore[arg-type]


def page(*items: PageItem) -> Page:
    return Page(user="ann", address=PHONE, items=items or (item(),), idempotency_key="k1")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def septets(text: str) -> int:
    count = gsm7_septets(text)
    assert count is not None, f"not GSM-7: {text!r}"
    return count


class TestGsm7:
    @pytest.mark.parametrize(("text", "count"), [
        ("hello", 5), ("", 0), ("é@£$", 4), ("{}[]~^|\\€", 18), ("a\nb", 3),
        ("ü", 1), ("ç", None), ("`", None), ("\U0001f525", None), ("\u2019", None),
    ])
    def test_septets(self, text: str, count: int | None) -> None:
        assert gsm7_septets(text) == count

    @pytest.mark.parametrize(("text", "gsm"), [
        ("it\u2019s \u201cdown\u201d \u2013 now\u2026", "it's \"down\" - now..."),
        ("caf\u00e7e \u0142\u00f3d\u017a", "cafce ?odz"),  # ł has no decomposition
        ("fire \U0001f525 \t here", "fire ? here"),
        ("line\nbreak", "line break"),
        ("Ç É ü", "Ç É ü"),
    ])
    def test_to_gsm7(self, text: str, gsm: str) -> None:
        assert to_gsm7(text) == gsm

    @given(st.text(max_size=300))
    def test_to_gsm7_always_encodes(self, text: str) -> None:
        assert gsm7_septets(to_gsm7(text)) is not None

    def test_shorten_counts_escapes(self) -> None:
        assert shorten("abcdef", 6) == "abcdef"
        assert shorten("abcdefg", 6) == "abc..."
        assert septets(shorten("{{{{{{{{", 9)) <= 9


class TestFormat:
    """A page fits one segment: severity, owner, summary, reply hint, ack link."""

    def test_single_incident(self) -> None:
        text = format_sms(page())
        assert text == f"SEV1 dba: Disk full on db-1\nReply 4a ack, 4r resolve\n{LINK}"

    def test_long_title_is_cut_to_one_segment(self) -> None:
        text = format_sms(page(item(title="Disk full " * 40)))
        assert septets(text) <= SEGMENT
        assert text.endswith(f"...\nReply 4a ack, 4r resolve\n{LINK}")

    def test_unicode_title_stays_gsm7(self) -> None:
        """One emoji would make the whole text UCS-2: 70 characters a segment."""
        text = format_sms(page(item(title="\U0001f525 API \u2014 5xx \u201chigh\u201d " * 6)))
        assert septets(text) <= SEGMENT

    def test_no_owner_no_code_no_link(self) -> None:
        text = format_sms(page(item(owner=None, reply_code="", links=None)))
        assert text == "SEV1: Disk full on db-1\nReply ack or resolve"

    def test_long_link_is_kept_whole(self) -> None:
        """Where the fixed parts alone overflow, the link still works: two segments."""
        link = "https://pd.example.com/" + "x" * 150
        text = format_sms(page(item(links={"ack": link})))
        assert text.endswith(link)
        assert "Disk full" in text

    def test_bundle_lists_incidents_with_codes(self) -> None:
        items = (item(4, "Disk full on db-1"), item(5, "5xx high", owner="web"),
                 item(7, "Down", severity="SEV2", owner="api"))
        assert format_sms(page(*items)) == (
            "3 incidents. Reply ack/resolve for all, 4a/4r for one:\n"
            "4 SEV1 dba: Disk full on db-1\n5 SEV1 web: 5xx high\n7 SEV2 api: Down")

    @pytest.mark.parametrize("count", [2, 3, 5, 10, 40])
    def test_bundle_fits_one_segment(self, count: int) -> None:
        items = tuple(item(n, f"Alert {n} firing on host-{n}.example.com, rather verbose")
                      for n in range(4, 4 + count))
        text = format_sms(page(*items))
        assert septets(text) <= SEGMENT
        lines = text.split("\n")
        assert lines[0].startswith(f"{count} incidents.")
        shown = [line for line in lines[1:] if not line.startswith("+")]
        assert all(len(line.split(": ", 1)[1]) >= 12 for line in shown)
        if len(shown) < count:
            assert lines[-1] == f"+{count - len(shown)} more"

    def test_empty_page_is_refused(self) -> None:
        with pytest.raises(ValueError):
            format_sms(Page("ann", PHONE, (), "k"))

    @given(st.lists(st.tuples(st.text(max_size=200), st.text(max_size=30),
                              st.sampled_from(["SEV1", "SEV4", "critical", "Sév\u00e9re"])),
                    min_size=1, max_size=12))
    def test_any_page_fits_one_segment(self, rows: list[tuple[str, str, str]]) -> None:
        items = tuple(PageItem(n, severity, title, owner=owner or None, reply_code=str(n),
                               links={"ack": LINK})
                      for n, (title, owner, severity) in enumerate(rows, start=1))
        assert septets(format_sms(page(*items))) <= SEGMENT


def notifier(fake: FakeTwilio, session: aiohttp.ClientSession, **overrides: object
             ) -> TwilioSMS:
    settings: dict[str, object] = {
        "account_sid": fake.account_sid, "auth_token": fake.auth_token, "from_number": FROM,
        "base_url": fake.base_url, "status_callback_url": "https://pd.example.com/cb",
        "wait_base": 0.01, "timeout": 2.0,
    } | overrides
    return TwilioSMS(session, **settings)  # type: ignore[arg-type]


class TestSend:
    """Against the fake over loopback HTTP."""

    async def test_sends_the_page_and_returns_the_sid(self) -> None:
        async with fake_twilio() as fake, aiohttp.ClientSession() as session:
            receipt = await notifier(fake, session).send_page(page())
            (request,) = fake.requests
            assert request.authorized and request.status == 201
            assert request.path == f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
            assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
            assert {key: request.field(key) for key in request.form} == {
                "To": PHONE, "From": FROM, "Body": format_sms(page()),
                "StatusCallback": "https://pd.example.com/cb"}
            assert receipt.provider_id in fake.messages
            assert receipt.provider_id.startswith("SM") and len(receipt.provider_id) == 34

    async def test_no_status_callback_unless_configured(self) -> None:
        async with fake_twilio() as fake, aiohttp.ClientSession() as session:
            await notifier(fake, session, status_callback_url=None).send_page(page())
            assert "StatusCallback" not in fake.requests[0].form

    async def test_response_has_the_documented_shape(self) -> None:
        """The fake's 201 carries the fields of the published twilio-python sample."""
        sample = json.loads((FIXTURES / "twilio/messages-create-response.twilio-python.json")
                            .read_text())
        async with fake_twilio() as fake, aiohttp.ClientSession() as session, session.post(
            f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
            data={"To": PHONE, "From": FROM, "Body": "hi"},
            headers={"Authorization": basic(fake.account_sid, fake.auth_token)},
        ) as response:
            assert response.status == 201
            body = await response.json()
        assert set(sample) - set(body) == set()
        assert body["status"] == "queued" and body["num_segments"] == "1"

    @pytest.mark.parametrize(("failure", "reason"), [
        (Failure(503), "http_503"),
        (Failure(500, code=20500, message="Internal"), "twilio_20500"),
        (Failure(429, code=20429, message="Too Many Requests"), "twilio_20429"),
        (Failure(drop=True), "connection"),
        (Failure(delay=0.5), "timeout"),
    ])
    async def test_retryable_errors_are_retried(self, failure: Failure, reason: str) -> None:
        async with fake_twilio() as fake, aiohttp.ClientSession() as session:
            fake.fail_next(failure, failure)
            sms = notifier(fake, session, timeout=0.2)
            with capture_logs() as logs:
                receipt = await sms.send_page(page())
            assert len(fake.requests) == 3
            assert [entry["reason"] for entry in logs if "reason" in entry] == [reason]
            assert list(fake.messages) == [receipt.provider_id]

    async def test_retry_loop_is_quiet(self) -> None:
        """One warning when a failure shows (not one per try), one info when it passes."""
        async with fake_twilio() as fake, aiohttp.ClientSession() as session:
            fake.fail_next(Failure(503), Failure(503))
            with capture_logs() as logs:
                await notifier(fake, session).send_page(page())
        events = [(entry["log_level"], entry["event"]) for entry in logs
                  if entry["log_level"] != "debug"]
        assert events == [("warning", "twilio.request_failed"),
                          ("info", "twilio.delivered_after_retries")]
        assert logs[0]["reason"] == "http_503" and logs[0]["notifier"] == "sms"
        assert all(PHONE not in repr(entry) for entry in logs)

    async def test_retries_give_up_with_a_retryable_error(self) -> None:
        async with fake_twilio() as fake, aiohttp.ClientSession() as session:
            fake.fail_next(*[Failure(503)] * 5)
            with pytest.raises(DeliveryError) as caught:
                await notifier(fake, session, quick_attempts=4).send_page(page())
            assert caught.value.retryable and caught.value.reason == "http_503"
            assert len(fake.requests) == 4

    @pytest.mark.parametrize(("setup", "reason"), [
        ("invalid_numbers", "twilio_21211"),
        ("opted_out", "twilio_21610"),
        ("not_mobile", "twilio_21614"),
    ])
    async def test_permanent_errors_fail_at_once(self, setup: str, reason: str) -> None:
        async with fake_twilio() as fake, aiohttp.ClientSession() as session:
            getattr(fake, setup).add(PHONE)
            started = time.monotonic()
            with pytest.raises(DeliveryError) as caught:
                await notifier(fake, session, wait_base=1.0).send_page(page())
            assert time.monotonic() - started < 0.5
            assert (caught.value.reason, caught.value.retryable) == (reason, False)
            assert len(fake.requests) == 1
            # Twilio's message names the number; the error (which gets logged) does not.
            assert PHONE not in str(caught.value)

    async def test_bad_credentials_are_permanent(self) -> None:
        async with fake_twilio() as fake, aiohttp.ClientSession() as session:
            with pytest.raises(DeliveryError) as caught:
                await notifier(fake, session, auth_token="wrong").send_page(page())
            assert (caught.value.reason, caught.value.retryable) == ("twilio_20003", False)
            assert fake.requests[0].status == 401 and not fake.requests[0].authorized

    async def test_other_4xx_without_a_twilio_body(self) -> None:
        async with fake_twilio() as fake, aiohttp.ClientSession() as session:
            fake.fail_next(Failure(400, message="<html>bad request</html>"))
            with pytest.raises(DeliveryError) as caught:
                await notifier(fake, session).send_page(page())
            assert (caught.value.reason, caught.value.retryable) == ("http_400", False)

    async def test_unreachable_twilio(self) -> None:
        async with aiohttp.ClientSession() as session:
            sms = TwilioSMS(session, account_sid="AC1", auth_token="t", from_number=FROM,
                            base_url="http://127.0.0.1:9", wait_base=0.01, timeout=1.0)
            with pytest.raises(DeliveryError) as caught:
                await sms.send_page(page())
            assert (caught.value.reason, caught.value.retryable) == ("connection", True)


def test_mask_number() -> None:
    assert mask_number(PHONE) == "...0100"
    assert mask_number("12") == "..."
