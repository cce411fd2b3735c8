"""Plans as text for terminals, JSON for machines and Markdown for a pull-request comment.

A changed value of one line is shown as ``old -> new``; a script, SQL or command of several
lines as a unified diff, whole. Markdown stays under GitHub's limit for a comment (65,536
characters): diffs sit in collapsed ``<details>`` blocks, and when the comment would still be
too long the longest diffs are replaced by a line that says so and names the command that
shows them, never cut in the middle.

Nothing here can print a secret: plans carry definitions, which name secrets by parameter
(``#{*myRedshiftPassword}``) and never hold their values.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

from .diff import Change
from .planner import Action, EnvironmentPlan, Hint, PlannedAction, State

# how each kind of planned item is shown (PlannedAction.kind), in the order plans list them
SYMBOL: dict[str, str] = {
    Action.CREATE: "+", Action.UPDATE: "~", Action.REPLACE: "-/+", Action.DELETE: "-",
    Action.ACTIVATE: ">", Action.DEACTIVATE: "||", Action.ADOPT: "~",
    State.BLOCKED: "!", State.UNKNOWN: "?", Action.NOOP: "="}
ORDER: list[str] = list(SYMBOL)
GITHUB_COMMENT_LIMIT = 65_536
COMMENT_BUDGET = GITHUB_COMMENT_LIMIT - 2_000  # room for the notes that replace diffs


def _sorted(actions: Iterable[PlannedAction]) -> list[PlannedAction]:
    return sorted(actions, key=lambda a: (ORDER.index(a.kind), a.pipeline))



def summary(plan: EnvironmentPlan) -> str:
    counts = plan.counts()
    parts = [f"{counts[kind]} {'in sync' if kind == Action.NOOP else kind}" for kind in ORDER
             if counts.get(kind)]
    return ", ".join(parts) if parts else "no pipelines"


def _label(action: PlannedAction) -> str:
    if action.state is State.UNKNOWN:
        return State.UNKNOWN.value
    if action.repair:
        return "delete (duplicate)"
    return action.action.value


def change_lines(change: Change) -> list[str]:
    """One line for a short change; a header and a unified diff for a multi-line value."""
    before, after = "\n".join(change.before), "\n".join(change.after)
    if change.kind in ("add-object", "remove-object") or ("\n" not in before + after):
        return [change.describe()]
    where = f"{change.object_id}.{change.field}"
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(),
                                f"{where} (live)", f"{where} (git)", lineterm="", n=3)
    return [f"~ {where}:", *diff]


def as_text(plans: list[EnvironmentPlan], errors: dict[str, str], revision: str,
            hint: Hint | None = None) -> str:
    lines = []
    for plan in plans:
        lines.append(f"{plan.environment} (revision {revision[:12]}): {summary(plan)}")
        for action in _sorted(plan.actions):
            if action.kind == Action.NOOP:
                continue
            lines.append(f"  {SYMBOL[action.kind]:3} {_label(action):8} {action.pipeline}: "
                         f"{action.explained(hint)}")
            for change in action.changes:
                lines.extend(f"        {line}" for line in change_lines(change))
        lines.extend(f"  warning: {w}" for w in plan.warnings)
        lines.extend(f"  error: {e}" for e in plan.errors)
    for env, error in errors.items():
        lines.append(f"{env}: error: {error}")
    return "\n".join(lines) + "\n"


def as_json(plans: list[EnvironmentPlan], errors: dict[str, str], revision: str,
            problems: list[dict[str, Any]], hint: Hint | None = None) -> str:
    return json.dumps({
        "revision": revision,
        "has_changes": any(p.has_changes for p in plans),
        "problems": problems,
        "environments": [
            {"environment": p.environment, "summary": p.counts(), "errors": p.errors,
             "warnings": p.warnings,
             "actions": [action_json(a, hint) for a in _sorted(p.actions)]} for p in plans
        ] + [{"environment": env, "error": error} for env, error in errors.items()],
    }, indent=2, sort_keys=True) + "\n"


def action_json(a: PlannedAction, hint: Hint | None = None) -> dict[str, Any]:
    """One planned item as plans in JSON show it (``action`` is its kind, as in the text)."""
    return {
        "pipeline": a.pipeline, "action": a.kind, "reason": a.explained(hint),
        "state": a.state.value, "approval": a.approval.value if a.approval else None,
        "blocked_action": a.action.value if a.is_blocked else None, "manifest": a.manifest,
        "pipeline_id": a.live.pipeline_id if a.live else None,
        "digest": a.desired.digest if a.desired else None, "repair": a.repair,
        "warnings": list(a.warnings),
        "changes": [{"object": c.object_id, "field": c.field, "kind": c.kind,
                     "before": list(c.before), "after": list(c.after)} for c in a.changes],
    }


def as_markdown(plans: list[EnvironmentPlan], errors: dict[str, str], revision: str,
                hint: Hint | None = None) -> str:
    head = _markdown_head(plans, errors, revision)
    sections = [(plan.environment, action, _markdown_diff(action)) for plan in plans
                for action in _sorted(plan.actions) if action.kind != Action.NOOP]

    def section(env: str, action: PlannedAction, diff: str) -> str:
        return _markdown_section(env, action, diff, action.explained(hint))

    size = len(head) + sum(len(section(env, a, d)) for env, a, d in sections)
    omitted = 0
    for index in sorted(range(len(sections)), key=lambda i: -len(sections[i][2])):
        if size <= COMMENT_BUDGET:
            break
        env, action, diff = sections[index]
        note = (f"_{len(diff.splitlines()) - 2} lines of changes not shown: the comment would "
                "exceed GitHub's 65,536 characters; `reconciler plan` shows them._")
        size -= len(diff) - len(note)
        sections[index] = (env, action, note)
        omitted += 1
    body = "".join(section(env, a, d) for env, a, d in sections)
    tail = (f"\n{omitted} diff(s) left out to fit one comment.\n" if omitted else "")
    return (head + body + tail).rstrip() + "\n"


def _markdown_head(plans: list[EnvironmentPlan], errors: dict[str, str], revision: str) -> str:
    columns = list(ORDER)
    lines = [f"### Dataduct plan for `{revision[:12]}`", "",
             "| environment | " + " | ".join(columns) + " |",
             "| --- | " + " | ".join("---:" for _ in columns) + " |"]
    for plan in plans:
        counts = plan.counts()
        lines.append(f"| {plan.environment} | "
                     + " | ".join(str(counts.get(kind, 0)) for kind in columns) + " |")
    for env, error in errors.items():
        lines.append(f"| {env} | " + " | ".join("" for _ in columns) + " |")
        lines.append("")
        lines.append(f"**{env}: error:** {_escape(error)}")
    lines.append("")
    for plan in plans:
        lines.extend(f"> **{plan.environment}:** {_escape(e)}" for e in plan.errors)
        lines.extend(f"> **{plan.environment}** warning: {_escape(w)}" for w in plan.warnings)
    return "\n".join(lines) + "\n"


def _markdown_diff(action: PlannedAction) -> str:
    if not action.changes:
        return ""
    lines = ["```diff"]
    for change in action.changes:
        for line in change_lines(change):
            lines.append(("!" + line[1:]) if line.startswith("~ ") else line)
    lines.append("```")
    return "\n".join(lines)


def _markdown_section(env: str, action: PlannedAction, diff: str, reason: str) -> str:
    label = f"{_label(action)} (blocked)" if action.is_blocked else _label(action)
    return "\n".join(["<details>",
                      f"<summary><b>{env}</b> · <code>{action.pipeline}</code> · {label}: "
                      f"{_escape(reason)}</summary>", "",
                      diff or _escape(reason), "</details>", ""])


def _escape(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
