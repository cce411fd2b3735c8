"""Runs the chain for each environment: source → desired → live → plan → apply.

The CLI's ``plan``, ``apply`` and ``sync`` and the controller loop call :func:`run_pass` with
a repository read at one revision. It is the wiring only: each stage is in its own package.
Environments are independent (one that cannot be reached is reported and the others go on)
and run in promotion order. What the planner cannot read itself is gathered here and handed
to it as data: the time, how the revisions that pipelines run relate to git's, and whether a
pending duplicate's definition is valid.

What lives longer than one pass (AWS clients, the drift ledger, the compile cache, the
leases, which pipelines are backing off) is a :class:`PassContext`: the controller keeps one
for its life, a command makes a fresh one. What happens is reported to its :class:`Events`.
"""

from __future__ import annotations

import graphlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog

from .airflow import TranslationError
from .airflow.pipelines import dag_id, translate_pipeline
from .apply.dags import DagApplier, DagUpload
from .apply.executor import ActionResult, Applier
from .apply.qa import driver_wheels, files_to_upload
from .apply.secrets import SecretError, SecretsKey, resolve_secrets, secrets_digest, secrets_key
from .desired.cache import CompileCache
from .desired.compiler import CompileOptions
from .desired.config import AIRFLOW, EMBEDDED, Environment, Settings, load_settings
from .desired.definition import CompiledPipeline
from .desired.overrides import Overrides, OverridesError
from .desired.project import ProjectResult, compile_project
from .errors import Problem
from .live.airflow import Airflow, DagFolder, MwaaApi, http_api, index_path, read_folder
from .live.aws import AwsEnvironment, AwsError, ReadInterrupted
from .live.inventory import Inventory
from .live.lease import Lease, LeaseHeld, LeaseLost, Leases, lease_uri, state_uri
from .live.model import TAG_REVISION, TAG_START, LiveDefinition, LiveState
from .live.operations import OPERATIONS_KEY, Operation, OperationsJournal
from .live.pacing import Pacer
from .plan.dags import DesiredDag, live_pipeline, plan_dags
from .plan.planner import (
    Action,
    DesiredEnvironment,
    EnvironmentPlan,
    PlannedAction,
    needs_definition,
    plan_environment,
    schedule_start,
)
from .plan.saved import SavedPlan, moved
from .plugins import installed_step_plugins
from .processes import forked_map
from .qa.bundle import qa_runner
from .snapshot import Relation, Snapshot
from .source import GitState, SourceRead, read_checkout, revision_relation, state_directory

EMBEDDED_STATE = "RECONCILER_EMBEDDED_STATE"


class Connect(Protocol):
    def __call__(self, env: Environment, installation: str, environ: Mapping[str, str], *,
                 pacer: Pacer | None = None, on_request: Any = None) -> AwsEnvironment: ...


def connect_environment(env: Environment, installation: str, environ: Mapping[str, str],
                        *, pacer: Pacer | None = None, on_request: Any = None,
                        **options: Any) -> AwsEnvironment:
    """Clients for one environment: AWS's, or the embedded service's where reconciler.yaml
    says ``endpoint_url: embedded`` (the one running at $AWS_ENDPOINT_URL, else one started
    in this process, keeping its state in $RECONCILER_EMBEDDED_STATE). The one place that
    tells the two apart; ``options`` go to :meth:`AwsEnvironment.connect`."""
    if env.endpoint_url != EMBEDDED:
        return AwsEnvironment.connect(env, installation, environ, pacer=pacer,
                                      on_request=on_request, **options)
    endpoint = environ.get("AWS_ENDPOINT_URL") or _embedded_endpoint(env, environ)
    return AwsEnvironment.connect(env, installation, environ, endpoint=endpoint, local=True,
                                  pacer=pacer, on_request=on_request, **options)


def _embedded_endpoint(env: Environment, environ: Mapping[str, str]) -> str:
    try:
        from .emulator.server import embedded_endpoint
    except ImportError as exc:
        raise AwsError("Connect", "EmbeddedServiceMissing",
                       f"environment {env.name} uses endpoint_url: embedded, which needs the "
                       "embedded extra (moto): pip install 'dataduct-reconciler[embedded]' "
                       f"({exc})", 400) from None
    return embedded_endpoint(environ.get(EMBEDDED_STATE))


