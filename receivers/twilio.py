"""Twilio webhooks: the `X-Twilio-Signature` check, the forms Twilio posts, and SMS replies.

Signature (Twilio's documented scheme): the full URL Twilio requested, followed by every
POST parameter sorted by name, each written as name then value with no separator (a name
sent more than once contributes once per value, values sorted), is HMAC-SHA1'd with the
account auth token and base64-encoded. Twilio may sign a URL with or without the scheme's
default port, so both spellings are tried. A webhook with a JSON body is signed over the URL
alone; that URL carries `bodySHA256`, the hex SHA-256 of the raw body, which is checked too.

Replies: a code per incident per phone (`4a`, `4 r`, `4E`), a bare `ack`/`resolve`/
`escalate` for the newest page, Twilio's opt-out and opt-in keywords, and help for anything
else. Twilio itself blocks the sender on an opt-out keyword (later sends fail with 21610),
so the keywords are matched as Twilio matches them: the whole message, one word, any case.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit
from xml.sax.saxutils import escape

SIGNATURE_HEADER = "X-Twilio-Signature"

# Twilio's default English keywords on long codes and toll-free numbers.
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})

# Message statuses after which nothing more will happen to an outbound SMS.
FINAL_MESSAGE_STATUSES = frozenset(
    {"delivered", "undelivered", "failed", "read", "canceled"}
)
# Statuses that mean the person did not get the text: the page fails over.
FAILED_MESSAGE_STATUSES = frozenset({"undelivered", "failed", "canceled"})
# Call statuses that mean nobody picked up, or the call never rang.
FAILED_CALL_STATUSES = frozenset({"busy", "no-answer", "failed", "canceled"})

ParamValue = str | Sequence[str]


@runtime_checkable
class MultiMapping(Protocol):
    """A multi-valued mapping such as aiohttp's `MultiDictProxy` (`request.post()`)."""

    def keys(self) -> Iterable[str]: ...

    def getall(self, key: str) -> list[str]: ...


Params = Mapping[str, ParamValue] | MultiMapping


# --- Signatures ------------------------------------------------------------------------------


def _values(params: Params) -> dict[str, list[str]]:
    """Every name with all its values, whatever shape the caller holds the form in."""
    if isinstance(params, MultiMapping):
        return {key: [str(v) for v in params.getall(key)] for key in set(params.keys())}
    return {key: [value] if isinstance(value, str) else [str(v) for v in value]
            for key, value in params.items()}


def twilio_signature(auth_token: str, url: str, params: Params) -> str:
    """The `X-Twilio-Signature` Twilio sends for a POST of `params` to `url`."""
    parts = [url]
    values = _values(params)
    for name in sorted(values):
        parts.extend(name + value for value in sorted(values[name]))
    mac = hmac.new(auth_token.encode(), "".join(parts).encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


_DEFAULT_PORTS = {"https": 443, "http": 80}


def url_variants(url: str) -> list[str]:
    """`url` as given, without its port, and with the scheme's default port."""
    split = urlsplit(url)
    variants = [url]
    host = split.hostname or ""
    if ":" in host:  # An IPv6 literal keeps its brackets.
        host = f"[{host}]"
    userinfo = split.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    if split.port is not None:
        variants.append(urlunsplit(split._replace(netloc=prefix + host)))
    elif split.scheme in _DEFAULT_PORTS:
        port = _DEFAULT_PORTS[split.scheme]
        variants.append(urlunsplit(split._replace(netloc=f"{prefix}{host}:{port}")))
    return variants


def body_hash_matches(url: str, body: bytes) -> bool:
    """Whether the `bodySHA256` in `url` is the hex SHA-256 of `body` (JSON webhooks)."""
    claimed = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)).get("bodySHA256")
    if claimed is None:
        return False
    return hmac.compare_digest(hashlib.sha256(body).hexdigest(), claimed.lower())


def validate(
    tokens: Sequence[str], url: str, params: Params, signature: str | None,
    *, body: bytes | None = None,
) -> bool:
    """Whether `signature` is Twilio's for this request under any of `tokens`.

    `tokens` are the primary and, during a rotation, the secondary auth token. `url` is the
    URL Twilio requested (behind a proxy, rebuilt from the forwarded scheme and host). For a
    JSON body pass the raw `body`: the URL must then carry a matching `bodySHA256`, and the
    form `params` are ignored, as Twilio signs the URL alone.
    """
    if not signature or not any(tokens):
        return False
    if body is not None:
        if not body_hash_matches(url, body):
            return False
        params = {}
    presented = signature.strip().encode()
    matched = False
    # Every candidate is computed, so the time taken does not say which one matched.
    for token in filter(None, tokens):
        for candidate in url_variants(url):
            expected = twilio_signature(token, candidate, params).encode()
            matched |= hmac.compare_digest(expected, presented)
    return matched


def form_params(body: bytes | str) -> dict[str, list[str]]:
    """An `application/x-www-form-urlencoded` body as names to values, blanks kept."""
    # Undecodable bytes become U+FFFD, so a garbled body fails the signature, not the server.
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    return parse_qs(text, keep_blank_values=True, strict_parsing=False)


# --- Forms Twilio posts ----------------------------------------------------------------------


class FormError(ValueError):
    """A Twilio form lacks a field pagerd needs; `field` names it."""

    def __init__(self, field: str) -> None:
        super().__init__(f"missing {field}")
        self.field = field


def _first(values: dict[str, list[str]], name: str, *, required: bool = True) -> str:
    found = values.get(name) or [""]
    if required and not found[0]:
        raise FormError(name)
    return found[0]


def _error_code(values: dict[str, list[str]]) -> int | None:
    raw = _first(values, "ErrorCode", required=False).strip()
    return int(raw) if raw.isdigit() else None


