"""Where the controller reads the manifests repository from, at one revision per pass.

* :class:`DirectorySource`: a plain directory (or a checkout someone else updates), read as it
  is at each pass.
* :class:`GitSource` (``--repo URL --branch B``): the controller fetches the branch into a
  bare cache repository and exports the tree of the fetched commit into a directory of its
  own (``git archive``, extracted with tarfile's ``data`` filter), so a pass reads exactly one
  commit and nothing half-fetched.
* :class:`CheckoutSource` (``--checkout DIR``): a link kept current by the git-sync sidecar,
  which checks out each revision into a new directory and swaps the link atomically. The link
  is resolved once per pass and only the resolved directory is read, so a swap during the
  read is seen by the next pass, never mixed into this one.

A failure raises :class:`SourceError`; the controller keeps the last good revision (and never
turns a failed read into deletions).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ..errors import ReconcilerError
from .files import read_snapshot
from .git import GitState, SourceRead, read_checkout

GIT_TIMEOUT = 120
KEEP_TREES = 3  # exported revisions kept on disk (the current one and a few before)


class SourceError(ReconcilerError):
    """The repository could not be fetched or read."""


class DirectorySource:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def read(self) -> SourceRead:
        try:
            return read_checkout(self.root)
        except (OSError, ReconcilerError) as exc:
            raise SourceError(f"{self.root}: {exc}") from None


class CheckoutSource:
    """A git-sync link (``--checkout``): the resolved directory is one revision."""

    def __init__(self, link: str | os.PathLike[str], subdirectory: str = "."):
        self.link, self.subdirectory = Path(link), subdirectory

    def describe(self) -> str:
        return f"{self.link} (git-sync)"

    def read(self) -> SourceRead:
        resolved = Path(os.path.realpath(self.link))
        if not resolved.is_dir():
            raise SourceError(f"{self.link}: no checkout there yet (git-sync has not "
                              "published a revision)")
        try:
            return read_checkout(resolved / self.subdirectory)
        except (OSError, ReconcilerError) as exc:
            raise SourceError(f"{self.link}: {exc}") from None


class GitSource:
    """A remote repository's branch, fetched into ``cache`` (``--repo``, ``--branch``)."""

    def __init__(self, url: str, branch: str, cache: str | os.PathLike[str],
                 subdirectory: str = "."):
        # a local path is made absolute: git resolves a relative one against the cache
        if "://" not in url and not url.startswith("git@") and Path(url).exists():
            url = str(Path(url).resolve())
        self.url, self.branch, self.subdirectory = url, branch, subdirectory
        self.cache = Path(cache)
        self.bare = self.cache / "repository.git"
        self.trees = self.cache / "trees"

    def describe(self) -> str:
        return f"{self.url} ({self.branch})"

    def _git(self, *args: str, cwd: Path | None = None, binary: bool = False
             ) -> subprocess.CompletedProcess:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True,
                                  timeout=GIT_TIMEOUT, check=False, text=not binary,
                                  env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SourceError(f"git {args[0]}: {exc}") from None
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace") if binary else done.stderr
            lines = [line for line in stderr.strip().splitlines() if line.strip()]
            fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
            shown = (fatal or lines or [f"exit {done.returncode}"])[0]
            raise SourceError(f"git {_verb(args)} {self.url}: {shown}")
        return done

    def fetch(self) -> str:
        """Fetch the branch; the commit it points at."""
        if not (self.bare / "HEAD").exists():
            self.bare.mkdir(parents=True, exist_ok=True)
            self._git("init", "--bare", "--quiet", str(self.bare))
        ref = f"refs/remotes/origin/{self.branch}"
        self._git("--git-dir", str(self.bare), "fetch", "--quiet", "--force", "--no-tags",
                  self.url, f"+refs/heads/{self.branch}:{ref}")
        return self._git("--git-dir", str(self.bare), "rev-parse", ref).stdout.strip()

    def export(self, commit: str) -> Path:
        """The tree of ``commit`` in a directory of its own (kept for the next passes)."""
        target = self.trees / commit
        if target.is_dir():
            return target
        self.trees.mkdir(parents=True, exist_ok=True)
        archive = self._git("--git-dir", str(self.bare), "archive", "--format=tar", commit,
                            binary=True).stdout
        staging = Path(tempfile.mkdtemp(prefix=f".{commit[:12]}-", dir=self.trees))
        try:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
                _extract(tar, staging)
            staging.rename(target)
        except (OSError, tarfile.TarError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise SourceError(f"cannot export {commit[:12]}: {exc}") from None
        self._prune(keep=target)
        return target

    def _prune(self, keep: Path) -> None:
        trees = sorted((p for p in self.trees.iterdir() if p.is_dir() and p != keep
                        and not p.name.startswith(".")),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        for old in trees[KEEP_TREES - 1:]:
            shutil.rmtree(old, ignore_errors=True)

    def read(self) -> SourceRead:
        commit = self.fetch()
        tree = self.export(commit)
        try:
            snapshot = read_snapshot(tree / self.subdirectory, revision=commit)
        except (OSError, ReconcilerError) as exc:
            raise SourceError(f"{self.url} at {commit[:12]}: {exc}") from None
        return SourceRead(snapshot, GitState(commit), str(self.bare))


def _verb(args: tuple[str, ...]) -> str:
    """The git command of an argument list (after --git-dir DIR)."""
    words = [a for a in args if not a.startswith("-")]
    return words[1] if args and args[0] == "--git-dir" and len(words) > 1 else words[0]


def _extract(tar: tarfile.TarFile, target: Path) -> None:
    """Unpack a ``git archive`` of the repository (untrusted content) into ``target``:
    tarfile's "data" filter (no absolute paths, nothing outside ``target``, no device
    files). Pythons before 3.11.4 do not have it: there only directories and regular files
    with plain relative names are unpacked (links are left out, as the manifests reader
    ignores them)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(target, filter="data")
        return
    for member in tar.getmembers():  # pragma: no cover - Python < 3.11.4
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts or not (member.isdir() or
                                                                  member.isfile()):
            continue
        tar.extract(member, target, set_attrs=False)