class Events:
    """What a pass reports, as it happens. The base logs with structlog; the controller's
    also feeds its metrics and its status page."""

    def __init__(self, logger: Any = None):
        self.log = logger if logger is not None else structlog.get_logger("reconciler")

    def planned(self, env: str, plan: EnvironmentPlan, revision: str) -> None:
        self.log.info("planned", env=env, revision=revision, **plan.counts())

    def apply_started(self, env: str, total: int) -> None:
        """An apply of ``total`` actions begins in ``env`` (each then reports ``applied``)."""

    def applied(self, env: str, result: ActionResult, revision: str) -> None:
        event = self.log.error if result.failed else self.log.info
        event("applied", env=env, revision=revision, pipeline=result.pipeline,
              action=result.action.value, outcome=result.outcome, seconds=result.seconds,
              **({"error": result.messages[-1]} if result.failed and result.messages else {}))

    def environment_failed(self, env: str, error: str, revision: str) -> None:
        self.log.error("environment failed", env=env, revision=revision, error=error)

    def waiting(self, why: str, revision: str) -> None:
        """A standby's pass: another writer holds a lease, nothing is planned or applied."""
        self.log.info("standby", revision=revision, reason=why)

    def lease_lost(self, env: str, why: str) -> None:
        """The lease of ``env`` was lost while held (its renewal thread says why)."""
        self.log.error("lease lost", env=env, reason=why)

    def aws_request(self, env: str, operation: str, code: str) -> None:
        """One attempt of one AWS call and its answer ("OK" or the error code)."""

    def secrets(self, values: list[str]) -> None:
        """Secret values this pass resolved: whatever logs must never show them."""


@dataclass
class PassContext:
    """What outlives one pass."""

    events: Events = field(default_factory=Events)
    # when each pipeline's definition was last read (monotonic seconds): drift checks go to
    # the pipelines checked longest ago
    drift_ledger: dict[str, float] = field(default_factory=dict)
    compile_cache: CompileCache | None = None
    pacer: Pacer | None = None
    clients: dict[str, AwsEnvironment] = field(default_factory=dict)  # kept when reuse_clients
    reuse_clients: bool = False
    # why a pipeline of an environment must not be applied now (backing off), or None
    hold: Callable[[str, str], str | None] = lambda env, pipeline: None
    stopping: Callable[[], bool] = lambda: False
    # something more urgent is waiting (a webhook): give up a full read for the kept one
    interrupted: Callable[[], bool] = lambda: False
    leases: Leases = field(default_factory=Leases)  # one writer per environment
    # the live state between passes (the controller's): a pass reads what may have changed
    # and the full inventory every resync; None: every pass reads it all (a command)
    inventory: Inventory | None = None

    def client(self, env: Environment, installation: str, environ: Mapping[str, str],
               connect: Connect) -> AwsEnvironment:
        if self.reuse_clients and env.name in self.clients:
            return self.clients[env.name]
        aws = connect(env, installation, environ, pacer=self.pacer,
                      on_request=lambda op, code: self.events.aws_request(env.name, op, code))
        if self.reuse_clients:
            self.clients[env.name] = aws
        return aws


@dataclass(frozen=True)
class PassOptions:
    """What a pass is asked to do (the CLI's flags)."""

    environments: tuple[str, ...] = ()  # default: every environment
    pipelines: frozenset[str] = frozenset()  # default: every pipeline
    apply: bool = False
    allow_replace: frozenset[str] = frozenset()
    allow_rollback: bool = False
    allow_dirty: bool = False
    overrides: Overrides | None = None  # the installation's (reconciler run --overrides)
    # read only what may have changed since the last full read (context.inventory)
    targeted: bool = False
    # apply exactly this plan (plan --out): refused where the plan made again differs
    saved: SavedPlan | None = None


@dataclass
class EnvironmentRun:
    environment: str
    for_gate_only: bool = False  # planned for the promotion gate of another environment
    plan: EnvironmentPlan | None = None
    results: list[ActionResult] = field(default_factory=list)
    error: str | None = None
    error_temporary: bool = False  # the error was throttling, a 5xx or no answer
    waiting: str | None = None  # not applied: another writer holds the lease
    live: LiveState | None = None
    desired: DesiredEnvironment | None = None
    seconds: float = 0.0  # how long the pass over this environment took


@dataclass
class Run:
    """One pass over a repository: its problems, and per environment a plan and results."""

    root: Path
    git: GitState
    project: ProjectResult
    environments: list[EnvironmentRun] = field(default_factory=list)
    error: str | None = None  # the pass as a whole was refused (uncommitted changes...)
    embedded_state: Path | None = None
    lease_held: LeaseHeld | None = None  # a standby's pass: who holds a lease, until when
    repository: str = ""  # the git repository revisions are related in

    @property
    def revision(self) -> str:
        return self.git.revision

    @property
    def problems(self) -> list[Problem]:
        return self.project.all_problems()

    @property
    def wanted(self) -> list[EnvironmentRun]:
        return [e for e in self.environments if not e.for_gate_only]

    @property
    def has_changes(self) -> bool:
        return any(e.plan is not None and e.plan.has_changes for e in self.wanted)

    @property
    def failed(self) -> bool:
        """Something went wrong: an environment, an action, a manifest that does not compile."""
        return (self.error is not None or self.project.settings is None
                or any(p.severity == "error" for p in self.problems)
                or any(e.error or e.waiting for e in self.wanted)
                or any(r.failed for e in self.wanted for r in e.results)
                or any(e.plan.errors for e in self.wanted if e.plan is not None))

    @property
    def blocked(self) -> list[PlannedAction]:
        """What a guard held back, in every wanted environment."""
        return [a for e in self.wanted if e.plan is not None for a in e.plan.blocked]


