"""The CLI's client of a running daemon's API: commands that change state go through the
daemon, so that notifications follow and the audit names who acted."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from pagerd.daemon.statedir import StateDir
from pagerd.settings import Settings


class ApiError(Exception):
    """The daemon refused or could not be reached; the message says which, for people."""


@dataclass
class Client:
    """Where the daemon is and the token to speak to it with."""

    base: str
    token: str

    @classmethod
    def for_cli(cls, settings: Settings, state: StateDir, url: str | None) -> Client:
        """$PAGERD_TOKEN (a user's own), else the admin token from config or state dir."""
        token = os.environ.get("PAGERD_TOKEN") or settings.admin_token or state.read_token(
            "admin")
        if not token:
            raise ApiError("no token: set PAGERD_TOKEN (yours) or PAGERD_ADMIN_TOKEN, "
                           "or run the daemon once with this state dir")
        return cls(url or f"http://{settings.listen}", token)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One API request; the decoded JSON answer."""
        request = urllib.request.Request(
            f"{self.base}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise ApiError(f"refused ({exc.code}): {detail}") from None
        except urllib.error.URLError as exc:
            raise ApiError(f"cannot reach pagerd at {self.base}: {exc.reason}") from None


def fail(message: str) -> int:
    """Print an error for people and return the exit code 1."""
    print(message, file=sys.stderr)
    return 1
