"""The e-mail notifier against a real SMTP server (aiosmtpd) on a free loopback port."""

from __future__ import annotations

import contextlib
import datetime
import email
import email.policy
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from pagerd.notifiers.base import DeliveryError, Page, PageItem
from pagerd.notifiers.email import EmailNotifier, build_message, message_id, subject

from helpers import free_port

FROM = "pagerd <pagerd@example.com>"
ITEM = PageItem(
    incident_id=123, severity="SEV1", title="Checkout error rate above 5%", owner="payments",
    reply_code="4", links={"ack": "https://pagerd.example.com/l/k1.ack-token",
                           "resolve": "https://pagerd.example.com/l/k1.resolve-token"},
    runbook_url="https://runbooks.example.com/checkout",
    contacts=({"name": "SRE on call", "role": "primary", "email": "sre@example.com"},),
)
PAGE = Page(user="alice", address="alice@example.com", items=(ITEM,), idempotency_key="page-1")


@dataclass
class Handler:
    """An SMTP handler that records messages and answers from a script first."""

    data_replies: list[str] = field(default_factory=list)
    rcpt_replies: list[str] = field(default_factory=list)
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str | None, list[str]]] = field(default_factory=list)
    data_commands: int = 0

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_commands += 1
        if self.data_replies:
            return self.data_replies.pop(0)
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 queued"


