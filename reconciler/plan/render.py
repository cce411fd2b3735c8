"""Plans as text for terminals, JSON for machines and Markdown for a pull-request comment.

Nothing here can print a secret: plans carry definitions, which name secrets by parameter
(``#{*myRedshiftPassword}``) and never hold their values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .planner import Action, EnvironmentPlan, PlannedAction

SYMBOL = {Action.CREATE: "+", Action.UPDATE: "~", Action.REPLACE: "-/+", Action.DELETE: "-",
          Action.ACTIVATE: ">", Action.NOOP: "=", Action.BLOCKED: "!", Action.UNKNOWN: "?"}
ORDER = [Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DELETE, Action.ACTIVATE,
         Action.BLOCKED, Action.UNKNOWN, Action.NOOP]


def _sorted(actions: Iterable[PlannedAction]) -> list[PlannedAction]:
    return sorted(actions, key=lambda a: (ORDER.index(a.action), a.pipeline))


def summary(plan: EnvironmentPlan) -> str:
    counts = plan.counts()
    parts = [f"{counts[a.value]} {'in sync' if a is Action.NOOP else a.value}" for a in ORDER
             if counts.get(a.value)]
    return ", ".join(parts) if parts else "no pipelines"


def as_text(plans: list[EnvironmentPlan], errors: dict[str, str], revision: str) -> str:
    lines = []
    for plan in plans:
        lines.append(f"{plan.environment} (revision {revision[:12]}): {summary(plan)}")
        for action in _sorted(plan.actions):
            if action.action is Action.NOOP:
                continue
            label = action.blocked.value if action.blocked else action.action.value
            lines.append(f"  {SYMBOL[action.action]:3} {label:8} {action.pipeline}: "
                         f"{action.reason}")
            lines.extend(f"        {change.describe()}" for change in action.changes[:50])
            if len(action.changes) > 50:
                lines.append(f"        ... and {len(action.changes) - 50} more")
        lines.extend(f"  error: {e}" for e in plan.errors)
    for env, error in errors.items():
        lines.append(f"{env}: error: {error}")
    return "\n".join(lines) + "\n"


def as_json(plans: list[EnvironmentPlan], errors: dict[str, str], revision: str,
            problems: list[dict[str, Any]]) -> str:
    return json.dumps({
        "revision": revision,
        "has_changes": any(p.has_changes for p in plans),
        "problems": problems,
        "environments": [
            {"environment": p.environment, "summary": p.counts(), "errors": p.errors,
             "actions": [_action_json(a) for a in _sorted(p.actions)]} for p in plans
        ] + [{"environment": env, "error": error} for env, error in errors.items()],
    }, indent=2, sort_keys=True) + "\n"


def _action_json(a: PlannedAction) -> dict[str, Any]:
    return {
        "pipeline": a.pipeline, "action": a.action.value, "reason": a.reason,
        "blocked_action": a.blocked.value if a.blocked else None, "manifest": a.manifest,
        "pipeline_id": a.live.pipeline_id if a.live else None,
        "digest": a.desired.digest if a.desired else None,
        "changes": [{"object": c.object_id, "field": c.field, "kind": c.kind,
                     "before": list(c.before), "after": list(c.after)} for c in a.changes],
    }


def as_markdown(plans: list[EnvironmentPlan], errors: dict[str, str], revision: str) -> str:
    columns = [a for a in ORDER]
    lines = [f"### Dataduct plan for `{revision[:12]}`", "",
             "| environment | " + " | ".join(a.value for a in columns) + " |",
             "| --- | " + " | ".join("---:" for _ in columns) + " |"]
    for plan in plans:
        counts = plan.counts()
        lines.append(f"| {plan.environment} | "
                     + " | ".join(str(counts.get(a.value, 0)) for a in columns) + " |")
    for env, error in errors.items():
        lines.append(f"| {env} | " + " | ".join("" for _ in columns) + " |")
        lines.append("")
        lines.append(f"**{env}: error:** {error}")
    lines.append("")
    for plan in plans:
        for e in plan.errors:
            lines.append(f"> **{plan.environment}:** {e}")
        for action in _sorted(plan.actions):
            if action.action is Action.NOOP:
                continue
            label = action.blocked.value + " (blocked)" if action.blocked else \
                action.action.value
            lines.append("<details>")
            lines.append(f"<summary><b>{plan.environment}</b> · <code>{action.pipeline}"
                         f"</code> · {label}: {_escape(action.reason)}</summary>")
            lines.append("")
            if action.changes:
                lines.append("```diff")
                for change in action.changes:
                    text = change.describe()
                    lines.append(("!" + text[1:]) if text.startswith("~") else text)
                lines.append("```")
            else:
                lines.append(_escape(action.reason))
            lines.append("</details>")
    return "\n".join(lines).rstrip() + "\n"


def _escape(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
