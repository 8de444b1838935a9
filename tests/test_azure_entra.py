"""EntraVerifier against a real JWKS server on loopback, with keys generated per test run."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from pagerd.receivers.entra import EntraError, EntraVerifier

TENANT = "11111111-2222-3333-4444-555555555555"
ISSUER = f"https://sts.windows.net/{TENANT}/"
AUDIENCE = "api://pagerd-azure-webhook"
NOW = 1_750_000_000.0


@dataclass
class Clock:
    """A fake clock the tests move by hand."""

    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class JwksServer:
    """What the loopback JWKS endpoint serves, and how often it was asked."""

    keys: dict[str, rsa.RSAPrivateKey]
    status: int = 200
    hits: int = 0
    served: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        entries = []
        for kid in self.served:
            jwk = RSAAlgorithm.to_jwk(self.keys[kid].public_key(), as_dict=True)
            entries.append({**jwk, "kid": kid, "use": "sig"})
        # An encryption key and an EC key are in real documents too; both must be skipped.
        entries.append({"kty": "RSA", "use": "enc", "kid": "enc-1", "n": "AQAB", "e": "AQAB"})
        entries.append({"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": "x", "y": "y"})
        return {"keys": entries}


@pytest.fixture(scope="module")
def rsa_keys() -> dict[str, rsa.RSAPrivateKey]:
    return {kid: rsa.generate_private_key(65537, 2048) for kid in ("k1", "k2", "rogue")}


@pytest.fixture
async def jwks(
    aiohttp_server: Callable[[web.Application], Awaitable[Any]],
    rsa_keys: dict[str, rsa.RSAPrivateKey],
) -> AsyncIterator[tuple[JwksServer, str]]:
    state = JwksServer(keys=rsa_keys, served=["k1"])

    async def handler(_: web.Request) -> web.Response:
        state.hits += 1
        if state.status != 200:
            return web.Response(status=state.status, text="unavailable")
        return web.json_response(state.document())

    app = web.Application()
    app.router.add_get("/discovery/keys", handler)
    server = await aiohttp_server(app)
    yield state, str(server.make_url("/discovery/keys"))


@pytest.fixture
async def verifier(jwks: tuple[JwksServer, str]) -> AsyncIterator[tuple[EntraVerifier, Clock]]:
    clock = Clock()
    v = EntraVerifier(
        jwks_url=jwks[1],
        issuer=ISSUER,
        audience=AUDIENCE,
        clock=clock,
        refetch_interval=300,
        max_key_age=3600,
    )
    yield v, clock
    await v.close()


def token(
    keys: dict[str, rsa.RSAPrivateKey],
    kid: str = "k1",
    sign_with: str | None = None,
    algorithm: str = "RS256",
    **claims: Any,
) -> str:
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": NOW,
        "nbf": NOW - 10,
        "exp": NOW + 3600,
        "appid": "action-groups",
        "roles": ["ActionGroupsSecureWebhook"],
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, keys[sign_with or kid], algorithm=algorithm, headers={"kid": kid})


async def reason(v: EntraVerifier, raw: str) -> str:
    with pytest.raises(EntraError) as caught:
        await v.verify(raw)
    return caught.value.reason


async def test_valid_token(verifier: tuple[EntraVerifier, Clock], rsa_keys: Any) -> None:
    """A current RS256 token from the tenant for our audience gives its claims."""
    v, _ = verifier
    claims = await v.verify(token(rsa_keys))
    assert claims["appid"] == "action-groups"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"exp": NOW - 120}, "expired"),
        ({"nbf": NOW + 120}, "not_yet_valid"),
        ({"iss": "https://sts.windows.net/other-tenant/"}, "issuer"),
        ({"aud": "api://someone-else"}, "audience"),
        ({"exp": None}, "missing_claim"),
        ({"aud": None}, "missing_claim"),
        ({"exp": "tomorrow"}, "invalid"),
    ],
)
async def test_claims_refused(
    verifier: tuple[EntraVerifier, Clock], rsa_keys: Any, claims: dict[str, Any], expected: str
) -> None:
    v, _ = verifier
    assert await reason(v, token(rsa_keys, **claims)) == expected


async def test_leeway(verifier: tuple[EntraVerifier, Clock], rsa_keys: Any) -> None:
    """Clocks differ a little: a token expired 30 s ago (within the 60 s leeway) passes."""
    v, clock = verifier
    raw = token(rsa_keys, exp=NOW + 10)
    clock.now = NOW + 40
    await v.verify(raw)
    clock.now = NOW + 71
    assert await reason(v, raw) == "expired"


async def test_signature_by_another_key(
    verifier: tuple[EntraVerifier, Clock], rsa_keys: Any
) -> None:
    """A token naming a known kid but signed by another key is refused."""
    v, _ = verifier
    assert await reason(v, token(rsa_keys, kid="k1", sign_with="rogue")) == "signature"


async def test_other_algorithms_refused(
    verifier: tuple[EntraVerifier, Clock], rsa_keys: Any
) -> None:
    """HS256 keyed with the public key, "none" and RS512 never reach a signature check."""
    v, _ = verifier
    public_pem = (
        rsa_keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    body = {"iss": ISSUER, "aud": AUDIENCE, "exp": NOW + 60}
    forged = _hs256(body, public_pem)
    assert await reason(v, forged) == "algorithm"
    unsigned = jwt.encode(body, "", algorithm="none", headers={"kid": "k1"})
    assert await reason(v, unsigned) == "algorithm"
    assert await reason(v, token(rsa_keys, algorithm="RS512")) == "algorithm"


def _hs256(body: dict[str, Any], secret: bytes) -> str:
    """An HS256 token keyed with `secret`, built by hand: PyJWT rightly refuses PEM secrets."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64(json.dumps(body).encode())
    mac = hmac.new(secret, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{b64(mac)}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", "malformed"), ("abc", "malformed"), ("a.b.c", "malformed"), ("e30.e30.sig", "algorithm")],
)
async def test_malformed(verifier: tuple[EntraVerifier, Clock], raw: str, expected: str) -> None:
    """Not a JWT, or a JWT header without `alg`."""
    v, _ = verifier
    assert await reason(v, raw) == expected


