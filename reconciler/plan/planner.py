"""From the desired and the live state of an environment to one action per pipeline.

``plan_environment`` is a pure function: data in, a :class:`EnvironmentPlan` out. The safety
guards of the policy live here and only here: pruning, replacing, emptying an environment,
deleting too large a share, and the promotion gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from ..desired.config import Policy
from ..desired.definition import CompiledPipeline
from ..desired.servicemodel import edits_refused_after_activation
from ..live.model import PENDING, LiveDefinition, LivePipeline, LiveState
from .diff import Change, anchor_like_live, field_changes


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    ACTIVATE = "activate"
    NOOP = "noop"
    BLOCKED = "blocked"
    UNKNOWN = "unknown"

    @property
    def changes_something(self) -> bool:
        return self in (Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DELETE,
                        Action.ACTIVATE)


@dataclass(frozen=True)
class PlannedAction:
    """What happens to one pipeline, and why."""

    environment: str
    pipeline: str
    action: Action
    reason: str
    manifest: str | None = None
    changes: tuple[Change, ...] = ()
    desired: CompiledPipeline | None = None
    live: LivePipeline | None = None
    blocked: Action | None = None  # the action a policy forbade
    secrets_digest: str | None = None


@dataclass
class EnvironmentPlan:
    environment: str
    actions: list[PlannedAction] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return any(a.action.changes_something for a in self.actions)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.actions:
            out[a.action.value] = out.get(a.action.value, 0) + 1
        return out


@dataclass(frozen=True)
class DesiredEnvironment:
    """What git says for one environment."""

    environment: str
    pipelines: tuple[CompiledPipeline, ...]
    failed_manifests: frozenset[str] = frozenset()  # manifests that did not compile
    secrets_digests: Mapping[str, str] = field(default_factory=dict)
    promoted: Mapping[str, bool] | None = None  # pipeline -> ready to promote (gate on)


def needs_definition(desired: DesiredEnvironment, live: LiveState, drift_budget: int = 0,
                     last_checked: Mapping[str, float] | None = None) -> list[str]:
    """Ids of the live pipelines whose definition the plan must read: those whose digest
    differs from the desired one, plus ``drift_budget`` of those in sync, the ones checked
    longest ago (or never) first."""
    wanted = {p.name: p for p in desired.pipelines}
    last_checked = last_checked or {}
    differ: list[str] = []
    same: list[str] = []
    for pipeline in live.pipelines:
        target = wanted.get(pipeline.pipeline)
        if target is None:
            continue
        (same if pipeline.digest == target.digest else differ).append(pipeline.pipeline_id)
    same.sort(key=lambda pid: (last_checked.get(pid, float("-inf")), pid))
    return differ + same[:drift_budget]


def plan_environment(desired: DesiredEnvironment, live: LiveState, policy: Policy,
                     definitions: Mapping[str, LiveDefinition] | None = None
                     ) -> EnvironmentPlan:
    """One action per pipeline, with a reason; guards applied."""
    env = desired.environment
    definitions = definitions or {}
    plan = EnvironmentPlan(env)
    live_by_name: dict[str, list[LivePipeline]] = {}
    for pipeline in live.pipelines:
        live_by_name.setdefault(pipeline.pipeline, []).append(pipeline)

    for wanted in sorted(desired.pipelines, key=lambda p: p.name):
        found = live_by_name.pop(wanted.name, [])
        current, duplicates = _pick(found, wanted)
        plan.actions.append(_plan_one(desired, wanted, current, definitions, policy))
        for extra in duplicates:
            assert current is not None
            plan.actions.append(_guarded_delete(env, extra, policy,
                                                f"duplicate of {current.pipeline_id} for the "
                                                "same manifest"))
    for name, pipelines in sorted(live_by_name.items()):
        for pipeline in pipelines:
            if pipeline.manifest in desired.failed_manifests:
                plan.actions.append(PlannedAction(
                    env, name, Action.UNKNOWN, f"{pipeline.manifest} does not compile; the "
                    "pipeline is left as it is until it does", pipeline.manifest,
                    live=pipeline))
            else:
                plan.actions.append(_guarded_delete(
                    env, pipeline, policy, f"no manifest defines it for {env} any more"))
    _guard_mass_deletion(plan, desired, live, policy)
    return plan


def _pick(found: list[LivePipeline], wanted: CompiledPipeline
          ) -> tuple[LivePipeline | None, list[LivePipeline]]:
    if not found:
        return None, []
    ranked = sorted(found, key=lambda p: (p.digest != wanted.digest, p.digest == PENDING,
                                          p.pipeline_id))
    return ranked[0], ranked[1:]


def _plan_one(desired: DesiredEnvironment, wanted: CompiledPipeline,
              current: LivePipeline | None, definitions: Mapping[str, LiveDefinition],
              policy: Policy) -> PlannedAction:
    env = desired.environment
    secrets = desired.secrets_digests.get(wanted.name)

    def act(action: Action, reason: str, changes=(), live=current) -> PlannedAction:
        planned = PlannedAction(env, wanted.name, action, reason, wanted.manifest, changes,
                                wanted, live, secrets_digest=secrets)
        return _gate(planned, desired, policy)

    if current is None:
        return act(Action.CREATE, "not in AWS yet")
    definition = definitions.get(current.pipeline_id)
    same_digest = current.digest == wanted.digest
    secrets_changed = secrets is not None and current.tags.get(
        "dataduct-reconciler/secrets") not in (None, secrets)
    if same_digest and definition is None:
        if secrets_changed:
            return act(Action.UPDATE, "a secret's value changed")
        if current.state in ("PENDING", "INACTIVE"):
            return act(Action.ACTIVATE, f"definition is current; the pipeline is "
                       f"{current.state.lower()}")
        return act(Action.NOOP, "in sync")
    if definition is None:
        return act(Action.UPDATE, "definition changed (live definition not read)")
    target = anchor_like_live([o.api() for o in wanted.objects], definition.objects)
    changes = field_changes(definition.objects, target)
    if not changes and same_digest and not secrets_changed:
        if current.state in ("PENDING", "INACTIVE"):
            return act(Action.ACTIVATE, f"definition is current; the pipeline is "
                       f"{current.state.lower()}")
        return act(Action.NOOP, "in sync (definition checked)")
    if not changes:
        reason = ("a secret's value changed" if secrets_changed
                  else "definition applied but not recorded; finishing the apply")
        return act(Action.UPDATE, reason)
    reason = "drifted from git" if same_digest else "definition changed"
    def replace_or_block(why: str) -> PlannedAction:
        if not policy.allow_replace:
            return PlannedAction(env, wanted.name, Action.BLOCKED,
                                 f"needs replace ({why}), and replace is not allowed in "
                                 f"{env}: set policy.allow_replace: true", wanted.manifest,
                                 changes, wanted, current, blocked=Action.REPLACE,
                                 secrets_digest=secrets)
        return act(Action.REPLACE, why, changes)

    if current.state == "FINISHED":
        return replace_or_block("the pipeline has FINISHED, and AWS refuses a new definition "
                                "for it")
    if current.activated:
        refused = edits_refused_after_activation(definition.objects, target)
        if refused:
            oid, message = refused[0]
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            return replace_or_block(f"AWS refuses this change on an activated pipeline: {oid}: "
                           f"{message}{more}")
    return act(Action.UPDATE, f"{reason}: {len(changes)} change(s), applied in place and "
               "re-activated", changes)


def _gate(planned: PlannedAction, desired: DesiredEnvironment, policy: Policy
          ) -> PlannedAction:
    """The promotion gate: only what the earlier environment has applied moves on."""
    if policy.promote_from is None or planned.action not in (Action.CREATE, Action.UPDATE,
                                                             Action.REPLACE):
        return planned
    if desired.promoted and desired.promoted.get(planned.pipeline):
        return planned
    return replace(planned, action=Action.BLOCKED, blocked=planned.action,
                   reason=f"waiting for {policy.promote_from} to apply this revision first "
                          f"(policy.promote_from: {policy.promote_from})")


def _guarded_delete(env: str, pipeline: LivePipeline, policy: Policy, reason: str
                    ) -> PlannedAction:
    if not policy.prune:
        return PlannedAction(env, pipeline.pipeline, Action.BLOCKED,
                             f"{reason}; prune is off in {env} (set policy.prune: true to "
                             "delete it)", pipeline.manifest, live=pipeline,
                             blocked=Action.DELETE)
    return PlannedAction(env, pipeline.pipeline, Action.DELETE, reason, pipeline.manifest,
                         live=pipeline)


def _guard_mass_deletion(plan: EnvironmentPlan, desired: DesiredEnvironment, live: LiveState,
                         policy: Policy) -> None:
    deletes = [a for a in plan.actions if a.action is Action.DELETE]
    managed = len(live.pipelines)
    if not deletes or not managed:
        return
    refusal = None
    if not desired.pipelines and not desired.failed_manifests and not policy.allow_empty:
        refusal = (f"the repository defines no pipeline for {plan.environment}: refusing to "
                   f"delete all {managed} managed pipelines (set policy.allow_empty: true)")
    elif len(deletes) * 100 > policy.max_delete_percent * managed:
        share = len(deletes) * 100 / managed
        refusal = (f"would delete {len(deletes)} of {managed} managed pipelines ({share:.0f}%), "
                   f"over policy.max_delete_percent {policy.max_delete_percent:g}")
    if refusal is None:
        return
    plan.errors.append(refusal)
    plan.actions = [replace(a, action=Action.BLOCKED, reason=refusal, blocked=Action.DELETE)
                    if a.action is Action.DELETE else a for a in plan.actions]
