"""One writer per environment: a lease held in the environment's artifacts bucket.

Before it applies, a controller (or ``reconciler apply`` from a laptop) takes the lease: an S3
object holding who has it, until when and its generation, written with S3's conditional
writes, so two writers racing for it cannot both win (``If-None-Match: *`` creates it only
when absent; ``If-Match: <etag>`` replaces only the version that was read). A missing object
(deleted by hand, or an embedded service that restarted empty) is simply taken again with
``If-None-Match``; a conditional write that finds the object gone means the lease is lost.

While it is held, a thread of its own renews it every third of its duration, however long a
pass takes (reading definitions at the quota can take minutes). Before every write the
executor asks :meth:`Lease.check`: the last renewal must have succeeded within the lease
period less a margin, or the work stops with :class:`LeaseLost` before it writes again. A
writer that stops renewing (killed, partitioned, its renewals failing) loses the lease when
it expires, and the next writer takes it over with a higher generation. Releasing writes an
expired lease, so the next writer does not wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .aws import AwsEnvironment, AwsError, call

LEASE_KEY = ".reconciler/lease/{installation}.json"
RUNS_KEY = ".reconciler/runs/{installation}.json"  # the run observer's cursors, beside it
CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")
GONE = ("NoSuchKey", "404", "NotFound")  # an If-Match write to a key that is not there
WRITE_OPERATIONS = frozenset({"CreatePipeline", "PutPipelineDefinition", "ActivatePipeline",
                              "DeactivatePipeline", "DeletePipeline", "AddTags", "RemoveTags",
                              "SetStatus"})
GUARD_ID = "dataduct-reconciler-lease-guard"
RENEWALS_PER_PERIOD = 3
SAFETY_SHARE = 0.2  # a write needs a renewal younger than 80% of the lease period
DEFAULT_LEASE_SECONDS = 300.0


def new_holder_id() -> str:
    """Who takes a lease: host, process and a random part (two processes never share one)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseState:
    holder: str
    expires: datetime
    etag: str | None
    generation: int = 0

    def expired(self, now: datetime) -> bool:
        return now >= self.expires


class LeaseHeld(AwsError):
    """Another writer holds the lease."""

    def __init__(self, uri: str, holder: str, expires: datetime):
        super().__init__("Lease", "LeaseHeld", f"{holder} holds the lease {uri} until "
                         f"{expires.strftime('%Y-%m-%dT%H:%M:%SZ')}; this apply waits for it "
                         "(the holder renews it while it runs)", 409)
        self.holder, self.expires = holder, expires


class LeaseLost(AwsError):
    """The lease this writer held is no longer known to be its own: it stops writing."""

    def __init__(self, uri: str, why: str):
        super().__init__("Lease", "LeaseLost", f"the lease {uri} was lost ({why}); nothing "
                         "more is written until it is taken again", 409)


