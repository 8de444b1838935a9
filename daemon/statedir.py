"""The state directory: the SQLite file, generated tokens and the single-daemon lock."""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import structlog

log = structlog.get_logger("pagerd.state")


def default_state_dir() -> Path:
    """$PAGERD_STATE_DIR, systemd's $STATE_DIRECTORY, else the per-user state dir."""
    for name in ("PAGERD_STATE_DIR", "STATE_DIRECTORY"):
        if os.environ.get(name):
            return Path(os.environ[name].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pagerd"


class StateDir:
    """Paths inside one state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None

    @property
    def database(self) -> Path:
        """The SQLite store."""
        return self.path / "pagerd.db"

    def token_file(self, name: str) -> Path:
        """Where a generated token for `name` lives."""
        return self.path / f"{name}.token"

    def ensure(self) -> None:
        """Create the directory, private to its owner."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def lock(self) -> None:
        """Take the single-daemon lock; fails if another pagerd runs on this directory."""
        fd = os.open(self.path / "pagerd.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(f"another pagerd is running with state dir {self.path}") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the lock."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def token(self, name: str, configured: str | None) -> str:
        """The configured token, else one generated once and kept in the state dir.

        The file's path is logged so an operator can find it; the token never is.
        """
        if configured:
            return configured
        path = self.token_file(name)
        if path.exists():
            return path.read_text().strip()
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        log.info("token.generated", token_name=name, path=str(path))
        return token

    def read_token(self, name: str) -> str | None:
        """A token generated earlier, for the CLI; None if there is none."""
        path = self.token_file(name)
        return path.read_text().strip() if path.exists() else None


def feed_secret(key: str, user: str) -> str:
    """The secret in `user`'s iCal feed URLs, derived from the state dir's feed key."""
    return hmac.new(key.encode(), f"ical:{user}".encode(), hashlib.sha256).hexdigest()[:32]
