"""SMS pages through Twilio's Messages API, and the REST call the Twilio notifiers share.

A page is written to fit one GSM-7 segment (160 septets) where it can: text outside the
GSM-7 alphabet would switch the whole message to UCS-2 and cut a segment to 70 characters,
so titles are transliterated first (curly quotes, dashes, accents) and only then shortened.

Sending retries a few times with jittered exponential backoff, but only when the same
request may succeed later (a network error, a timeout, 429, 5xx). Twilio's 4xx answers
(21211 invalid number, 21610 the person texted STOP, 21614 not a mobile, ...) will fail the
same way each time, so they raise at once with `reason="twilio_<code>"` and the caller moves
on to the person's next contact method. A retry after a timeout can repeat a text that did
leave: a page is delivered at least once, never knowingly dropped.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from pagerd import __version__
from pagerd.notifiers.base import DeliveryError, Page, PageItem, Receipt
from pagerd.notifiers.retry import retryable

log = structlog.get_logger("pagerd.notifier")

API_VERSION = "2010-04-01"
SEGMENT = 160  # GSM-7 septets in a single-part SMS.

# --- GSM-7 -----------------------------------------------------------------------------------

# The GSM 03.38 default alphabet (one septet each) and its extension table (escape + one).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("\f^{}\\[~]|€")
# Common characters outside GSM-7 that have a readable stand-in inside it.
_STAND_INS = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032`\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u00ab\u00bb\u2033", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    **dict.fromkeys("\u00a0\u2007\u202f\t", " "),
    "\u2026": "...", "\u2022": "*", "\u00b7": ".", "\u2192": "->", "\u00d7": "x",
}
ELLIPSIS = "..."


def gsm7_septets(text: str) -> int | None:
    """How many septets `text` takes in GSM-7, or None if it cannot be sent in GSM-7."""
    total = 0
    for char in text:
        if char in _GSM_BASIC:
            total += 1
        elif char in _GSM_EXTENDED:
            total += 2
        else:
            return None
    return total


def _septets(text: str) -> int:
    """Septets of text already in GSM-7; anything else counts as an escape pair."""
    return sum(1 if char in _GSM_BASIC else 2 for char in text)


def to_gsm7(text: str) -> str:
    """`text` on one line in the GSM-7 alphabet: stand-ins, accents dropped, else `?`."""
    out = []
    for char in " ".join(text.split()):
        if char in _GSM_BASIC or char in _GSM_EXTENDED:
            out.append(char)
        elif char in _STAND_INS:
            out.append(_STAND_INS[char])
        else:
            bare = "".join(c for c in unicodedata.normalize("NFKD", char)
                           if not unicodedata.combining(c))
            out.append(bare if bare and gsm7_septets(bare) is not None else "?")
    return "".join(out)


def shorten(text: str, septets: int) -> str:
    """`text` cut to at most `septets`, marked with an ellipsis when cut."""
    if _septets(text) <= septets:
        return text
    room = max(septets - len(ELLIPSIS), 0)
    kept = []
    for char in text:
        room -= _septets(char)
        if room < 0:
            break
        kept.append(char)
    return "".join(kept).rstrip() + ELLIPSIS


# --- Page text -------------------------------------------------------------------------------

MIN_TITLE = 12  # Below this a title says nothing; list fewer incidents instead.
MAX_OWNER = 20


def _label(item: PageItem) -> str:
    """`SEV1 db:` -- the severity and the owning team or component."""
    severity = to_gsm7(item.severity)[:8]
    owner = shorten(to_gsm7(item.owner), MAX_OWNER) if item.owner else ""
    return f"{severity} {owner}:" if owner else f"{severity}:"


def _single(item: PageItem) -> str:
    code = item.reply_code
    hint = f"Reply {code}a ack, {code}r resolve" if code else "Reply ack or resolve"
    link = (item.links or {}).get("ack", "")
    tail = f"\n{hint}" + (f"\n{link}" if link else "")
    head = _label(item) + " "
    room = SEGMENT - _septets(head) - _septets(tail)
    return head + shorten(to_gsm7(item.title), max(room, MIN_TITLE)) + tail


def _cap(lengths: Sequence[int], total: int) -> int:
    """The largest cap c with sum(min(length, c)) <= total (water-filling)."""
    remaining = total
    ordered = sorted(lengths)
    for done, length in enumerate(ordered):
        share = remaining // (len(ordered) - done)
        if length > share:
            return share
        remaining -= length
    return ordered[-1] if ordered else 0


def _bundle(items: Sequence[PageItem]) -> str:
    code = next((item.reply_code for item in items if item.reply_code), "")
    header = f"{len(items)} incidents. Reply ack/resolve for all" + (
        f", {code}a/{code}r for one:" if code else ":")
    prefixes = [(f"{item.reply_code} " if item.reply_code else "") + _label(item) + " "
                for item in items]
    titles = [to_gsm7(item.title) for item in items]
    # Show as many incidents as fit with a readable title; say how many were left out.
    for shown in range(len(items), 0, -1):
        more = f"\n+{len(items) - shown} more" if shown < len(items) else ""
        room = (SEGMENT - _septets(header) - _septets(more) - shown
                - sum(_septets(prefix) for prefix in prefixes[:shown]))
        lengths = [_septets(title) for title in titles[:shown]]
        cap = _cap(lengths, room)
        if cap >= min(MIN_TITLE, max(lengths)) or shown == 1:
            lines = [prefix + shorten(title, max(cap, MIN_TITLE))
                     for prefix, title in zip(prefixes[:shown], titles[:shown], strict=True)]
            return "\n".join([header, *lines]) + more
    raise AssertionError("unreachable: one incident always fits")


def format_sms(page: Page) -> str:
    """The text of a page: one incident with its reply code and ack link, or a bundle.

    One incident reads `SEV1 db: Disk full on db-1` / `Reply 4a ack, 4r resolve` / the ack
    link. A bundle says how to act on all of it and lists the incidents compactly, one line
    each with its code; it carries no links (one per incident would not fit). Either stays
    within one 160-septet segment unless the fixed parts alone (a long link) are longer.
    """
    if not page.items:
        raise ValueError("a page needs at least one incident")
    if len(page.items) == 1:
        return _single(page.items[0])
    return _bundle(page.items)


# --- Twilio REST -----------------------------------------------------------------------------

_NUMBER = re.compile(r"\+?\d{6,}")


def mask_number(number: str) -> str:
    """A phone number safe to log: only its last four digits."""
    return f"...{number[-4:]}" if len(number) > 4 else "..."


def _redact(text: str) -> str:
    return _NUMBER.sub(lambda match: mask_number(match[0]), text)



class TwilioAPI:
    """Creates resources under one Twilio account (`Messages`, `Calls`) with short retries."""

    def __init__(
        self, session: aiohttp.ClientSession, *, account_sid: str, auth_token: str,
        base_url: str, timeout: float, quick_attempts: int, wait_base: float,
    ) -> None:
        self._session = session
        self._account_sid = account_sid
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._headers = {
            "Authorization": f"Basic {credentials}",
            "User-Agent": f"pagerd/{__version__}",
            "Accept": "application/json",
            # Encoded by hand: aiohttp's form encoder costs more than the send itself.
            "Content-Type": "application/x-www-form-urlencoded",
        }
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = max(1, quick_attempts)
        self._wait_base = wait_base

    def url(self, resource: str) -> str:
        """The list URL of `resource`, e.g. `.../Accounts/AC.../Messages.json`."""
        return f"{self._base}/{API_VERSION}/Accounts/{self._account_sid}/{resource}.json"

    async def create(self, resource: str, form: Mapping[str, str], *, notifier: str,
                     user: str) -> str | None:
        """POST `form`; the new resource's SID. Raises DeliveryError once retries are done."""
        bound = log.bind(notifier=notifier, user=user)
        last: str | None = None
        tries = 0
        sid: str | None = None
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(multiplier=self._wait_base, max=10 * self._wait_base,
                                         jitter=self._wait_base),
            retry=retry_if_exception(retryable),
            reraise=True,
        ):
            with attempt:
                tries += 1
                try:
                    sid = await self._post(resource, form)
                except DeliveryError as exc:
                    # Warn when a failure first shows or changes, not on every attempt.
                    if exc.reason != last:
                        bound.warning("twilio.request_failed", reason=exc.reason,
                                      retryable=exc.retryable, detail=exc.detail, attempt=tries)
                        last = exc.reason
                    raise
        if last is not None:
            bound.info("twilio.delivered_after_retries", attempts=tries)
        return sid

    async def _post(self, resource: str, form: Mapping[str, str]) -> str | None:
        try:
            async with self._session.post(
                self.url(resource), data=urlencode(form).encode(), headers=self._headers,
                timeout=self._timeout,
            ) as response:
                status = response.status
                document = await self._json(response)
        except TimeoutError as exc:
            raise DeliveryError("timeout", retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise DeliveryError("connection", retryable=True, detail=type(exc).__name__) from exc
        if 200 <= status < 300:
            sid = document.get("sid")
            return sid if isinstance(sid, str) else None
        raise _error(status, document)

    @staticmethod
    async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
        body = await response.read()
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            # A proxy's HTML error page, say: keep a little of it for the log.
            return {"message": body[:200].decode(errors="replace")}
        return document if isinstance(document, dict) else {}


def _error(status: int, document: Mapping[str, Any]) -> DeliveryError:
    """Twilio's error body `{code, message, more_info, status}` as a DeliveryError."""
    code = document.get("code")
    reason = f"twilio_{code}" if isinstance(code, int) else f"http_{status}"
    # 429 and 5xx may pass; any other 4xx will fail the same way however often we try.
    may_pass = status == 429 or status >= 500
    detail = _redact(str(document.get("message", "")))[:200]
    return DeliveryError(reason, retryable=may_pass, detail=detail)


# --- The notifier ----------------------------------------------------------------------------


class TwilioSMS:
    """Pages a person by SMS; the receipt carries Twilio's message SID."""

    kind = "sms"

    def __init__(
        self, session: aiohttp.ClientSession, *, account_sid: str, auth_token: str,
        from_number: str, base_url: str = "https://api.twilio.com",
        status_callback_url: str | None = None, quick_attempts: int = 3,
        timeout: float = 10.0, wait_base: float = 0.5,
    ) -> None:
        self._api = TwilioAPI(session, account_sid=account_sid, auth_token=auth_token,
                              base_url=base_url, timeout=timeout,
                              quick_attempts=quick_attempts, wait_base=wait_base)
        self._from = from_number
        self._status_callback = status_callback_url

    async def send_page(self, page: Page) -> Receipt:
        """Create the message; permanent Twilio errors raise DeliveryError(retryable=False)."""
        form = {"To": page.address, "From": self._from, "Body": format_sms(page)}
        if self._status_callback:
            form["StatusCallback"] = self._status_callback
        sid = await self._api.create("Messages", form, notifier=self.kind, user=page.user)
        if sid is None:
            # Accepted all the same (2xx): sending again could text the person twice.
            log.warning("twilio accepted a message without a sid", notifier=self.kind,
                        user=page.user)
        log.debug("sms accepted", notifier=self.kind, user=page.user,
                  to=mask_number(page.address), message_sid=sid)
        return Receipt(provider_id=sid)
