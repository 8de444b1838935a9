"""Microsoft Entra ID bearer tokens, as Azure's secure webhook sends them: verified or refused.

An action group's secure webhook signs in to Entra ID and sends the access token it gets as
`Authorization: Bearer <jwt>`. `EntraVerifier` accepts a token only if it is RS256, signed
by a key from the configured JWKS document, current (`exp`, `nbf`) and issued by the
configured issuer for the configured audience. The signature check is PyJWT's; this module
only chooses the key and checks the claims against an injectable clock.

Keys are cached. A token naming an unknown `kid` (Entra rotates its keys) makes the verifier
fetch the JWKS again, at most once per `refetch_interval`, so a stream of forged `kid`s
cannot turn the intake into a load generator against the key endpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Any

import aiohttp
import jwt
import structlog

log = structlog.get_logger(__name__)

ALGORITHM = "RS256"
# Seconds between fetch attempts while no key at all could be loaded.
_EMPTY_RETRY = 5.0


class EntraError(Exception):
    """A token was refused. `reason` is a short code for counting (`expired`, `audience`...)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class EntraVerifier:
    """Verifies Entra ID access tokens against one issuer, audience and JWKS URL.

    `issuer` and `audience` may each be one value or several (Entra's v1 and v2 tokens name
    the tenant differently: `https://sts.windows.net/<tenant>/` and
    `https://login.microsoftonline.com/<tenant>/v2.0`). `role`, when set, must be among the
    token's `roles` (the secure webhook's app role, e.g. `ActionGroupsSecureWebhook`).
    """

    def __init__(
        self,
        *,
        jwks_url: str,
        issuer: str | Collection[str],
        audience: str | Collection[str],
        role: str | None = None,
        clock: Callable[[], float] = time.time,
        leeway: float = 60.0,
        refetch_interval: float = 300.0,
        max_key_age: float = 24 * 3600.0,
        timeout: float = 5.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._jwks_url = jwks_url
        self._issuers = frozenset([issuer] if isinstance(issuer, str) else issuer)
        self._audiences = [audience] if isinstance(audience, str) else list(audience)
        self._role = role
        self._clock = clock
        self._leeway = leeway
        self._refetch_interval = refetch_interval
        self._max_key_age = max_key_age
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._own_session = session is None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims if it is valid; raises `EntraError` naming why it is not."""
        kid = self._header_kid(token)
        key = await self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self._audiences,
                issuer=self._issuers,
                # Time claims are checked below against the injected clock, not PyJWT's.
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "iss", "aud"],
                },
            )
        except jwt.InvalidAudienceError as e:
            raise EntraError("audience", str(e)) from e
        except jwt.InvalidIssuerError as e:
            raise EntraError("issuer", str(e)) from e
        except jwt.MissingRequiredClaimError as e:
            raise EntraError("missing_claim", str(e)) from e
        except jwt.InvalidSignatureError as e:
            raise EntraError("signature", str(e)) from e
        except jwt.PyJWTError as e:
            raise EntraError("invalid", str(e)) from e
        self._check_time(claims)
        self._check_role(claims)
        return claims

    async def close(self) -> None:
        """Close the HTTP session if this verifier opened it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _header_kid(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise EntraError("malformed", str(e)) from e
        # Checked before any key lookup: "none", HS256 with the public key as secret and
        # the like never reach a verifier.
        if header.get("alg") != ALGORITHM:
            raise EntraError("algorithm", f"{header.get('alg')!r} is not {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise EntraError("malformed", "token header has no kid")
        return kid

    async def _key(self, kid: str) -> jwt.PyJWK:
        if kid not in self._keys or self._needs_fetch(kid):
            # The lock also makes a verify wait for a fetch already under way, whose keys
            # may be the ones it needs; then it fetches only if that did not settle it.
            async with self._lock:
                if self._needs_fetch(kid):
                    await self._refresh()
        if not self._keys:
            raise EntraError("jwks_unavailable", self._jwks_url)
        key = self._keys.get(kid)
        if key is None:
            raise EntraError("unknown_kid", kid)
        return key

    def _needs_fetch(self, kid: str) -> bool:
        if self._fetched_at is None:
            return True
        age = self._clock() - self._fetched_at
        if age > self._max_key_age:
            return True
        if kid in self._keys:
            return False
        # An unknown kid may be a rotated key: refetch, but rate-limited. With no keys at all
        # (the first fetch failed) every token is refused, so retry sooner.
        interval = self._refetch_interval if self._keys else _EMPTY_RETRY
        return age >= min(interval, self._refetch_interval)

    async def _refresh(self) -> None:
        # Rate limiting counts attempts, not successes: a failing endpoint is not hammered.
        self._fetched_at = self._clock()
        try:
            document = await self._fetch()
            keys = _signing_keys(document)
        except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWTError) as e:
            # Keep the keys we had: an outage of the key endpoint must not refuse
            # tokens signed by keys we already trust.
            log.warning("entra jwks fetch failed", url=self._jwks_url, error=str(e))
            return
        if set(keys) != set(self._keys):
            log.info("entra jwks loaded", url=self._jwks_url, kids=sorted(keys))
        self._keys = keys

    async def _fetch(self) -> object:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        async with self._session.get(self._jwks_url, timeout=self._timeout) as response:
            if response.status != 200:
                raise ValueError(f"JWKS endpoint answered {response.status}")
            return await response.json(content_type=None)

    def _check_time(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        exp = _number(claims, "exp")
        if exp is None:
            raise EntraError("invalid", "exp is not a number")
        if now > exp + self._leeway:
            raise EntraError("expired")
        nbf = _number(claims, "nbf")
        if nbf is None and claims.get("nbf") is not None:
            raise EntraError("invalid", "nbf is not a number")
        if nbf is not None and now < nbf - self._leeway:
            raise EntraError("not_yet_valid")

    def _check_role(self, claims: dict[str, Any]) -> None:
        if self._role is None:
            return
        roles = claims.get("roles")
        if not isinstance(roles, list) or self._role not in roles:
            raise EntraError("role", f"token lacks role {self._role!r}")


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _signing_keys(document: object) -> dict[str, jwt.PyJWK]:
    """The RSA signing keys of a JWKS document, by `kid`."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS document has no keys array")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        if entry.get("use", "sig") != "sig" or not isinstance(entry.get("kid"), str):
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(entry, algorithm=ALGORITHM)
        except jwt.PyJWTError as e:
            log.warning("entra jwks key skipped", kid=entry["kid"], error=str(e))
    if not keys:
        raise ValueError("JWKS document has no RSA signing keys")
    return keys
