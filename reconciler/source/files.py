"""Reading a directory of manifests into a :class:`Snapshot`, safely.

Only regular files inside the repository's real root are read. Every path is resolved to its
real path first, so a symbolic link that leaves the repository at any depth (``linked ->
real`` with ``real/env.txt -> /proc/self/environ``) is refused, and so is anything that is not
a regular file (a FIFO would block the read for ever; devices, sockets and ``/proc`` files are
not the repository's). Files are opened without following links and checked again on the open
descriptor, so a file swapped for a link between the check and the read is refused too. A file
over the size limit is refused without being read. Refusals are recorded in
``Snapshot.rejected`` with the reason, for the compiler to report at any step that names them.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..desired.yamldoc import load_yaml
from ..errors import InvalidInputError, RepositoryError
from ..snapshot import Snapshot

ROOT_MARKER = "reconciler.yaml"
SKIPPED_DIRS = frozenset({".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache",
                          ".reconciler", ".hypothesis", ".ruff_cache"})
DEFAULT_MAX_FILE_BYTES = 16 * 1024 * 1024
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


STATE_DIRECTORY = ".reconciler"  # what commands keep beside a checkout, ignored by git


def state_directory(root: Path) -> Path:
    """``.reconciler/`` in the checkout at ``root``, made on first use with a .gitignore of
    its own, so what is kept there (the embedded service's state) is never committed."""
    directory = root / STATE_DIRECTORY
    directory.mkdir(exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# state the reconciler keeps beside this checkout; never committed\n*\n")
    return directory


def find_root(start: str | os.PathLike[str]) -> Path:
    """The manifests root: ``start`` or the nearest parent holding ``reconciler.yaml``."""
    path = Path(start).resolve()
    for candidate in [path, *path.parents] if path.is_dir() else list(path.parents):
        if (candidate / ROOT_MARKER).is_file():
            return candidate
    raise RepositoryError(
        f"{start}: no {ROOT_MARKER} here or in any parent directory; "
        "run from inside a manifests repository or pass its root"
    )


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


class _Reader:
    """One walk of a repository: the files read and the paths refused."""

    def __init__(self, base: Path, max_file_bytes: int):
        self.base = base
        self.max_file_bytes = max_file_bytes
        self.files: dict[str, bytes] = {}
        self.rejected: dict[str, str] = {}
        self.seen_dirs: set[Path] = set()

    def inside(self, real: Path) -> bool:
        return real == self.base or self.base in real.parents

    def walk(self, directory: Path, rel: str) -> None:
        """Read ``directory`` (a real path inside the root), known in the repository as
        ``rel``; directory links are followed once each, to where they really lead."""
        if directory in self.seen_dirs:
            return
        self.seen_dirs.add(directory)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            self.rejected[rel or "."] = f"cannot be listed: {exc.strerror}"
            return
        for entry in entries:
            name = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False) and entry.name in SKIPPED_DIRS:
                continue
            self.visit(Path(entry.path), name)

    def visit(self, path: Path, rel: str) -> None:
        try:
            info = path.lstat()
        except OSError as exc:
            self.rejected[rel] = f"cannot be read: {exc.strerror}"
            return
        if stat.S_ISLNK(info.st_mode):
            real = Path(os.path.realpath(path))
            if not self.inside(real):
                self.rejected[rel] = (f"symbolic link to {os.readlink(path)} leads outside the "
                                      "repository")
                return
            try:
                info = real.stat()
            except OSError as exc:
                self.rejected[rel] = f"symbolic link to {os.readlink(path)}: {exc.strerror}"
                return
            path = real
        if stat.S_ISDIR(info.st_mode):
            self.walk(Path(os.path.realpath(path)), rel)
        elif stat.S_ISREG(info.st_mode):
            self.read(path, rel, info.st_size)
        else:
            self.rejected[rel] = f"is {_kind(info.st_mode)}, not a regular file; only regular " \
                                 "files are read"

    def read(self, path: Path, rel: str, size: int) -> None:
        if size > self.max_file_bytes:
            self.rejected[rel] = self.too_big(size)
            return
        real = Path(os.path.realpath(path))
        if not self.inside(real):
            self.rejected[rel] = "leads outside the repository"
            return
        try:
            fd = os.open(real, _OPEN_FLAGS)
        except OSError as exc:
            reason = ("changed into a symbolic link while being read" if exc.errno == errno.ELOOP
                      else f"cannot be read: {exc.strerror}")
            self.rejected[rel] = reason
            return
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                self.rejected[rel] = f"is {_kind(info.st_mode)}, not a regular file"
                return
            content = handle.read(self.max_file_bytes + 1)
        if len(content) > self.max_file_bytes:
            self.rejected[rel] = self.too_big(len(content))
            return
        self.files[rel] = content

    def too_big(self, size: int) -> str:
        return (f"file is {size:,} bytes, over the limit of {self.max_file_bytes:,} bytes per "
                "file (limits.max_file_bytes in reconciler.yaml)")


def file_limit(base: Path) -> int:
    """``limits.max_file_bytes`` of the repository's settings, read before anything else."""
    reader = _Reader(base, DEFAULT_MAX_FILE_BYTES)
    reader.visit(base / ROOT_MARKER, ROOT_MARKER)
    content = reader.files.get(ROOT_MARKER)
    if content is None:
        return DEFAULT_MAX_FILE_BYTES
    try:
        data = load_yaml(content, ROOT_MARKER).data
    except InvalidInputError:
        return DEFAULT_MAX_FILE_BYTES  # the settings' own errors are reported by the compiler
    limits = data.get("limits") if isinstance(data, dict) else None
    value = limits.get("max_file_bytes") if isinstance(limits, dict) else None
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_FILE_BYTES


def read_snapshot(root: str | os.PathLike[str], revision: str | None = None) -> Snapshot:
    """Every regular file under ``root``, by its POSIX path relative to the root; whatever
    cannot or must not be read is in ``rejected`` with the reason."""
    base = Path(os.path.realpath(root))
    if not (base / ROOT_MARKER).is_file():
        raise RepositoryError(
            f"{root}: not a manifests repository (no {ROOT_MARKER}); "
            "create one or point at the directory that has it"
        )
    reader = _Reader(base, file_limit(base))
    reader.walk(base, "")
    return Snapshot(root=str(base), files=reader.files, revision=revision,
                    rejected=reader.rejected)
