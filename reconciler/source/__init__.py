"""The manifests repository, read into an immutable :class:`Snapshot` (the only code that
touches it): ``files`` reads a directory safely, ``git`` says which revision it is."""

from __future__ import annotations

import os

from .files import DEFAULT_MAX_FILE_BYTES, ROOT_MARKER, find_root, read_snapshot

__all__ = ["DEFAULT_MAX_FILE_BYTES", "ROOT_MARKER", "find_root", "git_revision",
           "read_snapshot"]


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
