"""The plan of an Airflow environment: one action per pipeline, from its DAG file.

Pure, like :mod:`.planner`: the translated DAG files and what the DAG folder and Airflow's
API showed come in as data. The actions and guards are the Data Pipeline ones, acted out on
files: create uploads the DAG paused and unpauses it once Airflow has parsed it; update
uploads over it; delete pauses it and removes the file (only a file this installation
wrote, only with ``policy.prune``, never past ``max_delete_percent`` or ``allow_empty``);
``suspend: true`` pauses it; a DAG paused outside git is drift (``self_heal`` unpauses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..desired.config import Policy
from ..desired.definition import CompiledPipeline
from ..live.model import (
    TAG_ACTIVATED,
    TAG_DIGEST,
    LiveDag,
    LiveFolder,
    LivePipeline,
    LiveState,
    managed_by,
)
from .planner import (
    Action,
    DesiredEnvironment,
    EnvironmentPlan,
    PlannedAction,
    State,
    guard_mass_deletion,
    orphan,
)

PAUSED, ACTIVE, UNPARSED = "PAUSED", "ACTIVE", "UNPARSED"  # a live DAG's state


@dataclass(frozen=True)
class DesiredDag:
    """The DAG file git wants for one pipeline."""

    pipeline: CompiledPipeline
    dag_id: str
    path: str  # in the DAG folder: "staging-users.py"
    etag: str  # the MD5 of its bytes: the ETag S3 gives them
    digest: str  # of the file and the files beside it (the tag kept with it)
    start: str | None = None  # the DAG's start (ISO, UTC): kept for as long as the file lives


def live_pipeline(dag: LiveDag) -> LivePipeline:
    """A live DAG in the form plans show (its id is the DAG id; its tags, the file's)."""
    state = UNPARSED if dag.dag is None else PAUSED if dag.dag.is_paused else ACTIVE
    fields = {"etag": dag.etag}
    if dag.import_error is not None:  # health: degraded, as a pipeline in ERROR is
        fields.update({"@healthStatus": "ERROR", "errorMessage": dag.import_error.message})
        if dag.dag is None:
            state = PAUSED  # Airflow will not parse it until the file changes
    return LivePipeline(dag.dag.dag_id if dag.dag else dag.path.removesuffix(".py"),
                        dag.path, dict(dag.tags or {}), state, fields)


def plan_dags(desired: DesiredEnvironment, dags: Sequence[DesiredDag], live: LiveFolder,
              policy: Policy, installation: str) -> EnvironmentPlan:
    """One action per pipeline of an Airflow environment, with a reason; guards applied."""
    env = desired.environment
    plan = EnvironmentPlan(env)
    by_path = {d.path: d for d in live.dags}
    wanted_paths = {d.path for d in dags}
    for wanted in sorted(dags, key=lambda d: d.pipeline.name):
        found = by_path.get(wanted.path)
        plan.actions.append(_plan_one(desired, wanted, found, policy, installation))
        if found is not None and found.import_error and found.etag == wanted.etag:
            plan.errors.append(f"{wanted.path}: Airflow cannot import it: "
                               f"{found.import_error.message}")
    managed = []
    for dag in live.dags:
        if not managed_by(dag.tags, installation, env) and dag.path not in wanted_paths:
            continue  # not ours: never planned, never touched
        pipeline = live_pipeline(dag)
        managed.append(pipeline)
        if dag.path not in wanted_paths:
            plan.actions.append(orphan(desired, pipeline, policy))
    guard_mass_deletion(plan, desired, LiveState(env, managed), policy)
    return plan


def _plan_one(desired: DesiredEnvironment, wanted: DesiredDag, found: LiveDag | None,
              policy: Policy, installation: str) -> PlannedAction:
    env, pipeline = desired.environment, wanted.pipeline

    def act(action: Action, reason: str, state: State = State.PLANNED,
            drift: bool = False) -> PlannedAction:
        return PlannedAction(env, pipeline.name, action, reason, pipeline.manifest,
                             desired=pipeline, state=state, drift=drift,
                             live=live_pipeline(found) if found is not None else None)

    if found is None:
        if pipeline.suspend:
            return act(Action.NOOP, "suspended (suspend: true); not created until the flag "
                                    "goes")
        return act(Action.CREATE, "not in Airflow yet: uploaded paused, unpaused once parsed")
    tags = found.tags
    same = found.etag == wanted.etag or (tags is not None and
                                         tags.get(TAG_DIGEST) == wanted.digest)
    if tags is not None and not managed_by(tags, installation, env):
        return act(Action.UPDATE, f"{wanted.path} is in the DAG folder but was not written by "
                                  f"this installation for {env}: rename the pipeline or "
                                  "remove the file", State.BLOCKED)
    if not same:
        return act(Action.UPDATE, "DAG file changed" + (
            "; suspend: true pauses it" if pipeline.suspend else ""))
    dag = found.dag
    if dag is None:
        if pipeline.suspend:
            return act(Action.NOOP, "suspended (suspend: true); Airflow has not parsed the "
                                    "file yet")
        return act(Action.ACTIVATE, "uploaded; waiting for Airflow to parse it, then "
                                    "unpausing (an apply did not finish)")
    if pipeline.suspend:
        if dag.is_paused:
            return act(Action.NOOP, "suspended (suspend: true): paused")
        return act(Action.DEACTIVATE, "suspend: true: pausing the DAG")
    if dag.is_paused:
        if (tags or {}).get(TAG_ACTIVATED) != "true":
            return act(Action.ACTIVATE, "paused by the reconciler (uploaded paused, or "
                                        "suspended); unpausing")
        if policy.self_heal:
            return act(Action.ACTIVATE, "paused outside git; self_heal unpauses it",
                       drift=True)
        return act(Action.ACTIVATE, "paused outside git; set policy.self_heal: true to "
                                    "unpause it, or suspend: true in the manifest to keep it "
                                    "paused", State.BLOCKED, drift=True)
    return act(Action.NOOP, "in sync")
