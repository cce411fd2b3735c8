"""The controller's logs: structlog JSON lines on stdout (a console rendering on a terminal),
every secret value the controller resolved redacted from every event.

Secrets never reach a log on purpose; the redactor is the net under that rule: any string
field of any event that contains a value the controller resolved as a secret (a password
read from the environment or a mounted file) is logged with ``[redacted]`` in its place.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words


class Redactor:
    def __init__(self) -> None:
        self._values: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add(self, values: Iterable[str]) -> None:
        new = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}
        if not new <= self._values:
            with self._lock:
                self._values = self._values | new

    def redact(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in sorted(self._values, key=len, reverse=True):
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.redact(v) for v in value)
        return value

    def __call__(self, _logger: Any, _method: str, event: MutableMapping[str, Any]
                 ) -> Mapping[str, Any]:
        return {key: self.redact(value) for key, value in event.items()}


def configure_logging(redactor: Redactor, *, level: int = logging.INFO, fmt: str = "auto",
                      stream: TextIO | None = None) -> None:
    """JSON lines (``fmt="json"``), the console renderer (``"console"``), or JSON unless
    ``stream`` is a terminal (``"auto"``)."""
    stream = stream or sys.stdout
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: Any = (structlog.dev.ConsoleRenderer() if console
                     else structlog.processors.JSONRenderer(sort_keys=True))
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.format_exc_info,
                    redactor, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False)
