"""What one pipeline is being built from and into: objects, parameters, secrets, artifacts.

A :class:`PipelineBuilder` holds the state of compiling one manifest for one environment. It
knows the repository only as a snapshot of bytes (paths are normalised and checked here, the
one place that turns a path a manifest wrote into a file), and the config only as an
:class:`EnvConfig`. Step types never touch it directly: they go through
:class:`reconciler.desired.steps.context.StepContext`.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..errors import CompileError, Location, Problem
from ..service.model import DEFAULT_MAX_OBJECTS
from ..snapshot import Snapshot
from .cache import DIRECTORY, file_hash
from .config import DEFAULT_MAX_SQL_BYTES, EnvConfig
from .definition import Artifact, Parameter, PipelineObject, QaRunner, Ref, SecretRef
from .manifest import Manifest
from .sql import TableDefinition, TableDefinitionError, parse_table_definition


@dataclass(frozen=True)
class CompileOptions:
    """Inputs of a compilation that do not come from the repository."""

    start_date: date
    max_objects: int = DEFAULT_MAX_OBJECTS
    max_sql_bytes: int = DEFAULT_MAX_SQL_BYTES
    # per environment: the repository's pipelines deployed there -> their names in AWS
    pipeline_names: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # the QA runner the QA steps install (reconciler.qa.bundle.qa_runner()); a QA step
    # compiled without one is an error
    qa_runner: QaRunner | None = None


class RepositoryPathError(CompileError):
    """A path in a manifest that names no usable file of the repository."""


def parameter_id(*words: str, encrypted: bool = False) -> str:
    """``myRedshiftPassword`` style ids: ``my`` then each word capitalised (``*`` when
    encrypted). The one place parameter ids are spelt."""
    parts = [p for w in words for p in re.split(r"[^A-Za-z0-9]+", w) if p]
    return ("*" if encrypted else "") + "my" + "".join(p[:1].upper() + p[1:] for p in parts)


class PipelineBuilder:
    """Collects the objects, parameters, secrets and artifacts of one pipeline."""

    def __init__(self, manifest: Manifest, config: EnvConfig, snapshot: Snapshot,
                 options: CompileOptions, problems: list[Problem]):
        self.manifest = manifest
        self.config = config
        self.snapshot = snapshot
        self.options = options
        self.problems = problems
        self.objects: dict[str, PipelineObject] = {}
        self.parameters: dict[str, Parameter] = {}
        self.parameter_values: dict[str, str] = {}
        self.secrets: dict[str, SecretRef] = {}
        self.artifacts: dict[str, Artifact] = {}
        self.tables: dict[str, TableDefinition] = {}
        self.uses_resource: set[str] = set()
        self.qa_wheelhouse: str | None = None
        self.reads: dict[str, str] = {}  # every repository file read: path -> file_hash

    # -- objects -------------------------------------------------------------------------------

    def add(self, obj: PipelineObject) -> Ref:
        existing = self.objects.get(obj.id)
        if existing is not None and existing != obj:
            raise CompileError(
                f"object id '{obj.id}' is produced twice (another step or a shared object "
                "already uses it)", hint="rename the step")
        self.objects[obj.id] = obj
        return Ref(obj.id)

    def shared(self, obj: PipelineObject) -> Ref:
        """Add an object many steps share (databases, formats); the first one wins."""
        if obj.id not in self.objects:
            self.objects[obj.id] = obj
        return Ref(obj.id)

    # -- config -------------------------------------------------------------------------------

    def require(self, section: str, key: str) -> Any:
        value = self.config.get(section, key)
        if value in (None, ""):
            raise CompileError(
                f"the config has no {section}.{key}",
                hint=f"set {section}: {{{key}: ...}} in config/defaults.yaml or "
                     f"config/{self.config.environment}.yaml")
        return value

    @property
    def s3_base(self) -> str:
        bucket = str(self.require("etl", "S3_ETL_BUCKET")).strip("/")
        base = str(self.config.get("etl", "S3_BASE_PATH", "")).strip("/")
        return f"s3://{bucket}/{base}" if base else f"s3://{bucket}"

    # -- secrets -------------------------------------------------------------------------------

    def secret_parameter(self, kind: str, alias: str | None, ref: Any, where: str) -> str:
        """An encrypted ``*my...Password`` parameter for a secret reference of the config;
        returns the expression that uses it."""
        if not isinstance(ref, dict) or not (ref.get("from_env") or ref.get("from_file")):
            raise CompileError(
                f"the config has no {where}.PASSWORD",
                hint=f"set {where}.PASSWORD: {{from_env: NAME}} or {{from_file: PATH}}")
        pid = parameter_id(kind, alias or "", "password", encrypted=True)
        source, name = ("env", ref["from_env"]) if ref.get("from_env") else ("file",
                                                                            ref["from_file"])
        self.parameters[pid] = Parameter(pid, "String", f"Password of {where} ({source} "
                                                        f"{name} at apply time)")
        self.secrets[pid] = SecretRef(pid, source, str(name))
        return "#{" + pid + "}"

    # -- files ---------------------------------------------------------------------------------

    def repo_path(self, path: str) -> str:
        """Normalise a repository-relative path; refuse absolute paths and escapes."""
        if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
            raise RepositoryPathError(f"'{path}' is an absolute path; use a path relative to "
                                      "the repository root")
        norm = posixpath.normpath(path)
        if norm == ".." or norm.startswith("../"):
            raise RepositoryPathError(f"'{path}' points outside the repository")
        if norm in self.snapshot.rejected:
            self.reads[norm] = file_hash(self.snapshot, norm)
            raise RepositoryPathError(f"'{path}': {self.snapshot.rejected[norm]}")
        return norm

    def _content(self, path: str) -> tuple[str, bytes]:
        norm = self.repo_path(path)
        content = self.snapshot.files.get(norm)
        self.reads[norm] = file_hash(self.snapshot, norm)
        if content is None:
            raise RepositoryPathError(f"'{path}' does not exist in the repository")
        return norm, content

    def artifact(self, path: str) -> Artifact:
        norm, content = self._content(path)
        if norm not in self.artifacts:
            digest = hashlib.sha256(content).hexdigest()
            uri = f"{self.s3_base}/artifacts/{digest[:32]}/{posixpath.basename(norm)}"
            self.artifacts[norm] = Artifact(norm, uri, digest, len(content))
        return self.artifacts[norm]

    def qa_runner(self) -> tuple[Artifact, str]:
        """The QA runner's wheel (an artifact) and the S3 prefix of its drivers' wheels."""
        runner = self.options.qa_runner
        if runner is None:
            raise CompileError("the compilation was given no QA runner")
        uri = f"{self.s3_base}/artifacts/{runner.sha256[:32]}/{runner.wheel_name}"
        artifact = Artifact(runner.artifact_path, uri, runner.sha256, runner.size)
        self.artifacts[artifact.path] = artifact
        self.qa_wheelhouse = f"{self.s3_base}/qa-runner/wheelhouse/"
        return artifact, self.qa_wheelhouse

    def directory_artifacts(self, path: str) -> tuple[str, list[Artifact]]:
        """All files of a repository directory, under one content-addressed S3 prefix."""
        norm = self.repo_path(path.rstrip("/") or "/")
        if norm in (".", ""):
            raise RepositoryPathError(f"'{path}' is the whole repository; name the directory "
                                      "that holds the scripts")
        names = [n for n in self.snapshot.under(norm) if n not in self.snapshot.rejected]
        self.reads[DIRECTORY + norm] = file_hash(self.snapshot, DIRECTORY + norm)
        for name in names:
            self.reads[name] = file_hash(self.snapshot, name)
        if not names:
            raise RepositoryPathError(f"'{path}' is not a directory with files in the "
                                      "repository")
        listing = "\n".join(
            f"{n[len(norm) + 1:]} {hashlib.sha256(self.snapshot.files[n]).hexdigest()}"
            for n in names)
        prefix = (f"{self.s3_base}/artifacts/"
                  f"{hashlib.sha256(listing.encode()).hexdigest()[:32]}/{posixpath.basename(norm)}")
        found = []
        for name in names:
            content = self.snapshot.files[name]
            artifact = Artifact(name, f"{prefix}/{name[len(norm) + 1:]}",
                                hashlib.sha256(content).hexdigest(), len(content))
            self.artifacts[name] = artifact
            found.append(artifact)
        return prefix, found

    def text(self, path: str) -> str:
        """A file the compiler parses (SQL): refused over ``max_sql_bytes``, before decoding."""
        norm, content = self._content(path)
        if len(content) > self.options.max_sql_bytes:
            raise CompileError(too_big_to_parse(norm, len(content), self.options.max_sql_bytes),
                               hint="split it, or raise limits.max_sql_bytes in "
                                    "reconciler.yaml", location=Location(norm, 1))
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = content.count(b"\n", 0, exc.start) + 1
            raise CompileError(f"'{path}' is not UTF-8 text ({exc.reason} at byte {exc.start})",
                             hint="save the file as UTF-8",
                             location=Location(self.repo_path(path), line)) from None

    def table(self, path: str) -> TableDefinition:
        norm = self.repo_path(path)
        if norm not in self.tables:
            self.tables[norm] = load_table(norm, self.text(norm))
        return self.tables[norm]


def too_big_to_parse(path: str, size: int, limit: int) -> str:
    return (f"{path} is {size:,} bytes, over the limit of {limit:,} bytes for SQL that is "
            "parsed (limits.max_sql_bytes)")


def load_table(path: str, text: str) -> TableDefinition:
    """The table defined in a repository file; errors point into that file."""
    try:
        return parse_table_definition(text)
    except TableDefinitionError as exc:
        raise CompileError(f"table definition: {exc}", hint=exc.hint,
                         location=Location(path, exc.line, exc.column)) from None
