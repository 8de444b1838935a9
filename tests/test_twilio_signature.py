"""Twilio webhooks: every signature vector, the public form samples, and SMS replies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

from pagerd.receivers.twilio import (
    HELP,
    Action,
    CallStatus,
    FormError,
    InboundSMS,
    MessageStatus,
    Reply,
    form_params,
    parse_call_status,
    parse_inbound_sms,
    parse_keypress,
    parse_message_status,
    parse_reply,
    twilio_signature,
    twiml_message,
    url_variants,
    validate,
)

from conftest import FIXTURES

TWILIO = FIXTURES / "twilio"
VECTORS = json.loads((TWILIO / "signature-test-vectors.json").read_text())
ALL_VECTORS = VECTORS["published_vectors"] + VECTORS["locally_computed_vectors"]


def _body(vector: dict[str, Any]) -> bytes | None:
    return vector["raw_body"].encode() if "raw_body" in vector else None


def form(name: str) -> dict[str, list[str]]:
    return form_params((TWILIO / name).read_bytes())


class TestSignatureVectors:
    """Each published vector (and the one computed locally) signs and validates."""

    @pytest.mark.parametrize("vector", ALL_VECTORS, ids=lambda v: v["name"][:60])
    def test_signature_matches(self, vector: dict[str, Any]) -> None:
        assert twilio_signature(vector["auth_token"], vector["url"], vector["params"]) \
            == vector["expected"]

    @pytest.mark.parametrize("vector", ALL_VECTORS, ids=lambda v: v["name"][:60])
    def test_validates_at_the_url_the_server_saw(self, vector: dict[str, Any]) -> None:
        """Twilio may sign with or without the default port; the server sees either."""
        seen = vector.get("request_url_seen_by_server", vector["url"])
        assert validate([vector["auth_token"]], seen, vector["params"], vector["expected"],
                        body=_body(vector))

    @pytest.mark.parametrize("vector", ALL_VECTORS, ids=lambda v: v["name"][:60])
    def test_secondary_token_validates_during_rotation(self, vector: dict[str, Any]) -> None:
        tokens = ["the-new-primary", vector["auth_token"]]
        assert validate(tokens, vector["url"], vector["params"], vector["expected"],
                        body=_body(vector))

    @pytest.mark.parametrize("vector", ALL_VECTORS, ids=lambda v: v["name"][:60])
    def test_wrong_token_fails(self, vector: dict[str, Any]) -> None:
        assert not validate(["54321"], vector["url"], vector["params"], vector["expected"],
                            body=_body(vector))

    def test_duplicate_names_from_a_multidict(self) -> None:
        """aiohttp's `request.post()` holds repeated names; every value is signed."""
        (vector,) = [v for v in ALL_VECTORS if "duplicate" in v["name"]]
        posted = MultiDict([("Sid", "CA123"), ("SidAccount", "AC123"),
                            ("Digits", "5678"), ("Digits", "1234")])
        assert validate(["12345"], vector["url"], posted, vector["expected"])
        assert not validate(["12345"], vector["url"], {**posted}, vector["expected"])


