"""Compiles one manifest for one environment into a :class:`CompiledPipeline`.

Pure: the repository arrives as a snapshot of bytes, the schedule's anchor date as an argument.
Object ids derive from step names (``load_staging``, ``load_staging_output``...), and the shared
objects have fixed ids (``Default``, ``DefaultSchedule``, ``Ec2Instance``, ``EmrCluster``,
``FailureAlarm``, ``RedshiftDatabase``...), so adding or reordering steps leaves the other
objects' ids alone. Files that steps reference become artifacts with content-addressed S3 keys.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from ..errors import Location, Problem
from ..snapshot import Snapshot
from .config import EnvConfig
from .definition import (
    Artifact,
    CompiledPipeline,
    Field,
    Parameter,
    PipelineObject,
    Ref,
    SecretRef,
    make_object,
)
from .manifest import InputRef, Manifest, StepSpec
from .servicemodel import DEFAULT_MAX_OBJECTS, check_definition
from .sql import TableDefinition, TableDefinitionError, parse_table_definition
from .steps.base import OutputNode, StepCompileError, StepResult, StepType

FREQUENCIES = {
    "one-time": ("15 minutes", 1),
    "hourly": ("1 hours", None),
    "daily": ("1 days", None),
    "weekly": ("1 weeks", None),
    "monthly": ("1 months", None),
    "on-demand": (None, None),
}
DEFAULT_TERMINATE_AFTER = "6 Hours"
TIMESTAMP_DIR = "#{format(@scheduledStartTime, 'YYYY-MM-dd-HH-mm-ss')}"
_LOAD_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_STAGING_VAR = re.compile(r"(?<![${A-Za-z0-9_])((?:INPUT|OUTPUT)\d+_STAGING_DIR)\b")


@dataclass(frozen=True)
class CompileOptions:
    """Inputs of a compilation that do not come from the repository."""

    start_date: date
    max_objects: int = DEFAULT_MAX_OBJECTS


StepLookup = Callable[[str], StepType | None]


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
        self.results: dict[str, StepResult] = {}
        self.uses_resource: set[str] = set()

    # -- objects -------------------------------------------------------------------------------

    def add(self, obj: PipelineObject) -> Ref:
        existing = self.objects.get(obj.id)
        if existing is not None and existing != obj:
            raise StepCompileError(
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
            raise StepCompileError(
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
        """An encrypted ``*my...Password`` parameter for a secret reference of the config."""
        if not isinstance(ref, dict) or not (ref.get("from_env") or ref.get("from_file")):
            raise StepCompileError(
                f"the config has no {where}.PASSWORD",
                hint=f"set {where}.PASSWORD: {{from_env: NAME}} or {{from_file: PATH}}")
        words = [kind, *(re.split(r"[^A-Za-z0-9]+", alias) if alias else []), "password"]
        pid = "*my" + "".join(w[:1].upper() + w[1:] for w in words if w)
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
            raise ValueError(f"'{path}' is an absolute path; use a path relative to the "
                             "repository root")
        norm = posixpath.normpath(path)
        if norm == ".." or norm.startswith("../"):
            raise ValueError(f"'{path}' points outside the repository")
        if norm in self.snapshot.rejected:
            raise ValueError(f"'{path}': {self.snapshot.rejected[norm]}")
        return norm

    def artifact(self, path: str) -> Artifact:
        norm = self.repo_path(path)
        if norm not in self.snapshot.files:
            raise FileNotFoundError(f"'{path}' does not exist in the repository")
        if norm not in self.artifacts:
            content = self.snapshot.files[norm]
            digest = hashlib.sha256(content).hexdigest()
            uri = f"{self.s3_base}/artifacts/{digest[:32]}/{posixpath.basename(norm)}"
            self.artifacts[norm] = Artifact(norm, uri, digest, len(content))
        return self.artifacts[norm]

    def directory_artifacts(self, path: str) -> tuple[str, list[Artifact]]:
        """All files of a repository directory, under one content-addressed S3 prefix."""
        norm = self.repo_path(path.rstrip("/"))
        names = [n for n in self.snapshot.under(norm) if n not in self.snapshot.rejected]
        if not names:
            raise FileNotFoundError(f"'{path}' is not a directory with files in the repository")
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
        norm = self.repo_path(path)
        if norm not in self.snapshot.files:
            raise FileNotFoundError(f"'{path}' does not exist in the repository")
        try:
            return self.snapshot.files[norm].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"'{path}' is not UTF-8 text") from None

    def table(self, path: str) -> TableDefinition:
        norm = self.repo_path(path)
        if norm not in self.tables:
            text = self.text(norm)
            try:
                self.tables[norm] = parse_table_definition(text)
            except TableDefinitionError as exc:
                raise TableFileError(norm, exc) from None
        return self.tables[norm]


class TableFileError(Exception):
    """A table definition that does not parse, located in its own file."""

    def __init__(self, path: str, error: TableDefinitionError):
        super().__init__(str(error))
        self.location = Location(path, error.line, error.column)


class StepContext:
    """The view of the pipeline one step type compiles against (see steps/base.py)."""

    def __init__(self, builder: PipelineBuilder, step: StepSpec, step_type: StepType):
        self.builder = builder
        self.step = step
        self.step_type = step_type
        self.activities: list[str] = []

    # -- naming and errors ---------------------------------------------------------------------

    @property
    def pipeline_name(self) -> str:
        return self.builder.manifest.name

    @property
    def config(self) -> EnvConfig:
        return self.builder.config

    def object_id(self, suffix: str = "") -> str:
        return f"{self.step.name}_{suffix}" if suffix else self.step.name

    def fail(self, message: str, key: str | None = None, hint: str | None = None):
        raise StepCompileError(message, key, hint)

    # -- files ---------------------------------------------------------------------------------

    def _file_call(self, key: str, fn, path: str | None = None):
        value = path if path is not None else self.step.params.get(key)
        if not isinstance(value, str):
            self.fail(f"'{key}' must name a file in the repository", key)
        try:
            return fn(value)
        except (FileNotFoundError, ValueError) as exc:
            self.fail(str(exc), key, "paths are relative to the repository root")

    def file_uri(self, key: str, path: str | None = None) -> str:
        return self._file_call(key, self.builder.artifact, path).s3_uri

    def text(self, key: str) -> str:
        return self._file_call(key, self.builder.text)

    def table(self, key: str) -> TableDefinition:
        return self._file_call(key, self.builder.table)

    def directory_uri(self, key: str) -> str:
        return self._file_call(key, lambda p: self.builder.directory_artifacts(p)[0])

    # -- objects -------------------------------------------------------------------------------

    def add(self, suffix: str, type: str | None, **fields: Any) -> Ref:
        obj = make_object(self.object_id(suffix), origin=self.step.location, type=type,
                          **fields)
        return self.builder.add(obj)

    def output_node(self, name: str | None = None, *, path: str | None = None,
                    file_path: str | None = None, data_format: Ref | None = None) -> OutputNode:
        """An S3 data node this step writes (or, for extract steps, points at)."""
        suffix = f"output_{name}" if name else "output"
        if file_path is not None:
            ref = self.add(suffix, "S3DataNode", filePath=file_path, dataFormat=data_format)
            return OutputNode(ref, file_path, is_file=True)
        if path is None:
            custom = self.step.params.get("output_path")
            path = custom.rstrip("/") if custom else (
                f"{self.builder.s3_base}/data/{self.pipeline_name}/{self.step.name}/"
                f"{TIMESTAMP_DIR}")
            if name:
                path = f"{path}/{name}"
        ref = self.add(suffix, "S3DataNode", directoryPath=path, dataFormat=data_format)
        return OutputNode(ref, path)

    def inputs(self) -> list[OutputNode]:
        """The data nodes this step reads, in ``input_node`` order."""
        nodes = []
        for ref in self.step.inputs:
            node = self._input_node(ref)
            if node is not None:
                nodes.append(node)
        if any(r.subdirectory for r in self.step.inputs) and nodes:
            return [self._combine_inputs(nodes)]
        return nodes

    def _input_node(self, ref: InputRef) -> OutputNode | None:
        result = self.builder.results.get(ref.step)
        if result is None:
            return None
        if ref.output is not None:
            return result.named_outputs.get(ref.output)
        if result.output is None and self.step.raw.get("input_node"):
            self.fail(f"step '{ref.step}' has no output to read", "input_node",
                      "remove input_node or point it at a step that writes data")
        return result.output

    def _combine_inputs(self, nodes: list[OutputNode]) -> OutputNode:
        """``input_node`` as a mapping: copy each input into a sub-directory of one node."""
        path = (f"{self.builder.s3_base}/data/{self.pipeline_name}/{self.step.name}_inputs/"
                f"{TIMESTAMP_DIR}")
        combined = self.output_node("inputs", path=path)
        combined_node = OutputNode(combined.ref, combined.path)
        commands = []
        for i, ref in enumerate(r for r in self.step.inputs if self._input_node(r)):
            sub = ref.subdirectory or f"input{i + 1}"
            target = f"${{OUTPUT1_STAGING_DIR}}/{sub}"
            commands.append(f"mkdir -p {target} && cp -r ${{INPUT{i + 1}_STAGING_DIR}}/. {target}/")
        ref = self.activity("ShellCommandActivity", suffix="combine_inputs", inputs=nodes,
                            outputs=[combined_node], resource="ec2",
                            command=" && ".join(commands), stage=True)
        return OutputNode(combined.ref, combined.path, producer=ref.id)

    def activity(self, type: str, *, suffix: str = "", inputs: list[OutputNode] | None = None,
                 outputs: list[OutputNode] | None = None, resource: str | None = None,
                 after: list[str] | None = None, **fields: Any) -> Ref:
        """An activity with the shared wiring: dependencies, runsOn or workerGroup, retries,
        retry delay and the failure alarm. Activities of one step run one after the other."""
        builder = self.builder
        if after is None:
            after = list(self.activities[-1:]) or self.dependency_ids()
        for node in inputs or []:
            if node.producer and node.producer not in after:
                after = [*after, node.producer]
        resource = resource or self.step.params.get("resource_type") or self.step_type.resource
        wiring: dict[str, Any] = {}
        worker_group = self.step.params.get("worker_group")
        if worker_group:
            wiring["workerGroup"] = worker_group
        elif resource in ("ec2", "emr"):
            group = builder.config.get(resource, "WORKER_GROUP")
            override = builder.manifest.data.get(
                "ec2_resource_config" if resource == "ec2" else "emr_cluster_config") or {}
            group = override.get("worker_group", group)
            if group:
                wiring["workerGroup"] = group
            else:
                builder.uses_resource.add(resource)
                wiring["runsOn"] = Ref("Ec2Instance" if resource == "ec2" else "EmrCluster")
        retries = self.step.max_retries
        if retries is None:
            retries = builder.manifest.data.get("max_retries")
        if retries is None:
            retries = builder.config.get("etl", "MAX_RETRIES")
        if "FailureAlarm" in builder.objects:
            wiring["onFail"] = Ref("FailureAlarm")
        obj_fields = {
            **wiring,
            "dependsOn": [Ref(a) for a in after],
            "input": [n.ref for n in inputs or []],
            "output": [n.ref for n in outputs or []],
            "maximumRetries": retries,
            "retryDelay": builder.config.get("etl", "RETRY_DELAY"),
            **fields,
        }
        ref = self.add(suffix, type, **obj_fields)
        self.activities.append(ref.id)
        return ref

    def dependency_ids(self) -> list[str]:
        """Tail activities of the steps this step depends on (steps without one are skipped)."""
        ids = []
        for name in self.step.depends_on:
            result = self.builder.results.get(name)
            if result and result.activities and result.activities[-1] not in ids:
                ids.append(result.activities[-1])
        return ids

    # -- shared objects ------------------------------------------------------------------------

    def tsv_format(self) -> Ref:
        return self.builder.shared(make_object("TsvFormat", type="TSV"))

    def redshift(self) -> Ref:
        cfg = self.builder.config.section("redshift")
        if not cfg:
            self.fail("this step needs Redshift, and the config has no redshift section",
                      hint="add redshift: {HOST, DATABASE_NAME, USERNAME, PASSWORD} to the "
                           "config")
        password = self.builder.secret_parameter("redshift", None, cfg.get("PASSWORD"),
                                                 "redshift")
        fields: dict[str, Any] = {"username": cfg.get("USERNAME"),
                                  "databaseName": cfg.get("DATABASE_NAME"),
                                  "*password": password}
        if cfg.get("CLUSTER_ID"):
            fields["clusterId"] = cfg["CLUSTER_ID"]
        elif cfg.get("HOST"):
            port = cfg.get("PORT", 5439)
            fields["connectionString"] = (f"jdbc:redshift://{cfg['HOST']}:{port}/"
                                          f"{cfg.get('DATABASE_NAME', '')}")
        else:
            self.fail("the redshift config needs CLUSTER_ID or HOST",
                      hint="set redshift.CLUSTER_ID (the first word of HOST)")
        return self.builder.shared(make_object("RedshiftDatabase", type="RedshiftDatabase",
                                               **fields))

    def mysql(self, alias: str, database: str) -> Ref:
        hosts = self.builder.config.section("mysql")
        if alias not in hosts:
            from ..errors import did_you_mean

            self.fail(f"host '{alias}' is not in the mysql section of the config", "host_name",
                      did_you_mean(alias, hosts) or f"known hosts: {', '.join(sorted(hosts))}")
        cfg = hosts[alias]
        password = self.builder.secret_parameter("mysql", alias, cfg.get("PASSWORD"),
                                                 f"mysql.{alias}")
        oid = "MysqlDatabase_" + re.sub(r"[^A-Za-z0-9]+", "_", f"{alias}_{database}")
        return self.builder.shared(make_object(
            oid, type="JdbcDatabase", jdbcDriverClass="com.mysql.jdbc.Driver",
            connectionString=f"jdbc:mysql://{cfg.get('HOST')}:{cfg.get('PORT', 3306)}/{database}",
            username=cfg.get("USERNAME"), **{"*password": password}))

    def postgres(self) -> Ref:
        cfg = self.builder.config.section("postgres")
        if not cfg:
            self.fail("this step needs PostgreSQL, and the config has no postgres section",
                      hint="add postgres: {HOST, DATABASE_NAME, USERNAME, PASSWORD}")
        password = self.builder.secret_parameter("postgres", None, cfg.get("PASSWORD"),
                                                 "postgres")
        return self.builder.shared(make_object(
            "PostgresDatabase", type="JdbcDatabase", jdbcDriverClass="org.postgresql.Driver",
            connectionString=(f"jdbc:postgresql://{cfg.get('HOST')}:{cfg.get('PORT', 5432)}/"
                              f"{cfg.get('DATABASE_NAME', '')}"),
            username=cfg.get("USERNAME"), **{"*password": password}))

    def s3_base(self) -> str:
        return self.builder.s3_base


def staging_vars(value: Any) -> str:
    """Dataduct lets arguments say ``INPUT1_STAGING_DIR``; the service expands
    ``${INPUT1_STAGING_DIR}``."""
    return _STAGING_VAR.sub(r"${\1}", str(value))


# -- the pipeline ------------------------------------------------------------------------------


def parse_load_time(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value, 0) if 0 <= value <= 23 else None
    match = _LOAD_TIME.match(str(value).strip())
    if not match:
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    return (hour, minute) if hour < 24 and minute < 60 else None


def compile_manifest(
    manifest: Manifest,
    config: EnvConfig,
    snapshot: Snapshot,
    steps: StepLookup,
    options: CompileOptions,
    problems: list[Problem],
) -> CompiledPipeline | None:
    """Compile one checked manifest for one environment; None (with problems) on errors."""
    before = len(problems)
    builder = PipelineBuilder(manifest, config, snapshot, options, problems)
    doc = manifest.document
    data = manifest.data
    try:
        _pipeline_objects(builder)
    except StepCompileError as exc:
        problems.append(Problem(doc.locate(("frequency",) if exc.key else ()), str(exc),
                                hint=exc.hint, code="compile"))
        return None

    dependency_override = bool(config.get("etl", "DEPENDENCY_OVERRIDE", False))
    for spec in manifest.steps:
        step_type = steps(spec.step_type)
        assert step_type is not None  # parse_manifest checked the type
        if dependency_override and spec.step_type == "pipeline-dependencies":
            builder.results[spec.name] = StepResult()
            continue
        ctx = StepContext(builder, spec, step_type)
        try:
            result = step_type.compile(ctx)
            result.activities = result.activities or list(ctx.activities)
            builder.results[spec.name] = result
        except StepCompileError as exc:
            path = (*spec.key_path, exc.key) if exc.key else spec.key_path
            location = spec.locate(exc.key) if exc.key else spec.location
            problems.append(Problem(location, str(exc), path, hint=exc.hint,
                                    code="compile"))
            builder.results[spec.name] = StepResult()
        except TableFileError as exc:
            problems.append(Problem(exc.location, f"table definition: {exc}",
                                    hint=f"used by step '{spec.name}' at {spec.location}",
                                    code="sql"))
            builder.results[spec.name] = StepResult()
    if len(problems) > before:
        return None
    _wire_phases(builder)
    try:
        _resources(builder)
    except StepCompileError as exc:
        key = "emr_cluster_config" if "emr" in str(exc) else "ec2_resource_config"
        problems.append(Problem(doc.locate((key,) if key in data else ()), str(exc),
                                hint=exc.hint, code="compile"))
        return None

    for name, value in sorted((data.get("variables") or {}).items()):
        pid = "my" + "".join(w[:1].upper() + w[1:] for w in re.split(r"_+", name) if w)
        kind = "Integer" if isinstance(value, int) and not isinstance(value, bool) else (
            "Double" if isinstance(value, float) else "String")
        builder.parameters[pid] = Parameter(pid, kind, f"variables.{name}")
        builder.parameter_values[pid] = (str(value).lower() if isinstance(value, bool)
                                         else str(value))

    compiled = CompiledPipeline(
        name=manifest.name,
        environment=config.environment,
        manifest=manifest.path,
        description=data.get("description"),
        objects=tuple(sorted(builder.objects.values(), key=lambda o: o.id)),
        parameters=tuple(sorted(builder.parameters.values(), key=lambda p: p.id)),
        parameter_values=tuple(sorted(builder.parameter_values.items())),
        secrets=tuple(sorted(builder.secrets.values(), key=lambda s: s.parameter_id)),
        artifacts=tuple(sorted(builder.artifacts.values(), key=lambda a: a.path)),
    )
    api = compiled.api_form()
    for finding in check_definition(api["pipelineObjects"], api["parameterObjects"],
                                    api["parameterValues"], max_objects=options.max_objects):
        obj = compiled.object(finding.object_id) if finding.object_id else None
        location = obj.origin if obj is not None and obj.origin else doc.locate(())
        problems.append(Problem(location, f"AWS Data Pipeline would refuse this: "
                                f"{finding.format()}", severity=finding.severity,
                                code="service-model"))
    if any(p.severity == "error" for p in problems[before:]):
        return None
    return compiled


def _pipeline_objects(builder: PipelineBuilder) -> None:
    """Default, DefaultSchedule and FailureAlarm."""
    manifest, config = builder.manifest, builder.config
    data = manifest.data
    doc = manifest.document
    frequency = config.get("etl", "FREQUENCY_OVERRIDE") or data.get("frequency", "one-time")
    if frequency not in FREQUENCIES:
        raise StepCompileError(f"frequency '{frequency}' is not one of "
                               f"{', '.join(FREQUENCIES)}", "frequency")
    period, occurrences = FREQUENCIES[frequency]
    load_time = data.get("load_time", config.get("etl", "DAILY_LOAD_TIME", "00:00"))
    parsed = parse_load_time(load_time)
    if parsed is None:
        builder.problems.append(Problem(doc.locate(("load_time",)),
                                        f"load_time '{load_time}' is not a time of day HH:MM",
                                        ("load_time",), hint="write it as 01:00 (UTC)",
                                        code="schema"))
        parsed = (0, 0)
    default: dict[str, Any] = {
        "scheduleType": "ondemand" if frequency == "on-demand" else "cron",
        "failureAndRerunMode": "CASCADE",
        "role": config.get("etl", "ROLE", "DataPipelineDefaultRole"),
        "resourceRole": config.get("etl", "RESOURCE_ROLE", "DataPipelineDefaultResourceRole"),
        "pipelineLogUri": f"{builder.s3_base}/logs/{manifest.name}/",
    }
    if period is not None:
        hour, minute = parsed
        start = f"{builder.options.start_date.isoformat()}T{hour:02d}:{minute:02d}:00"
        builder.add(make_object("DefaultSchedule", type="Schedule", period=period,
                                startDateTime=start, occurrences=occurrences))
        default["schedule"] = Ref("DefaultSchedule")
    builder.add(make_object("Default", **default))
    topic = data.get("topic_arn") or config.get("etl", "SNS_TOPIC_ARN_FAILURE")
    if topic:
        builder.add(make_object(
            "FailureAlarm", type="SnsAlarm", topicArn=topic,
            subject=f"Dataduct pipeline {manifest.name} failed: #{{node.name}}",
            message="#{node.name} failed at #{node.@actualStartTime}: #{node.errorMessage}",
            role=config.get("etl", "ROLE", "DataPipelineDefaultRole")))


def _wire_phases(builder: PipelineBuilder) -> None:
    """Bootstrap steps run before the first activities on their resource; teardown steps run
    after every other activity."""
    steps = builder.manifest.steps
    objects = builder.objects

    def tail(phase: str) -> str | None:
        ids = [a for s in steps if s.phase == phase for a in builder.results[s.name].activities]
        return ids[-1] if ids else None

    def add_dependency(activity_id: str, dep: str) -> None:
        obj = objects[activity_id]
        if any(f.key == "dependsOn" and f.value == dep for f in obj.fields):
            return
        fields = tuple(sorted((*obj.fields, Field("dependsOn", dep, True)),
                              key=lambda f: f.key))
        objects[activity_id] = PipelineObject(obj.id, obj.name, fields, obj.origin)

    for resource in ("ec2", "emr"):
        last = tail(f"bootstrap-{resource}")
        if last is None:
            continue
        runs_on = "Ec2Instance" if resource == "ec2" else "EmrCluster"
        for spec in steps:
            if spec.phase != "main":
                continue
            for activity_id in builder.results[spec.name].activities:
                obj = objects[activity_id]
                if obj.get("runsOn") == runs_on and not obj.get("dependsOn"):
                    add_dependency(activity_id, last)
    teardown_first = [builder.results[s.name].activities[0] for s in steps
                      if s.phase == "teardown" and builder.results[s.name].activities]
    if teardown_first:
        main = [a for s in steps if s.phase == "main" for a in builder.results[s.name].activities]
        depended = {f.value for a in main for f in objects[a].fields if f.key == "dependsOn"}
        for leaf in [a for a in main if a not in depended]:
            add_dependency(teardown_first[0], leaf)


def _resources(builder: PipelineBuilder) -> None:
    config, data = builder.config, builder.manifest.data
    key_pair = config.get("etl", "KEY_PAIR")
    if "ec2" in builder.uses_resource:
        ec2 = config.section("ec2")
        over = data.get("ec2_resource_config") or {}
        groups = over.get("security_groups") or (
            [over["security_group"]] if over.get("security_group") else None)
        if groups is None and ec2.get("SECURITY_GROUP"):
            groups = [ec2["SECURITY_GROUP"]]
        ids = [g for g in groups or [] if str(g).startswith("sg-")] + list(
            ec2.get("SECURITY_GROUP_IDS") or [])
        names = [g for g in groups or [] if not str(g).startswith("sg-")]
        builder.add(make_object(
            "Ec2Instance", type="Ec2Resource",
            instanceType=over.get("instance_type", ec2.get("INSTANCE_TYPE", "m1.large")),
            imageId=over.get("ami", ec2.get("ETL_AMI")),
            securityGroups=names or None, securityGroupIds=ids or None,
            subnetId=over.get("subnet_id", ec2.get("SUBNET_ID")),
            keyPair=over.get("key_pair", key_pair),
            terminateAfter=over.get("terminate_after",
                                    ec2.get("TERMINATE_AFTER", DEFAULT_TERMINATE_AFTER)),
            actionOnTaskFailure="terminate"))
    if "emr" in builder.uses_resource:
        emr = config.section("emr")
        over = data.get("emr_cluster_config") or {}
        bootstrap = over.get("bootstrap")
        release = over.get("release_label", emr.get("RELEASE_LABEL"))
        ami = None if release else over.get("ami_version", emr.get("CLUSTER_AMI"))
        builder.add(make_object(
            "EmrCluster", type="EmrCluster",
            masterInstanceType=over.get("master_instance_size",
                                        emr.get("MASTER_INSTANCE_TYPE", "m1.large")),
            coreInstanceType=over.get("instance_size", emr.get("CORE_INSTANCE_TYPE", "m1.large")),
            coreInstanceCount=over.get("num_instances", emr.get("NUM_CORE_INSTANCES", 1)),
            taskInstanceType=over.get("task_instance_size") if over.get("task_instances")
            else None,
            taskInstanceCount=over.get("task_instances"),
            taskInstanceBidPrice=over.get("task_bid_price", emr.get("TASK_INSTANCE_BID_PRICE"))
            if over.get("task_instances") else None,
            amiVersion=ami, releaseLabel=release,
            applications=over.get("applications"),
            bootstrapAction=[bootstrap] if isinstance(bootstrap, str) else bootstrap,
            keyPair=key_pair,
            terminateAfter=over.get("terminate_after",
                                    emr.get("CLUSTER_TIMEOUT", DEFAULT_TERMINATE_AFTER))))
