"""What the controller knows of each pipeline between passes: its sync and health status,
its failures and when it is retried (exponential backoff, Stalled after too many), and the
source's freshness. ``/status`` serves it as JSON and ``reconciler status`` prints it.

Failures are classified as kopf classifies errors: a temporary one (throttling, a 5xx answer,
no answer) is retried after the backoff; a permanent one (a definition AWS refuses, denied
access) is not retried until the revision changes. Either way the next attempt uses the
newest revision, never the one that failed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..apply.executor import ActionResult
from ..apply.progress import Progress
from ..desired.definition import CompiledPipeline
from ..live.operations import Operation
from ..observe import ActivityRun
from ..plan.planner import Hint, PlannedAction
from ..plan.render import change_lines
from .health import Health, SyncStatus, sync_status


@dataclass(frozen=True)
class Backoff:
    base: float = 30.0
    factor: float = 2.0
    cap: float = 1800.0
    stall_after: int = 5  # consecutive failures before a pipeline is reported Stalled

    def delay(self, failures: int) -> float:
        return min(self.cap, self.base * self.factor ** max(0, failures - 1))


@dataclass
class PipelineStatus:
    environment: str
    pipeline: str
    sync_status: SyncStatus = SyncStatus.UNKNOWN
    health_status: Health = Health.UNKNOWN
    reason: str = ""
    last_applied_revision: str | None = None
    last_error: str | None = None
    failures: int = 0
    next_retry: datetime | None = None
    permanent_until_revision_changes: str | None = None  # the revision that failed for good
    # for its page (/pipelines/ENV/NAME), not /status: where it is defined, what the last
    # plan wants of it (the diff lines plan shows), and what the controller did to it
    manifest: str | None = None
    pending: str = ""  # the last plan's action (update, replace, blocked ...), "" in sync
    diff: tuple[str, ...] = ()
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    # how it runs, from the run observer: the newest runs, and the next scheduled one
    runs: tuple[ActivityRun, ...] = ()
    next_run: str | None = None
    definition: CompiledPipeline | None = None  # as compiled at the last plan (its graph)

    @property
    def latest_run(self) -> ActivityRun | None:
        ended = [r for r in self.runs if r.ended]
        return max(ended, key=lambda r: r.ended or "") if ended else (
            self.runs[0] if self.runs else None)

    @property
    def stalled(self) -> bool:
        return self.sync_status is SyncStatus.STALLED

    def to_json(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "sync_status": self.sync_status,
                "health_status": self.health_status, "reason": self.reason,
                "last_applied_revision": self.last_applied_revision,
                "last_error": self.last_error, "failures": self.failures,
                "next_retry": self.next_retry.isoformat() if self.next_retry else None,
                "latest_run": latest.to_json() if (latest := self.latest_run) else None,
                "next_run": self.next_run}


    def detail_json(self) -> dict[str, Any]:
        return {**self.to_json(), "environment": self.environment,
                "manifest": self.manifest, "pending": self.pending, "diff": list(self.diff),
                "history": list(reversed(self.history)),
                "runs": [r.to_json() for r in self.runs]}


HISTORY = 20  # actions kept per pipeline for its page
OPERATIONS = 50  # operations the overview shows


@dataclass
class EnvironmentStatus:
    name: str
    error: str | None = None
    waiting: str | None = None  # another writer holds the lease
    last_pass: datetime | None = None
    pipelines: dict[str, PipelineStatus] = field(default_factory=dict)
    progress: Progress | None = None  # the current (or last) apply
    local_endpoint: str | None = None  # endpoint_url: embedded: where that service listens


@dataclass
class SourceStatus:
    location: str
    revision: str | None = None
    stale: bool = False
    error: str | None = None
    last_success: datetime | None = None


class Status:
    """Per environment and pipeline, what /status shows; also the backoff decisions."""

    def __init__(self, source: str, backoff: Backoff, now: Callable[[], datetime]):
        self.source = SourceStatus(source)
        self.backoff, self.now = backoff, now
        self.environments: dict[str, EnvironmentStatus] = {}
        self.last_pass_started: datetime | None = None
        self.ready_environments: set[str] = set()
        self.error: str | None = None  # the last revision could not be planned at all
        self.unanswered: dict[str, str] = {}  # env -> its endpoint's last failed attempt
        self.operations: deque[Operation] = deque(maxlen=OPERATIONS)  # newest last

    def environment(self, env: str) -> EnvironmentStatus:
        return self.environments.setdefault(env, EnvironmentStatus(env))

    def pipeline(self, env: str, name: str) -> PipelineStatus:
        return self.environment(env).pipelines.setdefault(name, PipelineStatus(env, name))

    # -- backoff --------------------------------------------------------------------------------

    def hold(self, env: str, name: str, revision: str) -> str | None:
        """Why ``name`` must not be applied in this pass, or None."""
        known = self.environments.get(env)
        state = known.pipelines.get(name) if known else None
        if state is None or not state.failures:
            return None
        if state.permanent_until_revision_changes == revision:
            return (f"failed at this revision and the error needs a change ({state.last_error}"
                    "); waiting for a new revision")
        if state.next_retry is not None and self.now() < state.next_retry:
            return (f"backing off after {state.failures} failure(s); next try at "
                    f"{state.next_retry.strftime('%Y-%m-%dT%H:%M:%SZ')}")
        return None

    def record_result(self, result: ActionResult, revision: str) -> None:
        state = self.pipeline(result.environment, result.pipeline)
        state.history.append({"time": self.now().isoformat(timespec="seconds"),
                              "revision": revision, "action": result.action.value,
                              "outcome": result.outcome, "seconds": result.seconds,
                              "message": "; ".join(result.messages)})
        if result.outcome == "applied":
            state.failures, state.next_retry, state.last_error = 0, None, None
            state.permanent_until_revision_changes = None
            state.last_applied_revision = revision
        elif result.failed:
            state.failures += 1
            state.last_error = result.messages[-1] if result.messages else "failed"
            state.next_retry = self.now() + timedelta(seconds=self.backoff.delay(
                state.failures))
            state.permanent_until_revision_changes = None if result.temporary else revision

    # -- statuses -------------------------------------------------------------------------------

    def record_plan(self, env: str, actions: list[PlannedAction],
                    results: dict[str, ActionResult],
                    health: Callable[[PlannedAction, ActionResult | None], Health],
                    hint: Hint | None = None) -> None:
        environment = self.environment(env)
        environment.last_pass = self.now()
        seen = set()
        for planned in actions:
            seen.add(planned.pipeline)
            state = self.pipeline(env, planned.pipeline)
            result = results.get(planned.pipeline)
            state.reason = planned.explained(hint)
            state.manifest = planned.manifest or state.manifest
            state.definition = planned.desired or state.definition
            changed = (planned.will_change or planned.is_blocked) and (
                result is None or result.outcome != "applied")
            state.pending = planned.kind if changed else ""
            state.diff = tuple(line for change in planned.changes
                               for line in change_lines(change)) if changed else ()
            state.sync_status = sync_status(
                planned, result, stalled=state.failures >= self.backoff.stall_after)
            state.health_status = health(planned, result)
            state.next_run = planned.live.fields.get("@nextRunTime") if planned.live else None
        for name in [n for n in environment.pipelines if n not in seen]:
            del environment.pipelines[name]

    def record_operation(self, operation: Operation) -> None:
        """An operation done by hand: in the overview's list, and in its pipeline's history."""
        self.operations.append(operation)
        if operation.env and operation.pipeline:
            self.pipeline(operation.env, operation.pipeline).history.append({
                "time": operation.time, "revision": "", "action": operation.operation,
                "outcome": f"by {operation.by}", "seconds": None,
                "message": operation.result})

    def operations_json(self) -> list[dict[str, Any]]:
        return [o.to_json() for o in reversed(self.operations)]

    def record_runs(self, env: str, runs: Callable[[str], tuple[ActivityRun, ...] | None]) -> None:
        """Each pipeline's newest runs, as the run observer last read them (``runs`` of a
        pipeline's name; None: not read yet, what was shown stays)."""
        for name, state in self.environment(env).pipelines.items():
            found = runs(name)
            if found is not None:
                state.runs = found

    def to_json(self) -> dict[str, Any]:
        source = self.source
        moment, wall = time.monotonic(), self.now().timestamp()
        return {
            "source": {"location": source.location, "revision": source.revision,
                       "stale": source.stale, "error": source.error,
                       "last_success": source.last_success.isoformat()
                       if source.last_success else None},
            "error": self.error,
            "operations": self.operations_json(),
            "last_pass_started": self.last_pass_started.isoformat()
            if self.last_pass_started else None,
            "environments": {
                name: {"error": env.error, "waiting": env.waiting,
                       "local_endpoint": env.local_endpoint,
                       "last_pass": env.last_pass.isoformat() if env.last_pass else None,
                       "progress": env.progress.to_json(moment, wall) if env.progress
                       else None,
                       "pipelines": [p.to_json() for _, p in sorted(env.pipelines.items())]}
                for name, env in sorted(self.environments.items())},
        }