def promotion_order(environments: Mapping[str, Environment], wanted: list[str]) -> list[str]:
    """The wanted environments, each after the one it promotes from (settings refuse cycles)."""
    graph = {name: {env.policy.promote_from} & set(environments) - {name}
             for name, env in environments.items()}
    order = graphlib.TopologicalSorter(graph).static_order()
    return [name for name in order if name in wanted]


def embedded_state_file(root: Path, settings: Settings | None, environ: Mapping[str, str]
                        ) -> Path | None:
    """Where the embedded service keeps its state between commands: $RECONCILER_EMBEDDED_STATE
    or ``.reconciler/embedded-state.json`` in the repository (ignored by git)."""
    if settings is None or environ.get("AWS_ENDPOINT_URL") or not any(
            e.endpoint_url == EMBEDDED for e in settings.environments.values()):
        return None
    if environ.get(EMBEDDED_STATE):
        return Path(environ[EMBEDDED_STATE])
    return state_directory(root) / "embedded-state.json"


def run(root: str | os.PathLike[str], options: PassOptions, *, now: datetime,
        environ: Mapping[str, str] | None = None, connect: Connect = connect_environment,
        confirm: Callable[[EnvironmentPlan], bool] | None = None,
        context: PassContext | None = None) -> Run:
    """One pass over a checkout as it is now (the command line's plan, apply, sync)."""
    return run_pass(read_checkout(root), options, now=now, environ=environ, connect=connect,
                    confirm=confirm, context=context)


def run_pass(source: SourceRead, options: PassOptions, *, now: datetime,
             environ: Mapping[str, str] | None = None, connect: Connect = connect_environment,
             confirm: Callable[[EnvironmentPlan], bool] | None = None,
             context: PassContext | None = None) -> Run:
    """Plan (and with ``options.apply``, apply) every wanted environment of a repository read
    at one revision."""
    context = context or PassContext()
    environ = dict(os.environ if environ is None else environ)
    state, snapshot = source.git, source.snapshot
    declared = load_settings(snapshot, [])
    wanted = list(options.environments) or (list(declared.environments) if declared else [])
    gates = _gates(declared, wanted) if options.environments else set()
    # a saved plan is made again at the moment it was made: same compile, same replace starts
    planned_at = options.saved.planned_at if options.saved is not None else now
    project = compile_project(snapshot, CompileOptions(planned_at.date(),
                                                       qa_runner=qa_runner()),
                              plugins=installed_step_plugins(),
                              environments=[*wanted, *sorted(gates)] if options.environments
                              else None, cache=context.compile_cache,
                              mapper=forked_map if context.compile_cache is None else None)
    result = Run(Path(snapshot.root), state, project, repository=source.repository)
    settings = project.settings
    if settings is None:
        return result
    if options.overrides is not None:
        try:
            settings = options.overrides.apply(settings)
        except OverridesError as exc:
            result.error = str(exc)
            return result
    result.embedded_state = embedded_state_file(Path(snapshot.root), settings, environ)
    if result.embedded_state is not None:
        environ.setdefault(EMBEDDED_STATE, str(result.embedded_state))
    if options.saved is not None and options.saved.revision != state.revision:
        result.error = (f"the plan was made at revision {options.saved.revision[:12]}, and "
                        f"the repository is at {state.revision[:12]} now: plan again")
        return result
    if options.apply and state.dirty and not options.allow_dirty:
        shown = ", ".join(state.changed[:5]) + (" ..." if len(state.changed) > 5 else "")
        result.error = (f"uncommitted changes in the manifests repository ({shown}): commit "
                        "them, or pass --allow-dirty (the pipelines are then tagged with "
                        f"revision {state.revision})")
        return result
    try:
        key = secrets_key(environ, lambda p: Path(p).read_text())
    except SecretError as exc:
        result.error = str(exc)
        return result
    wanted = [e for e in wanted if e in settings.environments]
    order = promotion_order(settings.environments, [*wanted, *gates])
    if options.apply and context.leases.all_or_none:
        def lease_of(name: str) -> Callable[[], Lease | None]:
            env = settings.environments[name]
            return lambda: _lease(context, context.client(env, settings.installation, environ,
                                                          connect), result, settings, name, now)

        held = context.leases.take_every((name, lease_of(name)) for name in order
                                         if name in wanted)
        if held is not None:  # a standby: it plans nothing, and tries again when it expires
            result.lease_held = held[1]
            why = f"{held[0]}: {held[1]}"
            if context.inventory is not None:
                context.inventory.forget()  # another writer: what was kept may be stale
            for name in wanted:
                result.environments.append(EnvironmentRun(name, waiting=why))
            context.events.waiting(why, result.revision)
            return result
    environments = EnvironmentPass(result, settings, snapshot, options, planned_at, now,
                                   environ, key, connect, confirm, context)
    for name in order:
        env_run = EnvironmentRun(name, for_gate_only=name not in wanted)
        result.environments.append(env_run)
        started = time.monotonic()
        environments.run(env_run)
        env_run.seconds = time.monotonic() - started
    context.leases.after_pass()
    return result


