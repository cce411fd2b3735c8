"""How the pipelines run: finished activity runs counted once, their durations and retries,
the last success and how late the next run is, read from the service within its quotas.

Reading every pipeline's runs on every pass would not fit the quotas (QueryObjects and
DescribeObjects allow 2 calls a second: a sweep of 1,000 pipelines takes over 8 minutes). Every
pass already has each pipeline's ``@latestRunTime``, ``@nextRunTime`` and ``@healthStatus``
(DescribePipelines); a pipeline's runs are read only when those moved since its last read or a
run was in flight then, oldest read first, at most ``budget`` pipelines a pass.

Each finished instance (the run of one activity for one scheduled time) is counted exactly
once, across restarts too: the observer's cursor per pipeline (from which scheduled time it
reads next, and which instances from then on it counted) is kept in the environment's
artifacts bucket beside the lease (:class:`CursorStore`), so a restarted controller goes on
where it stopped and counts what finished while it was down. A pipeline that appears after
the observer first saw the environment (one the controller created) is read from its first
run. Only pipelines that were there before the observer ever saw them start with a baseline:
their history (runs from before the controller ran) is remembered without being counted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..live.aws import NOT_THERE, AwsEnvironment, AwsError, call
from ..live.model import LiveState
from .metrics import Metrics

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
TERMINAL = frozenset({"FINISHED", "FAILED", "CASCADE_FAILED", "CANCELED", "TIMEDOUT",
                      "SKIPPED"})
DEFAULT_LOOKBACK = timedelta(days=1)  # how far back a baseline reads, without a period
CURSOR_KIND = "dataduct-reconciler/run-cursor"
UNREAD = ("", "", "")  # a restored cursor: read the pipeline at the next chance


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text[:19], TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


@dataclass
class Tracked:
    """What the observer knows of one pipeline's runs."""

    moved: tuple[str, str, str]  # @latestRunTime, @nextRunTime, @healthStatus when last read
    since: str  # instances scheduled from then on are read next time
    counted: set[str] = field(default_factory=set)  # instances counted (or baselined)
    in_flight: bool = False
    last_read: float = 0.0
    last_success: datetime | None = None


RECENT_RUNS = 20  # runs a pipeline's page shows, newest first


@dataclass(frozen=True)
class ActivityRun:
    """One instance (an activity's run for one scheduled time), as the pipeline's page shows
    it: the service's status, times, attempts and error message."""

    id: str
    activity: str
    scheduled: str
    status: str
    started: str | None = None
    ended: str | None = None
    attempts: int = 0
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        started, ended = parse_time(self.started), parse_time(self.ended)
        return (ended - started).total_seconds() if started and ended else None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "activity": self.activity, "scheduled": self.scheduled,
                "status": self.status, "started": self.started, "ended": self.ended,
                "seconds": self.seconds, "attempts": self.attempts, "error": self.error}


@dataclass
class RunSummary:
    """For the status page: a pipeline's latest known runs."""

    in_flight: bool
    last_success: datetime | None
    failed_latest: bool
    recent: tuple[ActivityRun, ...] = ()  # newest scheduled first, at most RECENT_RUNS


class CursorStore:
    """An environment's run cursors, one JSON object in S3 (written by the lease holder)."""

    def __init__(self, aws: AwsEnvironment, uri: str):
        self.aws, self.uri = aws, uri
        self.bucket, _, self.key = uri[len("s3://"):].partition("/")

    def load(self) -> dict[str, Any] | None:
        """The saved cursors; None when there are none (or they are not readable as such:
        the observer then starts afresh, with baselines, and counts nothing twice)."""
        try:
            got = call(self.aws.s3, "get_object", Bucket=self.bucket, Key=self.key)
            data = json.loads(got["Body"].read())
        except AwsError as exc:
            if exc.code in ("NoSuchKey", "404", "NotFound", "NoSuchBucket"):
                return None
            raise
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("kind") != CURSOR_KIND:
            return None
        return data

    def save(self, data: dict[str, Any]) -> None:
        body = json.dumps({"kind": CURSOR_KIND, **data}, sort_keys=True).encode()
        call(self.aws.s3, "put_object", Bucket=self.bucket, Key=self.key, Body=body,
             ContentType="application/json")


