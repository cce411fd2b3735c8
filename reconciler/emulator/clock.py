"""The embedded service's simulated clock and its controls (outcomes, throttling, faults).

Everything the control API changes lives here, in one :class:`Controls` object per process,
so the in-process service and the server behave the same.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..service.quotas import API_QUOTAS

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"

QUOTAS = API_QUOTAS  # the documented rates and bursts (dp-limits.md)


def format_time(value: datetime) -> str:
    """Timestamps as the service writes them: ``2015-04-07T16:05:58``."""
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


@dataclass
class Outcome:
    """How an activity's attempts end: ``fail_times`` failures, then success (or failure
    for ever with ``always_fail``), each attempt running ``duration_seconds``."""

    fail_times: int = 0
    always_fail: bool = False
    duration_seconds: int = 60
    error_message: str = "simulated failure"

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Bucket:
    rate: float
    burst: int
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class Controls:
    """The process-wide state of the control API."""

    offset: timedelta = timedelta(0)
    frozen_at: datetime | None = None
    speed: float = 1.0  # simulated seconds per real second (a demo's runs finish sooner)
    speed_from: datetime | None = None  # the real time the speed was set
    outcomes: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    throttling: bool = False
    buckets: dict[str, Bucket] = field(default_factory=dict)
    faults: dict[str, dict[str, float]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    seed: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    monotonic: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    # -- clock ----------------------------------------------------------------------------------

    def now(self) -> datetime:
        if self.frozen_at is not None:
            base = self.frozen_at
        else:
            base = real = datetime.now(UTC)
            if self.speed_from is not None:
                base = self.speed_from + (real - self.speed_from) * self.speed
        return (base + self.offset).replace(microsecond=0)

    def set_speed(self, speed: float) -> datetime:
        """Let the unfrozen clock run ``speed`` times faster than real time from now on."""
        with self.lock:
            real = datetime.now(UTC)
            if self.speed_from is not None:  # keep the simulated time continuous
                self.offset += (real - self.speed_from) * (self.speed - 1)
            self.speed, self.speed_from = speed, real
            return self.now()

    def advance(self, seconds: float) -> datetime:
        with self.lock:
            self.offset += timedelta(seconds=seconds)
            return self.now()

    def set_time(self, when: datetime) -> datetime:
        """Freeze the clock at ``when``; it then moves only when advanced."""
        with self.lock:
            self.frozen_at, self.offset = when.astimezone(UTC), timedelta(0)
            return self.now()

    # -- outcomes ---------------------------------------------------------------------------------

    def outcome(self, pipeline_id: str, object_id: str) -> Outcome:
        return (self.outcomes.get((pipeline_id, object_id))
                or self.outcomes.get(("*", object_id)) or Outcome())

    # -- throttling and faults --------------------------------------------------------------------

    def admit(self, operation: str) -> str | None:
        """None to serve the call; otherwise the fault to answer with: "throttle", "5xx" or
        "drop"."""
        with self.lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1
            if self.throttling and operation in QUOTAS:
                now = self.monotonic()
                rate, burst = QUOTAS[operation]
                bucket = self.buckets.setdefault(operation, Bucket(rate, burst, burst, now))
                if not bucket.take(now):
                    return "throttle"
            rates = self.faults.get(operation) or self.faults.get("*") or {}
            roll = self.random.random()
            for kind in ("throttle", "5xx", "drop"):
                rate = rates.get(kind, 0.0)
                if roll < rate:
                    return kind
                roll -= rate
            return None

    def reset(self) -> None:
        with self.lock:
            self.offset, self.frozen_at = timedelta(0), None
            self.speed, self.speed_from = 1.0, None
            self.outcomes.clear()
            self.throttling = False
            self.buckets.clear()
            self.faults.clear()
            self.calls.clear()
            self.random = random.Random(self.seed)


CONTROLS = Controls()
