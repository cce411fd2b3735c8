"""From the desired and the live state of an environment to one action per pipeline.

``plan_environment`` is a pure function: data in, an :class:`EnvironmentPlan` out. The clock,
the git history and the service's answers arrive as data in :class:`DesiredEnvironment` and
:class:`LiveState`. The safety guards live here and only here: pruning, replacing, emptying an
environment, deleting too large a share, the promotion gate, rollbacks, suspended pipelines,
drift outside git and duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from ..desired.config import Policy
from ..desired.definition import DAY, CompiledPipeline, PipelineObject, make_object
from ..live.model import PENDING, TAG_SECRETS, LiveDefinition, LivePipeline, LiveState
from ..service.model import edits_refused_after_activation, period_seconds
from ..snapshot import Relation
from .diff import Change, anchor_like_live, field_changes
from .tables import tables_written

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    ADOPT = "adopt"
    NOOP = "noop"

    @property
    def changes_something(self) -> bool:
        return self is not Action.NOOP


class State(StrEnum):
    """Whether a planned action is carried out."""

    PLANNED = "planned"  # an apply carries it out
    BLOCKED = "blocked"  # a guard holds it back; the reason says which and how to allow it
    UNKNOWN = "unknown"  # its manifest does not compile: the pipeline is left as it is


class Approval(StrEnum):
    """What an operator can approve for one apply, where a guard blocks an action (the CLI
    names its flag; the planner does not know flags)."""

    REPLACE = "replace"
    ROLLBACK = "rollback"


# how an operator may approve a blocked item, by whoever shows it (the CLI names its flags)
Hint = Callable[["PlannedAction"], "str | None"]


@dataclass(frozen=True)
class PlannedAction:
    """What happens to one pipeline, and why: ``action`` is the change git asks for, and
    ``state`` whether it is carried out."""

    environment: str
    pipeline: str
    action: Action
    reason: str
    manifest: str | None = None
    changes: tuple[Change, ...] = ()
    desired: CompiledPipeline | None = None
    live: LivePipeline | None = None
    state: State = State.PLANNED
    secrets_digest: str | None = None
    repair: bool = False  # removes a duplicate: not pruning, never counted as one
    warnings: tuple[str, ...] = ()
    drift: bool = False  # the live pipeline was changed outside git
    approval: Approval | None = None  # what an operator may approve to unblock it

    @property
    def will_change(self) -> bool:
        """An apply changes AWS for it."""
        return self.state is State.PLANNED and self.action.changes_something

    @property
    def is_blocked(self) -> bool:
        return self.state is State.BLOCKED

    def explained(self, hint: Hint | None = None) -> str:
        """The reason, with how to approve it where ``hint`` names a way (the CLI's flags)."""
        extra = hint(self) if hint is not None and self.approval is not None else None
        return f"{self.reason} ({extra})" if extra else self.reason

    @property
    def kind(self) -> str:
        """How plans show and count it: its action, or ``blocked`` / ``unknown``."""
        return self.action.value if self.state is State.PLANNED else self.state.value


@dataclass
class EnvironmentPlan:
    environment: str
    actions: list[PlannedAction] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        """Something to apply, or git and AWS differ in a way a policy blocks."""
        return any(a.will_change or a.is_blocked for a in self.actions)

    @property
    def blocked(self) -> list[PlannedAction]:
        return [a for a in self.actions if a.is_blocked]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.actions:
            out[a.kind] = out.get(a.kind, 0) + 1
        return out


@dataclass(frozen=True)
class DesiredEnvironment:
    """What git says for one environment, and what the pass knows that the planner cannot
    read itself (the time, the history of the repository, the operator's approvals)."""

    environment: str
    pipelines: tuple[CompiledPipeline, ...]
    failed_manifests: frozenset[str] = frozenset()  # manifests that did not compile
    secrets_digests: Mapping[str, str] = field(default_factory=dict)
    promoted: Mapping[str, bool] | None = None  # pipeline -> ready to promote (gate on)
    now: datetime | None = None  # replacements start at their next scheduled time after it
    revision: str = ""
    relations: Mapping[str, Relation] = field(default_factory=dict)  # live revision -> relation
    allow_rollback: bool = False
    allow_replace: frozenset[str] = frozenset()  # pipelines a replace is approved for, once
    valid: Mapping[str, bool] = field(default_factory=dict)  # pending pipeline id -> valid


def needs_definition(desired: DesiredEnvironment, live: LiveState, drift_budget: int = 0,
                     last_checked: Mapping[str, float] | None = None) -> list[str]:
    """Ids of the live pipelines whose definition the plan must read: those whose digest
    differs from the desired one, every duplicate, adoption candidates, plus ``drift_budget``
    of those in sync, the ones checked longest ago (or never) first."""
    wanted = {p.name: p for p in desired.pipelines}
    previous = {old: p for p in desired.pipelines for old in p.previous_names}
    last_checked = last_checked or {}
    counts: dict[str, int] = {}
    for pipeline in live.pipelines:
        counts[pipeline.pipeline] = counts.get(pipeline.pipeline, 0) + 1
    creates = set(wanted) - set(counts)
    differ: list[str] = []
    same: list[str] = []
    for pipeline in live.pipelines:
        target = wanted.get(pipeline.pipeline) or previous.get(pipeline.pipeline)
        if target is None:
            if creates:  # an orphan a new pipeline may be meant to replace: see what it writes
                differ.append(pipeline.pipeline_id)
            continue
        if pipeline.digest != target.digest or counts[pipeline.pipeline] > 1:
            differ.append(pipeline.pipeline_id)
        else:
            same.append(pipeline.pipeline_id)
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
    wanted_names = {p.name for p in desired.pipelines}
    for wanted in sorted(desired.pipelines, key=lambda p: p.name):
        found = live_by_name.pop(wanted.name, [])
        adopted = None
        if not found:
            adopted = _adoptable(wanted, live_by_name, wanted_names)
            found = [adopted] if adopted is not None else []
        current, duplicates = _pick(found, wanted, definitions, desired.valid)
        # duplicates go first: a replace may create (and keep) the pipeline a pending
        # duplicate was, since both have the same uniqueId
        for extra in duplicates:
            assert current is not None
            plan.actions.append(PlannedAction(
                env, wanted.name, Action.DELETE,
                f"duplicate of {current.pipeline_id} for {wanted.manifest}: archived, "
                "deactivated and deleted whatever prune says (the manifest still exists)",
                wanted.manifest, live=extra, repair=True))
        context = _Context(desired, wanted, current, definitions, policy)
        plan.actions.append(context.adopt() if adopted is not None else context.plan())
    for _name, pipelines in sorted(live_by_name.items()):
        for pipeline in pipelines:
            plan.actions.append(orphan(desired, pipeline, policy))
    _warn_side_by_side(plan, definitions)
    guard_mass_deletion(plan, desired, live, policy)
    return plan


# -- which live pipeline is the one ---------------------------------------------------------


def _matches(pipeline: LivePipeline, wanted: CompiledPipeline,
             definitions: Mapping[str, LiveDefinition], valid: Mapping[str, bool]) -> bool:
    if pipeline.digest == wanted.digest:
        return True
    definition = definitions.get(pipeline.pipeline_id)
    if definition is None:
        return False
    target = anchor_like_live([o.api() for o in wanted.objects], definition.objects)
    if field_changes(definition.objects, target):
        return False
    # a pending pipeline holds the definition but was never activated: only a definition the
    # service accepts makes it the one to keep
    return pipeline.state != "PENDING" or valid.get(pipeline.pipeline_id, False)


def _pick(found: list[LivePipeline], wanted: CompiledPipeline,
          definitions: Mapping[str, LiveDefinition], valid: Mapping[str, bool]
          ) -> tuple[LivePipeline | None, list[LivePipeline]]:
    """The pipeline to keep for a manifest, and its duplicates: the one that matches the
    desired definition, else the newest activated one, else the newest."""
    if not found:
        return None, []
    newest_first = sorted(found, key=lambda p: (p.fields.get("@creationTime", ""),
                                                p.pipeline_id), reverse=True)
    ranked = sorted(newest_first, key=lambda p: (not _matches(p, wanted, definitions, valid),
                                                 p.digest == PENDING))
    return ranked[0], ranked[1:]


def _adoptable(wanted: CompiledPipeline, live_by_name: dict[str, list[LivePipeline]],
               wanted_names: set[str]) -> LivePipeline | None:
    """The live pipeline of a previous name (``previous_names``), when no manifest has that
    name any more and exactly one pipeline has it."""
    for old in wanted.previous_names:
        if old in wanted_names:
            continue
        candidates = live_by_name.get(old, [])
        if len(candidates) == 1:
            return live_by_name.pop(old)[0]
    return None


# -- one pipeline ---------------------------------------------------------------------------


class _Context:
    """Planning one desired pipeline against the live one that is kept for it."""

    def __init__(self, desired: DesiredEnvironment, wanted: CompiledPipeline,
                 current: LivePipeline | None, definitions: Mapping[str, LiveDefinition],
                 policy: Policy):
        self.desired, self.wanted, self.current = desired, wanted, current
        self.definitions, self.policy = definitions, policy
        self.env = desired.environment
        self.secrets = desired.secrets_digests.get(wanted.name)

    def act(self, action: Action, reason: str, changes: tuple[Change, ...] = (),
            wanted: CompiledPipeline | None = None) -> PlannedAction:
        planned = PlannedAction(self.env, self.wanted.name, action, reason,
                                self.wanted.manifest, changes, wanted or self.wanted,
                                self.current, secrets_digest=self.secrets)
        return _gate(_guard_rollback(planned, self.desired), self.desired, self.policy)

    def block(self, action: Action, reason: str, changes: tuple[Change, ...] = (),
              approval: Approval | None = None) -> PlannedAction:
        return PlannedAction(self.env, self.wanted.name, action, reason,
                             self.wanted.manifest, changes, self.wanted, self.current,
                             State.BLOCKED, secrets_digest=self.secrets, approval=approval)

    def plan(self) -> PlannedAction:
        current, wanted = self.current, self.wanted
        if current is None:
            if wanted.suspend:
                return self.act(Action.NOOP, "suspended (suspend: true); not created until the "
                                "flag goes")
            return self.act(Action.CREATE, "not in AWS yet")
        if wanted.suspend:
            return self.suspended()
        definition = self.definitions.get(current.pipeline_id)
        same_digest = current.digest == wanted.digest
        secrets_changed = self.secrets is not None and current.tags.get(TAG_SECRETS) not in (
            None, self.secrets)
        if definition is None:
            if not same_digest:
                return self.act(Action.UPDATE, "definition changed (live definition not read)")
            if secrets_changed:
                return self.act(Action.UPDATE, "a secret's value changed")
            return self.in_sync("in sync")
        target = anchor_like_live([o.api() for o in wanted.objects], definition.objects)
        changes = field_changes(definition.objects, target)
        if not changes:
            if same_digest and not secrets_changed:
                return self.in_sync("in sync (definition checked)")
            if current.state == "PENDING" and not secrets_changed:
                return self.act(Action.ACTIVATE, "the definition is in place; the pipeline was "
                                "never activated (an apply did not finish)")
            return self.act(Action.UPDATE, "a secret's value changed" if secrets_changed else
                            "definition applied but not recorded; finishing the apply")
        if same_digest and not self.policy.self_heal:
            return replace(self.block(Action.UPDATE, f"changed outside git ({len(changes)} "
                                      "change(s)); set policy.self_heal: true to revert such "
                                      "edits", changes), drift=True)
        planned = self.changed(definition, target, changes, same_digest)
        return replace(planned, drift=True) if same_digest else planned

    def in_sync(self, reason: str) -> PlannedAction:
        state = self.current.state if self.current else ""
        if state == "PENDING":
            return self.act(Action.ACTIVATE, "definition is current; the pipeline was never "
                            "activated (an apply did not finish)")
        if state == "INACTIVE":
            if self.policy.self_heal:
                return replace(self.act(Action.ACTIVATE, "deactivated outside git; self_heal "
                                        "re-activates it"), drift=True)
            return replace(self.block(Action.ACTIVATE, "deactivated outside git; set "
                                      "policy.self_heal: true to re-activate it, or suspend: "
                                      "true in the manifest to keep it deactivated"), drift=True)
        return self.act(Action.NOOP, reason)

    def suspended(self) -> PlannedAction:
        assert self.current is not None
        if self.current.state not in ("PENDING", "INACTIVE", "DEACTIVATING", "FINISHED"):
            return self.act(Action.DEACTIVATE, "suspend: true in the manifest")
        return self.act(Action.NOOP, f"suspended (suspend: true); {self.current.state.lower()}")

    def changed(self, definition: LiveDefinition, target: list[dict], changes: tuple[Change, ...],
                same_digest: bool) -> PlannedAction:
        current = self.current
        assert current is not None
        reason = "drifted from git" if same_digest else "definition changed"
        if current.state == "FINISHED":
            return self.replace("the pipeline has FINISHED, and AWS refuses a new definition "
                                "for it", changes)
        if current.activated:
            refused = edits_refused_after_activation(definition.objects, target)
            if refused:
                oid, message = refused[0]
                more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
                return self.replace(f"AWS refuses this change on an activated pipeline: "
                                    f"{oid}: {message}{more}", changes)
        return self.act(Action.UPDATE, f"{reason}: {len(changes)} change(s), applied in place "
                        "and re-activated", changes)

    def replace(self, why: str, changes: tuple[Change, ...]) -> PlannedAction:
        approved = (self.policy.allow_replace or self.wanted.replace_allowed
                    or self.wanted.name in self.desired.allow_replace)
        if not approved:
            return self.block(Action.REPLACE, f"needs replace ({why}), and replace is not "
                              f"allowed in {self.env}: approve it for one apply, or write "
                              "replace: allowed in the manifest, or set policy.allow_replace: "
                              "true", changes, Approval.REPLACE)
        replacement = starting_after(self.wanted, self.desired.now)
        start = schedule_start(replacement)
        note = f"; the new pipeline starts at {start}" if start else ""
        return self.act(Action.REPLACE, why + note, changes, replacement)

    def adopt(self) -> PlannedAction:
        assert self.current is not None
        old = self.current.pipeline
        planned = self.plan()
        if planned.state is not State.PLANNED:
            return planned
        if planned.action is Action.NOOP:
            return replace(planned, action=Action.ADOPT,
                           reason=f"renamed from {old} (previous_names): its tags are rewritten")
        return replace(planned, reason=f"renamed from {old} (previous_names); "
                                       f"{planned.reason}")


def starting_after(pipeline: CompiledPipeline, now: datetime | None) -> CompiledPipeline:
    """The pipeline with its recurring schedules moved to their next start after ``now``, so
    a replacement does not run again what the pipeline it replaces already ran. One-time
    schedules (``occurrences``) keep their start.

    The start moves by whole periods when the period divides a day or is whole days, else
    by whole days: either way it keeps its :func:`start_phase`, so the next plan finds the
    replacement in sync with the manifest instead of replacing it again."""
    if now is None:
        return pipeline
    objects: list[PipelineObject] = []
    for obj in pipeline.objects:
        start, period = obj.get("startDateTime"), obj.get("period")
        seconds = period_seconds(period) if period else None
        if obj.type != "Schedule" or not start or not seconds or obj.get("occurrences"):
            objects.append(obj)
            continue
        try:
            moment = datetime.strptime(start, DATETIME_FORMAT).replace(tzinfo=now.tzinfo)
        except ValueError:
            objects.append(obj)
            continue
        step = seconds if seconds % DAY == 0 or DAY % seconds == 0 else DAY
        if moment <= now:
            steps = int((now - moment).total_seconds() // step) + 1
            moment += timedelta(seconds=steps * step)
        fields = {f.key: f.value for f in obj.fields}
        fields["startDateTime"] = moment.strftime(DATETIME_FORMAT)
        objects.append(make_object(obj.id, obj.name, origin=obj.origin, **fields))
    return replace(pipeline, objects=tuple(objects))


def schedule_start(pipeline: CompiledPipeline) -> str | None:
    """The first schedule's ``startDateTime`` (UTC, as the definition writes it)."""
    return next((o.get("startDateTime") for o in pipeline.objects if o.type == "Schedule"), None)


# -- guards -----------------------------------------------------------------------------------


def _guard_rollback(planned: PlannedAction, desired: DesiredEnvironment) -> PlannedAction:
    """Never apply the past: a change to a pipeline that runs a newer revision than git's (a
    stale checkout, a forced rollback) must be approved (``allow_rollback``)."""
    live = planned.live
    if live is None or not planned.will_change or desired.allow_rollback:
        return planned
    running = live.tags.get("dataduct-reconciler/revision", "")
    relation = desired.relations.get(running, Relation.UNVERSIONED)
    if relation not in (Relation.OLDER, Relation.UNRELATED, Relation.UNKNOWN):
        return planned
    what = {Relation.OLDER: f"git's revision {desired.revision[:12]} is older than "
                            f"{running[:12]}, which the pipeline runs",
            Relation.UNRELATED: f"git's revision {desired.revision[:12]} is not a descendant "
                                f"of {running[:12]}, which the pipeline runs (a force-push?)",
            Relation.UNKNOWN: f"the pipeline runs {running[:12]}, which this checkout does not "
                              "have (fetch it)"}[relation]
    return replace(planned, state=State.BLOCKED, approval=Approval.ROLLBACK,
                   reason=f"{what}: a rollback is applied only when approved")


def _gate(planned: PlannedAction, desired: DesiredEnvironment, policy: Policy
          ) -> PlannedAction:
    """The promotion gate: only what the earlier environment has applied moves on."""
    if policy.promote_from is None or planned.state is not State.PLANNED \
            or planned.action not in (Action.CREATE, Action.UPDATE, Action.REPLACE):
        return planned
    if desired.promoted and desired.promoted.get(planned.pipeline):
        return planned
    return replace(planned, state=State.BLOCKED,
                   reason=f"waiting for {policy.promote_from} to apply this revision first "
                          f"(policy.promote_from: {policy.promote_from})")


def orphan(desired: DesiredEnvironment, pipeline: LivePipeline, policy: Policy
            ) -> PlannedAction:
    env, name = desired.environment, pipeline.pipeline
    if pipeline.manifest in desired.failed_manifests:
        return PlannedAction(env, name, Action.NOOP, f"{pipeline.manifest} does not compile; "
                             "the pipeline is left as it is until it does", pipeline.manifest,
                             live=pipeline, state=State.UNKNOWN)
    reason = f"no manifest defines it for {env} any more"
    if not policy.prune:
        return PlannedAction(env, name, Action.DELETE, f"{reason}; prune is off in {env} (set "
                             "policy.prune: true to delete it)", pipeline.manifest,
                             live=pipeline, state=State.BLOCKED)
    return PlannedAction(env, name, Action.DELETE, reason, pipeline.manifest, live=pipeline)


def _warn_side_by_side(plan: EnvironmentPlan, definitions: Mapping[str, LiveDefinition]) -> None:
    """A new pipeline that writes the tables a pipeline about to be left behind writes is
    probably a rename without previous_names: two pipelines would load the same table."""
    leaving = [a for a in plan.actions if a.live is not None and a.desired is None
               and a.live.pipeline_id in definitions]
    for index, action in enumerate(plan.actions):
        if action.action is not Action.CREATE or not action.will_change \
                or action.desired is None:
            continue
        written = tables_written([o.api() for o in action.desired.objects])
        for old in leaving:
            assert old.live is not None
            shared = written & tables_written(definitions[old.live.pipeline_id].objects)
            if shared:
                message = (f"{action.pipeline} will run beside {old.pipeline}, and both write "
                           f"{', '.join(sorted(shared))}: if it is a rename, add previous_names: "
                           f"[{old.pipeline}] to its manifest")
                plan.warnings.append(message)
                plan.actions[index] = replace(action, warnings=(*action.warnings, message))


def guard_mass_deletion(plan: EnvironmentPlan, desired: DesiredEnvironment, live: LiveState,
                         policy: Policy) -> None:
    deletes = [a for a in plan.actions if a.will_change and a.action is Action.DELETE
               and not a.repair]
    managed = len({p.pipeline for p in live.pipelines})
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
    refused = {id(a) for a in deletes}
    plan.actions = [replace(a, state=State.BLOCKED, reason=refusal)
                    if id(a) in refused else a for a in plan.actions]
