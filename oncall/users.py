"""Users and teams: the people who can be paged, how to reach them, and who belongs together."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo


class ContactMethod(enum.StrEnum):
    """A way to reach a person."""

    SMS = "sms"
    VOICE = "voice"
    EMAIL = "email"
    WEBHOOK = "webhook"


def mask(number: str) -> str:
    """A phone number fit for logs and reprs: all but the last two digits hidden."""
    return "*" * max(len(number) - 2, 0) + number[-2:]


@dataclass(frozen=True)
class Contacts:
    """Where a person is reached: a phone number for SMS and for calls, an email, a webhook."""

    sms: str | None = None
    voice: str | None = None
    email: str | None = None
    webhook: str | None = None

    def address(self, method: ContactMethod) -> str | None:
        """The address for `method`, or None if the person has none."""
        value: str | None = getattr(self, method.value)
        return value

    def __repr__(self) -> str:
        # A repr ends up in logs sooner or later; phone numbers must not.
        sms = None if self.sms is None else mask(self.sms)
        voice = None if self.voice is None else mask(self.voice)
        return (
            f"Contacts(sms={sms!r}, voice={voice!r}, email={self.email!r}, "
            f"webhook={self.webhook!r})"
        )


@dataclass(frozen=True)
class NotificationRule:
    """Notify by `method` once `delay_seconds` have passed since the person was paged."""

    method: ContactMethod
    delay_seconds: int = 0

    def __post_init__(self) -> None:
        if self.delay_seconds < 0:
            raise ValueError("a notification rule cannot fire before the page")


@dataclass(frozen=True)
class User:
    """A person who can be on call; `time_zone` is the zone they read their shifts in."""

    name: str
    time_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    contacts: Contacts = field(default_factory=Contacts)
    notification_rules: tuple[NotificationRule, ...] = ()
    # SHA-256 (hex) of the person's API token: the API and CLI act as this user with it.
    api_token_sha256: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for rule in self.notification_rules:
            if self.contacts.address(rule.method) is None:
                method = rule.method.value
                raise ValueError(f"user {self.name!r} has a {method} rule but no {method}")


@dataclass(frozen=True)
class Team:
    """People who own something together; paging the team pages its schedule's on-call."""

    name: str
    members: tuple[str, ...] = ()
    schedule: str | None = None