@dataclass(frozen=True, slots=True)
class InboundSMS:
    """A text someone sent to pagerd's number."""

    message_sid: str
    from_number: str
    to_number: str
    body: str
    account_sid: str


def parse_inbound_sms(params: Params) -> InboundSMS:
    """The fields of an inbound-message webhook that pagerd acts on."""
    values = _values(params)
    return InboundSMS(
        message_sid=_first(values, "MessageSid"),
        from_number=_first(values, "From"),
        to_number=_first(values, "To", required=False),
        # An empty body is a valid text (a media-only message, say): it gets help.
        body=_first(values, "Body", required=False),
        account_sid=_first(values, "AccountSid", required=False),
    )


@dataclass(frozen=True, slots=True)
class MessageStatus:
    """A delivery status callback for an outbound SMS."""

    message_sid: str
    status: str
    error_code: int | None = None
    to_number: str = ""
    account_sid: str = ""

    @property
    def final(self) -> bool:
        """Nothing more will happen to this message."""
        return self.status in FINAL_MESSAGE_STATUSES

    @property
    def failed(self) -> bool:
        """The text did not reach the phone: the page should fail over."""
        return self.status in FAILED_MESSAGE_STATUSES

    @property
    def reason(self) -> str:
        """A failure reason in the notifiers' vocabulary, e.g. `twilio_30003`."""
        if self.error_code is not None:
            return f"twilio_{self.error_code}"
        return f"sms_{self.status}"


def parse_message_status(params: Params) -> MessageStatus:
    """The fields of a message status callback (`MessageStatus`, `ErrorCode`)."""
    values = _values(params)
    status = _first(values, "MessageStatus", required=False) or _first(values, "SmsStatus")
    return MessageStatus(
        message_sid=_first(values, "MessageSid", required=False) or _first(values, "SmsSid"),
        status=status.lower(),
        error_code=_error_code(values),
        to_number=_first(values, "To", required=False),
        account_sid=_first(values, "AccountSid", required=False),
    )


@dataclass(frozen=True, slots=True)
class CallStatus:
    """A status callback for an outbound call."""

    call_sid: str
    status: str
    error_code: int | None = None

    @property
    def failed(self) -> bool:
        """Nobody answered, or the call could not be placed: the page should fail over."""
        return self.status in FAILED_CALL_STATUSES


def parse_call_status(params: Params) -> CallStatus:
    """The fields of a call status callback (`CallSid`, `CallStatus`)."""
    values = _values(params)
    return CallStatus(call_sid=_first(values, "CallSid"),
                      status=_first(values, "CallStatus").lower(),
                      error_code=_error_code(values))


@dataclass(frozen=True, slots=True)
class Keypress:
    """What a callee typed at a `<Gather>` (posted to its `action` URL)."""

    call_sid: str
    digits: str


def parse_keypress(params: Params) -> Keypress:
    """The fields of a `<Gather>` action request (`CallSid`, `Digits`)."""
    values = _values(params)
    return Keypress(call_sid=_first(values, "CallSid"),
                    digits=_first(values, "Digits", required=False))


def twiml_message(text: str | None = None) -> str:
    """The TwiML answer to an inbound SMS: a reply `text`, or none at all."""
    if not text:
        return '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Message>{escape(text)}</Message></Response>")


# --- Replies ---------------------------------------------------------------------------------

Action = Literal["ack", "resolve", "escalate"]
ReplyKind = Literal["action", "opt_out", "opt_in", "help"]

_ACTION_WORDS: dict[str, Action] = {
    "a": "ack", "ack": "ack", "acknowledge": "ack",
    "r": "resolve", "res": "resolve", "resolve": "resolve",
    "e": "escalate", "esc": "escalate", "escalate": "escalate",
}
_WORDS = "|".join(sorted(_ACTION_WORDS, key=len, reverse=True))
# "4a", "4 a", "4-ack", "#4 resolve" and the other way round, "ack 4".
_CODE_FIRST = re.compile(rf"#?(\d{{1,4}})[\s\-]*({_WORDS})")
_ACTION_FIRST = re.compile(rf"({_WORDS})[\s\-]*#?(\d{{1,4}})")
# A bare word acts on the newest page; single letters alone are too easy to send by mistake.
_BARE: dict[str, Action] = {
    "ack": "ack", "acknowledge": "ack", "resolve": "resolve", "escalate": "escalate",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """What a text to pagerd asks for.

    `kind` is `action` (with `action`, and `code` unless it was bare, acting on the newest
    page), `opt_out`/`opt_in` (Twilio's keywords; `keyword` says which), or `help`:
    the HELP/INFO keywords (`keyword` set; Twilio answers those itself on long codes) and
    anything not understood (`keyword` empty).
    """

    kind: ReplyKind
    action: Action | None = None
    code: str | None = None
    keyword: str = ""


HELP = Reply("help")


def parse_reply(body: str) -> Reply:
    """Read an SMS reply; anything not understood is `help`."""
    word = body.strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return Reply("opt_out", keyword=word)
    if word in OPT_IN_KEYWORDS:
        return Reply("opt_in", keyword=word)
    if word in HELP_KEYWORDS:
        return Reply("help", keyword=word)
    text = " ".join(body.casefold().split()).strip(" .!")
    if text in _BARE:
        return Reply("action", action=_BARE[text])
    if match := _CODE_FIRST.fullmatch(text):
        return Reply("action", action=_ACTION_WORDS[match[2]], code=str(int(match[1])))
    if match := _ACTION_FIRST.fullmatch(text):
        return Reply("action", action=_ACTION_WORDS[match[1]], code=str(int(match[2])))
    return HELP
