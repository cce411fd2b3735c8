"""The controller: a level-triggered loop from the manifests repository to every environment.

Each pass reads the newest revision (or keeps the last good one when the source fails, and
says so), plans every environment and applies what differs, except pipelines that are backing
off after failures (``status``). A pass starts every ``interval`` seconds (with jitter, so
controllers of many installations do not beat together) or at once when a webhook arrives;
webhooks that arrive during a pass make one more pass, not one each.

Everything the loop keeps between passes is here, in one object: the engine's
:class:`~reconciler.engine.PassContext` (AWS clients, pacing, drift ledger, compile cache,
leases), the metrics, the run observer, the status and the log redactor.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol

import structlog

from ..apply.executor import ActionResult
from ..apply.progress import Progress
from ..desired.cache import CompileCache
from ..desired.overrides import Overrides
from ..engine import (
    Connect,
    Events,
    PassContext,
    PassOptions,
    RerunRequest,
    Run,
    artifacts_place,
    connect_environment,
    rerun_operation,
    run_pass,
    select_rerun,
)
from ..errors import ReconcilerError
from ..live.aws import AwsError
from ..live.inventory import Inventory
from ..live.lease import RUNS_KEY, Leases, state_uri
from ..live.operations import OPERATIONS_KEY, Operation, OperationsJournal
from ..live.pacing import Pacer, is_throttle
from ..observe import ActivityRun, CursorStore, Metrics, RunObserver
from ..plan.planner import EnvironmentPlan, Hint, PlannedAction, State
from ..source import SourceRead
from ..source.follow import SourceError
from .health import Health, health
from .logs import Redactor
from .status import Backoff, Status

LIVENESS_FLOOR = 300.0  # seconds: botocore's retries of one call take less
# an attempt that got no answer from the endpoint, or a 5xx one (botocore's exception names
# and the services' codes)
NO_ANSWER = frozenset({"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                       "ConnectionClosedError", "ProxyConnectionError", "InternalServiceError",
                       "InternalError", "ServiceUnavailable"})


@dataclass(frozen=True)
class ControllerConfig:
    interval: float = 60.0  # seconds between passes
    jitter: float = 0.1  # +/- this share of the interval
    environments: tuple[str, ...] = ()  # default: every environment of reconciler.yaml
    allow_rollback: bool = False
    overrides: Overrides | None = None  # the installation's values over reconciler.yaml
    backoff: Backoff = field(default_factory=Backoff)
    lease_seconds: float = 300.0
    runs_budget: int = 20  # pipelines whose runs are read per pass and environment
    # how an operator approves a blocked action (the CLI names its flags); added to reasons
    approval_hint: Hint | None = None


class Source(Protocol):
    """What a source of the repository offers (source.follow)."""

    def describe(self) -> str: ...

    def read(self) -> SourceRead: ...


class ControllerEvents(Events):
    """The engine's events, logged once each and counted."""

    def __init__(self, controller: Controller):
        super().__init__(controller.log)
        self.controller = controller

    def planned(self, env: str, plan: EnvironmentPlan, revision: str) -> None:
        if plan.has_changes or plan.errors:  # an unchanged environment is not news
            super().planned(env, plan, revision)

    def apply_started(self, env: str, total: int) -> None:
        progress = Progress(env, total, time.monotonic())
        self.controller.status.environment(env).progress = progress
        self._show(progress)

    def applied(self, env: str, result: ActionResult, revision: str) -> None:
        super().applied(env, result, revision)
        self.controller.metrics.sync_actions.labels(env, result.action.value,
                                                    result.outcome).inc()
        progress = self.controller.status.environment(env).progress
        if progress is not None:
            progress.step(result.failed)
            self._show(progress)

    def _show(self, progress: Progress) -> None:
        metrics = self.controller.metrics
        metrics.pass_progress.labels(progress.environment).set(progress.ratio)
        left = progress.remaining_seconds(time.monotonic())
        metrics.pass_remaining.labels(progress.environment).set(left or 0.0)

    def aws_request(self, env: str, operation: str, code: str) -> None:
        self.controller.beat()  # a pass retrying AWS is alive, however long it takes
        # readiness follows the endpoint as each attempt finds it, not as the last pass did
        # (a pass stuck in retries during an outage ends minutes later)
        unanswered = self.controller.status.unanswered
        if code in NO_ANSWER or (code.isdigit() and int(code) >= 500):
            unanswered[env] = f"{operation}: {code}"
        else:
            unanswered.pop(env, None)
        metrics = self.controller.metrics
        metrics.aws_requests.labels(env, operation, code).inc()
        if is_throttle(code):
            metrics.aws_throttles.labels(env, operation).inc()

    def secrets(self, values: list[str]) -> None:
        self.controller.redactor.add(values)


