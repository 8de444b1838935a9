"""Paging set-up: the notifiers for each contact method and the action-link signer, built
from the `paging:` config and the state dir."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import structlog

from pagerd.daemon.statedir import StateDir
from pagerd.links import LinkSigner
from pagerd.notifiers.base import Page, PageNotifier
from pagerd.notifiers.email import EmailNotifier
from pagerd.notifiers.twilio_sms import TwilioSMS
from pagerd.notifiers.twilio_voice import TwilioVoice
from pagerd.notifiers.webhook import WebhookPager
from pagerd.settings import Settings

log = structlog.get_logger("pagerd.paging")


def link_keys(settings: Settings, state: StateDir) -> dict[str, bytes]:
    """Action-link keys by id, the current one first: configured, else one generated."""
    keys = settings.paging.link_keys or (("k1", state.token("link-k1", None)),)
    return {kid: secret.encode() for kid, secret in keys}


def link_signer(keys: dict[str, bytes], settings: Settings,
                clock: Callable[[], float]) -> LinkSigner:
    """The signer of action links; the first key signs, every key verifies."""
    return LinkSigner(keys, next(iter(keys)), ttl=int(settings.paging.link_ttl), clock=clock)


def build_notifiers(settings: Settings, session: aiohttp.ClientSession,
                    voice_action: Callable[[Page], str]) -> dict[str, PageNotifier]:
    """A notifier per contact method pagerd can use with this config."""
    paging = settings.paging
    base = settings.external_url
    notifiers: dict[str, PageNotifier] = {"webhook": WebhookPager(session)}
    if paging.twilio is not None:
        twilio = paging.twilio
        notifiers["sms"] = TwilioSMS(
            session, account_sid=twilio.account_sid, auth_token=twilio.auth_token,
            from_number=twilio.from_number, base_url=twilio.base_url,
            status_callback_url=f"{base}/api/v1/twilio/status")
        notifiers["voice"] = TwilioVoice(
            session, account_sid=twilio.account_sid, auth_token=twilio.auth_token,
            from_number=twilio.from_number, base_url=twilio.base_url,
            gather_action_url=voice_action,
            status_callback_url=f"{base}/api/v1/twilio/call-status")
    if paging.smtp is not None:
        smtp = paging.smtp
        notifiers["email"] = EmailNotifier(
            host=smtp.host, port=smtp.port, username=smtp.username, password=smtp.password,
            use_tls=smtp.use_tls, starttls=smtp.starttls, from_addr=smtp.from_addr)
    log.info("paging.methods", methods=sorted(notifiers))
    return notifiers