class RunObserver:
    def __init__(self, metrics: Metrics, budget: int = 20,
                 clock: Callable[[], float] = time.monotonic):
        self.metrics, self.budget, self.clock = metrics, budget, clock
        self.tracked: dict[tuple[str, str], Tracked] = {}  # (env, pipeline id)
        self.summaries: dict[tuple[str, str], RunSummary] = {}  # (env, pipeline name)
        self.reads = 0  # pipelines read since start, for tests and benchmarks
        # per environment, once its cursors are loaded: the pipelines that were there before
        # the observer first saw the environment and still wait for their baseline read
        self.pending: dict[str, set[str]] = {}

    def observe(self, env: str, aws: AwsEnvironment, live: LiveState,
                activities: Mapping[str, Iterable[str]], now: datetime,
                interrupted: Callable[[], bool] = lambda: False,
                store: CursorStore | None = None) -> None:
        """One pass: lateness for every pipeline; the runs of those that moved, within the
        budget. ``activities`` names each pipeline's activity objects (the others' instances
        are resources and data nodes, not runs). Reading stops early when ``interrupted``
        (a change waits to be applied); the pipelines not read come first next time. With a
        ``store``, the cursors are loaded from it first and saved to it after."""
        if env not in self.pending:
            self._restore(env, live, store.load() if store is not None else None)
        pending = self.pending[env]
        seen = set()
        candidates = []
        for pipeline in live.pipelines:
            key = (env, pipeline.pipeline_id)
            seen.add(key)
            self._late(env, pipeline.pipeline, pipeline.fields, now)
            moved = _moved(pipeline.fields)
            tracked = self.tracked.get(key)
            if tracked is None and pipeline.pipeline_id not in pending:
                # new since the observer first saw the environment: every run of it counts
                tracked = self.tracked[key] = Tracked(UNREAD, "")
            if tracked is None or tracked.moved != moved or tracked.in_flight:
                candidates.append((tracked.last_read if tracked else -1.0, pipeline))
        for key in [k for k in self.tracked if k[0] == env and k not in seen]:
            del self.tracked[key]
        pending &= {pid for _, pid in seen}
        candidates.sort(key=lambda c: c[0])
        read = 0
        try:
            for _, pipeline in candidates[:self.budget]:
                if interrupted():
                    return
                try:
                    self._read(env, aws, pipeline,
                               set(activities.get(pipeline.pipeline, ())), now)
                    read += 1
                except AwsError as exc:
                    if exc.code not in NOT_THERE:
                        raise
                    self.tracked.pop((env, pipeline.pipeline_id), None)  # replaced or deleted
        finally:
            if store is not None and read:
                store.save(self._cursors(env))

    def _restore(self, env: str, live: LiveState, saved: dict[str, Any] | None) -> None:
        live_ids = {p.pipeline_id for p in live.pipelines}
        if saved is None:  # never saw this environment: what is there now has a history
            self.pending[env] = set(live_ids)
            return
        self.pending[env] = {str(p) for p in saved.get("pending", [])} & live_ids
        for pipeline_id, cursor in (saved.get("pipelines") or {}).items():
            if pipeline_id in live_ids and isinstance(cursor, dict):
                self.tracked[(env, pipeline_id)] = Tracked(
                    UNREAD, str(cursor.get("since") or ""),
                    counted={str(i) for i in cursor.get("counted", [])},
                    last_success=parse_time(cursor.get("last_success")))

    def _cursors(self, env: str) -> dict[str, Any]:
        return {"pending": sorted(self.pending.get(env, ())), "pipelines": {
            pipeline_id: {"since": t.since, "counted": sorted(t.counted),
                          "last_success": format_time(t.last_success)
                          if t.last_success else None}
            for (e, pipeline_id), t in sorted(self.tracked.items()) if e == env}}

    def _late(self, env: str, name: str, fields: Mapping[str, str], now: datetime) -> None:
        expected = parse_time(fields.get("@nextRunTime"))
        late = (now - expected).total_seconds() if expected and now > expected else 0.0
        self.metrics.late.labels(env, name).set(late)

    def _read(self, env: str, aws: AwsEnvironment, pipeline: Any, activities: set[str],
              now: datetime) -> None:
        key = (env, pipeline.pipeline_id)
        tracked = self.tracked.get(key)
        baseline = tracked is None
        if tracked is None:
            tracked = Tracked(_moved(pipeline.fields), _baseline_start(pipeline.fields, now))
        instances = [i for i in aws.instances(pipeline.pipeline_id, tracked.since or None)
                     if not activities or i["fields"].get("@componentParent") in activities]
        self.reads += 1
        open_starts, latest_start, failed_latest = [], tracked.since, False
        newest_end: datetime | None = None
        for instance in instances:
            fields = instance["fields"]
            status = str(fields.get("@status") or "").upper()
            start = str(fields.get("@scheduledStartTime") or tracked.since)
            latest_start = max(latest_start, start)
            if status not in TERMINAL:
                open_starts.append(start)
                continue
            ended = parse_time(fields.get("@actualEndTime"))
            if status == "FINISHED" and ended and (tracked.last_success is None
                                                   or ended > tracked.last_success):
                tracked.last_success = ended
            if ended and (newest_end is None or ended > newest_end):
                newest_end, failed_latest = ended, status != "FINISHED"
            if instance["id"] in tracked.counted:
                continue
            tracked.counted.add(instance["id"])
            if not baseline:
                self._count(env, pipeline.pipeline, fields, status)
        tracked.in_flight = bool(open_starts)
        tracked.since = min(open_starts) if open_starts else latest_start
        tracked.counted = {i["id"] for i in instances
                           if str(i["fields"].get("@scheduledStartTime") or "") >= tracked.since
                           and i["id"] in tracked.counted}
        tracked.moved = _moved(pipeline.fields)
        tracked.last_read = self.clock()
        self.tracked[key] = tracked
        self.pending.get(env, set()).discard(pipeline.pipeline_id)
        if tracked.last_success is not None:
            self.metrics.last_success.labels(env, pipeline.pipeline).set(
                tracked.last_success.timestamp())
        before = self.summaries.get((env, pipeline.pipeline))
        self.summaries[(env, pipeline.pipeline)] = RunSummary(
            tracked.in_flight, tracked.last_success, failed_latest,
            _recent(before.recent if before else (), instances))

    def _count(self, env: str, name: str, fields: Mapping[str, Any], status: str) -> None:
        activity = str(fields.get("@componentParent") or "unknown")
        self.metrics.runs_total.labels(env, name, activity, status).inc()
        started, ended = (parse_time(fields.get("@actualStartTime")),
                          parse_time(fields.get("@actualEndTime")))
        if started and ended and ended >= started:
            self.metrics.run_duration.labels(env, name, activity).observe(
                (ended - started).total_seconds())
        try:
            retries = max(0, int(fields.get("@attemptCount") or 1) - 1)
        except ValueError:
            retries = 0
        if retries:
            self.metrics.run_retries.labels(env, name, activity).inc(retries)


