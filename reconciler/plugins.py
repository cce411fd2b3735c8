"""Step plugins: step types that installed Python packages register.

A package adds step types through the ``dataduct_reconciler.steps`` entry-point group; each
entry point names a class (instantiated without arguments) or an object that implements
:class:`reconciler.desired.steps.base.StepType`. Plugins are code the platform team installs
with the controller; nothing from a manifests repository is imported.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from .desired.steps.base import StepType
from .errors import ReconcilerError

ENTRY_POINT_GROUP = "dataduct_reconciler.steps"


def installed_step_plugins() -> dict[str, StepType]:
    """Step types of the installed plugins, by step_type."""
    found: dict[str, StepType] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
            step = loaded() if isinstance(loaded, type) else loaded
        except Exception as exc:  # a broken plugin is reported, not a crash
            raise ReconcilerError(f"step plugin {entry.name} ({entry.value}) failed to load: "
                                  f"{exc}") from exc
        for attribute in ("step_type", "compile", "validator"):
            if not hasattr(step, attribute):
                raise ReconcilerError(f"step plugin {entry.name} ({entry.value}) has no "
                                      f"'{attribute}'; see reconciler/desired/steps/base.py")
        found[step.step_type] = step
    return found
