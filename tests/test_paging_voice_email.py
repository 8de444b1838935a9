"""Voice and e-mail pages through a running daemon: a call at the fake Twilio whose callee
presses 4 acknowledges; an e-mail page reaches a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from fake_twilio import ACCOUNT_SID, AUTH_TOKEN, fake_twilio
from helpers import ADMIN, TOKEN, am_alert, am_payload, eventually, free_port, running_daemon


@dataclass
class Mailbox:
    """Messages an SMTP server took."""

    messages: list[email.message.Message] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))  # type: ignore[arg-type]
        return "250 OK"


def config(port: int, twilio: str, smtp_port: int) -> str:
    return f"""
server:
  admin_token: {ADMIN}
  listen: 127.0.0.1:{port}
  external_url: http://127.0.0.1:{port}
integrations:
  alertmanager:
    token: {TOKEN}
paging:
  twilio:
    account_sid: {ACCOUNT_SID}
    auth_token: {AUTH_TOKEN}
    from_number: "+15005550006"
    base_url: {twilio}
  smtp:
    host: 127.0.0.1
    port: {smtp_port}
    starttls: false
    from: pagerd@example.com
users:
  - name: carol
    contacts: {{voice: "+15550003003", email: carol@example.com}}
    notification_rules:
      - {{method: voice, after: 0m}}
      - {{method: email, after: 0m}}
escalation_policies:
  - name: frontline
    steps:
      - targets: [{{user: carol}}]
        delay: 5m
route:
  receiver: pager
  escalation_policy: frontline
receivers:
  - name: pager
"""


async def incident(session: Any, base: str, number: int) -> dict[str, Any]:
    async with session.get(f"{base}/api/v1/incidents/{number}",
                           headers={"Authorization": f"Bearer {ADMIN}"}) as response:
        found: dict[str, Any] = await response.json()
        return found


async def test_call_keypress_acknowledges_and_mail_arrives(tmp_path: Path) -> None:
    mailbox = Mailbox()
    smtp_port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        async with fake_twilio() as twilio:
            port = free_port()
            async with running_daemon(tmp_path, config(port, twilio.base_url, smtp_port),
                                      port=port) as (_, base, session):
                async with session.post(f"{base}/api/v1/alertmanager",
                                        json=am_payload(am_alert(alertname="Down")),
                                        headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                    assert r.status == 200
                (call,) = await twilio.wait_for(1, resource="Calls")
                assert call.field("To") == "+15550003003"

                async def mailed() -> None:
                    assert mailbox.messages
                    message = mailbox.messages[0]
                    assert message["To"] == "carol@example.com"
                    assert "Down" in message["Subject"] or "it broke" in message["Subject"]

                await eventually(mailed)
                call_sid = next(iter(twilio.calls))
                twiml = await twilio.answer(call_sid)
                assert "<Gather" in twiml
                pressed = await twilio.press(call_sid, "4")
                assert pressed.status == 200 and "Acknowledged" in pressed.text
                found = await incident(session, base, 1)
                assert found["state"] == "acknowledged"
                assert found["acknowledged_by"] == "user:carol"
                (acked,) = [e for e in found["timeline"] if e["kind"] == "incident.acknowledged"]
                assert acked["via"] == "voice"
    finally:
        controller.stop()