def _gates(settings: Settings | None, wanted: list[str]) -> set[str]:
    """The environments promoted from are planned too (never applied unless wanted): the gate
    needs to know what they run."""
    if settings is None:
        return set()
    return {source for e in wanted if e in settings.environments
            if (source := settings.environments[e].policy.promote_from)} - set(wanted)


@dataclass
class EnvironmentPass:
    """The pass over one environment after another, and what they share: the repository read
    at one revision, its compiled project (in ``result``), the options, the time, the
    process's environment and the secrets key, how to connect, and which pipelines each
    environment now runs as git says (the promotion gate of the next)."""

    result: Run
    settings: Settings
    snapshot: Snapshot
    options: PassOptions
    now: datetime  # the moment planned at
    wall: datetime  # the moment this pass runs (later than ``now`` for a saved plan)
    environ: Mapping[str, str]
    key: SecretsKey | None
    connect: Connect
    confirm: Callable[[EnvironmentPlan], bool] | None
    context: PassContext
    applied_ok: dict[str, dict[str, bool]] = field(default_factory=dict)
    listings: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # by scope

    def run(self, env_run: EnvironmentRun) -> None:
        """Read, plan and (when asked) apply ``env_run``'s environment; its errors, and a
        lease another writer holds, are recorded in ``env_run``, never raised."""
        name, events, revision = env_run.environment, self.context.events, self.result.revision
        env = self.settings.environments[name]
        try:
            aws = self.context.client(env, self.settings.installation, self.environ,
                                      self.connect)
            if env.target == AIRFLOW:
                self._airflow(env_run, env, aws)
                return
            plan, secret_values = self._plan(env_run, env, aws)
            if self.options.saved is not None and not env_run.for_gate_only:
                self._check_saved(env_run, self.options.saved)
                if env_run.error:
                    return
            lease = _lease(self.context, aws, self.result, self.settings, name, self.wall)
            if lease is not None and lease.held:  # still ours? (its thread renews it)
                lease.wait(0)
            if (self.options.apply and not env_run.for_gate_only
                    and any(a.will_change for a in plan.actions)
                    and (self.confirm is None or self.confirm(plan))):
                self._apply(env_run, plan, aws, lease, secret_values)
            self.applied_ok[name] = _in_sync(plan, env_run.results, self.options.apply)
        except (LeaseHeld, LeaseLost) as exc:
            if self.context.inventory is not None:
                self.context.inventory.forget(name)
            env_run.waiting = str(exc)
            self.applied_ok[name] = {}
            events.environment_failed(name, str(exc), revision)
        except AwsError as exc:
            if self.context.inventory is not None:
                self.context.inventory.forget(name)
            env_run.error = str(exc)
            env_run.error_temporary = exc.temporary
            events.environment_failed(name, str(exc), revision)

    def _airflow(self, env_run: EnvironmentRun, env: Environment, aws: AwsEnvironment
                 ) -> None:
        """Plan and (when asked) apply an Airflow environment: its pipelines as DAG files
        (reconciler.airflow), the folder and Airflow's API read (live.airflow), planned by
        plan.dags and applied by apply.dags."""
        name, context, revision = env_run.environment, self.context, self.result.revision
        settings = env.airflow
        airflow = Airflow(MwaaApi(aws.mwaa, settings.mwaa) if settings.mwaa else
                          http_api(settings.api_url or "", self.environ.get(
                              settings.api_token_env) if settings.api_token_env else None))
        folder = DagFolder(aws.s3, settings.dags or "")
        if aws.creates_buckets:  # the embedded service starts with no buckets
            aws.create_missing_bucket(folder.bucket)
        promoted = self.applied_ok.get(env.policy.promote_from, {}) \
            if env.policy.promote_from else None
        desired, _, _ = _desired(self.result, self.snapshot, name, {}, None, promoted,
                                 self.options, self.now)
        index = index_path(self.settings.installation, name)
        live = read_folder(folder, airflow, env.name_prefix, index)
        # a DAG keeps the start it was created with (the compile's changes every day)
        starts = {d.path: datetime.fromisoformat(d.tags[TAG_START]) for d in live.dags
                  if d.tags and d.tags.get(TAG_START)}
        dags, uploads, refused = translate_environment(
            self.settings, desired.pipelines, files_to_upload(self.snapshot.files), starts)
        desired = replace(desired, failed_manifests=desired.failed_manifests | {
            manifest for manifest, _ in refused})
        env_run.live = LiveState(name, [live_pipeline(d) for d in live.dags])
        env_run.desired = desired
        plan = plan_dags(desired, dags, live, env.policy, self.settings.installation)
        plan.errors.extend(f"{manifest}: does not translate to Airflow: {why}"
                           for manifest, why in refused)
        env_run.plan = plan
        context.events.planned(name, plan, revision)
        lease = _lease(context, aws, self.result, self.settings, name, self.wall)
        changes = any(a.will_change for a in plan.actions)
        if (self.options.apply and not env_run.for_gate_only
                and (changes or live.unindexed)
                and (not changes or self.confirm is None or self.confirm(plan))):
            if lease is not None:
                lease.wait(context.leases.wait)
            applier = DagApplier(folder, airflow, uploads, self.settings.installation, name,
                                 revision, set(live.files), index, {
                                     d.path: d.tags or {} for d in live.dags},
                                 settings.parse_timeout,
                                 stopping=context.stopping,
                                 checkpoint=lease.check if lease is not None else lambda: None,
                                 on_result=lambda item: context.events.applied(name, item,
                                                                               revision))
            context.events.apply_started(name, sum(a.will_change for a in plan.actions))
            # files the index lacked are indexed even when nothing changes
            applier.written = bool(live.unindexed)
            env_run.results = applier.apply(plan)
            if applier.stopped_by is not None:
                raise LeaseLost(lease.uri if lease else "", applier.stopped_by.message)
        self.applied_ok[name] = _in_sync(plan, env_run.results, self.options.apply)

    def _plan(self, env_run: EnvironmentRun, env: Environment, aws: AwsEnvironment
              ) -> tuple[EnvironmentPlan, dict[str, dict[str, str]]]:
        """The environment's plan (kept in ``env_run`` too) and the secret values an apply
        needs."""
        name, options = env_run.environment, self.options
        # an environment promoted from that could not be read promotes nothing
        promoted = self.applied_ok.get(env.policy.promote_from, {}) \
            if env.policy.promote_from else None
        desired, secret_values, secret_errors = _desired(self.result, self.snapshot, name,
                                                         self.environ, self.key, promoted,
                                                         options, self.now)
        self.context.events.secrets([v for values in secret_values.values()
                                     for v in values.values()])
        live, full = self._read_live(aws, desired)
        live = _only(live, desired, options)
        # drift outside git is looked for with the full reads (the resync)
        definitions = _definitions(aws, desired, live,
                                   env.policy.drift_checks_per_pass if full else 0,
                                   self.context.drift_ledger)
        desired = _with_facts(desired, live, definitions, aws, self.result)
        env_run.live, env_run.desired = live, desired
        plan = plan_environment(desired, live, env.policy, definitions)
        # a plan without the secrets (a PR's CI) still says what would change; apply needs them
        (plan.errors if options.apply else plan.warnings).extend(secret_errors)
        if self.key is None and any(p.secrets for p in desired.pipelines):
            plan.warnings.append("RECONCILER_SECRETS_KEY is not set: a rotated secret is not "
                                 "noticed until the definition changes")
        env_run.plan = plan
        self.context.events.planned(name, plan, self.result.revision)
        return plan, secret_values

    def _read_live(self, aws: AwsEnvironment, desired: DesiredEnvironment
                   ) -> tuple[LiveState, bool]:
        """The environment's live pipelines, and whether they were read in full: always,
        unless the pass is ``targeted`` and a full read is kept (live.inventory); then only
        those that may differ from the kept state."""
        inventory, name = self.context.inventory, desired.environment
        if inventory is None or not self.options.targeted or inventory.due(name):
            # with a kept read to fall back on, a full read gives way to a webhook's commit
            interrupted = self.context.interrupted \
                if inventory is not None and not inventory.due(name) else None
            try:
                listed = None
                if aws.scope:  # environments of one account share its listing
                    if aws.scope not in self.listings:
                        self.listings[aws.scope] = aws.list_pipelines(interrupted)
                    listed = self.listings[aws.scope]
                live = aws.read_managed(listed, interrupted)
            except ReadInterrupted:
                assert inventory is not None
                return self._read_changed(inventory, aws, desired), False
            if inventory is not None:
                inventory.full_read(live)
            return live, True
        return self._read_changed(inventory, aws, desired), False

    @staticmethod
    def _read_changed(inventory: Inventory, aws: AwsEnvironment, desired: DesiredEnvironment
                      ) -> LiveState:
        """The kept read, with what may differ from it read again."""
        name = desired.environment
        ids = inventory.to_read(name, {p.name: p.digest for p in desired.pipelines},
                                [old for p in desired.pipelines for old in p.previous_names])
        return inventory.refreshed(name, ids, aws.describe_managed(ids))

    def _check_saved(self, env_run: EnvironmentRun, saved: SavedPlan) -> None:
        """The plan made again must be the saved one (``env_run.error`` says what moved),
        and no replacement may start before now: it would run again what ran."""
        name = env_run.environment
        assert env_run.plan is not None and env_run.live is not None
        saved_env = saved.environment(name)
        if saved_env is None:
            env_run.error = f"the plan file has no plan for {name}"
            return
        found = moved(saved_env, env_run.live, env_run.plan)
        wall = self.wall.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        for action in env_run.plan.actions:
            start = schedule_start(action.desired) if action.desired else None
            if action.will_change and action.action is Action.REPLACE and start \
                    and start <= wall:
                found.append(f"{action.pipeline}: its replacement was to start at {start} "
                             "(UTC), which has passed")
        if found:
            env_run.error = (f"the plan no longer holds for {name}, nothing was applied: "
                             + "; ".join(found) + ": plan again")
            self.context.events.environment_failed(name, env_run.error, self.result.revision)

    def _apply(self, env_run: EnvironmentRun, plan: EnvironmentPlan, aws: AwsEnvironment,
               lease: Lease | None, secret_values: dict[str, dict[str, str]]) -> None:
        name, context, revision = env_run.environment, self.context, self.result.revision
        if lease is not None:
            lease.wait(context.leases.wait)
        applier = Applier(aws, files_to_upload(self.snapshot.files), secret_values, revision,
                          self.key, wheelhouse=driver_wheels(self.environ),
                          hold=lambda pipeline: context.hold(name, pipeline),
                          stopping=context.stopping,
                          checkpoint=lease.check if lease is not None else lambda: None,
                          on_result=lambda item: context.events.applied(name, item, revision))
        context.events.apply_started(name, sum(a.will_change for a in plan.actions))
        env_run.results = applier.apply(plan)
        if context.inventory is not None:  # what this pass wrote is read again next time
            context.inventory.wrote(name, [
                *(a.live.pipeline_id for a in plan.actions if a.will_change and a.live),
                *(r.pipeline_id or "" for r in env_run.results)])
        stopped = applier.stopped_by
        if stopped is not None:
            raise stopped if isinstance(stopped, LeaseLost) else \
                LeaseLost(lease.uri if lease else "", stopped.message)


