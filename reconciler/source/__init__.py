"""The manifests repository, read into an immutable :class:`Snapshot` (the only code that
touches it): ``files`` reads a directory safely, ``git`` says which revision it is and how
revisions relate, ``follow`` is where the controller reads it from pass after pass (a
directory, a git remote, a git-sync checkout)."""

from __future__ import annotations

from .files import (
    DEFAULT_MAX_FILE_BYTES,
    ROOT_MARKER,
    STATE_DIRECTORY,
    find_root,
    read_snapshot,
    state_directory,
)
from .git import GitState, SourceRead, git_state, read_checkout, revision_relation

__all__ = ["DEFAULT_MAX_FILE_BYTES", "ROOT_MARKER", "STATE_DIRECTORY", "GitState", "SourceRead",
           "find_root", "git_state", "read_checkout", "read_snapshot", "revision_relation",
           "state_directory"]
