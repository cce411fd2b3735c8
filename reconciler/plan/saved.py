"""A plan kept in a file: ``reconciler plan --out FILE``, then ``reconciler apply FILE``.

What the reviewer approved is what runs. The file holds the revision the plan was made at,
the moment it was made (a replace's new start depends on it), what was asked for
(environments, pipelines, approvals), and per environment the live pipelines the plan was
computed from (id, name, state and the digest of the definition each carries) and every
planned item as ``plan --format json`` shows it.

Applying the file plans again from the same inputs (the repository at that revision, the
plan's moment, its approvals) and goes on only when the result is the same plan; otherwise
it refuses and names what moved: the revision, a live pipeline that appeared, went or was
changed, an item planned differently. The file holds no definition and no secret value:
definitions are compiled again from git, secrets are read again where the config says.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import ReconcilerError
from ..live.model import LiveState
from .planner import EnvironmentPlan
from .render import action_json

FORMAT = "dataduct-reconciler/plan/v1"


class PlanFileError(ReconcilerError):
    """A plan file that cannot be read, or whose plan no longer holds."""


@dataclass(frozen=True)
class SavedEnvironment:
    environment: str
    live: tuple[dict[str, str], ...]  # pipeline_id, pipeline, state, digest; by pipeline_id
    actions: tuple[dict[str, Any], ...]  # as plan --format json shows them, sorted


@dataclass(frozen=True)
class SavedPlan:
    revision: str
    planned_at: datetime
    environments: tuple[str, ...]  # as asked for; empty: every environment
    pipelines: tuple[str, ...]  # as asked for; empty: every pipeline
    allow_replace: tuple[str, ...]
    allow_rollback: bool
    root: str  # the repository, relative to the plan file's folder
    plans: tuple[SavedEnvironment, ...]

    @property
    def has_changes(self) -> bool:
        return any(a["action"] != "noop" for p in self.plans for a in p.actions)

    def environment(self, name: str) -> SavedEnvironment | None:
        return next((p for p in self.plans if p.environment == name), None)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "revision": self.revision,
            "planned_at": self.planned_at.isoformat(),
            "environments": list(self.environments), "pipelines": list(self.pipelines),
            "allow_replace": list(self.allow_replace), "allow_rollback": self.allow_rollback,
            "root": self.root,
            "plans": [{"environment": p.environment, "live": list(p.live),
                       "actions": list(p.actions)} for p in self.plans],
        }, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> SavedPlan:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PlanFileError(f"{source}: not a plan file (not JSON: {exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise PlanFileError(f"{source}: not a plan file of this reconciler (format "
                                f"{found!r}, expected {FORMAT!r}): write one with "
                                "reconciler plan --out FILE")
        try:
            return cls(
                revision=str(data["revision"]),
                planned_at=datetime.fromisoformat(data["planned_at"]),
                environments=tuple(data["environments"]), pipelines=tuple(data["pipelines"]),
                allow_replace=tuple(data["allow_replace"]),
                allow_rollback=bool(data["allow_rollback"]), root=str(data["root"]),
                plans=tuple(SavedEnvironment(str(p["environment"]),
                                             tuple(dict(x) for x in p["live"]),
                                             tuple(p["actions"])) for p in data["plans"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanFileError(f"{source}: a damaged plan file ({type(exc).__name__}: "
                                f"{exc}): plan again with reconciler plan --out FILE") from None


def live_pipelines(live: LiveState) -> tuple[dict[str, str], ...]:
    """What a plan records of the live pipelines it was computed from."""
    return tuple(sorted(({"pipeline_id": p.pipeline_id, "pipeline": p.pipeline,
                          "state": p.state, "digest": p.digest} for p in live.pipelines),
                        key=lambda p: p["pipeline_id"]))


def saved_environment(plan: EnvironmentPlan, live: LiveState) -> SavedEnvironment:
    actions = sorted((action_json(a) for a in plan.actions),
                     key=lambda a: (a["pipeline"], a["pipeline_id"] or "", a["action"]))
    return SavedEnvironment(plan.environment, live_pipelines(live), tuple(actions))


def moved(saved: SavedEnvironment, live: LiveState, plan: EnvironmentPlan) -> list[str]:
    """What differs between the saved plan of an environment and the plan made again now:
    empty when the plan still holds."""
    found: list[str] = []
    before = {p["pipeline_id"]: p for p in saved.live}
    now = {p["pipeline_id"]: p for p in live_pipelines(live)}
    for pid in sorted(now.keys() - before.keys()):
        found.append(f"{now[pid]['pipeline']} ({pid}) appeared")
    for pid in sorted(before.keys() - now.keys()):
        found.append(f"{before[pid]['pipeline']} ({pid}) is gone")
    for pid in sorted(before.keys() & now.keys()):
        old, new = before[pid], now[pid]
        if old["digest"] != new["digest"]:
            found.append(f"{new['pipeline']} ({pid}) was changed: it carries digest "
                         f"{new['digest'][:12]}, the plan saw {old['digest'][:12]}")
        elif old["state"] != new["state"]:
            found.append(f"{new['pipeline']} ({pid}) is {new['state']}, the plan saw "
                         f"{old['state']}")
    if found:
        return found
    fresh = saved_environment(plan, live).actions
    return _actions_moved(saved.actions, fresh)


def _actions_moved(saved: Iterable[dict[str, Any]], fresh: Iterable[dict[str, Any]]
                   ) -> list[str]:
    def by_pipeline(actions: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for action in actions:
            out.setdefault(action["pipeline"], []).append(action)
        return out

    before, after = by_pipeline(saved), by_pipeline(fresh)
    found = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name, []), after.get(name, [])
        if old == new:
            continue
        was = ", ".join(a["action"] for a in old) or "nothing"
        now = ", ".join(a["action"] for a in new) or "nothing"
        if was != now:
            found.append(f"{name}: the plan says {was}, planned now: {now} "
                         f"({'; '.join(a['reason'] for a in new) or 'no manifest'})")
        else:
            fields = sorted({key for a, b in zip(old, new, strict=False) for key in a
                             if a.get(key) != b.get(key)})
            found.append(f"{name}: still {now}, but its {', '.join(fields)} differ from the "
                         "plan's")
    return found
