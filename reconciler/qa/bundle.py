"""The QA runner as the pipelines install it: this package's wheel and a wheelhouse of the
runner's database drivers, both uploaded to the artifacts bucket, so the EC2 resource installs
the exact version that compiled the pipeline without a package index.

The wheel is built from the running package's own files, deterministically (sorted entries,
fixed timestamps and modes), so the same version gives the same bytes, hence the same
content-addressed S3 key and the same definitions, on a laptop, in CI and in the controller.
The wheelhouse (``RECONCILER_WHEELHOUSE``, filled by ``make wheelhouse`` and the container
image) holds the drivers' wheels for Linux x86-64; its files are uploaded under the
``qa-runner/wheelhouse/`` prefix, which the definitions name without listing its files.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import reconciler

from ..desired.definition import QaRunner

DISTRIBUTION = "dataduct-reconciler"
# What the runner needs besides itself, installed with --no-deps from the wheelhouse.
RUNNER_REQUIREMENTS = ("psycopg", "psycopg-binary", "PyMySQL", "typing-extensions")
WHEELHOUSE_VARIABLE = "RECONCILER_WHEELHOUSE"
_PACKAGE_FILES = re.compile(r".*\.(py|json)$|.*py\.typed$")
_EPOCH = (1980, 1, 1, 0, 0, 0)
_METADATA_FIELDS = ("Name", "Version", "Summary", "License-Expression", "Requires-Python",
                    "Provides-Extra", "Requires-Dist")


@dataclass(frozen=True)
class RunnerWheel:
    name: str
    version: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def _record_hash(content: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def _metadata_text(version: str) -> str:
    try:
        installed = metadata.metadata(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {version}\n"
    lines = ["Metadata-Version: 2.1"]
    for name in _METADATA_FIELDS:
        for value in installed.get_all(name) or []:
            lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n"


def _package_files(root: Path) -> list[tuple[str, bytes]]:
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root.parent).as_posix()
        if "__pycache__" in relative or not path.is_file() or not _PACKAGE_FILES.match(relative):
            continue
        files.append((relative, path.read_bytes()))
    return files


@cache
def runner_wheel() -> RunnerWheel:
    """This package as a wheel (``py3-none-any``), byte for byte the same for the same files."""
    version = reconciler.__version__
    root = Path(reconciler.__file__).resolve().parent
    stem = f"{DISTRIBUTION.replace('-', '_')}-{version}"
    dist_info = f"{stem}.dist-info"
    entries = _package_files(root)
    entries.append((f"{dist_info}/METADATA", _metadata_text(version).encode()))
    entries.append((f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: reconciler.qa.bundle"
                                          b"\nRoot-Is-Purelib: true\nTag: py3-none-any\n"))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    entries.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data, compresslevel=9)
    return RunnerWheel(f"{stem}-py3-none-any.whl", version, buffer.getvalue())


def wheelhouse(environ: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """The driver wheels to upload (file name -> content); empty when no wheelhouse is set or
    the directory does not exist."""
    environ = os.environ if environ is None else environ
    directory = environ.get(WHEELHOUSE_VARIABLE)
    if not directory or not Path(directory).is_dir():
        return {}
    return {path.name: path.read_bytes() for path in sorted(Path(directory).glob("*.whl"))}


@cache
def qa_runner() -> QaRunner:
    """What the compiler needs to know of the runner: its version, wheel and requirements."""
    wheel = runner_wheel()
    return QaRunner(wheel.version, wheel.name, wheel.sha256, len(wheel.content),
                    (f"{DISTRIBUTION}=={wheel.version}", *RUNNER_REQUIREMENTS))