def artifacts_place(result: Run, env: str) -> tuple[str, str] | None:
    """The environment's artifacts bucket and base path (its config's ``etl.S3_ETL_BUCKET``
    and ``etl.S3_BASE_PATH``), where the lease and the run cursors are kept; None without a
    bucket."""
    config = result.project.configs.get(env)
    if config is None or not config.get("etl", "S3_ETL_BUCKET"):
        return None
    return str(config.get("etl", "S3_ETL_BUCKET")), str(config.get("etl", "S3_BASE_PATH", ""))


def _lease(context: PassContext, aws: AwsEnvironment, result: Run, settings: Settings,
           env: str, now: datetime) -> Lease | None:
    """The environment's lease (in its artifacts bucket); None without a holder or bucket."""
    place = artifacts_place(result, env)
    if place is None:
        return None
    return context.leases.of(env, aws, lease_uri(place[0], place[1], settings.installation),
                             now, on_lost=lambda why: context.events.lease_lost(env, why))


def _only(live: LiveState, desired: DesiredEnvironment, options: PassOptions) -> LiveState:
    """With --pipeline, the live pipelines of those names (and their previous names) only."""
    if not options.pipelines:
        return live
    names = set(options.pipelines) | {old for p in desired.pipelines for old in p.previous_names}
    return LiveState(live.environment, [p for p in live.pipelines if p.pipeline in names])


