"""Runs the chain for each environment: source → desired → live → plan → apply.

The CLI's ``plan``, ``apply`` and ``sync`` and the controller loop call this. It is the
wiring only: each stage is in its own package. Environments are independent (one that cannot
be reached is reported and the others go on) and run in promotion order. What the planner
cannot read itself is gathered here and handed to it as data: the time, how the revisions
that pipelines run relate to git's, and whether a pending duplicate's definition is valid.
"""

from __future__ import annotations

import graphlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog

from .apply.executor import ActionResult, Applier
from .apply.secrets import SecretError, SecretsKey, resolve_secrets, secrets_digest, secrets_key
from .desired.compiler import CompileOptions
from .desired.config import Environment, Settings, load_settings
from .desired.project import ProjectResult, compile_project
from .errors import Problem
from .live.aws import EMBEDDED, AwsEnvironment, AwsError
from .live.model import TAG_REVISION, LiveDefinition, LiveState
from .plan.planner import (
    Action,
    DesiredEnvironment,
    EnvironmentPlan,
    needs_definition,
    plan_environment,
)
from .plugins import installed_step_plugins
from .qa.bundle import qa_runner, runner_wheel, wheelhouse
from .snapshot import Relation, Snapshot
from .source import GitState, git_state, read_snapshot, revision_relation

log = structlog.get_logger("reconciler")

# When each pipeline's definition was last read (monotonic seconds), so drift checks go to
# the pipelines checked longest ago. It lives as long as the process: a long-running
# controller rotates through every pipeline; a one-shot command starts afresh.
DRIFT_LEDGER: dict[str, float] = {}
Connect = Callable[[Environment, str, Mapping[str, str]], AwsEnvironment]
STATE_DIRECTORY = ".reconciler"
EMBEDDED_STATE = "RECONCILER_EMBEDDED_STATE"


@dataclass(frozen=True)
class PassOptions:
    """What a pass is asked to do (the CLI's flags)."""

    environments: tuple[str, ...] = ()  # default: every environment
    pipelines: frozenset[str] = frozenset()  # default: every pipeline
    apply: bool = False
    allow_replace: frozenset[str] = frozenset()
    allow_rollback: bool = False
    allow_dirty: bool = False


@dataclass
class EnvironmentRun:
    environment: str
    for_gate_only: bool = False  # planned for the promotion gate of another environment
    plan: EnvironmentPlan | None = None
    results: list[ActionResult] = field(default_factory=list)
    error: str | None = None