@contextlib.contextmanager
def smtp_server(handler: Handler, **kwargs: Any) -> Iterator[int]:
    """An aiosmtpd server in its own thread on a free loopback port; always stopped."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def notifier(port: int, **kwargs: Any) -> EmailNotifier:
    options: dict[str, Any] = {"host": "127.0.0.1", "port": port, "from_addr": FROM,
                               "timeout": 5.0, "starttls": False}
    return EmailNotifier(**(options | kwargs))


async def test_sends_plain_and_html_with_links_runbook_and_contacts() -> None:
    handler = Handler()
    with smtp_server(handler) as port:
        receipt = await notifier(port).send_page(PAGE)
    [message] = handler.messages
    assert handler.envelopes == [("pagerd@example.com", ["alice@example.com"])]
    assert message["Subject"] == "[SEV1] #123 Checkout error rate above 5%"
    assert message["To"] == "alice@example.com"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"] == receipt.provider_id == message_id("page-1", FROM)
    assert message.get_content_type() == "multipart/alternative"

    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    text, markup = plain.get_content(), html.get_content()
    assert "Acknowledge: https://pagerd.example.com/l/k1.ack-token" in text
    assert "Resolve: https://pagerd.example.com/l/k1.resolve-token" in text
    assert "Runbook: https://runbooks.example.com/checkout" in text
    assert "SRE on call (primary): email sre@example.com" in text
    assert '<a href="https://pagerd.example.com/l/k1.ack-token">Acknowledge</a>' in markup
    assert '<a href="https://runbooks.example.com/checkout">Runbook</a>' in markup
    assert "#123 · SEV1 · payments" in markup


async def test_message_id_is_stable_per_page() -> None:
    first = build_message(PAGE, FROM)["Message-ID"]
    again = build_message(PAGE, FROM)["Message-ID"]
    other = build_message(Page("alice", "alice@example.com", (ITEM,), "page-2"), FROM)
    assert first == again != other["Message-ID"]
    assert first.endswith("@example.com>")


def test_bundle_subject_lists_every_incident() -> None:
    items = tuple(PageItem(incident_id=n, severity=f"SEV{n % 3 + 1}", title=f"t{n}")
                  for n in (7, 8, 9))
    assert subject(Page("alice", "a@example.com", items, "k")) == (
        "[pagerd] 3 incidents: #7 SEV2, #8 SEV3, #9 SEV1")


def test_titles_cannot_break_headers_or_markup() -> None:
    item = PageItem(incident_id=1, severity="SEV2", title="bad\r\nBcc: eve@example.com <b>x</b>",
                    links={"ack": "javascript:alert(1)"})
    message = build_message(Page("alice", "a@example.com", (item,), "k"), FROM)
    assert message["Bcc"] is None
    assert message["Subject"] == "[SEV2] #1 bad Bcc: eve@example.com <b>x</b>"
    html = message.get_body(("html",))
    assert html is not None
    markup = html.get_content()
    assert "<b>x</b>" not in markup and "&lt;b&gt;x&lt;/b&gt;" in markup
    assert 'href="javascript' not in markup


def test_long_subjects_are_cut() -> None:
    item = PageItem(incident_id=1, severity="SEV2", title="x" * 500)
    assert len(subject(Page("alice", "a@example.com", (item,), "k"))) == 120


async def test_temporary_refusal_is_retried_then_delivered() -> None:
    handler = Handler(data_replies=["451 4.3.0 try again later"])
    with smtp_server(handler) as port, capture_logs() as logs:
        await notifier(port).send_page(PAGE)
    assert handler.data_commands == 2
    assert len(handler.messages) == 1
    events = [(entry["event"], entry["log_level"]) for entry in logs]
    assert events == [("page.retrying", "warning"), ("page.delivered_after_retries", "info")]
    assert "alice@example.com" not in repr(logs)


async def test_permanent_refusal_is_not_retried() -> None:
    handler = Handler(data_replies=["554 5.7.1 message rejected"])
    with smtp_server(handler) as port, pytest.raises(DeliveryError) as caught:
        await notifier(port).send_page(PAGE)
    assert (caught.value.reason, caught.value.retryable) == ("smtp_554", False)
    assert "message rejected" in caught.value.detail
    assert handler.data_commands == 1


@pytest.mark.parametrize(("reply", "reason", "retryable", "tries"), [
    ("550 5.1.1 no such user", "smtp_550", False, 1),
    ("450 4.2.1 mailbox busy", "smtp_450", True, 2),
])
async def test_recipient_refusals(reply: str, reason: str, retryable: bool, tries: int) -> None:
    handler = Handler(rcpt_replies=[reply] * 5)
    with smtp_server(handler) as port, pytest.raises(DeliveryError) as caught:
        await notifier(port, quick_attempts=2).send_page(PAGE)
    assert (caught.value.reason, caught.value.retryable) == (reason, retryable)
    assert len(handler.rcpt_replies) == 5 - tries
    assert handler.messages == []


async def test_no_server_is_a_retryable_connection_error() -> None:
    with pytest.raises(DeliveryError) as caught:
        await notifier(free_port(), quick_attempts=2).send_page(PAGE)
    assert (caught.value.reason, caught.value.retryable) == ("connection", True)


async def test_required_starttls_that_the_server_lacks_is_permanent() -> None:
    with smtp_server(Handler()) as port, pytest.raises(DeliveryError) as caught:
        await notifier(port, starttls=True).send_page(PAGE)
    assert (caught.value.reason, caught.value.retryable) == ("smtp_error", False)
    assert "STARTTLS" in caught.value.detail


def test_use_tls_and_starttls_are_exclusive() -> None:
    with pytest.raises(ValueError, match="exclusive"):
        EmailNotifier(host="h", from_addr=FROM, use_tls=True, starttls=True)


# STARTTLS and AUTH, with a certificate made for the test.

@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_file, key_file


def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login, auth_data.password) == (b"pagerd", b"s3cret")
    # handled=False: aiosmtpd answers the refusal (535) itself.
    return AuthResult(success=ok, handled=False)


@contextlib.contextmanager
def tls_server(handler: Handler, certificate: tuple[Path, Path]) -> Iterator[int]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*certificate)
    with smtp_server(handler, tls_context=server_context, require_starttls=True,
                     authenticator=authenticator, auth_required=True,
                     auth_require_tls=True) as port:
        yield port


async def test_starttls_and_auth(certificate: tuple[Path, Path]) -> None:
    handler = Handler()
    client_context = ssl.create_default_context(cafile=str(certificate[0]))
    with tls_server(handler, certificate) as port:
        await notifier(port, starttls=True, username="pagerd", password="s3cret",
                       tls_context=client_context).send_page(PAGE)
    assert len(handler.messages) == 1


async def test_wrong_password_is_permanent(certificate: tuple[Path, Path]) -> None:
    client_context = ssl.create_default_context(cafile=str(certificate[0]))
    with tls_server(Handler(), certificate) as port, pytest.raises(DeliveryError) as caught:
        await notifier(port, starttls=True, username="pagerd", password="wrong",
                       tls_context=client_context).send_page(PAGE)
    assert (caught.value.reason, caught.value.retryable) == ("smtp_535", False)


async def test_untrusted_certificate_is_permanent(certificate: tuple[Path, Path]) -> None:
    with tls_server(Handler(), certificate) as port, pytest.raises(DeliveryError) as caught:
        await notifier(port, starttls=True, username="pagerd", password="s3cret",
                       quick_attempts=2).send_page(PAGE)
    assert (caught.value.reason, caught.value.retryable) == ("tls", False)
