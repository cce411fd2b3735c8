"""Reading a manifests repository into an immutable :class:`Snapshot`.

This is the only place that touches the manifests repository on disk. A snapshot is read whole
(never a partial read): every regular file under the root, as bytes, keyed by its POSIX path
relative to the root. Symbolic links that resolve outside the root are not followed; they are
recorded in ``Snapshot.rejected`` so the compiler can report any step that references one.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import RepositoryError
from ..snapshot import Snapshot

ROOT_MARKER = "reconciler.yaml"
SKIPPED_DIRS = frozenset({".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache"})
MAX_FILE_BYTES = 256 * 1024 * 1024


def find_root(start: str | os.PathLike) -> Path:
    """The manifests root: ``start`` or the nearest parent holding ``reconciler.yaml``."""
    path = Path(start).resolve()
    for candidate in [path, *path.parents] if path.is_dir() else list(path.parents):
        if (candidate / ROOT_MARKER).is_file():
            return candidate
    raise RepositoryError(
        f"{start}: no {ROOT_MARKER} here or in any parent directory; "
        "run from inside a manifests repository or pass its root"
    )


def read_snapshot(root: str | os.PathLike, revision: str | None = None) -> Snapshot:
    """Read every file under ``root``; links escaping the root are rejected, not followed."""
    base = Path(root).resolve()
    if not (base / ROOT_MARKER).is_file():
        raise RepositoryError(
            f"{root}: not a manifests repository (no {ROOT_MARKER}); "
            "create one or point at the directory that has it"
        )
    files: dict[str, bytes] = {}
    rejected: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        current = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            if name in SKIPPED_DIRS:
                continue
            entry = current / name
            if entry.is_symlink():
                rel = entry.relative_to(base).as_posix()
                reason = _link_escape(entry, base)
                if reason:
                    rejected[rel] = reason
                    continue
                # a link to a directory inside the repository: read it through its target
                for sub in sorted(entry.resolve().rglob("*")):
                    if sub.is_file():
                        _read(sub, f"{rel}/{sub.relative_to(entry.resolve()).as_posix()}",
                              files, rejected)
                continue
            keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            entry = current / name
            rel = entry.relative_to(base).as_posix()
            if entry.is_symlink():
                reason = _link_escape(entry, base)
                if reason:
                    rejected[rel] = reason
                    continue
            _read(entry, rel, files, rejected)
    return Snapshot(root=str(base), files=files, revision=revision, rejected=rejected)


def _link_escape(entry: Path, base: Path) -> str | None:
    target = entry.resolve()
    if target != base and base not in target.parents:
        return f"symbolic link to {os.readlink(entry)} points outside the repository"
    return None


def _read(path: Path, rel: str, files: dict[str, bytes], rejected: dict[str, str]) -> None:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            rejected[rel] = f"file is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit"
            return
        files[rel] = path.read_bytes()
    except OSError as exc:
        rejected[rel] = f"cannot be read: {exc.strerror}"


def git_revision(root: str | os.PathLike) -> str:
    """The commit checked out at ``root`` (with ``-dirty`` when files changed), or
    ``unversioned`` outside a git repository."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()

    try:
        revision = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return "unversioned"
    return f"{revision}-dirty" if dirty else revision