def _definitions(aws: AwsEnvironment, desired: DesiredEnvironment, live: LiveState,
                 drift_budget: int, ledger: dict[str, float]) -> dict[str, LiveDefinition]:
    definitions = {}
    for pipeline_id in needs_definition(desired, live, drift_budget, ledger):
        found = aws.read_definition(pipeline_id)
        ledger[pipeline_id] = time.monotonic()
        if found is not None:
            definitions[pipeline_id] = found
    return definitions


def _with_facts(desired: DesiredEnvironment, live: LiveState,
                definitions: Mapping[str, LiveDefinition], aws: AwsEnvironment,
                result: Run) -> DesiredEnvironment:
    """The relation of each running revision to git's, and whether each pending duplicate's
    definition is one the service accepts."""
    relations: dict[str, Relation] = {}
    for pipeline in live.pipelines:
        running = pipeline.tags.get(TAG_REVISION, "")
        if running not in relations:
            relations[running] = revision_relation(result.repository or result.root,
                                                     result.git.commit, running)
    counts: dict[str, int] = {}
    for pipeline in live.pipelines:
        counts[pipeline.pipeline] = counts.get(pipeline.pipeline, 0) + 1
    valid = {p.pipeline_id: aws.validate(p.pipeline_id, definitions[p.pipeline_id])
             for p in live.pipelines if p.state == "PENDING" and counts[p.pipeline] > 1
             and p.pipeline_id in definitions}
    return DesiredEnvironment(desired.environment, desired.pipelines, desired.failed_manifests,
                              desired.secrets_digests, desired.promoted, desired.now,
                              desired.revision, relations, desired.allow_rollback,
                              desired.allow_replace, valid)


