"""Compiled pipelines kept between passes (the controller's incremental compile).

A pipeline's build depends on its manifest, the environment's config documents, the settings,
the step templates, the compile options (start date, limits, the QA runner, the names other
pipelines have in AWS), this package's version, and the repository files its steps read (SQL,
table definitions, scripts). Each build is stored under a key hashed from everything but
those files, with the hash of every file it read; it is reused when the key matches and every
one of those files still has the same content. A pass after a one-file commit recompiles the
pipelines that read that file; a pass over an unchanged repository reuses the whole result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..snapshot import Snapshot

MISSING = "-"  # the hash of a file that was absent (or refused) when the build read it


def digest(*parts: bytes | str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "big"))
        hasher.update(data)
    return hasher.hexdigest()


DIRECTORY = "dir:"  # an input that is a directory's listing, not a file


def file_hash(snapshot: Snapshot, path: str) -> str:
    """The hash of one input of a build: a file's content (or why it was refused, or that it
    is absent), or for ``dir:<path>`` the names of the files under that directory."""
    if path.startswith(DIRECTORY):
        return digest(*[n for n in snapshot.under(path[len(DIRECTORY):])
                        if n not in snapshot.rejected])
    if path in snapshot.rejected:
        return f"rejected:{snapshot.rejected[path]}"
    content = snapshot.files.get(path)
    return MISSING if content is None else hashlib.sha256(content).hexdigest()


def snapshot_digest(snapshot: Snapshot) -> str:
    """Every path and its content, and every refused path and why."""
    hasher = hashlib.sha256()
    for path in sorted(snapshot.files):
        hasher.update(path.encode() + b"\0" + hashlib.sha256(snapshot.files[path]).digest())
    for path in sorted(snapshot.rejected):
        hasher.update(b"!" + path.encode() + b"\0" + snapshot.rejected[path].encode())
    return hasher.hexdigest()


@dataclass
class CachedBuild:
    reads: Mapping[str, str]  # path -> file_hash when the build read it
    value: Any  # what compile_project stores (compiled pipeline and problems)


@dataclass
class CompileCache:
    """Builds by key; ``hits`` and ``misses`` count pipeline builds of the last pass."""

    builds: dict[str, CachedBuild] = field(default_factory=dict)
    project: tuple[str, Any] | None = None  # (key of a whole pass, its result)
    hits: int = 0
    misses: int = 0

    def start_pass(self) -> None:
        self.hits = self.misses = 0

    def get(self, key: str, snapshot: Snapshot) -> Any | None:
        build = self.builds.get(key)
        if build is None or any(file_hash(snapshot, p) != h for p, h in build.reads.items()):
            self.misses += 1
            return None
        self.hits += 1
        return build.value

    def put(self, key: str, reads: Mapping[str, str], value: Any) -> None:
        self.builds[key] = CachedBuild(dict(reads), value)

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget builds no manifest of the last pass asked for (deleted or changed)."""
        wanted = set(keys)
        for key in [k for k in self.builds if k not in wanted]:
            del self.builds[key]