async def test_unknown_kid_refetches_rate_limited(
    verifier: tuple[EntraVerifier, Clock], jwks: tuple[JwksServer, str], rsa_keys: Any
) -> None:
    """An unknown kid refetches the JWKS, at most once per refetch interval."""
    v, clock = verifier
    state, _ = jwks
    await v.verify(token(rsa_keys))
    assert state.hits == 1
    rotated = token(rsa_keys, kid="k2")
    clock.now += 400  # past the refetch interval: one refetch, the key is still not there
    assert await reason(v, rotated) == "unknown_kid"
    assert state.hits == 2
    state.served.append("k2")
    clock.now += 10  # within the interval: refused without asking the endpoint again
    assert await reason(v, rotated) == "unknown_kid"
    assert await reason(v, token(rsa_keys, kid="forged", sign_with="rogue")) == "unknown_kid"
    assert state.hits == 2
    clock.now += 300
    await v.verify(token(rsa_keys, kid="k2", iat=clock.now, exp=clock.now + 60))
    assert state.hits == 3


async def test_keys_refreshed_when_old(
    verifier: tuple[EntraVerifier, Clock], jwks: tuple[JwksServer, str], rsa_keys: Any
) -> None:
    """Cached keys older than max_key_age are fetched again, so a withdrawn key stops working."""
    v, clock = verifier
    state, _ = jwks
    await v.verify(token(rsa_keys))
    state.served = ["k2"]
    clock.now += 3601
    raw = token(rsa_keys, exp=clock.now + 60)
    assert await reason(v, raw) == "unknown_kid"
    assert state.hits == 2


async def test_endpoint_down_at_start(
    verifier: tuple[EntraVerifier, Clock], jwks: tuple[JwksServer, str], rsa_keys: Any
) -> None:
    """With no key loaded every token is refused; the fetch is retried after a few seconds."""
    v, clock = verifier
    jwks[0].status = 503
    raw = token(rsa_keys)
    assert await reason(v, raw) == "jwks_unavailable"
    assert await reason(v, raw) == "jwks_unavailable"
    assert jwks[0].hits == 1
    jwks[0].status = 200
    clock.now += 6
    await v.verify(raw)
    assert jwks[0].hits == 2


async def test_endpoint_down_later_keeps_keys(
    verifier: tuple[EntraVerifier, Clock], jwks: tuple[JwksServer, str], rsa_keys: Any
) -> None:
    """An outage of the key endpoint does not refuse tokens signed by keys already trusted."""
    v, clock = verifier
    await v.verify(token(rsa_keys))
    jwks[0].status = 500
    clock.now += 3601
    await v.verify(token(rsa_keys, exp=clock.now + 60))
    assert jwks[0].hits == 2


async def test_concurrent_cold_start_fetches_once(
    verifier: tuple[EntraVerifier, Clock], jwks: tuple[JwksServer, str], rsa_keys: Any
) -> None:
    v, _ = verifier
    raw = token(rsa_keys)
    await asyncio.gather(*(v.verify(raw) for _ in range(10)))
    assert jwks[0].hits == 1


async def test_required_role_and_several_issuers(
    jwks: tuple[JwksServer, str], rsa_keys: Any
) -> None:
    """v1 and v2 issuers can both be allowed; a required app role must be in `roles`."""
    v2_issuer = f"https://login.microsoftonline.com/{TENANT}/v2.0"
    v = EntraVerifier(
        jwks_url=jwks[1],
        issuer=[ISSUER, v2_issuer],
        audience=[AUDIENCE],
        role="ActionGroupsSecureWebhook",
        clock=Clock(),
    )
    try:
        await v.verify(token(rsa_keys, iss=v2_issuer))
        assert await reason(v, token(rsa_keys, roles=["Reader"])) == "role"
        assert await reason(v, token(rsa_keys, roles=None)) == "role"
    finally:
        await v.close()
