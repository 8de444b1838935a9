"""Signed action links: a short token that lets one person ack, resolve or escalate one incident.

A token is `<kid>.<body>` where `kid` names the signing key and `body` is base64url (no
padding) of::

    version (1 byte) | action (1 byte) | expiry (4 bytes, unix seconds, big endian)
    | nonce (8 bytes) | incident id (LEB128 varint) | user (UTF-8) | MAC (16 bytes)

The MAC is HMAC-SHA256 under the key `kid`, over a domain tag, the kid and everything before
the MAC, truncated to 128 bits: plenty against forgery for a token that lives an hour, and
short enough that a link fits in a text message (about 50 characters for a short user name).

Keys rotate by adding a new key id and making it current: tokens carry their kid, so links
already sent keep verifying until the old key is removed. A token verifies any number of
times; making it work once is the caller's job, by recording `LinkClaims.nonce` of each link
acted on until `LinkClaims.expires_at` (after that the token is refused as expired anyway).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

Action = Literal["ack", "resolve", "escalate", "view"]
Reason = Literal["malformed", "unknown_key", "bad_signature", "expired"]

ACTIONS: tuple[Action, ...] = get_args(Action)
DEFAULT_TTL = 3600
MIN_KEY_BYTES = 16

VERSION = 1
MAC_BYTES = 16
NONCE_BYTES = 8
# version, action code, expiry, nonce.
_HEADER = struct.Struct(">BcI8s")
# Even the longest user name must keep a link usable; 64 bytes already makes it long.
MAX_USER_BYTES = 64
_DOMAIN = b"pagerd-link\x00"
_KID = re.compile(r"[A-Za-z0-9_-]{1,16}")
_CODES: dict[Action, bytes] = {"ack": b"a", "resolve": b"r", "escalate": b"e", "view": b"v"}
_ACTION_OF_CODE = {code: action for action, code in _CODES.items()}


class LinkError(Exception):
    """A token that must not be acted on; `reason` is one of `Reason`, fit for a metric label."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason


@dataclass(frozen=True, slots=True)
class LinkClaims:
    """What a verified token says: who may do what to which incident, until when."""

    kid: str
    incident_id: int
    action: Action
    user: str
    expires_at: int
    # base64url of 8 random bytes; the caller records it to make the link work once.
    nonce: str


class LinkSigner:
    """Signs action links with the current key and verifies them with any known key."""

    def __init__(
        self, keys: Mapping[str, bytes], current_kid: str, *, ttl: int = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for kid, key in keys.items():
            if not _KID.fullmatch(kid):
                raise ValueError(f"key id {kid!r} must be 1-16 of A-Z a-z 0-9 _ -")
            if len(key) < MIN_KEY_BYTES:
                # The message names the key id only: never the key.
                raise ValueError(f"key {kid!r} is shorter than {MIN_KEY_BYTES} bytes")
        if current_kid not in keys:
            raise ValueError(f"current key id {current_kid!r} is not among the keys")
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self._keys = dict(keys)
        self._current = current_kid
        self._ttl = ttl
        self._clock = clock

    def sign(
        self, incident_id: int, action: Action, user: str, *, ttl: int | None = None
    ) -> str:
        """A fresh token for `user` to do `action` to incident `incident_id`."""
        if action not in _CODES:
            raise ValueError(f"unknown action {action!r}")
        if incident_id < 0:
            raise ValueError("incident id must not be negative")
        user_bytes = user.encode()
        if not user_bytes or len(user_bytes) > MAX_USER_BYTES:
            raise ValueError(f"user name must be 1-{MAX_USER_BYTES} bytes")
        lifetime = self._ttl if ttl is None else ttl
        if lifetime <= 0:
            raise ValueError("ttl must be positive")
        expires_at = int(self._clock()) + lifetime
        header = _HEADER.pack(VERSION, _CODES[action], expires_at,
                              secrets.token_bytes(NONCE_BYTES))
        unsigned = header + _varint(incident_id) + user_bytes
        mac = _mac(self._keys[self._current], self._current, unsigned)
        return f"{self._current}.{_b64encode(unsigned + mac)}"

    def verify(self, token: str) -> LinkClaims:
        """The claims of a genuine, unexpired token; LinkError says why not."""
        kid, dot, body = token.partition(".")
        if not dot or not _KID.fullmatch(kid):
            raise LinkError("malformed")
        key = self._keys.get(kid)
        if key is None:
            raise LinkError("unknown_key")
        raw = _b64decode(body)
        if raw is None or len(raw) < _HEADER.size + 1 + 1 + MAC_BYTES:
            raise LinkError("malformed")
        unsigned, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        # Check the MAC before reading any field, in constant time.
        if not hmac.compare_digest(mac, _mac(key, kid, unsigned)):
            raise LinkError("bad_signature")
        claims = _parse(kid, unsigned)
        if self._clock() >= claims.expires_at:
            raise LinkError("expired")
        return claims


def _parse(kid: str, unsigned: bytes) -> LinkClaims:
    """The fields of a body whose MAC is good; `malformed` if we could not have made it."""
    version, code, expires_at, nonce = _HEADER.unpack_from(unsigned)
    action = _ACTION_OF_CODE.get(code)
    if version != VERSION or action is None:
        raise LinkError("malformed")
    incident_id, offset = _read_varint(unsigned, _HEADER.size)
    try:
        user = unsigned[offset:].decode()
    except UnicodeDecodeError:
        raise LinkError("malformed") from None
    if not user:
        raise LinkError("malformed")
    return LinkClaims(kid, incident_id, action, user, expires_at, _b64encode(nonce))


def _mac(key: bytes, kid: str, unsigned: bytes) -> bytes:
    # The kid is covered too, so a body cannot be moved under another key id.
    message = _DOMAIN + kid.encode() + b"\x00" + unsigned
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]


def _varint(value: int) -> bytes:
    """LEB128: seven bits a byte, low first; incident #123 takes one byte."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(offset, min(len(data), offset + 10)):
        value |= (data[index] & 0x7F) << shift
        shift += 7
        if not data[index] & 0x80:
            return value, index + 1
    raise LinkError("malformed")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    if not text.isascii() or len(text) % 4 == 1:
        return None
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    # Unused low bits of the last character must be zero: one token, one spelling.
    return raw if _b64encode(raw) == text else None
