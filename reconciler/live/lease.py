"""One writer per environment: a lease held in the environment's artifacts bucket.

Before it applies, a controller (or ``reconciler apply`` from a laptop) takes the lease: an S3
object holding who has it and until when, written with S3's conditional writes, so two
writers racing for it cannot both win (``If-None-Match: *`` creates it only when absent;
``If-Match: <etag>`` replaces only the version that was read). The holder renews it on every
pass; one that stops renewing (killed, partitioned) loses it when it expires, and the next
writer takes it over. Releasing writes an expired lease, so the next writer does not wait.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .aws import AwsEnvironment, AwsError, call

LEASE_KEY = ".reconciler/lease/{installation}.json"
CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


def new_holder_id() -> str:
    """Who takes a lease: host, process and a random part (two processes never share one)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseState:
    holder: str
    expires: datetime
    etag: str | None

    def expired(self, now: datetime) -> bool:
        return now >= self.expires


class LeaseHeld(AwsError):
    """Another writer holds the lease."""

    def __init__(self, uri: str, holder: str, expires: datetime):
        super().__init__("Lease", "LeaseHeld", f"{holder} holds the lease {uri} until "
                         f"{expires.strftime('%Y-%m-%dT%H:%M:%SZ')}; this apply waits for it "
                         "(the holder renews it while it runs)", 409)
        self.holder, self.expires = holder, expires


class Lease:
    """The lease of one environment, as one writer sees it."""

    def __init__(self, aws: AwsEnvironment, uri: str, holder: str, ttl: float,
                 now: Callable[[], datetime]):
        self.aws, self.uri, self.holder, self.ttl, self.now = aws, uri, holder, ttl, now
        self.bucket, _, self.key = uri[len("s3://"):].partition("/")
        self.etag: str | None = None  # of the version we wrote, while we hold it
        self.renewed = time.monotonic()

    @property
    def held(self) -> bool:
        return self.etag is not None

    def read(self) -> LeaseState | None:
        try:
            got = call(self.aws.s3, "get_object", Bucket=self.bucket, Key=self.key)
        except AwsError as exc:
            if exc.code in ("NoSuchKey", "404", "NotFound"):
                return None
            if exc.code == "NoSuchBucket":
                return None
            raise
        try:
            body = json.loads(got["Body"].read())
            expires = datetime.fromisoformat(body["expires"])
            return LeaseState(str(body["holder"]), expires, got.get("ETag"))
        except (ValueError, KeyError, TypeError):
            # an unreadable lease is treated as expired, and replaced only if unchanged
            return LeaseState("unknown", datetime.min.replace(tzinfo=UTC), got.get("ETag"))

    def _write(self, expires: datetime, condition: dict[str, str]) -> bool:
        body = json.dumps({"holder": self.holder, "expires": expires.isoformat(),
                           "written": self.now().isoformat()}).encode()
        try:
            answer = call(self.aws.s3, "put_object", Bucket=self.bucket, Key=self.key,
                          Body=body, ContentType="application/json", **condition)
        except AwsError as exc:
            if exc.code in CONFLICT or exc.status in (409, 412):
                self.etag = None
                return False
            if exc.code == "NoSuchBucket" and self.aws.create_embedded_bucket(self.bucket):
                return self._write(expires, condition)
            raise
        self.etag = answer.get("ETag")
        self.renewed = time.monotonic()
        return True

    def acquire(self) -> LeaseState | None:
        """Take or renew the lease. None when we hold it now; otherwise the other holder's
        lease (not expired)."""
        now = self.now()
        expires = now + timedelta(seconds=self.ttl)
        if self.etag is not None and self._write(expires, {"IfMatch": self.etag}):
            return None
        current = self.read()
        if current is None:
            if self._write(expires, {"IfNoneMatch": "*"}):
                return None
            current = self.read()
            return current if current is not None else LeaseState("unknown", expires, None)
        if current.holder == self.holder or current.expired(now):
            if current.etag and self._write(expires, {"IfMatch": current.etag}):
                return None
            return self.read() or current
        return current

    def wait(self, seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
        """Acquire within ``seconds`` or raise :class:`LeaseHeld`."""
        deadline = time.monotonic() + seconds
        while True:
            other = self.acquire()
            if other is None:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise LeaseHeld(self.uri, other.holder, other.expires)
            pause = (other.expires - self.now()).total_seconds()
            sleep(max(0.5, min(left, pause, 5.0)))

    def renew_if_due(self) -> None:
        """Renew once a third of the lease has passed (a long apply keeps it); raises
        :class:`LeaseHeld` when another writer took it meanwhile."""
        if self.etag is not None and time.monotonic() - self.renewed < self.ttl / 3:
            return
        self.wait(0)

    def release(self) -> None:
        """Give the lease up (an expired lease in its place) if we hold it."""
        if self.etag is None:
            return
        past = self.now() - timedelta(seconds=1)
        try:
            self._write(past, {"IfMatch": self.etag})
        finally:
            self.etag = None


def lease_uri(bucket: str, base: str, installation: str) -> str:
    key = LEASE_KEY.format(installation=installation)
    return f"s3://{bucket}/{base.strip('/')}/{key}" if base.strip("/") else \
        f"s3://{bucket}/{key}"


def describe(state: LeaseState | None) -> dict[str, Any]:
    if state is None:
        return {"holder": None}
    return {"holder": state.holder, "expires": state.expires.isoformat()}
