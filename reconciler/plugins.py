"""Step plugins: step types that installed Python packages register.

A package adds step types through the ``dataduct_reconciler.steps`` entry-point group; each
entry point names a class (instantiated without arguments) or an object that implements
:class:`reconciler.desired.steps.base.StepType`. Plugins are code the platform team installs
with the controller; nothing from a manifests repository is imported.

A plugin that fails to load does not stop anything: it stands in as a step type that refuses
every step of its type with the reason, so the pipelines that use it are reported and the
others compile.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from .desired.steps.base import StepResult, StepType

ENTRY_POINT_GROUP = "dataduct_reconciler.steps"


class BrokenPlugin:
    """Stands in for a plugin that could not be loaded."""

    produces_output = False
    resource = "none"

    def __init__(self, step_type: str, reason: str):
        self.step_type = step_type
        self.reason = reason

    def validator(self) -> Any:
        raise RuntimeError(self.reason)

    def compile(self, ctx: Any) -> StepResult:  # never reached: its steps fail validation
        raise RuntimeError(self.reason)


def installed_step_plugins() -> dict[str, StepType]:
    """Step types of the installed plugins, by step_type (broken ones as BrokenPlugin)."""
    found: dict[str, StepType] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        where = f"step plugin {entry.name} ({entry.value})"
        try:
            loaded = entry.load()
            step = loaded() if isinstance(loaded, type) else loaded
        except Exception as exc:  # a broken plugin is reported at its steps, not a crash
            found[entry.name] = BrokenPlugin(entry.name, f"{where} failed to load: "
                                             f"{type(exc).__name__}: {exc}")
            continue
        missing = [a for a in ("step_type", "compile", "validator") if not hasattr(step, a)]
        if missing:
            found[entry.name] = BrokenPlugin(entry.name, f"{where} has no "
                                             f"{', '.join(missing)}; see "
                                             "reconciler/desired/steps/base.py")
            continue
        found[step.step_type] = step
    return found
