"""What a step type is: its name, its schema, and how it compiles a step.

A step type turns one :class:`~reconciler.desired.manifest.StepSpec` into Data Pipeline objects
through a :class:`~reconciler.desired.steps.context.StepContext`, which does the wiring every
step shares. Step types only say what is particular to them.

Built-in step types live in ``builtin.py``, declarative templates from the manifests repository
in ``templates.py``, and installed packages add more through the ``dataduct_reconciler.steps``
entry-point group (see ``reconciler/plugins.py``). A step type reports what is wrong with a step
by raising :class:`StepCompileError`; anything else it raises is caught and reported as a bug
of that step type, located at the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ...errors import CompileError
from ..definition import Ref

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

    from .context import StepContext

# The name step plugins know the compile error by.
StepCompileError = CompileError


@dataclass(frozen=True)
class OutputNode:
    """A data node a step produces, which later steps can read."""

    ref: Ref
    path: str  # its S3 directory (or file) path
    is_file: bool = False
    producer: str | None = None  # id of the activity that writes it, if any


@dataclass
class StepResult:
    """What a compiled step offers to the steps after it."""

    activities: list[str] = field(default_factory=list)
    output: OutputNode | None = None
    named_outputs: dict[str, OutputNode] = field(default_factory=dict)


class StepType(Protocol):
    """A step type: its name, how its parameters are checked, and how it compiles."""

    step_type: str

    @property
    def produces_output(self) -> bool:
        """Whether later steps read its output by default."""

    @property
    def resource(self) -> str:
        """"ec2", "emr" or "none": the resource its activities run on by default."""

    def validator(self) -> Draft202012Validator: ...

    def compile(self, ctx: StepContext) -> StepResult: ...


def param(ctx: StepContext, key: str, default: Any = None) -> Any:
    """A step parameter, or ``default`` when it is not given."""
    value = ctx.step.params.get(key)
    return default if value is None else value