def _recent(known: Iterable[ActivityRun], instances: Iterable[Mapping[str, Any]]
            ) -> tuple[ActivityRun, ...]:
    """The newest runs: what was known, updated by the instances just read."""
    runs = {r.id: r for r in known}
    for instance in instances:
        fields = instance["fields"]
        try:
            attempts = int(fields.get("@attemptCount") or 0)
        except ValueError:
            attempts = 0
        runs[instance["id"]] = ActivityRun(
            str(instance["id"]), str(fields.get("@componentParent") or ""),
            str(fields.get("@scheduledStartTime") or ""), str(fields.get("@status") or ""),
            fields.get("@actualStartTime"), fields.get("@actualEndTime"), attempts,
            fields.get("errorMessage") or fields.get("@failureReason"))
    newest = sorted(runs.values(), key=lambda r: (r.scheduled, r.activity), reverse=True)
    return tuple(newest[:RECENT_RUNS])


def _moved(fields: Mapping[str, str]) -> tuple[str, str, str]:
    return (fields.get("@latestRunTime", ""), fields.get("@nextRunTime", ""),
            fields.get("@healthStatus", ""))


def _baseline_start(fields: Mapping[str, str], now: datetime) -> str:
    """Where a first read starts: two schedule periods before the latest run (one day when
    the period is not known), so the last success is found without reading years back."""
    latest, upcoming = parse_time(fields.get("@latestRunTime")), parse_time(
        fields.get("@nextRunTime"))
    if latest and upcoming and upcoming > latest:
        return format_time(latest - 2 * (upcoming - latest))
    return format_time((latest or now) - DEFAULT_LOOKBACK)