class Controller:
    def __init__(self, source: Source, config: ControllerConfig | None = None, *,
                 environ: Mapping[str, str] | None = None,
                 connect: Connect = connect_environment,
                 wall: Callable[[], datetime],
                 redactor: Redactor | None = None):
        self.source, self.config = source, config or ControllerConfig()
        self.environ = environ
        self.connect, self.wall = connect, wall
        self.redactor = redactor or Redactor()
        self.log = structlog.get_logger("reconciler.controller")
        self.metrics = Metrics()
        self.observer = RunObserver(self.metrics, self.config.runs_budget)
        self.status = Status(source.describe(), self.config.backoff, wall)
        self.revision = ""
        self.last_read: SourceRead | None = None
        self.started = wall()
        self.passes = 0
        self.heartbeat = time.monotonic()  # the loop's last sign of life
        self.lease_expires: datetime | None = None  # a standby's: when to try again
        self.trigger = threading.Event()
        # what a refresh asked the next pass to read in full: environments, None for all
        self._refresh: set[str] | None = set()
        self._refresh_lock = threading.Lock()
        self.stopping = threading.Event()
        self._drifted: set[tuple[str, str]] = set()
        self._logged_problems: set[tuple] = set()
        self._journals: dict[str, OperationsJournal] = {}  # uri -> the journal read there
        self._operations_seen: set[str] = set()
        self._operating = threading.Lock()  # one operation by hand at a time
        self.context = PassContext(
            events=ControllerEvents(self), compile_cache=CompileCache(), pacer=Pacer(),
            reuse_clients=True, hold=lambda env, name: self.status.hold(env, name,
                                                                         self.revision),
            stopping=self.stopping.is_set, interrupted=self.trigger.is_set,
            leases=Leases(seconds=self.config.lease_seconds, keep=True, all_or_none=True,
                          clock=wall),
            inventory=Inventory())

    # -- one pass -----------------------------------------------------------------------------

    def run_once(self, targeted: bool = False) -> Run | None:
        """One pass: read the source (or keep the last good revision), plan, apply, observe.
        ``targeted`` (a webhook's pass): read from AWS only what the commit changed and what
        this controller wrote since the last full read (live.inventory); the passes of the
        interval read everything."""
        now = self.wall()
        self.beat()
        self.status.last_pass_started = now
        self.passes += 1
        read = self._read_source(now)
        if read is None:
            return None
        self.revision = read.git.revision
        options = PassOptions(environments=self.config.environments, apply=True,
                              allow_rollback=self.config.allow_rollback,
                              overrides=self.config.overrides, targeted=targeted)
        result = run_pass(read, options, now=now, environ=self.environ, connect=self.connect,
                          context=self.context)
        self.lease_expires = result.lease_held.expires if result.lease_held else None
        self._record(result, now)
        self.beat()
        return result

    def beat(self) -> None:
        """The loop is alive: a pass started or ended, or an AWS call was attempted."""
        self.heartbeat = time.monotonic()

    def _read_source(self, now: datetime) -> SourceRead | None:
        source = self.status.source
        try:
            read = self.source.read()
        except SourceError as exc:
            self.metrics.source_errors.inc()
            if source.error != str(exc):
                self.log.error("source failed; keeping the last good revision",
                               error=str(exc), revision=source.revision)
            source.stale, source.error = True, str(exc)
            return self.last_read
        if source.revision != read.git.revision:
            self.log.info("source revision", revision=read.git.revision,
                          previous=source.revision)
        self.last_read = read
        source.revision, source.stale, source.error = read.git.revision, False, None
        source.last_success = now
        self.metrics.set_revision(read.git.revision)
        self.metrics.source_last_success.set(now.timestamp())
        return read

    def _record(self, result: Run, now: datetime) -> None:
        self._log_problems(result)
        self.status.error = _pass_refused(result)
        if self.status.error is not None:
            # reconciler.yaml invalid (or the pass refused as a whole): nothing was planned,
            # and every environment's passes count as failures until it is fixed
            for name in self.config.environments or tuple(self.status.environments) or (
                    "unknown",):
                self.metrics.reconcile_total.labels(name, "failure").inc()
            return
        for env_run in result.wanted:
            name = env_run.environment
            env_status = self.status.environment(name)
            env_status.error, env_status.waiting = env_run.error, env_run.waiting
            for item in env_run.results:
                self.status.record_result(item, result.revision)
            plan = env_run.plan
            # a pipeline waiting between retries of a failure keeps its environment failing:
            # the passes in between are not successes
            failed = bool(env_run.error or any(r.failed for r in env_run.results) or (
                plan is not None and (plan.errors or any(a.state is State.UNKNOWN
                                                         for a in plan.actions)))
                or (plan is not None and not env_run.waiting and any(
                    self.status.pipeline(name, a.pipeline).failures
                    for a in plan.actions if a.will_change)))
            outcome = "waiting" if env_run.waiting else "failure" if failed else "success"
            self.metrics.reconcile_duration.labels(name).observe(env_run.seconds)
            self.metrics.reconcile_total.labels(name, outcome).inc()
            self._show_local_endpoint(name, env_status)
            if env_run.error:
                self.status.ready_environments.discard(name)
                continue
            self.status.ready_environments.add(name)
            if env_run.plan is None:
                continue
            results = {r.pipeline: r for r in env_run.results}
            self._observe_runs(name, env_run, now, _state_uri(result, name, RUNS_KEY))
            self.status.record_plan(name, env_run.plan.actions, results,
                                    partial(self._health, name), self.config.approval_hint)
            self.status.record_runs(name, partial(self._recent_runs, name))
            self._read_operations(name, _state_uri(result, name, OPERATIONS_KEY))
            self.metrics.set_pipelines(name, [(p.pipeline, p.sync_status, p.health_status)
                                              for p in env_status.pipelines.values()])
            self._count_drift(name, env_run.plan)

    def _observe_runs(self, env: str, env_run: Any, now: datetime, cursors: str | None
                      ) -> None:
        aws = self.context.clients.get(env)
        if aws is None or env_run.live is None or env_run.desired is None:
            return
        if aws.env.target == "airflow":  # runs are Data Pipeline's; DAG runs are not read yet
            return
        activities = {p.name: [o.id for o in p.objects if (o.type or "").endswith("Activity")]
                      for p in env_run.desired.pipelines}
        # the cursors are the writer's (the observer runs only where the lease is held)
        store = CursorStore(aws, cursors) if cursors and self.context.leases.holder else None
        try:
            self.observer.observe(env, aws, env_run.live, activities, now,
                                  interrupted=lambda: self.trigger.is_set()
                                  or self.stopping.is_set(), store=store)
        except Exception as exc:  # reading runs must never stop the loop; it is reported
            self.log.error("reading pipeline runs failed", env=env, error=str(exc))

    def _health(self, env: str, planned: PlannedAction, result: ActionResult | None
                ) -> Health:
        summary = self.observer.summaries.get((env, planned.pipeline))
        return health(planned, result,
                      latest_run_failed=summary is not None and summary.failed_latest)

    def _show_local_endpoint(self, env: str, env_status: Any) -> None:
        """A local service's endpoint (endpoint_url: embedded), in /status and logged once:
        the AWS CLI and its control API (fail a run, move the clock) are reached there."""
        aws = self.context.clients.get(env)
        endpoint = aws.local_endpoint if aws is not None else None
        if endpoint and endpoint != env_status.local_endpoint:
            self.log.info("embedded AWS service", env=env, endpoint=endpoint,
                             control=f"{endpoint}/_reconciler/",
                             aws_cli=f"AWS_ENDPOINT_URL={endpoint}")
        env_status.local_endpoint = endpoint

    def _read_operations(self, env: str, uri: str | None) -> None:
        """What operators did by hand since the controller started (the journal beside the
        lease): shown in the pipelines' history and counted, each once."""
        aws = self.context.clients.get(env)
        if aws is None or uri is None:
            return
        journal = self._journals.get(uri)
        first = journal is None
        if journal is None or journal.aws is not aws:
            journal = self._journals[uri] = OperationsJournal(aws, uri)
        try:
            found = journal.read_new()
        except AwsError as exc:  # the page misses an entry for now; the pass goes on
            self.log.warning("reading the operations journal failed", env=env,
                             error=str(exc))
            return
        for operation in found or ():
            if operation.id not in self._operations_seen:
                self._operations_seen.add(operation.id)
                # what was there before the controller started is shown, not counted again
                self.record_operation(operation, count=not first)

    def rerun(self, request: RerunRequest, by: str) -> str:
        """``reconciler rerun`` asked through this controller, which holds the environment's
        lease (a command cannot take it while the controller runs): the request's instances
        are chosen here, from the service, and set to RERUN under the lease. Raises
        ReconcilerError (or AwsError) with what to do."""
        env = request.environment
        aws = self.context.clients.get(env)
        if aws is None:
            known = ", ".join(self.context.clients) or "none yet"
            raise ReconcilerError(f"this controller has not reached environment {env!r} "
                                  f"(it reconciles {known})")
        if aws.env.target == "airflow":
            raise ReconcilerError(f"{env} runs on Airflow: rerun its DAG runs with Airflow")
        with self._operating:
            lease = self.context.leases.held.get(env)
            if self.context.leases.holder is not None:
                if lease is None:
                    raise ReconcilerError(f"this controller does not hold {env}'s lease (a "
                                          "standby): ask the one that does")
                lease.check()
            inventory = self.context.inventory
            # the last pass's read: a rerun costs no listing of every pipeline
            plan = select_rerun(aws, request, inventory.kept(env) if inventory else None)
            if plan.instances:
                aws.set_status(plan.pipeline_id, [i["id"] for i in plan.instances], "RERUN")
            operation = rerun_operation(request, plan, self.wall(), by)
            self.record_operation(operation)
        self.request_pass(full=True, environments=[env])  # the page shows the runs soon
        return operation.result

    def record_operation(self, operation: Operation, count: bool = True) -> None:
        """An operation done by hand (on the page, or by the CLI through the journal):
        shown on the page, counted and logged."""
        self.status.record_operation(operation)
        if count:
            self.metrics.operations.labels(operation.operation, operation.env or "all").inc()
            self.log.info("operation", operation=operation.operation, env=operation.env,
                          pipeline=operation.pipeline, by=operation.by,
                          result=operation.result)

    def _recent_runs(self, env: str, pipeline: str) -> tuple[ActivityRun, ...] | None:
        summary = self.observer.summaries.get((env, pipeline))
        return summary.recent if summary is not None else None

    def _count_drift(self, env: str, plan: EnvironmentPlan) -> None:
        drifted = {(env, a.pipeline) for a in plan.actions if a.drift}
        for key in drifted - self._drifted:
            self.metrics.drift_detected.labels(env).inc()
            self.log.warning("drift detected", env=env, pipeline=key[1])
        self._drifted = {k for k in self._drifted if k[0] != env} | drifted

    def _log_problems(self, result: Run) -> None:
        current = set()
        for problem in result.problems:
            if problem.severity != "error":
                continue
            key = (problem.location.file, problem.location.line, problem.message)
            current.add(key)
            if key not in self._logged_problems:
                self.log.error("manifest problem", revision=result.revision,
                               file=problem.location.file, line=problem.location.line,
                               error=problem.message)
        self._logged_problems = current

    # -- the loop -------------------------------------------------------------------------------

    def request_pass(self, full: bool = False, environments: Iterable[str] = ()) -> None:
        """A webhook: start a pass now (one more, however many arrive meanwhile). A push's
        pass reads from AWS only what the commit changed; ``full`` (a refresh, a rerun)
        reads every pipeline of ``environments`` (of every one, without) as the interval's
        passes do."""
        if full:
            with self._refresh_lock:
                if not environments:
                    self._refresh = None
                elif self._refresh is not None:  # None: every environment already
                    self._refresh |= set(environments)
        self.trigger.set()

    def _take_refresh(self) -> None:
        """In the loop's thread, before a pass: what a refresh asked to read in full is
        forgotten from the inventory (its next read is a full one)."""
        with self._refresh_lock:
            wanted, self._refresh = self._refresh, set()
        inventory = self.context.inventory
        if inventory is None:
            return
        if wanted is None:
            inventory.forget()
        for env in wanted or ():
            inventory.forget(env)

    def next_wait(self) -> float:
        """The interval with jitter; a standby tries again as soon as the lease it waits for
        expires, so it takes over within one lease period of the holder's death."""
        spread = self.config.interval * self.config.jitter
        wait = max(0.0, self.config.interval + random.uniform(-spread, spread))
        if self.lease_expires is not None:
            until = (self.lease_expires - self.wall()).total_seconds()
            wait = min(wait, max(0.5, until + random.uniform(0.1, 1.0)))
        return wait

    def loop(self) -> None:
        """Passes until :meth:`stop`; never raises (a failed pass is logged and retried)."""
        woken = False  # by a webhook, not by the interval
        while not self.stopping.is_set():
            self.trigger.clear()
            self._take_refresh()
            try:
                self.run_once(targeted=woken)
            except Exception as exc:  # a bug must not stop the controller; it is reported
                self.log.exception("pass failed", error=str(exc))
            if self.stopping.is_set():
                break
            woken = self.trigger.wait(self.next_wait())
        self.context.leases.release()
        self.log.info("stopped", passes=self.passes)

    def stop(self) -> None:
        """Start no new action; the loop finishes the action in flight and releases its
        leases."""
        self.stopping.set()
        self.trigger.set()

    # -- probes ---------------------------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        """Liveness: the loop showed a sign of life (a pass began or ended, an AWS call was
        attempted) within 3 intervals, and at least 5 minutes. A pass stuck in AWS's retries
        during an outage is alive; whether the controller can do its job is :meth:`ready`."""
        limit = max(3 * self.config.interval, LIVENESS_FLOOR)
        age = time.monotonic() - self.heartbeat
        return age <= limit, f"the loop's last sign of life was {age:.0f} s ago (limit " \
            f"{limit:.0f} s)"

    def ready(self) -> tuple[bool, str]:
        """Whether the controller can do its job: a revision was read and is valid, every
        environment's endpoint answered its last pass, and this controller holds the leases
        (a standby is alive, not ready)."""
        if self.last_read is None:
            return False, f"no revision read yet from {self.status.source.location}"
        if self.status.error is not None:
            return False, f"revision {self.status.source.revision}: {self.status.error}"
        waiting = sorted(f"{name}: {env.waiting}" for name, env in
                         self.status.environments.items() if env.waiting)
        if waiting:
            return False, f"not writing: {waiting[0]}"
        if self.status.unanswered:
            name, attempt = sorted(self.status.unanswered.items())[0]
            return False, f"endpoint not answering: {name} ({attempt}); retrying"
        wanted = set(self.config.environments) or set(self.status.environments)
        missing = sorted(wanted - self.status.ready_environments)
        if not self.status.environments or missing:
            return False, f"environments not answering: {', '.join(missing) or 'all'}"
        if self.status.source.stale:
            return False, (f"source stale ({self.status.source.error}); keeping revision "
                           f"{self.status.source.revision}")
        return True, f"revision {self.status.source.revision}"


def _pass_refused(result: Run) -> str | None:
    """Why nothing of the revision could be planned (reconciler.yaml invalid, a refused
    pass), naming file:line; None when it was planned."""
    if result.error is not None:
        return result.error
    if result.project.settings is not None:
        return None
    errors = [p for p in result.problems if p.severity == "error"]
    return errors[0].format() if errors else "reconciler.yaml is missing or invalid"


def _state_uri(result: Run, env: str, key: str) -> str | None:
    """Where an object of the controller's state is kept for the environment (``key``, as
    RUNS_KEY: beside its lease)."""
    place, settings = artifacts_place(result, env), result.project.settings
    if place is None or settings is None:
        return None
    return state_uri(*place, key.format(installation=settings.installation))
