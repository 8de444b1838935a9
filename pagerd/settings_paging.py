"""The `paging:` section: how pagerd reaches people (Twilio, SMTP) and signs action links."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pagerd.durations import parse_duration
from pagerd.errors import ConfigError, refuse_unknown
from pagerd.secrets import env_name, resolve_secret
from pagerd.yamlsource import position


@dataclass(frozen=True)
class TwilioConfig:
    """Twilio's Messages and Calls APIs; SMS and voice are off without credentials."""

    account_sid: str
    auth_token: str = field(repr=False)
    from_number: str
    base_url: str = "https://api.twilio.com"
    # Twilio signs webhooks with the account's token; during a rotation, with either.
    secondary_auth_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SmtpConfig:
    """An SMTP server for e-mail pages."""

    host: str
    from_addr: str
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    use_tls: bool = False
    starttls: bool | None = None


@dataclass(frozen=True)
class PagingConfig:
    """Everything about paging people that is not who they are."""

    twilio: TwilioConfig | None = None
    smtp: SmtpConfig | None = None
    # Action-link signing keys by id, the current one first; none: one generated.
    link_keys: tuple[tuple[str, str], ...] = ()
    link_ttl: float = 3600.0
    # Further pages to the same person within this window go out as one message.
    bundle_window: float = 120.0
    # When someone acts on an incident, tell the others already paged for it.
    notify_others: bool = True
    # Whose on-call is the communications manager, for severities that engage one.
    comms_schedule: str | None = None
    # Tell the incoming person "you are on call from ... until ..." at each handoff.
    handoff_notices: bool = True


def parse_paging(node: Any, errors: list[ConfigError], base_dir: Path) -> PagingConfig:
    """Read the `paging:` section (all of it optional)."""
    if node is None:
        node = {}
    if not isinstance(node, dict):
        errors.append(ConfigError(position(node), "paging must be a mapping"))
        return PagingConfig()
    refuse_unknown(node, {"twilio", "smtp", "links", "bundle_window", "notify_others",
                          "comms_schedule", "handoff_notices"}, errors)
    links = node.get("links") or {}
    return PagingConfig(
        twilio=_twilio(node.get("twilio"), errors, base_dir),
        smtp=_smtp(node.get("smtp"), errors, base_dir),
        link_keys=_link_keys(links, errors, base_dir),
        link_ttl=_duration(links, "ttl", "1h", errors) if isinstance(links, dict) else 3600.0,
        bundle_window=_duration(node, "bundle_window", "2m", errors),
        notify_others=bool(node.get("notify_others", True)),
        comms_schedule=node.get("comms_schedule"),
        handoff_notices=bool(node.get("handoff_notices", True)),
    )


def _duration(node: dict[str, Any], key: str, default: str, errors: list[ConfigError]) -> float:
    try:
        return parse_duration(node.get(key, default))
    except ValueError as exc:
        errors.append(ConfigError(position(node, key), str(exc)))
        return parse_duration(default)


def _twilio(node: Any, errors: list[ConfigError], base_dir: Path) -> TwilioConfig | None:
    if node is None:
        return None
    if not isinstance(node, dict):
        errors.append(ConfigError(position(node), "twilio must be a mapping"))
        return None
    refuse_unknown(node, {"account_sid", "account_sid_file", "auth_token", "auth_token_file",
                          "secondary_auth_token", "secondary_auth_token_file", "from_number",
                          "base_url"}, errors)
    secret = {key: resolve_secret(node, key, env_name("twilio", key), errors, base_dir)
              for key in ("account_sid", "auth_token", "secondary_auth_token")}
    from_number = node.get("from_number")
    if not isinstance(from_number, str) or not from_number.startswith("+"):
        errors.append(ConfigError(position(node, "from_number"),
                                  "from_number must be an E.164 number such as +15551234567"))
        return None
    if not secret["account_sid"] or not secret["auth_token"]:
        return None  # configured but without credentials: SMS and voice stay off
    return TwilioConfig(secret["account_sid"], secret["auth_token"], from_number,
                        str(node.get("base_url", "https://api.twilio.com")).rstrip("/"),
                        secret["secondary_auth_token"])


def _smtp(node: Any, errors: list[ConfigError], base_dir: Path) -> SmtpConfig | None:
    if node is None:
        return None
    if not isinstance(node, dict):
        errors.append(ConfigError(position(node), "smtp must be a mapping"))
        return None
    refuse_unknown(node, {"host", "port", "username", "password", "password_file", "use_tls",
                          "starttls", "from"}, errors)
    host, sender = node.get("host"), node.get("from")
    if not isinstance(host, str) or not host:
        errors.append(ConfigError(position(node, "host"), "host is required"))
        return None
    if not isinstance(sender, str) or "@" not in sender:
        errors.append(ConfigError(position(node, "from"), "from must be an e-mail address"))
        return None
    port = node.get("port")
    if port is not None and not isinstance(port, int):
        errors.append(ConfigError(position(node, "port"), "port must be an integer"))
        port = None
    return SmtpConfig(host, sender, port, node.get("username"),
                      resolve_secret(node, "password", env_name("smtp", "password"), errors,
                                     base_dir),
                      bool(node.get("use_tls", False)), node.get("starttls"))


def _link_keys(node: Any, errors: list[ConfigError],
               base_dir: Path) -> tuple[tuple[str, str], ...]:
    if not isinstance(node, dict):
        errors.append(ConfigError(position(node), "links must be a mapping"))
        return ()
    refuse_unknown(node, {"keys", "ttl"}, errors)
    keys = []
    for index, item in enumerate(node.get("keys") or []):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            errors.append(ConfigError(position(node["keys"], index), "a key needs an id"))
            continue
        refuse_unknown(item, {"id", "secret", "secret_file"}, errors)
        secret = resolve_secret(item, "secret", env_name("links", "key", item["id"]), errors,
                                base_dir)
        if not secret or len(secret) < 16:
            errors.append(ConfigError(position(item, "secret"),
                                      "a link key needs a secret of 16 characters or more"))
            continue
        keys.append((item["id"], secret))
    return tuple(keys)