class TestTampering:
    """A changed URL, parameter, body, or header fails; so does no header or no token."""

    VECTOR = ALL_VECTORS[0]

    def test_changed_param_fails(self) -> None:
        params = {**self.VECTOR["params"], "Digits": "9999"}
        assert not validate(["12345"], self.VECTOR["url"], params, self.VECTOR["expected"])

    def test_added_param_fails(self) -> None:
        params = {**self.VECTOR["params"], "Body": ""}
        assert not validate(["12345"], self.VECTOR["url"], params, self.VECTOR["expected"])

    def test_changed_url_fails(self) -> None:
        url = self.VECTOR["url"].replace("foo=1", "foo=2")
        assert not validate(["12345"], url, self.VECTOR["params"], self.VECTOR["expected"])

    def test_other_scheme_fails(self) -> None:
        url = self.VECTOR["url"].replace("https:", "http:")
        assert not validate(["12345"], url, self.VECTOR["params"], self.VECTOR["expected"])

    @pytest.mark.parametrize("signature", [None, "", "   ", "RSOYDt4T1cUTdK1PDd93/VVr8B8"])
    def test_missing_or_cut_signature_fails(self, signature: str | None) -> None:
        assert not validate(["12345"], self.VECTOR["url"], self.VECTOR["params"], signature)

    @pytest.mark.parametrize("tokens", [[], [""], ["", ""]])
    def test_no_token_configured_fails(self, tokens: list[str]) -> None:
        assert not validate(tokens, self.VECTOR["url"], self.VECTOR["params"],
                            twilio_signature("", self.VECTOR["url"], self.VECTOR["params"]))

    def test_json_body_changed_fails(self) -> None:
        (vector,) = [v for v in ALL_VECTORS if "raw_body" in v]
        body = vector["raw_body"].replace("true", "false").encode()
        assert not validate(["12345"], vector["url"], {}, vector["expected"], body=body)

    def test_json_body_without_hash_in_url_fails(self) -> None:
        (vector,) = [v for v in ALL_VECTORS if "raw_body" in v]
        url = vector["url"].split("&bodySHA256")[0]
        signature = twilio_signature("12345", url, {})
        assert not validate(["12345"], url, {}, signature, body=vector["raw_body"].encode())

    @given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=12), max_size=6),
           st.text(min_size=1, max_size=8))
    def test_round_trip_and_any_change_fails(self, params: dict[str, str], extra: str) -> None:
        url = "https://pagerd.example/api/v1/twilio/sms"
        signature = twilio_signature("tok", url, params)
        assert validate(["tok"], url, params, signature)
        changed = {**params, extra: params.get(extra, "") + "x"}
        assert not validate(["tok"], url, changed, signature)


class TestUrlVariants:
    @pytest.mark.parametrize(("url", "variants"), [
        ("https://a.example/p?q=1", ["https://a.example/p?q=1", "https://a.example:443/p?q=1"]),
        ("http://a.example/p", ["http://a.example/p", "http://a.example:80/p"]),
        ("https://a.example:443/p", ["https://a.example:443/p", "https://a.example/p"]),
        ("http://a.example:8080/p", ["http://a.example:8080/p", "http://a.example/p"]),
        ("http://[::1]:8080/p", ["http://[::1]:8080/p", "http://[::1]/p"]),
    ])
    def test_variants(self, url: str, variants: list[str]) -> None:
        assert url_variants(url) == variants


class TestForms:
    """The public samples parse into the fields pagerd acts on; their blanks are kept."""

    def test_courier_inbound_sms(self) -> None:
        params = form("inbound-sms.courier.form-urlencoded.txt")
        assert params["ToCity"] == [""]
        assert parse_inbound_sms(params) == InboundSMS(
            message_sid="SMa741ddeb574e5dda5516c73417fcd28a", from_number="+13177592786",
            to_number="+13177933221", body="Hi there from Twilio",
            account_sid="AC7ef44158dbb01b972d64d7e5c851c8d7")

    def test_courier_inbound_sms_signature(self) -> None:
        """The locally computed vector is over exactly this form, blanks included."""
        (vector,) = VECTORS["locally_computed_vectors"]
        params = form("inbound-sms.courier.form-urlencoded.txt")
        assert validate(["12345"], vector["url"], params, vector["expected"])

    def test_twilio_go_inbound_sms(self) -> None:
        sms = parse_inbound_sms(form("inbound-sms.twilio-go-alert.form-urlencoded.txt"))
        assert sms.body == "twilio-go testing!"
        assert sms.from_number == sms.to_number == "+19253920364"

    def test_status_callback_sent(self) -> None:
        status = parse_message_status(form("status-callback-sent.courier.form-urlencoded.txt"))
        assert status == MessageStatus(
            message_sid="SM7ac25b8b7f04410093ff54e1fd2b4256", status="sent",
            to_number="+13177933221", account_sid="AC7ef44158dbb01b972d64d7e5c851c8d7")
        assert not status.final and not status.failed

    @pytest.mark.parametrize(("status", "code", "final", "failed", "reason"), [
        ("delivered", "", True, False, "sms_delivered"),
        ("undelivered", "30003", True, True, "twilio_30003"),
        ("failed", "30008", True, True, "twilio_30008"),
        ("failed", "", True, True, "sms_failed"),
        ("queued", "", False, False, "sms_queued"),
    ])
    def test_status_outcomes(self, status: str, code: str, final: bool, failed: bool,
                             reason: str) -> None:
        parsed = parse_message_status({"MessageSid": "SM1", "MessageStatus": status,
                                       "ErrorCode": code})
        assert (parsed.final, parsed.failed, parsed.reason) == (final, failed, reason)

    def test_missing_fields_are_named(self) -> None:
        with pytest.raises(FormError) as caught:
            parse_inbound_sms({"Body": "4a", "MessageSid": "SM1"})
        assert caught.value.field == "From"
        with pytest.raises(FormError):
            parse_message_status({"MessageSid": "SM1"})

    @pytest.mark.parametrize(("status", "failed"), [
        ("completed", False), ("busy", True), ("no-answer", True), ("failed", True),
        ("canceled", True), ("in-progress", False),
    ])
    def test_call_status(self, status: str, failed: bool) -> None:
        parsed = parse_call_status({"CallSid": "CA1", "CallStatus": status})
        assert parsed == CallStatus("CA1", status)
        assert parsed.failed is failed

    def test_keypress(self) -> None:
        assert parse_keypress({"CallSid": "CA1", "Digits": "4"}).digits == "4"

    def test_twiml_message(self) -> None:
        assert twiml_message() == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
        assert "<Message>a &lt;b&gt; &amp; c</Message>" in twiml_message("a <b> & c")


