"""What a step type is, and the context a step type compiles a step in.

A step type turns one :class:`~reconciler.desired.manifest.StepSpec` into Data Pipeline
objects through a :class:`StepContext`. The context does the wiring every step shares (input
and output data nodes, dependencies, the resource an activity runs on, retries, the failure
alarm), hands out the shared objects (databases, resources) and turns repository files into
content-addressed artifacts. Step types only say what is particular to them.

Built-in step types live in ``builtin.py``, declarative templates from the manifests repository
in ``templates.py``, and installed packages add more through the ``dataduct_reconciler.steps``
entry-point group (see ``reconciler/plugins.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..definition import Ref

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

    from ..compiler import StepContext


class StepCompileError(Exception):
    """A step that cannot be compiled; the message says why and the key names the parameter."""

    def __init__(self, message: str, key: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.key = key
        self.hint = hint


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
    produces_output: bool  # whether later steps read its output by default
    resource: str  # "ec2", "emr" or "none": the resource its activities run on by default

    def validator(self) -> Draft202012Validator: ...

    def compile(self, ctx: StepContext) -> StepResult: ...


def param(ctx: StepContext, key: str, default: Any = None) -> Any:
    value = ctx.step.params.get(key)
    return default if value is None else value