@dataclass
class Run:
    """One pass over a repository: its problems, and per environment a plan and results."""

    root: Path
    git: GitState
    project: ProjectResult
    environments: list[EnvironmentRun] = field(default_factory=list)
    error: str | None = None  # the pass as a whole was refused (uncommitted changes...)
    embedded_state: Path | None = None

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
                or any(e.error for e in self.wanted)
                or any(r.failed for e in self.wanted for r in e.results)
                or any(e.plan.errors for e in self.wanted if e.plan is not None))

    @property
    def blocked(self) -> list[str]:
        """What a policy held back, as ``env: pipeline: reason``."""
        return [f"{e.environment}: {a.pipeline}: {a.reason}" for e in self.wanted
                if e.plan is not None for a in e.plan.blocked]


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
    directory = root / STATE_DIRECTORY
    directory.mkdir(exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# state of the embedded AWS service; never committed\n*\n")
    return directory / "embedded-state.json"


def run(root: str | os.PathLike[str], options: PassOptions, *, now: datetime,
        environ: Mapping[str, str] | None = None, connect: Connect = AwsEnvironment.connect,
        confirm: Callable[[EnvironmentPlan], bool] | None = None,
        after_call: Callable[[str], None] | None = None) -> Run:
    """Plan (and with ``options.apply``, apply) every wanted environment of the repository."""
    environ = dict(os.environ if environ is None else environ)
    state = git_state(root)
    snapshot = read_snapshot(root, revision=state.revision)
    declared = load_settings(snapshot, [])
    wanted = list(options.environments) or (list(declared.environments) if declared else [])
    gates = _gates(declared, wanted) if options.environments else set()
    project = compile_project(snapshot, CompileOptions(now.date(), qa_runner=qa_runner()),
                              plugins=installed_step_plugins(),
                              environments=[*wanted, *sorted(gates)] if options.environments
                              else None)
    result = Run(Path(snapshot.root), state, project)
    settings = project.settings
    if settings is None:
        return result
    result.embedded_state = embedded_state_file(Path(snapshot.root), settings, environ)
    if result.embedded_state is not None:
        environ.setdefault(EMBEDDED_STATE, str(result.embedded_state))
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
    applied_ok: dict[str, dict[str, bool]] = {}
    for name in promotion_order(settings.environments, [*wanted, *gates]):
        env_run = EnvironmentRun(name, for_gate_only=name not in wanted)
        result.environments.append(env_run)
        _run_environment(result, env_run, settings, snapshot, options, now, environ, key,
                         connect, confirm, after_call, applied_ok)
    return result


def _gates(settings: Settings | None, wanted: list[str]) -> set[str]:
    """The environments promoted from are planned too (never applied unless wanted): the gate
    needs to know what they run."""
    if settings is None:
        return set()
    return {source for e in wanted if e in settings.environments
            if (source := settings.environments[e].policy.promote_from)} - set(wanted)


def _run_environment(result: Run, env_run: EnvironmentRun, settings: Settings,
                     snapshot: Snapshot, options: PassOptions, now: datetime,
                     environ: Mapping[str, str], key: SecretsKey | None, connect: Connect,
                     confirm: Callable[[EnvironmentPlan], bool] | None,
                     after_call: Callable[[str], None] | None,
                     applied_ok: dict[str, dict[str, bool]]) -> None:
    name = env_run.environment
    env = settings.environments[name]
    bound = log.bind(env=name, revision=result.revision)
    try:
        aws = connect(env, settings.installation, environ)
        # an environment promoted from that could not be read promotes nothing
        promoted = applied_ok.get(env.policy.promote_from, {}) if env.policy.promote_from \
            else None
        desired, secret_values, secret_errors = _desired(result, snapshot, name, environ, key,
                                                         promoted, options, now)
        live = _only(aws.read_managed(), desired, options)
        definitions = _definitions(aws, desired, live, env.policy.drift_checks_per_pass)
        desired = _with_facts(desired, live, definitions, aws, result)
        plan = plan_environment(desired, live, env.policy, definitions)
        plan.errors.extend(secret_errors)
        if key is None and any(p.secrets for p in desired.pipelines):
            plan.warnings.append("RECONCILER_SECRETS_KEY is not set: a rotated secret is not "
                                 "noticed until the definition changes")
        env_run.plan = plan
        bound.info("planned", **plan.counts())
        if (options.apply and not env_run.for_gate_only
                and any(a.action.changes_something for a in plan.actions)
                and (confirm is None or confirm(plan))):
            runner = runner_wheel()
            files = {**snapshot.files, qa_runner().artifact_path: runner.content}
            applier = Applier(aws, files, secret_values, result.revision, key,
                              after_call=after_call,
                              wheelhouse=lambda: wheelhouse(environ))
            env_run.results = applier.apply(plan)
            for item in env_run.results:
                bound.info("applied", pipeline=item.pipeline, action=item.action.value,
                           outcome=item.outcome, seconds=item.seconds)
        applied_ok[name] = _in_sync(plan, env_run.results, options.apply)
    except AwsError as exc:
        env_run.error = str(exc)
        bound.error("environment failed", error=str(exc))


def _only(live: LiveState, desired: DesiredEnvironment, options: PassOptions) -> LiveState:
    """With --pipeline, the live pipelines of those names (and their previous names) only."""
    if not options.pipelines:
        return live
    names = set(options.pipelines) | {old for p in desired.pipelines for old in p.previous_names}
    return LiveState(live.environment, [p for p in live.pipelines if p.pipeline in names])


def _definitions(aws: AwsEnvironment, desired: DesiredEnvironment, live: LiveState,
                 drift_budget: int) -> dict[str, LiveDefinition]:
    definitions = {}
    for pipeline_id in needs_definition(desired, live, drift_budget, DRIFT_LEDGER):
        found = aws.read_definition(pipeline_id)
        DRIFT_LEDGER[pipeline_id] = time.monotonic()
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
            relations[running] = revision_relation(result.root, result.git.commit, running)
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


def _in_sync(plan: EnvironmentPlan, results: list[ActionResult], applied: bool
             ) -> dict[str, bool]:
    """Per pipeline: does this environment now run what git says (the promotion gate)?"""
    outcome = {r.pipeline: not r.failed for r in results}
    ready = {}
    for action in plan.actions:
        if action.action is Action.NOOP:
            ready[action.pipeline] = True
        elif applied and action.pipeline in outcome:
            ready[action.pipeline] = outcome[action.pipeline]
        else:
            ready[action.pipeline] = False
    return ready
