"""A manifests repository at one revision, as plain data: the hand-off from ``source`` (which
reads it) to ``desired`` (which compiles it). No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class Snapshot:
    """The files of a manifests repository at one revision."""

    root: str
    files: Mapping[str, bytes]
    revision: str | None = None
    rejected: Mapping[str, str] = field(default_factory=dict)

    def under(self, prefix: str) -> list[str]:
        prefix = prefix.rstrip("/") + "/" if prefix not in ("", ".") else ""
        return sorted(name for name in self.files if name.startswith(prefix))


class Relation(StrEnum):
    """How the revision git says relates to the revision a pipeline was applied from."""

    SAME = "same"
    NEWER = "newer"  # git's revision descends from the running one
    OLDER = "older"  # git's revision is an ancestor of the running one: a rollback
    UNRELATED = "unrelated"  # neither descends from the other (a force-push, another branch)
    UNKNOWN = "unknown"  # the running revision is not in this checkout
    UNVERSIONED = "unversioned"  # no git here, or no revision on the pipeline: nothing to say
