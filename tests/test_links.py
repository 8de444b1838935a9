"""Signed action links: round trip, tampering with every field, expiry, rotation, length."""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagerd.clock import FakeClock
from pagerd.links import ACTIONS, MAX_USER_BYTES, LinkError, LinkSigner

OLD = b"old-key-0123456789abcdef"
NEW = b"new-key-0123456789abcdef"


def signer(clock: FakeClock | None = None, **keys: bytes) -> LinkSigner:
    clock = clock or FakeClock()
    keys = keys or {"k1": NEW}
    return LinkSigner(keys, list(keys)[-1], ttl=3600, clock=clock.time)


def reason(signer: LinkSigner, token: str) -> str:
    with pytest.raises(LinkError) as caught:
        signer.verify(token)
    return caught.value.reason


def body_bytes(token: str) -> bytes:
    body = token.partition(".")[2]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def with_body(token: str, raw: bytes) -> str:
    kid = token.partition(".")[0]
    return f"{kid}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"


@pytest.mark.parametrize("action", ACTIONS)
def test_round_trip_carries_every_claim(action: str) -> None:
    clock = FakeClock(1_767_225_600.0)
    links = signer(clock)
    claims = links.verify(links.sign(123, action, "alice"))  # type: ignore[arg-type]
    assert (claims.kid, claims.incident_id, claims.action, claims.user) == (
        "k1", 123, action, "alice")
    assert claims.expires_at == 1_767_225_600 + 3600
    assert len(base64.urlsafe_b64decode(claims.nonce + "=")) == 8


@given(
    incident=st.integers(min_value=0, max_value=2**63),
    action=st.sampled_from(ACTIONS),
    user=st.text(min_size=1, max_size=20).filter(lambda u: len(u.encode()) <= MAX_USER_BYTES),
)
def test_round_trip_any_incident_and_user(incident: int, action: str, user: str) -> None:
    links = signer()
    token = links.sign(incident, action, user)  # type: ignore[arg-type]
    claims = links.verify(token)
    assert (claims.incident_id, claims.action, claims.user) == (incident, action, user)
    assert set(token) <= set(string.ascii_letters + string.digits + "-_.")


def test_every_token_has_its_own_nonce() -> None:
    links = signer()
    nonces = {links.verify(links.sign(1, "ack", "alice")).nonce for _ in range(200)}
    assert len(nonces) == 200


def test_short_enough_for_a_text_message() -> None:
    links = signer()
    assert len(links.sign(123456, "escalate", "alice")) <= 60
    assert len(links.sign(10**9, "resolve", "firstname.lastname")) < 80


def test_flipping_any_bit_of_the_body_is_a_bad_signature() -> None:
    links = signer()
    token = links.sign(4242, "ack", "alice")
    raw = body_bytes(token)
    # Version, action, expiry, nonce, incident, user and the MAC itself: every byte.
    for index in range(len(raw)):
        for bit in (0x01, 0x80):
            forged = bytearray(raw)
            forged[index] ^= bit
            assert reason(links, with_body(token, bytes(forged))) == "bad_signature", index


def test_changing_any_character_never_verifies() -> None:
    links = signer(k0=OLD, k1=NEW)
    token = links.sign(7, "resolve", "bob")
    alphabet = string.ascii_letters + string.digits + "-_."
    for index, char in enumerate(token):
        for other in alphabet.replace(char, "")[::7]:
            forged = token[:index] + other + token[index + 1:]
            with pytest.raises(LinkError):
                links.verify(forged)


def test_claims_cannot_be_swapped_between_tokens() -> None:
    """A signed body with another user's name spliced in is refused."""
    links = signer()
    token = links.sign(1, "ack", "alice")
    alice = body_bytes(token)
    spliced = alice[:-16 - 5] + b"bobby" + alice[-16:]
    assert reason(links, with_body(token, spliced)) == "bad_signature"


