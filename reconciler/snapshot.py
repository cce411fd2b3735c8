"""A manifests repository at one revision, as plain data: the hand-off from ``source`` (which
reads it) to ``desired`` (which compiles it). No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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
