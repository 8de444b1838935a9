"""Authentication of intake requests by per-integration token.

Alertmanager's `http_config` sends either `Authorization: Bearer <token>` or basic auth;
with basic auth the password is the token and the user name is ignored. Azure action
groups can only put a token in the URL, so `?token=` is accepted where an integration
allows it. Tokens are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping


def presented_token(headers: Mapping[str, str], query: Mapping[str, str],
                    *, allow_query: bool = False) -> str | None:
    """The token a request carries, if any."""
    header = headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    if allow_query:
        return query.get("token") or None
    return None


def token_matches(presented: str | None, expected: str | None) -> bool:
    """Constant-time comparison; no expected token means nobody gets in."""
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())