class TestReplies:
    """Table of texts people send and what pagerd reads in them."""

    @pytest.mark.parametrize(("body", "action", "code"), [
        ("4a", "ack", "4"), ("4A", "ack", "4"), ("4 a", "ack", "4"), (" 4a\n", "ack", "4"),
        ("4r", "resolve", "4"), ("4 R", "resolve", "4"), ("4e", "escalate", "4"),
        ("12a", "ack", "12"), ("04a", "ack", "4"), ("#4a", "ack", "4"), ("4-ack", "ack", "4"),
        ("4 ack", "ack", "4"), ("4 resolve", "resolve", "4"), ("ack 4", "ack", "4"),
        ("resolve 12", "resolve", "12"), ("4a.", "ack", "4"),
        ("ack", "ack", None), ("ACK", "ack", None), ("Ack!", "ack", None),
        ("acknowledge", "ack", None), ("resolve", "resolve", None),
        ("escalate", "escalate", None),
    ])
    def test_actions(self, body: str, action: Action, code: str | None) -> None:
        assert parse_reply(body) == Reply("action", action=action, code=code)

    @pytest.mark.parametrize("body", ["STOP", "stop", "Stop", " STOP ", "STOPALL", "UNSUBSCRIBE",
                                      "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"])
    def test_opt_out(self, body: str) -> None:
        assert parse_reply(body) == Reply("opt_out", keyword=body.strip().upper())

    @pytest.mark.parametrize("body", ["START", "start", "YES", "UNSTOP"])
    def test_opt_in(self, body: str) -> None:
        assert parse_reply(body) == Reply("opt_in", keyword=body.upper())

    @pytest.mark.parametrize("body", ["HELP", "info"])
    def test_help_keywords(self, body: str) -> None:
        assert parse_reply(body) == Reply("help", keyword=body.upper())

    @pytest.mark.parametrize("body", [
        "", "  ", "4", "a", "r", "hello", "stop please", "please stop", "4x", "4a 5a",
        "ok", "ack ack", "44444a", "thanks, on it", "\U0001f44d",
    ])
    def test_anything_else_is_help(self, body: str) -> None:
        """Twilio, too, only acts on a keyword sent alone, so `stop please` is not STOP."""
        assert parse_reply(body) == HELP

    @given(st.text(max_size=40))
    def test_never_raises(self, body: str) -> None:
        assert parse_reply(body).kind in {"action", "opt_out", "opt_in", "help"}
