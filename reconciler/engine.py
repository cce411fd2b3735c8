"""Runs the chain for each environment: source → desired → live → plan → apply.

The CLI's ``plan``, ``apply`` and ``sync`` and (later) the controller loop call this. It is
the wiring only: each stage is in its own package. Environments are independent (one that
cannot be reached is reported and the others go on) and run in promotion order.
"""

from __future__ import annotations

import graphlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import structlog

from .apply.executor import ActionResult, Applier
from .apply.secrets import SecretError, resolve_secrets, secrets_digest
from .desired.compiler import CompileOptions
from .desired.config import Environment, load_settings
from .desired.project import ProjectResult, compile_project
from .errors import Problem
from .live.aws import AwsEnvironment, AwsError
from .plan.planner import (
    Action,
    DesiredEnvironment,
    EnvironmentPlan,
    needs_definition,
    plan_environment,
)
from .plugins import installed_step_plugins
from .snapshot import Snapshot
from .source import git_revision, read_snapshot

log = structlog.get_logger("reconciler")

# When each pipeline's definition was last read (monotonic seconds), so drift checks go to
# the pipelines checked longest ago. It lives as long as the process: a long-running
# controller rotates through every pipeline; a one-shot command starts afresh.
DRIFT_LEDGER: dict[str, float] = {}
Connect = Callable[[Environment, str, Mapping[str, str]], AwsEnvironment]


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
    revision: str
    project: ProjectResult
    environments: list[EnvironmentRun] = field(default_factory=list)

    @property
    def problems(self) -> list[Problem]:
        return self.project.all_problems()

    @property
    def has_changes(self) -> bool:
        return any(e.plan is not None and e.plan.has_changes for e in self.environments)

    @property
    def failed(self) -> bool:
        return (any(e.error for e in self.environments)
                or any(r.failed for e in self.environments for r in e.results))


def promotion_order(environments: Mapping[str, Environment], wanted: list[str]) -> list[str]:
    """The wanted environments, each after the one it promotes from (settings refuse cycles)."""
    graph = {name: {env.policy.promote_from} & set(environments) - {name}
             for name, env in environments.items()}
    order = graphlib.TopologicalSorter(graph).static_order()
    return [name for name in order if name in wanted]


def run(root: str | os.PathLike, *, environments: list[str] | None = None, apply: bool = False,
        today: date, environ: Mapping[str, str] | None = None,
        connect: Connect = AwsEnvironment.connect,
        confirm: Callable[[EnvironmentPlan], bool] | None = None,
        after_call: Callable[[str], None] | None = None) -> Run:
    """Plan (and with ``apply``, apply) every wanted environment of the repository."""
    environ = os.environ if environ is None else environ
    snapshot = read_snapshot(root)
    revision = git_revision(root)
    declared = load_settings(snapshot, [])
    gates: set[str] = set()
    if declared is not None and environments:
        # the environments promoted from are planned too (never applied unless wanted): the
        # gate needs to know what they run
        gates = {source for e in environments if e in declared.environments
                 if (source := declared.environments[e].policy.promote_from)} - set(environments)
    project = compile_project(snapshot, CompileOptions(today), plugins=installed_step_plugins(),
                              environments=[*environments, *sorted(gates)] if environments
                              else None)
    result = Run(Path(snapshot.root), revision, project)
    settings = project.settings
    if settings is None:
        return result
    wanted = [e for e in (environments or list(settings.environments))
              if e in settings.environments]
    applied_ok: dict[str, dict[str, bool]] = {}
    for name in promotion_order(settings.environments, [*wanted, *gates]):
        env = settings.environments[name]
        env_run = EnvironmentRun(name, for_gate_only=name not in wanted)
        result.environments.append(env_run)
        bound = log.bind(env=name, revision=revision)
        try:
            aws = connect(env, settings.installation, environ)
            # an environment promoted from that could not be read promotes nothing
            promoted = applied_ok.get(env.policy.promote_from, {}) \
                if env.policy.promote_from else None
            desired, secret_values, secret_errors = _desired(project, snapshot, name, environ,
                                                             promoted)
            live = aws.read_managed()
            definitions = {}
            for pipeline_id in needs_definition(desired, live, env.policy.drift_checks_per_pass,
                                                DRIFT_LEDGER):
                found = aws.read_definition(pipeline_id)
                DRIFT_LEDGER[pipeline_id] = time.monotonic()
                if found is not None:
                    definitions[pipeline_id] = found
            plan = plan_environment(desired, live, env.policy, definitions)
            plan.errors.extend(secret_errors)
            env_run.plan = plan
            bound.info("planned", **plan.counts())
            if (apply and not env_run.for_gate_only and plan.has_changes
                    and (confirm is None or confirm(plan))):
                applier = Applier(aws, snapshot.files, secret_values, revision,
                                  after_call=after_call)
                env_run.results = applier.apply(plan)
                for item in env_run.results:
                    bound.info("applied", pipeline=item.pipeline, action=item.action.value,
                               outcome=item.outcome, seconds=item.seconds)
            applied_ok[name] = _in_sync(plan, env_run.results, apply)
        except AwsError as exc:
            env_run.error = str(exc)
            bound.error("environment failed", error=str(exc))
    return result


def _desired(project: ProjectResult, snapshot: Snapshot, env: str, environ: Mapping[str, str],
             promoted: Mapping[str, bool] | None):
    compiled = tuple(project.compiled(env))
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
        digests[pipeline.name] = secrets_digest(pipeline, found)
    return DesiredEnvironment(env, compiled, failed, digests, promoted), values, errors


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