class Lease:
    """The lease of one environment, as one writer sees it."""

    def __init__(self, aws: AwsEnvironment, uri: str, holder: str, ttl: float,
                 now: Callable[[], datetime], on_lost: Callable[[str], None] | None = None):
        self.aws, self.uri, self.holder, self.ttl, self.now = aws, uri, holder, ttl, now
        self.bucket, _, self.key = uri[len("s3://"):].partition("/")
        self.on_lost = on_lost or (lambda why: None)
        self.etag: str | None = None  # of the version we wrote, while we hold it
        self.generation = 0  # one more at every change of holder
        self.valid_until = 0.0  # monotonic: our hold is certain until then
        self.lost: str | None = None  # why we lost it, until it is taken again
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self.etag is not None

    def read(self) -> LeaseState | None:
        try:
            got = call(self.aws.s3, "get_object", Bucket=self.bucket, Key=self.key)
        except AwsError as exc:
            if exc.code in GONE or exc.code == "NoSuchBucket":
                return None
            raise
        try:
            body = json.loads(got["Body"].read())
            # a released lease is free whatever the reader's clock says (clocks differ)
            expires = datetime.min.replace(tzinfo=UTC) if body.get("released") else \
                datetime.fromisoformat(body["expires"])
            return LeaseState(str(body["holder"]), expires, got.get("ETag"),
                              int(body.get("generation", 0)))
        except (ValueError, KeyError, TypeError):
            # an unreadable lease is treated as expired, and replaced only if unchanged
            return LeaseState("unknown", datetime.min.replace(tzinfo=UTC), got.get("ETag"))

    def _write(self, expires: datetime, condition: dict[str, str], generation: int,
               released: bool = False) -> bool:
        fields = {"holder": self.holder, "expires": expires.isoformat(),
                  "generation": generation, "written": self.now().isoformat()}
        body = json.dumps({**fields, "released": True} if released else fields).encode()
        started = time.monotonic()
        try:
            answer = call(self.aws.s3, "put_object", Bucket=self.bucket, Key=self.key,
                          Body=body, ContentType="application/json", **condition)
        except AwsError as exc:
            if exc.code in CONFLICT or exc.status in (409, 412) or (
                    "IfMatch" in condition and (exc.code in GONE or exc.status == 404)):
                self.etag = None
                return False
            if exc.code == "NoSuchBucket" and self.aws.create_missing_bucket(self.bucket):
                return self._write(expires, condition, generation, released)
            raise
        self.etag, self.generation, self.lost = answer.get("ETag"), generation, None
        self.valid_until = started + self.ttl * (1 - SAFETY_SHARE)
        return True

    def acquire(self) -> LeaseState | None:
        """Take or renew the lease. None when we hold it now; otherwise the other holder's
        lease (not expired)."""
        with self._lock:
            other = self._acquire()
        if other is None:
            self._start_renewing()
        return other

    def _acquire(self) -> LeaseState | None:
        now = self.now()
        expires = now + timedelta(seconds=self.ttl)
        if self.etag is not None and self._write(expires, {"IfMatch": self.etag},
                                                 self.generation):
            return None
        current = self.read()
        if current is None:  # never taken, deleted, or a service that restarted empty
            if self._write(expires, {"IfNoneMatch": "*"}, self.generation + 1):
                return None
            current = self.read()
            return current if current is not None else LeaseState("unknown", expires, None)
        if current.holder == self.holder or current.expired(now):
            generation = current.generation + (current.holder != self.holder)
            if current.etag and self._write(expires, {"IfMatch": current.etag}, generation):
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

    def check(self) -> None:
        """Before a write: raise :class:`LeaseLost` unless the lease is certainly ours (held,
        and renewed recently enough that it cannot have expired for anyone else)."""
        if self.etag is None:
            raise LeaseLost(self.uri, self.lost or "not held")
        if time.monotonic() >= self.valid_until:
            raise LeaseLost(self.uri, f"not renewed for {self.ttl * (1 - SAFETY_SHARE):.0f} "
                            "s: the renewals are failing")

    def guard(self, client: Any) -> None:
        """Check the lease before every write ``client`` (Data Pipeline's) sends, in
        botocore's ``before-call`` event: a writer that lost the lease cannot land a late
        write, whichever code path makes it."""
        def before_call(model: Any, **_: Any) -> None:
            if model.name in WRITE_OPERATIONS:
                self.check()

        # one guard per client: a client kept across passes is guarded by its current lease,
        # not by every lease object a standby made and dropped
        events = client.meta.events
        events.unregister("before-call.datapipeline", unique_id=GUARD_ID)
        events.register("before-call.datapipeline", before_call, unique_id=GUARD_ID)

    # -- the renewal thread ---------------------------------------------------------------------

    def _start_renewing(self) -> None:
        with self._lock:
            if self._renewer is not None and self._renewer.is_alive():
                return
            self._stop = threading.Event()
            self._renewer = threading.Thread(target=self._renew_until_stopped,
                                             args=(self._stop,), daemon=True,
                                             name=f"lease {self.key}")
            self._renewer.start()

    def _renew_until_stopped(self, stop: threading.Event) -> None:
        period = self.ttl / RENEWALS_PER_PERIOD
        while not stop.wait(period):
            with self._lock:
                if stop.is_set() or self.etag is None:
                    return
                try:
                    taken = self._write(self.now() + timedelta(seconds=self.ttl),
                                        {"IfMatch": self.etag}, self.generation)
                except AwsError as exc:  # no answer: try again; check() stops the writes
                    period = max(0.5, self.ttl / 10)
                    self.lost = f"renewal failed: {exc}"
                    continue
                period = self.ttl / RENEWALS_PER_PERIOD
                if not taken:
                    self.lost = "another writer took it, or it was deleted"
                    self.on_lost(self.lost)
                    return

    def _stop_renewing(self) -> None:
        self._stop.set()
        renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(timeout=5)

    def release(self) -> None:
        """Give the lease up if we hold it: a lease marked released (and expired, for older
        readers) takes its place, free at once for a writer whose clock is behind ours."""
        self._stop_renewing()
        with self._lock:
            if self.etag is None:
                return
            past = self.now() - timedelta(seconds=1)
            try:
                self._write(past, {"IfMatch": self.etag}, self.generation, released=True)
            finally:
                self.etag = None

    def abandon(self) -> None:
        """Stop renewing and forget the lease without giving it back: what a crash leaves
        (the lease expires on its own)."""
        self._stop_renewing()
        with self._lock:
            self.etag = None


