"""Voice pages through Twilio's Calls API: TwiML reads the page and takes one keypress.

Keys: 4 acknowledges and 6 resolves (the SMS codes use `a` and `r`; on a keypad these are
two digits far enough apart not to be hit together). A bundle is read as a count and its
first incidents; a key acts on every incident in it. If nobody presses a key the page is
read once more, then the call ends and the escalation carries on as for any unanswered page.

The TwiML goes inline with the call (`Twiml`, at most 4,000 characters, so the spoken text is
capped) unless `twiml_url` is given, in which case Twilio fetches it from pagerd (`Url`).
Twilio posts the key to the `<Gather>` action URL with the call's SID, which the receipt of
the page carries. Retries and error handling are those of the SMS notifier.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape, quoteattr

import aiohttp
import structlog

from pagerd.notifiers.base import Page, PageItem, Receipt
from pagerd.notifiers.twilio_sms import TwilioAPI, mask_number

log = structlog.get_logger("pagerd.notifier")

KEYS = {"4": "ack", "6": "resolve"}
MAX_TWIML = 4000  # Twilio refuses longer inline TwiML (error 32018).
MAX_SPOKEN_ITEMS = 3
MAX_SPOKEN_TITLE = 140
GATHER_TIMEOUT = 8  # Seconds of silence before the page is read again.

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ORDINALS = ("First", "Second", "Third", "Fourth", "Fifth")


def _speakable(text: str, limit: int) -> str:
    """Text safe inside XML and short enough to listen to."""
    text = " ".join(_XML_ILLEGAL.sub(" ", text).split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0]


def _describe(item: PageItem, limit: int) -> str:
    owner = f" for {_speakable(item.owner, 60)}" if item.owner else ""
    title = _speakable(item.title, limit).rstrip(".!?;:, ")
    return f"{_speakable(item.severity, 20)}{owner}: {title}."


def _script(items: Sequence[PageItem], shown: int, limit: int) -> str:
    if len(items) == 1:
        return f"This is pagerd. {_describe(items[0], limit)}"
    lines = [f"This is pagerd with {len(items)} incidents."]
    lines += [f"{_ORDINALS[n]}, {_describe(item, limit)}" for n, item in enumerate(items[:shown])]
    if len(items) > shown:
        lines.append(f"And {len(items) - shown} more.")
    return " ".join(lines)


def _say(text: str) -> str:
    return f"<Say>{escape(text)}</Say>"


def _document(body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


def _gather(script: str, action_url: str, *, bundle: bool = False) -> str:
    every = " all of them" if bundle else ""
    keys = " ".join(f"Press {digit} to {'acknowledge' if action == 'ack' else action}{every}."
                    for digit, action in KEYS.items())
    return (f'<Gather input="dtmf" numDigits="1" timeout="{GATHER_TIMEOUT}" method="POST" '
            f"action={quoteattr(action_url)}>{_say(script)}{_say(keys)}</Gather>")


def twiml_for_page(page: Page, gather_action_url: str) -> str:
    """TwiML that reads `page` and posts one key to `gather_action_url` (twice, then bye)."""
    if not page.items:
        raise ValueError("a page needs at least one incident")
    shown, limit = min(len(page.items), MAX_SPOKEN_ITEMS), MAX_SPOKEN_TITLE
    while True:
        script = _script(page.items, shown, limit)
        gather = _gather(script, gather_action_url, bundle=len(page.items) > 1)
        document = _document(gather + _say("No key was pressed. Once more.") + gather
                             + _say("Goodbye.") + "<Hangup/>")
        if len(document) <= MAX_TWIML or limit <= 20:
            return document
        # Too long to send inline: fewer incidents first, then shorter titles.
        if shown > 1:
            shown -= 1
        else:
            limit //= 2


def action_for_digit(digit: str) -> str | None:
    """The action a key asks for (`ack`, `resolve`), or None for any other key."""
    return KEYS.get(digit.strip()[:1])


def twiml_after_keypress(digit: str, *, page: Page | None = None,
                         gather_action_url: str = "") -> str:
    """TwiML answering a key: a confirmation, or (given the page) the menu once more."""
    action = action_for_digit(digit)
    if action == "ack":
        return _document(_say("Acknowledged. Escalation stopped. Goodbye.") + "<Hangup/>")
    if action == "resolve":
        return _document(_say("Resolved. Goodbye.") + "<Hangup/>")
    if page is not None and gather_action_url:
        shown = min(len(page.items), MAX_SPOKEN_ITEMS)
        retry = _gather(_script(page.items, shown, MAX_SPOKEN_TITLE), gather_action_url,
                        bundle=len(page.items) > 1)
        return _document(_say("That key does nothing.") + retry + _say("Goodbye.")
                         + "<Hangup/>")
    return _document(_say("That key does nothing. Goodbye.") + "<Hangup/>")


class TwilioVoice:
    """Pages a person by phone call; the receipt carries Twilio's call SID.

    `gather_action_url` is where Twilio posts the key: one URL (pagerd finds the page by
    the call SID) or a function of the page. With `twiml_url` (a function of the page)
    Twilio fetches the TwiML from pagerd instead of getting it inline.
    """

    kind = "voice"

    def __init__(
        self, session: aiohttp.ClientSession, *, account_sid: str, auth_token: str,
        from_number: str, gather_action_url: str | Callable[[Page], str],
        base_url: str = "https://api.twilio.com", status_callback_url: str | None = None,
        twiml_url: Callable[[Page], str] | None = None, ring_timeout: int = 30,
        quick_attempts: int = 3, timeout: float = 10.0, wait_base: float = 0.5,
    ) -> None:
        self._api = TwilioAPI(session, account_sid=account_sid, auth_token=auth_token,
                              base_url=base_url, timeout=timeout,
                              quick_attempts=quick_attempts, wait_base=wait_base)
        self._from = from_number
        self._action = gather_action_url
        self._status_callback = status_callback_url
        self._twiml_url = twiml_url
        self._ring_timeout = ring_timeout

    def action_url(self, page: Page) -> str:
        """The `<Gather>` action URL for `page`."""
        return self._action if isinstance(self._action, str) else self._action(page)

    async def send_page(self, page: Page) -> Receipt:
        """Place the call; permanent Twilio errors raise DeliveryError(retryable=False)."""
        form = {"To": page.address, "From": self._from, "Timeout": str(self._ring_timeout)}
        if self._twiml_url is not None:
            form["Url"] = self._twiml_url(page)
        else:
            form["Twiml"] = twiml_for_page(page, self.action_url(page))
        if self._status_callback:
            # Only the final status is wanted: busy, no-answer and failed fail over.
            form["StatusCallback"] = self._status_callback
        sid = await self._api.create("Calls", form, notifier=self.kind, user=page.user)
        log.debug("call placed", notifier=self.kind, user=page.user,
                  to=mask_number(page.address), call_sid=sid)
        return Receipt(provider_id=sid)