def _desired(result: Run, snapshot: Snapshot, env: str, environ: Mapping[str, str],
             key: SecretsKey | None, promoted: Mapping[str, bool] | None,
             options: PassOptions, now: datetime
             ) -> tuple[DesiredEnvironment, dict[str, dict[str, str]], list[str]]:
    project = result.project
    compiled = tuple(p for p in project.compiled(env)
                     if not options.pipelines or p.name in options.pipelines)
    failed = frozenset(r.manifest for r in project.pipelines
                       if r.environment == env and r.compiled is None)
    values, digests, errors = {}, {}, []
    for pipeline in compiled:
        try:
            found = resolve_secrets(pipeline, environ, lambda p: Path(p).read_text())
        except SecretError as exc:
            errors.append(f"{pipeline.name}: {exc}")
            continue
        values[pipeline.name] = found
        digests[pipeline.name] = secrets_digest(pipeline, found, key)
    desired = DesiredEnvironment(env, compiled, failed, digests, promoted, now.astimezone(UTC),
                                 result.git.commit, {}, options.allow_rollback,
                                 options.allow_replace)
    return desired, values, errors


def translate_environment(settings: Settings, pipelines: Iterable[CompiledPipeline],
                          files: Mapping[str, bytes], starts: Mapping[str, datetime]
                          ) -> tuple[list[DesiredDag], dict[str, DagUpload], list[tuple[str, str]]]:
    """Each pipeline's DAG file (starting where its live file started, by path in
    ``starts``), what an apply writes for it, and the (manifest, why) of those that do not
    translate (left as they are, like a manifest that does not compile)."""
    dags, uploads, refused = [], {}, []
    for compiled in pipelines:
        try:
            dag = translate_pipeline(settings, compiled,
                                     start=starts.get(f"{dag_id(settings, compiled)}.py"))
        except TranslationError as exc:
            refused.append((compiled.manifest, "; ".join(r.format() for r in exc.refusals)))
            continue
        missing = [c.source for c in dag.files if c.source not in files]
        if missing:
            refused.append((compiled.manifest, f"needs {', '.join(missing)}, which the "
                                               "repository does not have"))
            continue
        body = dag.text.encode()
        beside = {c.target: files[c.source] for c in dag.files}
        digest = hashlib.sha256(body)
        for copy in dag.files:
            digest.update(f"\0{copy.target}\0{copy.sha256}".encode())
        desired = DesiredDag(compiled, dag.dag_id, dag.filename,
                             hashlib.md5(body, usedforsecurity=False).hexdigest(),
                             digest.hexdigest(), dag.start.isoformat() if dag.start else None)
        dags.append(desired)
        uploads[compiled.name] = DagUpload(desired, body, beside)
    return dags, uploads, refused


def _in_sync(plan: EnvironmentPlan, results: list[ActionResult], applied: bool
             ) -> dict[str, bool]:
    """Per pipeline: does this environment now run what git says (the promotion gate)?"""
    outcome = {r.pipeline: not r.failed for r in results}
    ready = {}
    for action in plan.actions:
        if action.kind == Action.NOOP:
            ready[action.pipeline] = True
        elif applied and action.pipeline in outcome:
            ready[action.pipeline] = outcome[action.pipeline]
        else:
            ready[action.pipeline] = False
    return ready


# -- reruns and backfills (reconciler rerun) -----------------------------------------------------

RERUNNABLE = ("FINISHED", "FAILED", "CASCADE_FAILED", "CANCELED")


@dataclass(frozen=True)
class RerunRequest:
    """Which runs of one pipeline to run again: its failed ones (``failed``), or every one
    scheduled in ``[start, end)`` (a backfill); optionally of one activity only."""

    environment: str
    pipeline: str
    activity: str | None = None
    failed: bool = False
    start: datetime | None = None
    end: datetime | None = None


@dataclass
class RerunPlan:
    pipeline_id: str
    instances: list[dict[str, Any]]  # {"id", "activity", "scheduled", "status"} to rerun
    skipped: list[dict[str, Any]]  # the same, not finished yet: they cannot be rerun


