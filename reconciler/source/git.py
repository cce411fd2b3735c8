"""What git says about a manifests checkout: the commit, whether files under the root were
changed without a commit, and how two revisions relate (the rollback rule needs to know
whether git's revision is older than the one a pipeline runs).

Git runs as a subprocess with a timeout, on the checkout only; nothing here writes.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from ..snapshot import Relation, Snapshot

UNVERSIONED = "unversioned"
DIRTY_SUFFIX = "-dirty"


@dataclass(frozen=True)
class GitState:
    """The checkout's commit (or ``unversioned``) and its uncommitted changes under the root."""

    commit: str
    changed: tuple[str, ...] = ()

    @property
    def dirty(self) -> bool:
        return bool(self.changed)

    @property
    def revision(self) -> str:
        """What a pipeline applied from this checkout is tagged with."""
        return self.commit + DIRTY_SUFFIX if self.dirty else self.commit


def _git(root: str | os.PathLike[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          timeout=30, check=False)


def git_state(root: str | os.PathLike[str]) -> GitState:
    """The commit checked out at ``root`` and the files changed under it (``git status``),
    or ``unversioned`` outside a git repository."""
    try:
        head = _git(root, "rev-parse", "HEAD")
        if head.returncode != 0:
            return GitState(UNVERSIONED)
        status = _git(root, "status", "--porcelain", "--untracked-files=all", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return GitState(UNVERSIONED)
    changed = tuple(line[3:] for line in status.stdout.splitlines() if line.strip())
    return GitState(head.stdout.strip(), changed)


def revision_relation(root: str | os.PathLike[str], ours: str, running: str) -> Relation:
    """How ``ours`` (what git says now) relates to ``running`` (what a pipeline was applied
    from). ``-dirty`` revisions compare by their commit."""
    ours, running = ours.removesuffix(DIRTY_SUFFIX), running.removesuffix(DIRTY_SUFFIX)
    if UNVERSIONED in (ours, running) or not ours or not running:
        return Relation.UNVERSIONED
    if ours == running:
        return Relation.SAME
    try:
        known = _git(root, "cat-file", "-e", f"{running}^{{commit}}")
        if known.returncode != 0:
            return Relation.UNKNOWN
        if _git(root, "merge-base", "--is-ancestor", running, ours).returncode == 0:
            return Relation.NEWER
        if _git(root, "merge-base", "--is-ancestor", ours, running).returncode == 0:
            return Relation.OLDER
    except (OSError, subprocess.SubprocessError):
        return Relation.UNKNOWN
    return Relation.UNRELATED


@dataclass(frozen=True)
class SourceRead:
    """A manifests repository read at one revision: its files, what git says about them, and
    the git repository to ask how revisions relate (the checkout, or the controller's clone)."""

    snapshot: Snapshot
    git: GitState
    repository: str


def read_checkout(root: str | os.PathLike[str]) -> SourceRead:
    """A directory as it is now: its git state first, then its files (a checkout that changes
    in between is read as dirty by the next pass, never as a commit it is not)."""
    from .files import read_snapshot

    state = git_state(root)
    snapshot = read_snapshot(root, revision=state.revision)
    return SourceRead(snapshot, state, snapshot.root)
