"""Step types and the API they compile against.

``base`` says what a step type is, ``context`` is the view of the pipeline a step compiles in
(the wiring every step shares, shared objects, repository files, SQL), ``builtin`` holds
Dataduct's step types (a module per family: extract, transform, load, sql, checks) and
``templates`` the declarative ones a manifests repository defines. Plugins import from here.
"""

from .base import OutputNode, StepCompileError, StepResult, StepType, param
from .context import StepContext

__all__ = ["OutputNode", "StepCompileError", "StepContext", "StepResult", "StepType", "param"]