class Leases:
    """The leases of one writer, one per environment: who it is, how long they last, how
    long an apply waits for another writer's, and whether they are kept across passes (the
    controller renews them for its life) or given back after one (a command). Not
    ``enabled``, nothing is leased (the in-process embedded service of tests)."""

    def __init__(self, *, enabled: bool = True, holder: str | None = None,
                 seconds: float = DEFAULT_LEASE_SECONDS, wait: float = 0.0,
                 keep: bool = False, all_or_none: bool = False,
                 clock: Callable[[], datetime] | None = None):
        self.holder = (holder or new_holder_id()) if enabled else None
        self.seconds, self.wait, self.keep = seconds, wait, keep
        # the controller's rule: hold every environment's lease or apply nothing, so of two
        # controllers started at once exactly one applies (leases are taken in promotion order)
        self.all_or_none = all_or_none
        self.clock = clock  # the wall clock for expiry; default: the pass's, moving on
        self.held: dict[str, Lease] = {}

    def of(self, env: str, aws: AwsEnvironment, uri: str, now: datetime,
           on_lost: Callable[[str], None]) -> Lease | None:
        """The lease of ``env`` (at ``uri``, in its artifacts bucket), made on first use with
        a guard on the environment's Data Pipeline writes; None without a holder."""
        if self.holder is None:
            return None
        lease = self.held.get(env)
        if lease is None:
            started = time.monotonic()
            clock = self.clock or (lambda: now + timedelta(seconds=time.monotonic() - started))
            lease = Lease(aws, uri, self.holder, self.seconds, clock, on_lost=on_lost)
            self.held[env] = lease
        lease.guard(aws.datapipeline)
        return lease

    def take_every(self, leases: Iterable[tuple[str, Callable[[], Lease | None]]]
                   ) -> tuple[str, LeaseHeld] | None:
        """Take (or renew) each environment's lease, in the order given (``all_or_none``):
        when another writer holds one, give back the ones taken and say which environment
        and who holds it. An environment that cannot be reached is skipped: its own pass
        reports the error."""
        for env, lease_of in leases:
            try:
                lease = lease_of()
                if lease is not None:
                    lease.wait(0)
            except LeaseHeld as exc:
                self.release()
                return env, exc
            except AwsError:
                continue
        return None

    def release(self) -> None:
        """Give every lease back (one that cannot be given back expires by itself)."""
        for lease in self.held.values():
            with contextlib.suppress(AwsError):
                lease.release()
        self.held.clear()

    def abandon(self) -> None:
        """Stop renewing the leases without giving them back (they expire on their own)."""
        for lease in self.held.values():
            lease.abandon()
        self.held.clear()

    def after_pass(self) -> None:
        if not self.keep:
            self.release()


def lease_uri(bucket: str, base: str, installation: str) -> str:
    return state_uri(bucket, base, LEASE_KEY.format(installation=installation))


def state_uri(bucket: str, base: str, key: str) -> str:
    """Where the controller keeps an object of its own state in an artifacts bucket."""
    return f"s3://{bucket}/{base.strip('/')}/{key}" if base.strip("/") else \
        f"s3://{bucket}/{key}"


def describe(state: LeaseState | None) -> dict[str, Any]:
    if state is None:
        return {"holder": None}
    return {"holder": state.holder, "expires": state.expires.isoformat()}