@pytest.mark.parametrize(("token", "expected"), [
    ("", "malformed"),
    ("no-dot-at-all", "malformed"),
    ("k1.", "malformed"),
    ("k1.AAAA", "malformed"),
    ("k1.!!!not-base64!!!", "malformed"),
    ("k1.A", "malformed"),
    ("a key.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "malformed"),
    ("k9.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "unknown_key"),
    ("k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "bad_signature"),
])
def test_malformed_and_forged_tokens(token: str, expected: str) -> None:
    assert reason(signer(), token) == expected


def test_truncated_and_extended_tokens_are_refused() -> None:
    links = signer()
    token = links.sign(99, "ack", "alice")
    for cut in range(len("k1."), len(token)):
        with pytest.raises(LinkError):
            links.verify(token[:cut])
    assert reason(links, token + "A") in {"malformed", "bad_signature"}


def test_padding_or_other_spellings_are_refused() -> None:
    """The last character's unused bits must be zero: one token, one spelling."""
    links = signer()
    token = links.sign(99, "ack", "alic")
    assert reason(links, token + "=") == "malformed"
    assert len(body_bytes(token)) % 3, "the last character must carry unused bits"
    # The same bytes, but with the lowest (unused) bit of the last character set.
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    respelled = token[:-1] + alphabet[alphabet.index(token[-1]) + 1]
    assert reason(links, respelled) == "malformed"


def test_expiry_follows_the_clock() -> None:
    clock = FakeClock()
    links = signer(clock)
    token = links.sign(1, "ack", "alice")
    clock.advance(3599)
    assert links.verify(token).incident_id == 1
    clock.advance(1)
    assert reason(links, token) == "expired"


def test_a_token_is_expired_only_when_genuine() -> None:
    """An expired forgery is reported as forged, not as merely expired."""
    clock = FakeClock()
    links = signer(clock)
    raw = bytearray(body_bytes(links.sign(1, "ack", "alice")))
    raw[-1] ^= 1
    clock.advance(7200)
    assert reason(links, with_body("k1.x", bytes(raw))) == "bad_signature"


def test_ttl_per_link() -> None:
    clock = FakeClock()
    links = signer(clock)
    token = links.sign(1, "view", "alice", ttl=86400)
    clock.advance(7200)
    assert links.verify(token).action == "view"


def test_rotation_keeps_links_in_flight() -> None:
    clock = FakeClock()
    before = LinkSigner({"k0": OLD}, "k0", clock=clock.time)
    old_token = before.sign(5, "ack", "alice")

    during = LinkSigner({"k0": OLD, "k1": NEW}, "k1", clock=clock.time)
    new_token = during.sign(5, "ack", "alice")
    assert new_token.startswith("k1.")
    assert during.verify(old_token).kid == "k0"
    assert during.verify(new_token).kid == "k1"

    after = LinkSigner({"k1": NEW}, "k1", clock=clock.time)
    assert reason(after, old_token) == "unknown_key"
    assert after.verify(new_token).incident_id == 5


def test_a_body_moved_under_another_key_id_is_refused() -> None:
    links = signer(k0=OLD, k1=NEW)
    token = links.sign(5, "ack", "alice")
    assert reason(links, "k0." + token.partition(".")[2]) == "bad_signature"


@pytest.mark.parametrize(("keys", "current", "message"), [
    ({"k1": b"short"}, "k1", "shorter than 16 bytes"),
    ({"k1": NEW}, "k2", "not among the keys"),
    ({"bad.kid": NEW}, "bad.kid", "must be 1-16"),
    ({"": NEW}, "", "must be 1-16"),
])
def test_refuses_bad_keys(keys: dict[str, bytes], current: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LinkSigner(keys, current)


def test_key_errors_never_show_the_key() -> None:
    with pytest.raises(ValueError) as caught:
        LinkSigner({"k1": b"secret"}, "k1")
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(("incident", "action", "user"), [
    (1, "delete", "alice"),
    (-1, "ack", "alice"),
    (1, "ack", ""),
    (1, "ack", "x" * (MAX_USER_BYTES + 1)),
])
def test_sign_refuses_what_it_cannot_carry(incident: int, action: str, user: str) -> None:
    with pytest.raises(ValueError):
        signer().sign(incident, action, user)  # type: ignore[arg-type]
