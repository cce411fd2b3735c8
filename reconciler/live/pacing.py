"""Client-side pacing to AWS Data Pipeline's documented call limits, and the count of every
request sent.

The service allows each operation a rate and a burst per account and region
(``API_QUOTAS``). A pass over thousands of pipelines that called as fast as it could would be
throttled, retried by botocore and throttled again; instead every attempt (retries included)
takes a token from a bucket of the same shape first, shared by every client of the same
account and region, and waits when there is none. Throttles that still happen (another client
of the account) are retried by botocore's adaptive mode and counted.

Both hooks are botocore events on the client (``before-send`` for the wait, ``needs-retry``
for the count, which fires once per attempt with its answer), so nothing else in the live
layer changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..service.quotas import API_QUOTAS, THROTTLING

# A little under the documented figures: the service's clock and ours are not the same clock.
RATE_MARGIN = 0.95
BURST_MARGIN = 0.9

RequestHook = Callable[[str, str], None]  # (operation, code): "OK" or the error code


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    updated: float
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_time(self, now: float) -> float:
        """Take a token; 0 when there was one, else the seconds until there is (the token is
        taken then, so waiting callers queue up in order)."""
        with self.lock:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            self.tokens -= 1
            return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class Pacer:
    """Token buckets per (scope, operation); a scope is an account and region (environments
    with the same credentials, region and endpoint share one)."""

    def __init__(self, quotas: dict[str, tuple[float, int]] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.quotas = API_QUOTAS if quotas is None else quotas
        self.clock, self.sleep = clock, sleep
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds spent waiting, for benchmarks

    def _bucket(self, scope: str, operation: str) -> TokenBucket | None:
        quota = self.quotas.get(operation)
        if quota is None:
            return None
        with self._lock:
            bucket = self._buckets.get((scope, operation))
            if bucket is None:
                rate, burst = quota[0] * RATE_MARGIN, max(1.0, quota[1] * BURST_MARGIN)
                bucket = TokenBucket(rate, burst, burst, self.clock())
                self._buckets[(scope, operation)] = bucket
            return bucket

    def wait(self, scope: str, operation: str) -> None:
        bucket = self._bucket(scope, operation)
        if bucket is None:
            return
        delay = bucket.wait_time(self.clock())
        if delay > 0:
            self.waited += delay
            self.sleep(delay)


def _operation_of(event_name: str) -> str:
    return event_name.rsplit(".", 1)[-1]


def attach(client: Any, *, pacer: Pacer | None, scope: str,
           on_request: RequestHook | None) -> None:
    """Pace ``client``'s calls with ``pacer`` and report every attempt to ``on_request``."""
    service = client.meta.service_model.service_id.hyphenize()
    if pacer is not None:
        def before_send(event_name: str, **_: Any) -> None:
            pacer.wait(scope, _operation_of(event_name))

        client.meta.events.register(f"before-send.{service}", before_send)
    if on_request is not None:
        def counted(event_name: str, response: Any = None, caught_exception: Any = None,
                    **_: Any) -> None:
            operation = _operation_of(event_name)
            if caught_exception is not None:
                on_request(operation, type(caught_exception).__name__)
                return
            if response is None:
                return
            http, parsed = response
            code = (parsed or {}).get("Error", {}).get("Code")
            if not code and getattr(http, "status_code", 200) >= 300:
                code = str(http.status_code)
            on_request(operation, code or "OK")

        client.meta.events.register(f"needs-retry.{service}", counted)


def is_throttle(code: str) -> bool:
    return code in THROTTLING
