"""Problems found in a manifests repository, and the one error hierarchy of the project.

A :class:`Problem` is a finding with a place (``file:line:column``), the key path inside the
document, a message and, where one helps, a hint saying what to do. Validation collects problems
instead of stopping at the first one; :class:`ReconcilerError` subclasses are raised only where
going on makes no sense.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Location:
    """A place in a file of the manifests repository (1-based line and column).

    Every location has a line: where nothing more precise is known (a file that cannot be
    decoded, a problem with the file as a whole) it is line 1, so editors and CI annotations
    can always jump to it."""

    file: str
    line: int | None = 1
    column: int | None = None

    def __post_init__(self) -> None:
        if self.line is None or self.line < 1:
            object.__setattr__(self, "line", 1)

    def __str__(self) -> str:
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


def format_key_path(path: Sequence[str | int]) -> str:
    """``("steps", 1, "name")`` -> ``steps[1].name``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class Problem:
    """One finding: where, what, and what to do about it."""

    location: Location
    message: str
    key_path: tuple[str | int, ...] = ()
    hint: str | None = None
    severity: Severity = "error"
    code: str = "invalid"
    environments: tuple[str, ...] = ()  # set when only some environments have the problem

    def format(self) -> str:
        where = f"[{', '.join(self.environments)}] " if self.environments else ""
        text = f"{self.location}: {self.severity}: {where}{self.message}"
        if self.key_path:
            text += f" (at {format_key_path(self.key_path)})"
        if self.hint:
            text += f"; {self.hint}"
        return text.replace("\n", " ")

    def to_json(self, file: str | None = None) -> dict[str, object]:
        """The problem for machines (``validate --format json``, ``plan --format json``);
        ``file`` shows the location's file another way (relative to the caller's directory)."""
        loc = self.location
        return {"file": file or loc.file, "line": loc.line, "column": loc.column,
                "severity": self.severity, "message": self.message, "hint": self.hint,
                "code": self.code, "environments": list(self.environments)}

    def sort_key(self) -> tuple:
        loc = self.location
        return (loc.file, loc.line or 0, loc.column or 0, self.message)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean ...?" hint for a misspelt key or name, or None."""
    matches = difflib.get_close_matches(str(word), sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


class ReconcilerError(Exception):
    """Base of every error the reconciler raises on purpose. Anything else escaping a stage is
    a bug, and the stages turn it into a located problem rather than a traceback."""


class InvalidInputError(ReconcilerError):
    """Input that cannot be used at all; carries the problems that say why."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(p.format() for p in self.problems))


class RepositoryError(ReconcilerError):
    """The manifests repository cannot be read (missing root, unreadable file)."""


class CompileError(ReconcilerError):
    """Something a manifest asks for that cannot be compiled. The message says why, ``key``
    names the step parameter or manifest key it comes from, ``location`` (when known) where
    exactly, such as a line of a SQL file the step reads."""

    def __init__(self, message: str, key: str | None = None, hint: str | None = None,
                 location: Location | None = None):
        super().__init__(message)
        self.key = key
        self.hint = hint
        self.location = location
