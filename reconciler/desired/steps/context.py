"""The view of the pipeline one step compiles in: the step API.

A :class:`StepContext` gives a step type everything it may use and nothing else: the step's
parameters, the shared wiring of activities (inputs, outputs, dependencies, the resource,
retries, the failure alarm), the shared objects (databases, data formats), repository files as
content-addressed artifacts, and SQL parsed with its errors located in the user's own file or
YAML line. Errors are raised as :class:`~reconciler.errors.CompileError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from ...errors import CompileError, Location, did_you_mean
from ..builder import PipelineBuilder
from ..config import EnvConfig
from ..definition import Artifact, PipelineObject, QaRunner, Ref, make_object
from ..manifest import InputRef, StepSpec
from ..sql import (
    DIALECT,
    REDSHIFT_COMMANDS,
    ParsedSql,
    SqlError,
    TableDefinition,
    parse_condition,
    parse_query,
    parse_sql,
)
from .base import OutputNode, StepResult, StepType

TIMESTAMP_DIR = "#{format(@scheduledStartTime, 'YYYY-MM-dd-HH-mm-ss')}"
_STAGING_VAR = re.compile(r"(?<![${A-Za-z0-9_])((?:INPUT|OUTPUT)\d+_STAGING_DIR)\b")
T = TypeVar("T")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def staging_vars(value: Any) -> str:
    """Dataduct lets arguments say ``INPUT1_STAGING_DIR``; the service expands
    ``${INPUT1_STAGING_DIR}``."""
    return _STAGING_VAR.sub(r"${\1}", str(value))


@dataclass(frozen=True)
class SqlSource:
    """SQL a step reads: the text, the step parameter it comes from, and the repository file
    when the parameter names one."""

    text: str
    key: str
    file: str | None = None


@dataclass(frozen=True)
class DatabaseLogin:
    """How a check command reaches a database: host, port, database, user and the expression
    of the encrypted parameter holding the password (never the password)."""

    host: str
    port: int
    database: str
    user: str
    password: str


class StepContext:
    """The view of the pipeline one step type compiles against."""

    def __init__(self, builder: PipelineBuilder, step: StepSpec, step_type: StepType,
                 results: dict[str, StepResult]):
        self._builder = builder
        self.step = step
        self.step_type = step_type
        self._results = results
        self.activities: list[str] = []

    # -- naming and errors ---------------------------------------------------------------------

    @property
    def pipeline_name(self) -> str:
        return self._builder.manifest.name

    @property
    def config(self) -> EnvConfig:
        return self._builder.config

    def object_id(self, suffix: str = "") -> str:
        return f"{self.step.name}_{suffix}" if suffix else self.step.name

    def fail(self, message: str, key: str | None = None, hint: str | None = None,
             location: Location | None = None) -> NoReturn:
        raise CompileError(message, key, hint, location)

    def param(self, key: str, default: Any = None) -> Any:
        value = self.step.params.get(key)
        return default if value is None else value

    # -- files ---------------------------------------------------------------------------------

    def _file_call(self, key: str, fn: Callable[[str], T], path: str | None = None) -> T:
        value = path if path is not None else self.step.params.get(key)
        if not isinstance(value, str):
            self.fail(f"'{key}' must name a file in the repository", key)
        try:
            return fn(value)
        except CompileError as exc:
            if exc.location is not None:
                raise
            self.fail(str(exc), key, exc.hint or "paths are relative to the repository root")

    def file_uri(self, key: str, path: str | None = None) -> str:
        return self._file_call(key, self._builder.artifact, path).s3_uri

    def text(self, key: str) -> str:
        return self._file_call(key, self._builder.text)

    def table(self, key: str) -> TableDefinition:
        return self._file_call(key, self._builder.table)

    def directory_uri(self, key: str) -> str:
        return self._file_call(key, lambda p: self._builder.directory_artifacts(p)[0])

    def s3_base(self) -> str:
        return self._builder.s3_base

    def qa_runner(self) -> tuple[QaRunner, Artifact, str]:
        """The QA runner, its wheel (uploaded with the pipeline) and its drivers' prefix."""
        runner = self._builder.options.qa_runner
        if runner is None:
            self.fail("this step runs the QA runner, and the compilation was given none",
                      hint="compile with CompileOptions(qa_runner=reconciler.qa.bundle."
                           "qa_runner())")
        wheel, wheelhouse = self._builder.qa_runner()
        return runner, wheel, wheelhouse

    def pipeline_in_aws(self, name: str, key: str) -> str:
        """The name in AWS of another pipeline of the repository, deployed to this
        environment; a name no manifest has is an error with a suggestion."""
        known = self._builder.options.pipeline_names.get(self.config.environment, {})
        if name not in known:
            self.fail(f"no pipeline named '{name}' is deployed to {self.config.environment}",
                      key, did_you_mean(name, known) or "name a pipeline of this repository")
        return known[name]

    # -- SQL -----------------------------------------------------------------------------------

    def sql_source(self, inline: str, file_key: str = "script") -> SqlSource:
        """SQL written in the manifest (``inline``) or in the repository file ``file_key``
        names, whichever the step gives."""
        if self.param(inline) is not None:
            return SqlSource(str(self.param(inline)), inline)
        path = self.param(file_key)
        if path is None:
            self.fail(f"give {inline} or {file_key}", inline)
        return SqlSource(self.text(file_key), file_key, self._builder.repo_path(str(path)))

    def inline_sql(self, key: str, text: str | None = None) -> SqlSource:
        return SqlSource(str(self.param(key) if text is None else text), key)

    def where(self, source: SqlSource, line: int | None, column: int | None) -> Location:
        """The place of a line and column of the source's text: in its file, or on the YAML
        line the SQL is written on."""
        if source.file is not None:
            return Location(source.file, line, column)
        assert self.step.document is not None
        return self.step.document.locate_in_scalar((*self.step.key_path, source.key), line,
                                                   column)

    def parse(self, source: SqlSource, *, query: bool = False, script: bool = False,
              condition: bool = False, dialect: type = DIALECT, what: str | None = None
              ) -> ParsedSql:
        """Parse the source (``query``: exactly one SELECT reading a table; ``script``: a
        script of any statements Redshift runs; ``condition``: what follows WHERE); errors
        point at the user's file or YAML line."""
        try:
            if condition:
                return parse_condition(source.text, dialect, what=what or source.key)
            if query:
                return parse_query(source.text, dialect, what=what or f"the {source.key} query")
            return parse_sql(source.text, dialect,
                             commands=REDSHIFT_COMMANDS if script else frozenset())
        except SqlError as error:
            self.fail(str(error), source.key, error.hint,
                      self.where(source, error.line, error.column))

    @contextmanager
    def sql_errors(self, key: str | None = None) -> Iterator[None]:
        """Report a SqlError of generated SQL as an error of this step's ``key``."""
        try:
            yield
        except SqlError as error:
            self.fail(str(error), key, error.hint)

    # -- objects -------------------------------------------------------------------------------

    def add(self, suffix: str, type: str | None, **fields: Any) -> Ref:
        obj = make_object(self.object_id(suffix), origin=self.step.location, type=type,
                          **fields)
        return self._builder.add(obj)

    def add_object(self, object_id: str, type: str, **fields: Any) -> Ref:
        """An object with an id of the step type's choosing (templates' extra objects)."""
        return self._builder.add(make_object(object_id, origin=self.step.location, type=type,
                                             **fields))

    def object(self, ref: Ref) -> PipelineObject:
        return self._builder.objects[ref.id]

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
                f"{self._builder.s3_base}/data/{self.pipeline_name}/{self.step.name}/"
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
        result = self._results.get(ref.step)
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
        path = (f"{self._builder.s3_base}/data/{self.pipeline_name}/{self.step.name}_inputs/"
                f"{TIMESTAMP_DIR}")
        combined = self.output_node("inputs", path=path)
        commands = []
        for i, source in enumerate(r for r in self.step.inputs if self._input_node(r)):
            sub = source.subdirectory or f"input{i + 1}"
            if not _PLAIN_NAME.fullmatch(sub):
                self.fail(f"input_node sub-directory '{sub}' must be a plain name (letters, "
                          "digits, '.', '_', '-')", "input_node")
            target = f'"${{OUTPUT1_STAGING_DIR}}/{sub}"'
            commands.append(f'mkdir -p {target} && cp -r "${{INPUT{i + 1}_STAGING_DIR}}/." '
                            f"{target}/")
        copier = self.activity("ShellCommandActivity", suffix="combine_inputs", inputs=nodes,
                               outputs=[combined], resource="ec2",
                               command=" && ".join(commands), stage=True)
        return OutputNode(combined.ref, combined.path, producer=copier.id)

    def _wiring(self, resource: str | None) -> dict[str, Any]:
        """runsOn or workerGroup for an activity on ``resource``."""
        builder = self._builder
        worker_group = self.step.params.get("worker_group")
        if worker_group:
            return {"workerGroup": worker_group}
        if resource not in ("ec2", "emr"):
            return {}
        group = builder.config.get(resource, "WORKER_GROUP")
        override = builder.manifest.data.get(
            "ec2_resource_config" if resource == "ec2" else "emr_cluster_config") or {}
        group = override.get("worker_group", group)
        if group:
            return {"workerGroup": group}
        builder.uses_resource.add(resource)
        return {"runsOn": Ref("Ec2Instance" if resource == "ec2" else "EmrCluster")}

    def _retries(self) -> Any:
        for value in (self.step.max_retries, self._builder.manifest.data.get("max_retries"),
                      self._builder.config.get("etl", "MAX_RETRIES")):
            if value is not None:
                return value
        return None

    def activity(self, type: str, *, suffix: str = "", inputs: list[OutputNode] | None = None,
                 outputs: list[OutputNode] | None = None, resource: str | None = None,
                 after: list[str] | None = None, **fields: Any) -> Ref:
        """An activity with the shared wiring: dependencies, runsOn or workerGroup, retries,
        retry delay and the failure alarm. Activities of one step run one after the other."""
        if after is None:
            after = list(self.activities[-1:]) or self.dependency_ids()
        for node in inputs or []:
            if node.producer and node.producer not in after:
                after = [*after, node.producer]
        resource = resource or self.step.params.get("resource_type") or self.step_type.resource
        wiring = self._wiring(resource)
        if "FailureAlarm" in self._builder.objects:
            wiring["onFail"] = Ref("FailureAlarm")
        obj_fields = {
            **wiring,
            "dependsOn": [Ref(a) for a in after],
            "input": [n.ref for n in inputs or []],
            "output": [n.ref for n in outputs or []],
            "maximumRetries": self._retries(),
            "retryDelay": self._builder.config.get("etl", "RETRY_DELAY"),
            **fields,
        }
        ref = self.add(suffix, type, **obj_fields)
        self.activities.append(ref.id)
        return ref

    def dependency_ids(self) -> list[str]:
        """Tail activities of the steps this step depends on (steps without one are skipped)."""
        ids = []
        for name in self.step.depends_on:
            result = self._results.get(name)
            if result and result.activities and result.activities[-1] not in ids:
                ids.append(result.activities[-1])
        return ids

    # -- shared objects ------------------------------------------------------------------------

    def tsv_format(self) -> Ref:
        return self._builder.shared(make_object("TsvFormat", type="TSV"))

    def _password(self, kind: str, alias: str | None, section: dict[str, Any], where: str
                  ) -> str:
        return self._builder.secret_parameter(kind, alias, section.get("PASSWORD"), where)

    def _section(self, name: str, what: str) -> dict[str, Any]:
        cfg = self.config.section(name)
        if not cfg:
            self.fail(f"this step needs {what}, and the config has no {name} section",
                      hint=f"add {name}: {{HOST, DATABASE_NAME, USERNAME, PASSWORD}} to the "
                           "config")
        return cfg

    def redshift(self) -> Ref:
        cfg = self._section("redshift", "Redshift")
        fields: dict[str, Any] = {"username": cfg.get("USERNAME"),
                                  "databaseName": cfg.get("DATABASE_NAME"),
                                  "*password": self._password("redshift", None, cfg, "redshift")}
        if cfg.get("CLUSTER_ID"):
            fields["clusterId"] = cfg["CLUSTER_ID"]
        elif cfg.get("HOST"):
            port = cfg.get("PORT", 5439)
            fields["connectionString"] = (f"jdbc:redshift://{cfg['HOST']}:{port}/"
                                          f"{cfg.get('DATABASE_NAME', '')}")
        else:
            self.fail("the redshift config needs CLUSTER_ID or HOST",
                      hint="set redshift.CLUSTER_ID (the first word of HOST)")
        return self._builder.shared(make_object("RedshiftDatabase", type="RedshiftDatabase",
                                                **fields))

    def mysql_host(self, alias: Any, key: str) -> dict[str, Any]:
        """The mysql config of a host alias (the one lookup of it)."""
        hosts = self.config.section("mysql")
        if alias not in hosts or not isinstance(hosts.get(alias), dict):
            self.fail(f"host '{alias}' is not in the mysql section of the config", key,
                      did_you_mean(str(alias), hosts) or
                      (f"known hosts: {', '.join(sorted(hosts))}" if hosts else
                       "add mysql: {ALIAS: {HOST, USERNAME, PASSWORD}} to the config"))
        return hosts[alias]

    def mysql(self, alias: str, database: str, key: str = "host_name") -> Ref:
        cfg = self.mysql_host(alias, key)
        oid = "MysqlDatabase_" + re.sub(r"[^A-Za-z0-9]+", "_", f"{alias}_{database}")
        fields: dict[str, Any] = {
            "type": "JdbcDatabase", "jdbcDriverClass": "com.mysql.jdbc.Driver",
            "connectionString": f"jdbc:mysql://{cfg.get('HOST')}:{cfg.get('PORT', 3306)}/"
                                f"{database}",
            "username": cfg.get("USERNAME"),
            "*password": self._password("mysql", alias, cfg, f"mysql.{alias}")}
        return self._builder.shared(make_object(oid, **fields))

    def postgres(self) -> Ref:
        cfg = self._section("postgres", "PostgreSQL")
        fields: dict[str, Any] = {
            "type": "JdbcDatabase", "jdbcDriverClass": "org.postgresql.Driver",
            "connectionString": f"jdbc:postgresql://{cfg.get('HOST')}:{cfg.get('PORT', 5432)}/"
                                f"{cfg.get('DATABASE_NAME', '')}",
            "username": cfg.get("USERNAME"),
            "*password": self._password("postgres", None, cfg, "postgres")}
        return self._builder.shared(make_object("PostgresDatabase", **fields))

    def database(self, kind: str, alias: str | None = None, database: str | None = None) -> Ref:
        """A database object by kind: ``redshift``, ``postgres`` or ``mysql`` (with the host
        alias and database), as templates reference them."""
        if kind == "redshift":
            return self.redshift()
        if kind == "postgres":
            return self.postgres()
        if kind == "mysql":
            if not alias or not database:
                self.fail("a mysql database needs a host alias and a database name")
            return self.mysql(alias, database)
        self.fail(f"unknown database '{kind}'", hint="use redshift, postgres or mysql")

    def mysql_login(self, alias: Any, key: str) -> DatabaseLogin:
        cfg = self.mysql_host(alias, key)
        return DatabaseLogin(str(cfg.get("HOST") or ""), int(cfg.get("PORT") or 3306),
                             str(cfg.get("DATABASE_NAME") or ""), str(cfg.get("USERNAME") or ""),
                             self._password("mysql", alias, cfg, f"mysql.{alias}"))

    def redshift_login(self) -> DatabaseLogin:
        cfg = self._section("redshift", "Redshift")
        return DatabaseLogin(str(cfg.get("HOST") or ""), int(cfg.get("PORT") or 5439),
                             str(cfg.get("DATABASE_NAME") or ""), str(cfg.get("USERNAME") or ""),
                             self._password("redshift", None, cfg, "redshift"))
