"""structlog set-up: key/value events, JSON when not on a terminal."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO, cast

import orjson
import structlog


def _json(event: Any, **options: Any) -> str:
    """orjson for log lines: a storm logs thousands, and the stdlib encoder showed up in
    profiles; anything it cannot encode is written as its repr."""
    return orjson.dumps(event, default=options.get("default", repr)).decode()


class _Stderr:
    """Whatever sys.stderr is at the time of writing (tests swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str | None = None) -> None:
    """Configure structlog (and stdlib logging, for aiohttp) once, for the whole process."""
    name = (level or os.environ.get("PAGERD_LOG_LEVEL") or "info").upper()
    numeric = getattr(logging, name, logging.INFO)
    renderer: structlog.typing.Processor
    if sys.stderr.isatty():
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _Stderr())),
        # Not cached: tests capture logs after the CLI configured structlog, and pagerd
        # logs events, not every request, so the lookup costs nothing that matters.
        cache_logger_on_first_use=False,
    )
    # aiohttp's access log would print every intake request; keep its warnings only.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