def plan_rerun(root: Path, request: RerunRequest, environ: Mapping[str, str], now: datetime,
               connect: Connect = connect_environment
               ) -> tuple[RerunPlan, AwsEnvironment, Settings, ProjectResult]:
    """The instances a rerun would set to RERUN; raises ReconcilerError (or AwsError)."""
    from .errors import ReconcilerError

    snapshot = read_checkout(root).snapshot
    project = compile_project(snapshot, CompileOptions(now.date(),
                                                       qa_runner=qa_runner()),
                              environments=[request.environment])
    settings = project.settings
    if settings is None or request.environment not in settings.environments:
        known = ", ".join(settings.environments) if settings else "none"
        raise ReconcilerError(f"no environment {request.environment!r} in reconciler.yaml "
                              f"(it has {known})")
    env = settings.environments[request.environment]
    if env.target == AIRFLOW:
        raise ReconcilerError(f"{request.environment} runs on Airflow: rerun its DAG runs "
                              "with Airflow (airflow tasks clear)")
    environ = dict(environ)
    state = embedded_state_file(root, settings, environ)
    if state is not None:
        environ.setdefault(EMBEDDED_STATE, str(state))
    aws = connect(env, settings.installation, environ)
    return select_rerun(aws, request), aws, settings, project


def select_rerun(aws: AwsEnvironment, request: RerunRequest,
                 live: LiveState | None = None) -> RerunPlan:
    """The instances of the request's pipeline (this installation's, in its environment) a
    rerun sets to RERUN, and those it cannot (not finished yet). ``live``: the environment's
    pipelines as already read (a controller's kept inventory); else they are read."""
    from .errors import ReconcilerError

    live = live if live is not None else aws.read_managed()
    found = [p for p in live.pipelines if p.pipeline == request.pipeline]
    if not found:
        raise ReconcilerError(f"no pipeline {request.pipeline!r} of this installation runs in "
                              f"{request.environment}")
    pipeline = max(found, key=lambda p: p.fields.get("@creationTime", ""))
    since = request.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") \
        if request.start else None
    chosen: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for item in aws.instances(pipeline.pipeline_id, since):
        fields = item["fields"]
        scheduled = fields.get("@scheduledStartTime", "")
        entry = {"id": item["id"], "activity": fields.get("@componentParent", ""),
                 "scheduled": scheduled, "status": fields.get("@status", "")}
        if request.activity and entry["activity"] != request.activity:
            continue
        if request.end is not None and scheduled >= request.end.astimezone(UTC).strftime(
                "%Y-%m-%dT%H:%M:%S"):
            continue
        if request.failed and entry["status"] != "FAILED":
            continue  # its cascade-failed dependents are rerun with it
        (chosen if entry["status"] in RERUNNABLE else skipped).append(entry)
    chosen.sort(key=lambda e: (e["scheduled"], e["activity"]))
    return RerunPlan(pipeline.pipeline_id, chosen, skipped)


def rerun_operation(request: RerunRequest, plan: RerunPlan, now: datetime, by: str
                    ) -> Operation:
    """A rerun, as the operations journal and the page's history show it."""
    runs = sorted(f"{i['activity']}@{i['scheduled']}" for i in plan.instances)
    return Operation(now.astimezone(UTC).isoformat(timespec="seconds"), "rerun",
                     request.environment, request.pipeline, by,
                     f"{len(runs)} run(s) set to RERUN: " + ", ".join(runs[:10])
                     + (f" and {len(runs) - 10} more" if len(runs) > 10 else ""))


def rerun(request: RerunRequest, plan: RerunPlan, aws: AwsEnvironment, settings: Settings,
          project: ProjectResult, context: PassContext, now: datetime, by: str = "cli"
          ) -> None:
    """Set the planned instances to RERUN, holding the environment's lease (another writer's
    lease refuses it: LeaseHeld), and write it in the operations journal (``by`` whom)."""
    name = request.environment
    config = project.configs.get(name)
    journal = None
    if config is not None and config.get("etl", "S3_ETL_BUCKET"):
        place = (str(config.get("etl", "S3_ETL_BUCKET")),
                 str(config.get("etl", "S3_BASE_PATH", "")))
        uri = lease_uri(*place, settings.installation)
        journal = OperationsJournal(aws, state_uri(*place, OPERATIONS_KEY.format(
            installation=settings.installation)))
        held = context.leases.take_every([(name, lambda: context.leases.of(
            name, aws, uri, now, on_lost=lambda why: None))])
        if held is not None:
            raise held[1]
    try:
        aws.set_status(plan.pipeline_id, [i["id"] for i in plan.instances], "RERUN")
        structlog.get_logger().info("rerun", env=name, pipeline=request.pipeline,
                                    pipeline_id=plan.pipeline_id, instances=len(plan.instances))
        if journal is not None:  # for the controller's page and dataduct_operations_total
            journal.append(rerun_operation(request, plan, now, by))
    finally:
        context.leases.release()
