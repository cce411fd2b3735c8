"""How the pipelines run: finished activity runs counted once, their durations and retries,
the last success and how late the next run is, read from the service within its quotas.

Reading every pipeline's runs on every pass would not fit the quotas (QueryObjects and
DescribeObjects allow 2 calls a second: a sweep of 1,000 pipelines takes over 8 minutes). Every
pass already has each pipeline's ``@latestRunTime``, ``@nextRunTime`` and ``@healthStatus``
(DescribePipelines); a pipeline's runs are read only when those moved since its last read or a
run was in flight then, oldest read first, at most ``budget`` pipelines a pass.

Each finished instance (the run of one activity for one scheduled time) is counted exactly
once: the observer remembers which it counted. The first read of a pipeline after the
controller starts is a baseline: it sets the last success and remembers what has already
finished without counting it, so a restarted controller counts nothing twice (runs that
finished while it was down are not counted).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..live.aws import NOT_THERE, AwsEnvironment, AwsError
from ..live.model import LiveState
from .metrics import Metrics

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
TERMINAL = frozenset({"FINISHED", "FAILED", "CASCADE_FAILED", "CANCELED", "TIMEDOUT",
                      "SKIPPED"})
DEFAULT_LOOKBACK = timedelta(days=1)  # how far back a baseline reads, without a period


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


@dataclass
class RunSummary:
    """For the status page: a pipeline's latest known runs."""

    in_flight: bool
    last_success: datetime | None
    failed_latest: bool


class RunObserver:
    def __init__(self, metrics: Metrics, budget: int = 20,
                 clock: Callable[[], float] = time.monotonic):
        self.metrics, self.budget, self.clock = metrics, budget, clock
        self.tracked: dict[tuple[str, str], Tracked] = {}  # (env, pipeline id)
        self.summaries: dict[tuple[str, str], RunSummary] = {}  # (env, pipeline name)
        self.reads = 0  # pipelines read since start, for tests and benchmarks

    def observe(self, env: str, aws: AwsEnvironment, live: LiveState,
                activities: Mapping[str, Iterable[str]], now: datetime,
                interrupted: Callable[[], bool] = lambda: False) -> None:
        """One pass: lateness for every pipeline; the runs of those that moved, within the
        budget. ``activities`` names each pipeline's activity objects (the others' instances
        are resources and data nodes, not runs). Reading stops early when ``interrupted``
        (a change waits to be applied); the pipelines not read come first next time."""
        seen = set()
        candidates = []
        for pipeline in live.pipelines:
            key = (env, pipeline.pipeline_id)
            seen.add(key)
            self._late(env, pipeline.pipeline, pipeline.fields, now)
            moved = _moved(pipeline.fields)
            tracked = self.tracked.get(key)
            if tracked is None or tracked.moved != moved or tracked.in_flight:
                candidates.append((tracked.last_read if tracked else -1.0, pipeline))
        for key in [k for k in self.tracked if k[0] == env and k not in seen]:
            del self.tracked[key]
        candidates.sort(key=lambda c: c[0])
        for _, pipeline in candidates[:self.budget]:
            if interrupted():
                return
            try:
                self._read(env, aws, pipeline, set(activities.get(pipeline.pipeline, ())),
                           now)
            except AwsError as exc:
                if exc.code not in NOT_THERE:
                    raise
                self.tracked.pop((env, pipeline.pipeline_id), None)  # replaced or deleted

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
        instances = [i for i in aws.instances(pipeline.pipeline_id, tracked.since)
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
        if tracked.last_success is not None:
            self.metrics.last_success.labels(env, pipeline.pipeline).set(
                tracked.last_success.timestamp())
        self.summaries[(env, pipeline.pipeline)] = RunSummary(tracked.in_flight,
                                                             tracked.last_success,
                                                             failed_latest)

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
