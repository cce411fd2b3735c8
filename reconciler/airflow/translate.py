"""An AWS Data Pipeline definition as one Apache Airflow 3 DAG file.

The input is the typed object model (:class:`Source`: objects, parameter values, the files
the objects reference), so a manifest compiled for an environment, a definition file in the
console's or the API's form and a live pipeline translate the same way, whatever wrote them.
Each activity becomes a task with the activity's id; preconditions become sensors before
it; an EMR activity's cluster is created, used and terminated around it, as the service does.
``dependsOn`` and the data nodes an activity reads and another writes become edges.

What cannot be translated faithfully is a :class:`Refusal` naming the object and the field
(and, for a manifest, its ``file:line``); :func:`translate` raises them all at once, or with
``best_effort`` writes each refused activity as a task that fails when run, saying why.
Databases are reached through Airflow connections named in the environment's settings
(never a password in the file), AWS through its AWS connection.

The file written imports only Airflow and its providers, does nothing at import time but
build the DAG, and is the same bytes for the same input (:mod:`.pycode` lays it out as
``ruff format`` would).
"""

from __future__ import annotations

import dataclasses
import keyword
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlglot import exp

from ..desired.config import AirflowSettings, snake_case
from ..desired.definition import QA_RUNNER_PATH, Artifact, CompiledPipeline, PipelineObject
from ..desired.sql import (
    DIALECT,
    SqlError,
    parse_sql,
    split_statements,
    to_postgres,
)
from ..errors import Location, ReconcilerError
from ..local.steps import RUNNER_MODULE, qa_check
from ..service.expressions import expression_end
from ..service.model import period_seconds
from . import pycode
from .jinja import FieldLookup, RunTimes, UntranslatableExpression, translate_text
from .schedule import PipelineSchedule, ScheduleError, read_schedule, timetable

GENERATOR = "dataduct-reconciler"
# Fields every object may carry that need no translation of their own.
_COMMON = {"type", "name", "parent", "schedule", "scheduleType", "runsOn", "workerGroup",
           "failureAndRerunMode", "pipelineLogUri", "role", "resourceRole", "dependsOn",
           "maximumRetries", "retryDelay", "attemptTimeout", "onFail", "onSuccess",
           "precondition", "input", "output", "description", "lateAfterTimeout",
           "onLateAction"}
_DATABASE_TYPES = ("RedshiftDatabase", "JdbcDatabase", "RdsDatabase")
_PRECONDITIONS = ("S3KeyExists", "S3PrefixNotEmpty", "Exists", "ShellCommandPrecondition")
# A SqlDataNode may hold its own login instead of naming a database object.
_NODE_LOGIN = {"connectionString", "username", "*password", "jdbcDriverClass"}
# Fields of the EMR application activities checked by refuse_emr_extras.
_EMR_NOT_TRANSLATED = {"hadoopQueue", "preActivityTaskConfig", "postActivityTaskConfig",
                       "resizeClusterBeforeRunning", "resizeClusterMaxInstances"}
_INSERT_MODES = {"APPEND": "APPEND", "TRUNCATE": "REPLACE", "OVERWRITE_EXISTING": "UPSERT"}


class TranslationError(ReconcilerError):
    """The definition has objects or fields that cannot be translated; ``refusals`` lists
    them."""

    def __init__(self, refusals: Sequence[Refusal]):
        self.refusals = tuple(refusals)
        super().__init__("\n".join(r.format() for r in refusals))


@dataclass(frozen=True)
class Refusal:
    """An object or field with no faithful Airflow form, and why."""

    object_id: str
    field: str | None
    message: str
    location: Location | None = None

    def format(self, path: str | None = None) -> str:
        where = ""
        if self.location is not None:
            where = f"{path or self.location.file}:{self.location.line}: "
        name = f"{self.object_id}.{self.field}" if self.field else self.object_id
        return f"{where}{name}: {self.message}"


@dataclass(frozen=True)
class Source:
    """A definition to translate and where it came from."""

    dag_id: str
    objects: tuple[PipelineObject, ...]
    parameter_values: tuple[tuple[str, str], ...] = ()
    description: str | None = None
    origin: str = ""  # "pipelines/users.yaml, staging", "definition.json", "df-... (prod)"
    artifacts: tuple[Artifact, ...] = ()
    tags: tuple[str, ...] = ()
    # when a schedule with startAt: FIRST_ACTIVATION_DATE_TIME starts
    activated: datetime | None = None
    # the DAG's start, where it is not the schedule's: an Airflow environment keeps the start
    # a DAG was created with (a manifest compiled another day has another startDateTime)
    start: datetime | None = None


def source_of(compiled: CompiledPipeline, dag_id: str) -> Source:
    """The source of a pipeline compiled from a manifest."""
    return Source(dag_id, compiled.objects, compiled.parameter_values, compiled.description,
                  f"{compiled.manifest}, {compiled.environment}", compiled.artifacts,
                  ("dataduct", compiled.environment))


@dataclass(frozen=True)
class FileCopy:
    """A file a task needs, copied beside the DAG file under a content-addressed name."""

    source: str  # the artifact's repository path (or the QA runner's wheel)
    target: str  # relative to the DAG folder: DAG_ID/SHA12/NAME
    sha256: str


@dataclass(frozen=True)
class DagFile:
    """One translated DAG: its file's name and text, the files beside it, the connections
    its tasks use, and (best effort only) what was refused and stands as a failing task."""

    dag_id: str
    filename: str
    text: str
    files: tuple[FileCopy, ...] = ()
    connections: tuple[str, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    tasks: tuple[str, ...] = ()
    start: datetime | None = None  # the DAG's start_date, when it has a schedule


@dataclass
class _Task:
    task_id: str
    operator: str  # "module:Class"
    kwargs: list[tuple[str, Any]]
    doc: str | None = None
    upstream: set[str] = field(default_factory=set)


class _Refused(ReconcilerError):
    """Raised inside the translation of one object; becomes a :class:`Refusal`."""

    def __init__(self, field_name: str | None, message: str):
        self.field_name, self.message = field_name, message


def _split_s3(uri: str, what: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3n?://([^/]+)/?(.*)", uri)
    if not match:
        raise _Refused(what, f"'{uri}' is not an s3:// URI")
    return match.group(1), match.group(2)


def _variable(task_id: str, taken: set[str]) -> str:
    name = re.sub(r"\W", "_", task_id)
    if not name or name[0].isdigit() or keyword.iskeyword(name) or name in {
            "dag", "DAG", "FILES", "datetime", "pathlib", "csv"}:
        name = "task_" + name
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


class _Translation:
    def __init__(self, source: Source, settings: AirflowSettings, sql_dialect: str):
        self.source, self.settings, self.dialect = source, settings, sql_dialect
        self.by_id = {o.id: o for o in source.objects}
        self.default = self.by_id.get("Default")
        self.values = dict(source.parameter_values)
        self.tasks: dict[str, _Task] = {}
        self.module = pycode.Module("")
        self.files: dict[str, FileCopy] = {}
        self.helpers: dict[str, list[str]] = {}
        self.constants: dict[str, Any] = {}
        # the task that finishes an activity, where it is not the activity's own task
        self.done: dict[str, str] = {}
        self.connections: set[str] = set()
        self.refusals: list[Refusal] = []
        # (activity id, seconds after the scheduled start, the notifier) of onLateAction
        self.deadlines: list[tuple[str, int, pycode.Call]] = []
        kind = (self.value_of(self.default, "scheduleType") or "cron").lower() \
            if self.default else "cron"
        self.schedule_kind = kind
        self.schedule = self._schedule()
        self.times = RunTimes.for_schedule(kind == "timeseries",
                                           self.schedule.seconds if self.schedule else None)

    # -- fields -----------------------------------------------------------------------------

    def chain(self, obj: PipelineObject) -> Iterator[PipelineObject]:
        """The object, its parents and Default: where its fields come from."""
        seen: set[str] = set()
        current: PipelineObject | None = obj
        while current is not None and current.id not in seen:
            seen.add(current.id)
            yield current
            parent = current.get("parent")
            current = self.by_id.get(parent) if parent else None
        if self.default is not None and self.default.id not in seen and obj.type:
            yield self.default

    def value_of(self, obj: PipelineObject | None, key: str) -> str | None:
        if obj is None:
            return None
        for holder in self.chain(obj):
            found = holder.get(key)
            if found is not None:
                return found
        return None

    def values_of(self, obj: PipelineObject, key: str) -> list[str]:
        for holder in self.chain(obj):
            found = holder.get_all(key)
            if found:
                return found
        return []

    def ref(self, obj: PipelineObject, key: str) -> PipelineObject | None:
        target = self.value_of(obj, key)
        if target is None:
            return None
        if target not in self.by_id:
            raise _Refused(key, f"refers to '{target}', which the definition does not have")
        return self.by_id[target]

    def refs(self, obj: PipelineObject, key: str) -> list[PipelineObject]:
        out = []
        for target in self.values_of(obj, key):
            if target not in self.by_id:
                raise _Refused(key, f"refers to '{target}', which the definition does not have")
            out.append(self.by_id[target])
        return out

    def lookup_for(self, obj: PipelineObject) -> FieldLookup:
        def lookup(name: str) -> str | None:
            if "." in name:
                head, _, rest = name.partition(".")
                target = self.value_of(obj, head)
                if target in self.by_id:
                    return self.lookup_for(self.by_id[target])(rest)
                return None
            own = self.value_of(obj, name)
            if own is not None:
                return own
            return self.values.get(name)
        return lookup

    def text(self, obj: PipelineObject, key: str, raw: str | None = None,
             names: Mapping[str, tuple[str, str]] | None = None) -> str | None:
        """A field's text, its expressions as Jinja."""
        value = self.value_of(obj, key) if raw is None else raw
        if value is None:
            return None
        try:
            return translate_text(value, self.times, self.lookup_for(obj), names=names)
        except UntranslatableExpression as exc:
            raise _Refused(key, str(exc)) from None

    def refuse_unknown(self, obj: PipelineObject, known: set[str]) -> None:
        for f in obj.fields:
            if f.key not in known and f.key not in _COMMON:
                raise _Refused(f.key, f"{obj.type}'s field {f.key} is not translated")

    # -- the schedule ------------------------------------------------------------------------

    def _schedule(self) -> PipelineSchedule | None:
        if self.schedule_kind == "ondemand":
            return read_schedule("ondemand", {})
        if self.default is None:
            return None
        ref = self.default.get("schedule")
        obj = self.by_id.get(ref or "") or next(
            (o for o in self.source.objects if o.type == "Schedule"), None)
        if obj is None:
            return None
        fields = {}
        for key in ("period", "startDateTime", "endDateTime", "occurrences", "startAt"):
            raw = obj.get(key)
            if raw is not None:
                try:
                    fields[key] = translate_text(raw, self.times_placeholder(),
                                                 self.lookup_for(obj))
                except UntranslatableExpression as exc:
                    self.refusals.append(Refusal(obj.id, key, str(exc), obj.origin))
        try:
            schedule = read_schedule(self.schedule_kind, fields, self.source.activated)
            if self.source.start is not None and schedule.start is not None:
                schedule = dataclasses.replace(schedule, start=self.source.start)
            timetable(schedule)
            return schedule
        except (ScheduleError, ValueError) as exc:
            self.refusals.append(Refusal(obj.id, None, str(exc), obj.origin))
            return None

    @staticmethod
    def times_placeholder() -> RunTimes:
        return RunTimes("@scheduledStartTime", "@scheduledEndTime")

    # -- connections and files ------------------------------------------------------------

    def node_conn_id(self, node: PipelineObject) -> str:
        """The connection of a SqlDataNode: its database's, or (a node that holds its own
        connectionString, username and password) the node's own."""
        if node.get("database") is None and node.get("connectionString"):
            conn = self.settings.conn_id(node.id)
            self.connections.add(conn)
            return conn
        return self.conn_id(self.ref(node, "database"), "database")

    def conn_id(self, database: PipelineObject | None, what: str) -> str:
        if database is None:
            raise _Refused(what, "names no database")
        if database.type not in _DATABASE_TYPES:
            raise _Refused(what, f"{database.id} is a {database.type}, not a database")
        conn = self.settings.conn_id(database.id)
        self.connections.add(conn)
        return conn

    @property
    def aws_conn_id(self) -> str:
        self.connections.add(self.settings.aws_conn_id)
        return self.settings.aws_conn_id

    def file(self, artifact: Artifact) -> pycode.Name:
        """The module constant holding the path a task reads the artifact from (beside
        the DAG file, under DAG_ID/SHA12/NAME)."""
        name = artifact.path.rsplit("/", 1)[-1]
        target = f"{self.source.dag_id}/{artifact.sha256[:12]}/{name}"
        if target not in self.files:
            self.files[target] = FileCopy(artifact.path, target, artifact.sha256)
        self.module.use("pathlib")
        constant = ("QA_RUNNER" if artifact.path.startswith(QA_RUNNER_PATH) else
                    re.sub(r"\W", "_", name.rsplit(".", 1)[0]).upper() + "_FILE")
        self.constants[constant] = pycode.call("str", pycode.Name(
            f"FILES / {pycode.string(target.split('/', 1)[1])}"))
        return pycode.Name(constant)

    def artifact_at(self, uri: str) -> Artifact | None:
        return next((a for a in self.source.artifacts if a.s3_uri == uri), None)

    # -- tasks -----------------------------------------------------------------------------

    def common(self, obj: PipelineObject) -> list[tuple[str, Any]]:
        """Retries, timeouts, the worker, alarms: what every activity's task takes."""
        out: list[tuple[str, Any]] = []
        retries = self.value_of(obj, "maximumRetries")
        if retries is not None:
            if not retries.isdigit():
                raise _Refused("maximumRetries", f"'{retries}' is not a number")
            out.append(("retries", int(retries)))
        for key, argument in (("retryDelay", "retry_delay"),
                              ("attemptTimeout", "execution_timeout")):
            value = self.value_of(obj, key)
            if value is not None:
                seconds = period_seconds(value)
                if seconds is None:
                    raise _Refused(key, f"'{value}' is not a period")
                self.module.use("datetime")
                out.append((argument, pycode.call("datetime.timedelta", seconds=seconds)))
        self.lateness(obj)
        worker = self.value_of(obj, "workerGroup")
        if worker:
            out.append(("queue", worker))
        for key, argument in (("onFail", "on_failure_callback"),
                              ("onSuccess", "on_success_callback")):
            alarms = [self.alarm(a, key) for a in self.refs(obj, key)] \
                if self.value_of(obj, key) else []
            if alarms:
                out.append((argument, pycode.List(tuple(alarms))))
        return out

    def lateness(self, obj: PipelineObject) -> None:
        """``lateAfterTimeout`` with ``onLateAction``: a deadline alert of the DAG run at the
        run's scheduled start plus the timeout, sending the alarms. Airflow 3 has no task
        SLA, so it is the run that must be done by then (the service asks it of the
        activity). Lateness without an action only marks the instance late: nothing to
        translate."""
        timeout = self.value_of(obj, "lateAfterTimeout")
        actions = self.refs(obj, "onLateAction") if self.value_of(obj, "onLateAction") else []
        if timeout is None:
            if actions:
                raise _Refused("onLateAction", "has no lateAfterTimeout to be late after")
            return
        seconds = period_seconds(timeout)
        if seconds is None:
            raise _Refused("lateAfterTimeout", f"'{timeout}' is not a period")
        if not actions or self.schedule_kind == "ondemand":
            return  # the service raises no lateness on demand either
        start, end = (f"dag_run.{t}" for t in (self.times.start, self.times.end))
        node = {"node.name": (obj.id, "constant"), "node.id": (obj.id, "constant"),
                "node.@scheduledStartTime": (start, "datetime"),
                "node.@scheduledEndTime": (end, "datetime")}
        for action in actions:
            notifier = self.alarm(action, "onLateAction", node)
            self.deadlines.append((obj.id, seconds, notifier))

    def alarm(self, alarm: PipelineObject, key: str,
              node: dict[str, tuple[str, str]] | None = None) -> pycode.Call:
        """The SnsNotifier of an SnsAlarm; ``node`` maps the ``node.*`` names its text may
        use (by default to the failed or succeeded task's context)."""
        if alarm.type != "SnsAlarm":
            raise _Refused(key, f"{alarm.id} is a {alarm.type}; only SnsAlarm is translated")
        extra = {f.key for f in alarm.fields} - {"type", "name", "topicArn", "subject",
                                                  "message", "role", "parent"}
        if extra:
            raise _Refused(key, f"{alarm.id}'s field(s) {', '.join(sorted(extra))} are not "
                                "translated")
        self.module.use("airflow.providers.amazon.aws.notifications.sns", "SnsNotifier")

        # the object the alarm is about, as the notifier's context has it
        node = node or {"node.name": ("ti.task_id", "string"), "node.id": ("ti.task_id", "string"),
                "node.@actualStartTime": ("ti.start_date", "datetime"),
                "node.@scheduledStartTime": (self.times.start, "datetime"),
                "node.@scheduledEndTime": (self.times.end, "datetime")}
        if key == "onFail":
            node["node.errorMessage"] = ("(exception | string)", "string")

        def alarm_text(name: str) -> str | None:
            return self.text(alarm, name, names=node) if alarm.get(name) is not None else None

        return pycode.call("SnsNotifier", aws_conn_id=self.aws_conn_id,
                           target_arn=alarm_text("topicArn"), subject=alarm_text("subject"),
                           message=alarm_text("message") or "")

    def add(self, task: _Task) -> _Task:
        self.tasks[task.task_id] = task
        return task

    def resource_doc(self, obj: PipelineObject) -> str | None:
        resource = self.ref(obj, "runsOn") if self.value_of(obj, "runsOn") else None
        if resource is None or resource.type != "Ec2Resource":
            return None
        parts = [f"{k} {resource.get(k)}" for k in ("instanceType", "imageId", "subnetId",
                                                     "securityGroups", "terminateAfter")
                 if resource.get(k)]
        return (f"Data Pipeline ran this on {resource.id}, an Ec2Resource "
                f"({', '.join(parts)}); here it runs on the Airflow worker.")

    def activity(self, obj: PipelineObject) -> None:
        handler = {"SqlActivity": self.sql_activity,
                   "RedshiftCopyActivity": self.redshift_copy,
                   "CopyActivity": self.copy_activity,
                   "ShellCommandActivity": self.shell_activity,
                   "EmrActivity": self.emr_activity,
                   "HadoopActivity": self.hadoop_activity,
                   "HiveActivity": self.hive_activity,
                   "PigActivity": self.pig_activity}.get(obj.type or "")
        if handler is None:
            raise _Refused(None, f"{obj.type} is not translated")
        task = handler(obj)
        task.kwargs[1:1] = self.common(obj)
        self.add(task)
        task.doc = "\n\n".join(d for d in (task.doc, self.resource_doc(obj)) if d) or None
        for upstream in self.refs(obj, "dependsOn"):
            task.upstream.add(upstream.id)
        for precondition in self.refs(obj, "precondition") if self.value_of(
                obj, "precondition") else []:
            task.upstream.add(self.sensor(precondition, None).task_id)

    # SqlActivity ---------------------------------------------------------------------------

    def statements(self, obj: PipelineObject, script: str, key: str) -> list[str]:
        lookup = self.lookup_for(obj)
        if self.dialect == "postgres":
            def to_jinja(text: str) -> str:
                try:
                    return translate_text(text, self.times, lookup)
                except UntranslatableExpression as exc:
                    raise _Refused(key, str(exc)) from None
            try:
                statements, _ = to_postgres(script, to_jinja)
            except SqlError as exc:
                raise _Refused(key, f"the SQL does not transpile to PostgreSQL: {exc}") from None
            return statements
        # the statements as the user (or the compiler) wrote them; the service checks nothing
        # more before it runs them
        try:
            statements = split_statements(script)
        except SqlError as exc:
            raise _Refused(key, f"the SQL cannot be read: {exc}") from None
        return [self.text(obj, key, s) or "" for s in statements]

    def sql_activity(self, obj: PipelineObject) -> _Task:
        self.refuse_unknown(obj, {"script", "database"})
        script = self.value_of(obj, "script")
        if script is None:
            raise _Refused("scriptUri", "a script read from S3 at run time is not translated; "
                                        "put the SQL in the script field")
        if self.values_of(obj, "scriptArgument"):
            raise _Refused("scriptArgument", "? placeholders filled by scriptArgument are not "
                                             "translated")
        self.module.use("airflow.providers.common.sql.operators.sql",
                        "SQLExecuteQueryOperator")
        statements = self.statements(obj, script, "script")
        return _Task(obj.id, "SQLExecuteQueryOperator", [
            ("task_id", obj.id),
            ("conn_id", self.conn_id(self.ref(obj, "database"), "database")),
            ("sql", pycode.List(tuple(statements), explode=len(statements) > 1)),
            # each statement on its own, as the service runs them: BEGIN/COMMIT hold
            ("autocommit", True),
            ("split_statements", False),
        ])

    # RedshiftCopyActivity -------------------------------------------------------------------

    def create_table(self, node: PipelineObject, database: str) -> str | None:
        """A task creating the output table when it does not exist (the service runs the
        node's createTableSql then); its id."""
        sql = node.get("createTableSql")
        if sql is None:
            return None
        try:
            parsed = parse_sql(sql)
        except SqlError as exc:
            raise _Refused("createTableSql", f"does not parse: {exc}") from None
        statement = parsed.statements[0].copy()
        statement.set("exists", True)  # the service creates it only when it is missing
        text = parsed.restore(statement.sql(dialect=DIALECT))
        if self.dialect == "postgres":
            text = self.statements(node, text, "createTableSql")[0]
        else:
            text = self.text(node, "createTableSql", text) or ""
        task_id = f"{node.id}_create_table"
        self.module.use("airflow.providers.common.sql.operators.sql",
                        "SQLExecuteQueryOperator")
        if task_id not in self.tasks:
            self.add(_Task(task_id, "SQLExecuteQueryOperator", [
                ("task_id", task_id), ("conn_id", database),
                ("sql", text),
                ("autocommit", True)],
                doc=f"The service creates {node.id}'s table before the first copy into it."))
        return task_id

    def s3_location(self, node: PipelineObject, key: str) -> tuple[str, str, str]:
        """Bucket, key (Jinja) and which field it came from, of an S3DataNode."""
        if node.type != "S3DataNode":
            raise _Refused(key, f"{node.id} is a {node.type}, not an S3DataNode")
        for name in ("filePath", "directoryPath"):
            raw = node.get(name)
            if raw is not None:
                text = self.text(node, name) or ""
                bucket, path = _split_s3(text, name)
                return bucket, path, name
        if node.get("manifestFilePath"):
            raise _Refused(key, f"{node.id}: manifestFilePath is not translated")
        raise _Refused(key, f"{node.id} has neither filePath nor directoryPath")

    def redshift_copy(self, obj: PipelineObject) -> _Task:
        self.refuse_unknown(obj, {"insertMode", "commandOptions"})
        source, target = self.ref(obj, "input"), self.ref(obj, "output")
        if source is None or target is None:
            raise _Refused("input", "needs an input and an output")
        if target.type != "RedshiftDataNode":
            raise _Refused("output", "copies from Redshift to S3 are not translated yet")
        self.refuse_unknown(target, {"createTableSql", "database", "primaryKeys", "schemaName",
                                     "tableName"})
        bucket, key, _ = self.s3_location(source, "input")
        mode = (self.value_of(obj, "insertMode") or "").upper()
        if mode not in _INSERT_MODES:
            raise _Refused("insertMode", f"insertMode {mode or '(none)'} has no Airflow form "
                                         "(S3ToRedshiftOperator knows APPEND, REPLACE, UPSERT)")
        database = self.conn_id(self.ref(target, "database"), "database")
        self.module.use("airflow.providers.amazon.aws.transfers.s3_to_redshift",
                        "S3ToRedshiftOperator")
        options = [self.text(obj, "commandOptions", o) or "" for o in
                   self.values_of(obj, "commandOptions")]
        keys = target.get_all("primaryKeys")
        kwargs: list[tuple[str, Any]] = [
            ("task_id", obj.id), ("schema", target.get("schemaName") or "public"),
            ("table", target.get("tableName") or ""), ("s3_bucket", bucket), ("s3_key", key),
            ("redshift_conn_id", database), ("aws_conn_id", self.aws_conn_id),
            ("copy_options", pycode.List(tuple(options))),
            ("method", _INSERT_MODES[mode])]
        if mode == "OVERWRITE_EXISTING":
            if not keys:
                raise _Refused("insertMode", f"OVERWRITE_EXISTING needs {target.id}'s "
                                             "primaryKeys")
            kwargs.append(("upsert_keys", pycode.List(tuple(keys))))
        task = _Task(obj.id, "S3ToRedshiftOperator", kwargs)
        created = self.create_table(target, database)
        if created:
            task.upstream.add(created)
        return task

    # CopyActivity --------------------------------------------------------------------------

    def data_format(self, node: PipelineObject) -> str:
        fmt = self.ref(node, "dataFormat") if node.get("dataFormat") else None
        if fmt is None or fmt.type == "CSV":
            return ","
        if fmt.type == "TSV":
            return "\t"
        raise _Refused("dataFormat", f"{fmt.id} is a {fmt.type}; CSV and TSV are translated")

    def copy_activity(self, obj: PipelineObject) -> _Task:
        self.refuse_unknown(obj, set())
        source, target = self.ref(obj, "input"), self.ref(obj, "output")
        if source is None or target is None:
            raise _Refused("input", "needs an input and an output")
        if source.type == "SqlDataNode" and target.type == "S3DataNode":
            self.refuse_unknown(source, {"database", "selectQuery", "table", *_NODE_LOGIN})
            bucket, key, kind = self.s3_location(target, "output")
            if kind == "directoryPath":
                # SqlToS3Operator names its file .csv, whatever the separator
                key = key.rstrip("/") + "/" + obj.id + ".csv"
            query = self.value_of(source, "selectQuery") or \
                f"SELECT * FROM {source.get('table')}"
            self.module.use("airflow.providers.amazon.aws.transfers.sql_to_s3",
                            "SqlToS3Operator")
            return _Task(obj.id, "SqlToS3Operator", [
                ("task_id", obj.id), ("query", self.text(source, "selectQuery", query)),
                ("sql_conn_id", self.node_conn_id(source)),
                ("s3_bucket", bucket), ("s3_key", key), ("aws_conn_id", self.aws_conn_id),
                ("replace", True), ("file_format", "csv"),
                ("df_kwargs", pycode.Dict((("sep", self.data_format(target)),
                                           ("header", False), ("index", False)))),
            ], doc="The file is written by pandas (named .csv, separated as the data node "
                   "says): its quoting may differ from the service's for values holding the "
                   "separator or a newline.")
        if source.type == "S3DataNode" and target.type == "SqlDataNode":
            self.refuse_unknown(target, {"database", "table", "insertQuery", *_NODE_LOGIN})
            columns = self.insert_columns(target)
            bucket, key, kind = self.s3_location(source, "input")
            if kind == "directoryPath":
                raise _Refused("input", "S3ToSqlOperator reads one file: give the input's "
                                        "filePath")
            self.module.use("airflow.providers.amazon.aws.transfers.s3_to_sql",
                            "S3ToSqlOperator")
            self.module.use("csv")
            separator = self.data_format(source)
            return _Task(obj.id, "S3ToSqlOperator", [
                ("task_id", obj.id), ("s3_bucket", bucket), ("s3_key", key),
                ("table", target.get("table") or ""),
                *([("column_list", pycode.List(tuple(columns)))] if columns else []),
                ("sql_conn_id", self.node_conn_id(target)),
                ("aws_conn_id", self.aws_conn_id),
                ("parser", pycode.Name(self.reader(separator))),
            ])
        if source.type == "S3DataNode" and target.type == "S3DataNode":
            from_bucket, from_key, from_kind = self.s3_location(source, "input")
            to_bucket, to_key, to_kind = self.s3_location(target, "output")
            if from_kind != "filePath" or to_kind != "filePath":
                raise _Refused("input", "a copy between S3 directories is not translated; "
                                        "give both data nodes a filePath")
            self.module.use("airflow.providers.amazon.aws.operators.s3",
                            "S3CopyObjectOperator")
            return _Task(obj.id, "S3CopyObjectOperator", [
                ("task_id", obj.id), ("source_bucket_name", from_bucket),
                ("source_bucket_key", from_key), ("dest_bucket_name", to_bucket),
                ("dest_bucket_key", to_key), ("aws_conn_id", self.aws_conn_id)])
        raise _Refused("input", f"a copy from {source.type} to {target.type} is not "
                                "translated")

    def reader(self, separator: str) -> str:
        """A module-level function reading a delimited file into rows (S3ToSqlOperator's
        parser); its name."""
        name = "read_tsv" if separator == "\t" else "read_csv"
        self.helpers[name] = [
            f"def {name}(path):",
            '    with open(path, newline="") as lines:',
            f"        return list(csv.reader(lines, delimiter={pycode.string(separator)}))"]
        return name

    def insert_columns(self, node: PipelineObject) -> list[str]:
        """The columns of a SqlDataNode's ``insertQuery`` when it is a plain ``INSERT INTO
        table (columns) VALUES (?, ...)`` into its table, which S3ToSqlOperator does."""
        query = node.get("insertQuery")
        if query is None:
            return []
        refusal = _Refused("insertQuery", "only INSERT INTO <table> (columns) VALUES (?, ...) "
                                          "into the node's table is translated")
        try:
            (statement,) = parse_sql(query).statements
        except (SqlError, ValueError):
            raise refusal from None
        if not isinstance(statement, exp.Insert) or not isinstance(
                statement.this, exp.Schema) or not isinstance(statement.expression, exp.Values):
            raise refusal
        table = statement.this.this
        if not isinstance(table, exp.Table) or table.name != (node.get("table") or "").split(
                ".")[-1]:
            raise refusal
        rows = statement.expression.expressions
        columns = [c.name for c in statement.this.expressions]
        if len(rows) != 1 or not all(isinstance(v, exp.Placeholder) for v in
                                     rows[0].expressions) or len(rows[0].expressions) != len(
                columns):
            raise refusal
        return columns

    # ShellCommandActivity -------------------------------------------------------------------

    def staged(self, obj: PipelineObject, key: str) -> list[str]:
        """The S3 URIs of the input or output data nodes (``stage: true``)."""
        out = []
        for node in self.refs(obj, key) if self.value_of(obj, key) else []:
            bucket, path, _ = self.s3_location(node, key)
            out.append(f"s3://{bucket}/{path}")
        return out

    def shell_activity(self, obj: PipelineObject) -> _Task:
        if qa_check(obj) is not None:
            return self.qa_activity(obj)
        self.refuse_unknown(obj, {"command", "scriptUri", "scriptArgument", "stage", "stdout",
                                  "stderr"})
        stage = (self.value_of(obj, "stage") or "false").lower() == "true"
        lines = ["set -e"]
        inputs, outputs = self.staged(obj, "input"), self.staged(obj, "output")
        if stage:
            for n, uri in enumerate(inputs, 1):
                lines += [f'export INPUT{n}_STAGING_DIR="$(mktemp -d)"',
                          f'aws s3 cp --recursive --quiet {shlex.quote(uri)} '
                          f'"$INPUT{n}_STAGING_DIR"']
            for n, _ in enumerate(outputs, 1):
                lines.append(f'export OUTPUT{n}_STAGING_DIR="$(mktemp -d)"')
        arguments = " ".join(shlex.quote(self.text(obj, "scriptArgument", a) or "")
                             for a in self.values_of(obj, "scriptArgument"))
        command, script = self.value_of(obj, "command"), self.value_of(obj, "scriptUri")
        env: list[tuple[str, Any]] = []
        if script is not None:
            artifact = self.artifact_at(script)
            if artifact is not None:
                env.append(("DATADUCT_SCRIPT", self.file(artifact)))
                lines.append(f'bash "$DATADUCT_SCRIPT" {arguments}'.rstrip())
            else:
                lines += ['script="$(mktemp)"',
                          f'aws s3 cp --quiet {shlex.quote(self.text(obj, "scriptUri") or "")}'
                          ' "$script"',
                          f'bash "$script" {arguments}'.rstrip()]
        if command is not None:
            body = self.text(obj, "command") or ""
            if arguments:
                lines.append(f"bash -c {shlex.quote(body)} {shlex.quote(obj.id)} {arguments}")
            else:
                lines.append(body)
        if command is None and script is None:
            raise _Refused("command", "has neither command nor scriptUri")
        if stage:
            for n, uri in enumerate(outputs, 1):
                lines.append(f'aws s3 cp --recursive --quiet "$OUTPUT{n}_STAGING_DIR" '
                             f'{shlex.quote(uri)}')
        self.module.use("airflow.providers.standard.operators.bash", "BashOperator")
        kwargs: list[tuple[str, Any]] = [("task_id", obj.id),
                                         ("bash_command", "\n".join(lines) + "\n")]
        if env:
            kwargs += [("env", pycode.Dict(tuple(env))), ("append_env", True)]
        return _Task(obj.id, "BashOperator", kwargs)

    def qa_activity(self, obj: PipelineObject) -> _Task:
        """A check of the bundled QA runner: the runner's wheel beside the DAG, on the
        worker's Python, the databases and passwords from the Airflow connections."""
        check = qa_check(obj)
        runner = next((a for a in self.source.artifacts
                       if a.path.startswith(QA_RUNNER_PATH)), None)
        if runner is None:
            raise _Refused("command", "runs the QA runner, whose wheel the definition does "
                                      "not carry (translate it from its manifest)")
        values = [self.text(obj, "scriptArgument", a) or "" for a in
                  self.values_of(obj, "scriptArgument")]
        given = dict(v[2:].split("=", 1) for v in values if v.startswith("--") and "=" in v)
        env: list[tuple[str, Any]] = [("PYTHONPATH", self.file(runner))]
        command = self.value_of(obj, "command") or ""
        roles = {role: self.database_at(given.get(f"{role}_host"), command, role)
                 for role in ("destination", "source")}
        replaced = {f"{role}_{part}" for role, conn in roles.items() if conn
                    for part in ("host", "port", "database", "user")}
        arguments = [shlex.quote(v) for v in values
                     if not (v.startswith("--") and v[2:].split("=", 1)[0] in replaced)]
        for role, conn in roles.items():
            if conn is None:
                continue
            for part, attribute in (("host", "host"), ("port", "port"), ("database", "schema"),
                                    ("user", "login")):
                # what the definition said where the connection says nothing
                fallback = pycode.string(given.get(f"{role}_{part}", ""))
                arguments.append(f"--{role}_{part}={{{{ conn.{conn}.{attribute} or "
                                 f"{fallback.replace(chr(34), chr(39))} }}}}")
            env.append((f"DATADUCT_QA_{role.upper()}_PASSWORD",
                        f"{{{{ conn.{conn}.password or '' }}}}"))
        self.module.use("airflow.providers.standard.operators.bash", "BashOperator")
        command = " \\\n  ".join([f"python3 -m {RUNNER_MODULE} {check}", *arguments])
        return _Task(obj.id, "BashOperator", [
            ("task_id", obj.id), ("bash_command", command + "\n"),
            ("env", pycode.Dict(tuple(env), explode=True)), ("append_env", True)],
            doc=f"The QA runner's {check} check, as the pipeline ran it on its EC2 "
                "resource; the runner's wheel lies beside this DAG.")

    def database_at(self, host: str | None, command: str, role: str) -> str | None:
        """The connection id of a check's source or destination database: the database
        object at its host, else the one named after the password parameter the command
        feeds the runner (``*myMysqlMaestroPassword`` -> ``mysql_maestro``)."""
        if not host:
            return None
        for database in (o for o in self.source.objects if o.type in _DATABASE_TYPES):
            text = " ".join(f.value for f in database.fields)
            if host in text or (database.get("clusterId") or "\0") in host:
                return self.conn_id(database, "scriptArgument")
        found = re.search(rf"^{role}_password=#{{\*(my)?(\w+?)(Password)?}}$", command, re.M)
        if found is None:
            raise _Refused("scriptArgument", f"no database object of the definition is at "
                                             f"{host} (the {role} database of the check)")
        conn = self.settings.conn_id(snake_case(found.group(2)))
        self.connections.add(conn)
        return conn

    # EmrActivity ---------------------------------------------------------------------------

    def emr_activity(self, obj: PipelineObject) -> _Task:
        self.refuse_unknown(obj, {"step", "preStepCommand", "postStepCommand"})
        for key in ("preStepCommand", "postStepCommand"):
            if self.value_of(obj, key):
                raise _Refused(key, "pre- and post-step commands are not translated")
        steps = []
        for raw in self.values_of(obj, "step"):
            parts = [self.text(obj, "step", p) or "" for p in _step_parts(raw)]
            steps.append((parts[0], None, parts[1:]))
        if not steps:
            raise _Refused("step", "has no step")
        return self.emr_steps(obj, steps)

    def hadoop_activity(self, obj: PipelineObject) -> _Task:
        """A MapReduce job: the JAR, its main class and arguments as one EMR step."""
        self.refuse_unknown(obj, {"jarUri", "mainClass", "argument", *_EMR_NOT_TRANSLATED})
        self.refuse_emr_extras(obj)
        jar = self.text(obj, "jarUri")
        if not jar:
            raise _Refused("jarUri", "has no jarUri")
        arguments = [self.text(obj, "argument", a) or "" for a in self.values_of(obj, "argument")]
        return self.emr_steps(obj, [(jar, self.text(obj, "mainClass"), arguments)])

    def hive_activity(self, obj: PipelineObject) -> _Task:
        """A Hive script as an EMR step through command-runner.jar. Staged (the default),
        each S3 input and output is an external table ``input1``, ``output1``... over its
        directory with its data format's columns, created before the script, and
        ``${input1}``... name them, as the service does."""
        self.refuse_unknown(obj, {"hiveScript", "scriptUri", "scriptVariable", "stage",
                                  *_EMR_NOT_TRANSLATED})
        self.refuse_emr_extras(obj)
        self.require_release_label(obj)
        variables = self.script_variables(obj, "-d")
        stage = (self.value_of(obj, "stage") or "true").lower() == "true"
        script, uri = self.text(obj, "hiveScript"), self.text(obj, "scriptUri")
        if stage:
            tables, names = self.hive_tables(obj)
            variables = [a for name, table in names for a in ("-d", f"{name}={table}")] \
                + variables
            if uri is not None and tables:
                raise _Refused("scriptUri", "staged tables with a script read from S3 are not "
                                            "translated: give the script as hiveScript, or "
                                            "set stage: false and create the tables in it")
            if script is not None:
                script = "\n".join([*tables, script])
        if script is not None:
            arguments = ["hive", *variables, "-e", script]
        elif uri is not None:
            arguments = ["hive-script", "--run-hive-script", "--args", "-f", uri, *variables]
        else:
            raise _Refused("hiveScript", "has neither hiveScript nor scriptUri")
        return self.emr_steps(obj, [("command-runner.jar", None, arguments)])

    def pig_activity(self, obj: PipelineObject) -> _Task:
        """A Pig script as an EMR step through command-runner.jar; staged inputs are not
        translated."""
        self.refuse_unknown(obj, {"script", "scriptUri", "scriptVariable", "stage",
                                  *_EMR_NOT_TRANSLATED})
        self.refuse_emr_extras(obj)
        self.require_release_label(obj)
        if (self.value_of(obj, "stage") or "true").lower() == "true" and (
                self.value_of(obj, "input") or self.value_of(obj, "output")):
            raise _Refused("stage", "Pig staging (${INPUT1} loaded from the data node) is not "
                                    "translated: set stage: false and LOAD the data node's "
                                    "path in the script")
        variables = self.script_variables(obj, "-p")
        script, uri = self.text(obj, "script"), self.text(obj, "scriptUri")
        if script is not None:
            arguments = ["pig", *variables, "-e", script]
        elif uri is not None:
            arguments = ["pig-script", "--run-pig-script", "--args", "-f", uri, *variables]
        else:
            raise _Refused("script", "has neither script nor scriptUri")
        return self.emr_steps(obj, [("command-runner.jar", None, arguments)])

    def refuse_emr_extras(self, obj: PipelineObject) -> None:
        for key, why in (("hadoopQueue", "the YARN queue is the cluster's to set (EMR "
                                         "configurations); it is not translated"),
                         ("preActivityTaskConfig", "pre-activity scripts are not translated"),
                         ("postActivityTaskConfig", "post-activity scripts are not translated"),
                         ("resizeClusterBeforeRunning", "cluster resizing is not translated")):
            if self.value_of(obj, key) not in (None, "false"):
                raise _Refused(key, why)

    def require_release_label(self, obj: PipelineObject) -> None:
        cluster = self.ref(obj, "runsOn")
        if cluster is not None and cluster.type == "EmrCluster" and not cluster.get(
                "releaseLabel"):
            raise _Refused("runsOn", f"{cluster.id} has no releaseLabel: the step runs through "
                                     "command-runner.jar, which needs emr-4.0.0 or later; set "
                                     "releaseLabel on the cluster")

    def script_variables(self, obj: PipelineObject, flag: str) -> list[str]:
        out = []
        for raw in self.values_of(obj, "scriptVariable"):
            if "=" not in raw:
                raise _Refused("scriptVariable", f"'{raw}' is not NAME=VALUE")
            out += [flag, self.text(obj, "scriptVariable", raw) or ""]
        return out

    def hive_tables(self, obj: PipelineObject) -> tuple[list[str], list[tuple[str, str]]]:
        """The CREATE EXTERNAL TABLE statements of a staged Hive activity's data nodes and
        the variables that name them (``input1`` -> ``input1``)."""
        statements, names = [], []
        for role in ("input", "output"):
            for n, node in enumerate(self.refs(obj, role), 1):
                name = f"{role}{n}"
                if node.type != "S3DataNode":
                    raise _Refused(role, f"{node.id} is a {node.type}; staged Hive tables are "
                                         "translated for S3DataNode (set stage: false and "
                                         "create the table in the script)")
                bucket, key, which = self.s3_location(node, role)
                if which != "directoryPath":
                    raise _Refused(role, f"{node.id}: a Hive table is a directory; give the "
                                         "node a directoryPath")
                fmt = self.ref(node, "dataFormat") if node.get("dataFormat") else None
                if fmt is None or fmt.type not in ("CSV", "TSV"):
                    raise _Refused(role, f"{node.id} needs a CSV or TSV dataFormat with its "
                                         "columns to be staged as a Hive table")
                columns = [c.split() for c in fmt.get_all("column")]
                if not columns or any(len(c) != 2 for c in columns):
                    raise _Refused("dataFormat", f"{fmt.id}: give each column as 'name TYPE'")
                row = ("ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'"
                       if fmt.type == "CSV" else
                       "ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\t'")
                spec = ", ".join(f"`{c}` {t}" for c, t in columns)
                statements.append(f"DROP TABLE IF EXISTS {name};\n"
                                  f"CREATE EXTERNAL TABLE {name} ({spec}) {row} "
                                  f"LOCATION 's3://{bucket}/{key.rstrip('/')}/';")
                names.append((name, name))
        return statements, names

    def emr_steps(self, obj: PipelineObject,
                  steps: Sequence[tuple[str, str | None, Sequence[str]]]) -> _Task:
        """The activity's steps (jar, main class, arguments) added to its cluster's job
        flow, and a sensor waiting for the last; the cluster is created before and
        terminated after, as the service does."""
        cluster = self.ref(obj, "runsOn")
        if cluster is None or cluster.type != "EmrCluster":
            raise _Refused("runsOn", f"an {obj.type} is translated on an EmrCluster (an "
                                     "existing cluster reached by a worker group is not)")
        create, terminate = self.emr_cluster(cluster)
        step_dicts = []
        for n, (jar, main_class, arguments) in enumerate(steps, 1):
            jar_step: list[tuple[str, Any]] = [("Jar", jar)]
            if main_class:
                jar_step.append(("MainClass", main_class))
            jar_step.append(("Args", pycode.List(tuple(arguments))))
            step_dicts.append(pycode.Dict((
                ("Name", f"{obj.id} step {n}"), ("ActionOnFailure", "CONTINUE"),
                ("HadoopJarStep", pycode.Dict(tuple(jar_step))),
            ), explode=True))
        self.module.use("airflow.providers.amazon.aws.operators.emr", "EmrAddStepsOperator")
        self.module.use("airflow.providers.amazon.aws.sensors.emr", "EmrStepSensor")
        flow = f"{{{{ ti.xcom_pull(task_ids={pycode.string(create)}) }}}}"
        wait_id = f"{obj.id}_wait"
        self.add(_Task(wait_id, "EmrStepSensor", [
            ("task_id", wait_id), ("job_flow_id", flow),
            ("step_id", f"{{{{ ti.xcom_pull(task_ids={pycode.string(obj.id)})[-1] }}}}"),
            ("aws_conn_id", self.aws_conn_id)], upstream={obj.id}))
        self.tasks[terminate].upstream.add(wait_id)
        self.done[obj.id] = wait_id  # who waits for the activity waits for its step
        return _Task(obj.id, "EmrAddStepsOperator", [
            ("task_id", obj.id), ("job_flow_id", flow), ("aws_conn_id", self.aws_conn_id),
            ("steps", pycode.List(tuple(step_dicts), explode=True))], upstream={create})

    def emr_cluster(self, cluster: PipelineObject) -> tuple[str, str]:
        create, terminate = f"{cluster.id}_create", f"{cluster.id}_terminate"
        if create in self.tasks:
            return create, terminate
        known = {"amiVersion", "releaseLabel", "masterInstanceType", "coreInstanceType",
                 "coreInstanceCount", "terminateAfter", "keyPair", "subnetId",
                 "applications", "bootstrapAction", "region"}
        self.refuse_unknown(cluster, known)
        instances: list[tuple[str, Any]] = [
            ("MasterInstanceType", cluster.get("masterInstanceType") or "m5.xlarge"),
            ("SlaveInstanceType", cluster.get("coreInstanceType") or
             cluster.get("masterInstanceType") or "m5.xlarge"),
            ("InstanceCount", 1 + int(cluster.get("coreInstanceCount") or "1")),
            ("KeepJobFlowAliveWhenNoSteps", True), ("TerminationProtected", False)]
        if cluster.get("keyPair"):
            instances.append(("Ec2KeyName", cluster.get("keyPair")))
        if cluster.get("subnetId"):
            instances.append(("Ec2SubnetId", cluster.get("subnetId")))
        overrides: list[tuple[str, Any]] = [("Name", f"{self.source.dag_id}-{cluster.id}")]
        if cluster.get("releaseLabel"):
            overrides.append(("ReleaseLabel", cluster.get("releaseLabel")))
        elif cluster.get("amiVersion"):
            overrides.append(("AmiVersion", cluster.get("amiVersion")))
        applications = cluster.get_all("applications")
        if applications:
            overrides.append(("Applications", pycode.List(tuple(
                pycode.Dict((("Name", a),)) for a in applications))))
        actions = cluster.get_all("bootstrapAction")
        if actions:
            items = []
            for n, action in enumerate(actions, 1):
                path, *args = action.split(",")
                items.append(pycode.Dict((("Name", f"bootstrap {n}"), ("ScriptBootstrapAction",
                    pycode.Dict((("Path", path), ("Args", pycode.List(tuple(args)))))))))
            overrides.append(("BootstrapActions", pycode.List(tuple(items))))
        overrides.append(("Instances", pycode.Dict(tuple(instances), explode=True)))
        for key, name in (("role", "ServiceRole"), ("resourceRole", "JobFlowRole")):
            value = self.value_of(cluster, key)
            if value:
                overrides.append((name, value))
        log = self.value_of(cluster, "pipelineLogUri")
        if log:
            overrides.append(("LogUri", log))
        self.module.use("airflow.providers.amazon.aws.operators.emr",
                        "EmrCreateJobFlowOperator")
        self.module.use("airflow.providers.amazon.aws.operators.emr",
                        "EmrTerminateJobFlowOperator")
        timeout = period_seconds(cluster.get("terminateAfter") or "")
        doc = (f"{cluster.id}, an EmrCluster; the service terminated it after "
               f"{cluster.get('terminateAfter')}" if timeout else None)
        create_kwargs: list[tuple[str, Any]] = [
            ("task_id", create), ("aws_conn_id", self.aws_conn_id),
            ("job_flow_overrides", pycode.Dict(tuple(overrides), explode=True))]
        self.add(_Task(create, "EmrCreateJobFlowOperator", create_kwargs, doc=doc))
        self.add(_Task(terminate, "EmrTerminateJobFlowOperator", [
            ("task_id", terminate),
            ("job_flow_id", f"{{{{ ti.xcom_pull(task_ids={pycode.string(create)}) }}}}"),
            ("aws_conn_id", self.aws_conn_id),
            # the cluster goes whatever became of the steps, as the service's does
            ("trigger_rule", "all_done")]))
        return create, terminate

    # preconditions ----------------------------------------------------------------------------

    def sensor(self, precondition: PipelineObject, node: PipelineObject | None) -> _Task:
        task_id = f"{node.id}_{precondition.id}" if node else precondition.id
        if task_id in self.tasks:
            return self.tasks[task_id]
        kind = precondition.type
        kwargs: list[tuple[str, Any]] = [("task_id", task_id)]
        timeout = period_seconds(self.value_of(precondition, "preconditionTimeout") or "")
        if kind in ("S3KeyExists", "S3PrefixNotEmpty") or (kind == "Exists" and node and
                                                            node.type == "S3DataNode"):
            if kind == "S3KeyExists":
                bucket, key = _split_s3(self.text(precondition, "s3Key") or "", "s3Key")
                wildcard = False
            elif kind == "S3PrefixNotEmpty":
                bucket, key = _split_s3(self.text(precondition, "s3Prefix") or "", "s3Prefix")
                key, wildcard = key.rstrip("/") + "/*", True
            else:
                assert node is not None
                bucket, key, which = self.s3_location(node, "precondition")
                wildcard = which == "directoryPath"
                if wildcard:
                    key = key.rstrip("/") + "/*"
            self.module.use("airflow.providers.amazon.aws.sensors.s3", "S3KeySensor")
            kwargs += [("bucket_name", bucket), ("bucket_key", key),
                       ("wildcard_match", wildcard), ("aws_conn_id", self.aws_conn_id)]
            operator = "S3KeySensor"
        elif kind == "ShellCommandPrecondition":
            command = self.text(precondition, "command")
            if command is None:
                raise _Refused("precondition", f"{precondition.id}: scriptUri is not "
                                               "translated; give the command")
            self.module.use("airflow.providers.standard.sensors.bash", "BashSensor")
            kwargs.append(("bash_command", command + "\n"))
            operator = "BashSensor"
        else:
            raise _Refused("precondition", f"{precondition.id} is a {kind}; S3KeyExists, "
                                           "S3PrefixNotEmpty, Exists (on S3) and "
                                           "ShellCommandPrecondition are translated")
        kwargs += [("mode", "reschedule"), ("poke_interval", 60)]
        if timeout:
            kwargs.append(("timeout", timeout))
        return self.add(_Task(task_id, operator, kwargs))

    # the whole definition ----------------------------------------------------------------------

    def run(self, best_effort: bool) -> DagFile:
        activities = [o for o in self.source.objects if (o.type or "").endswith("Activity")]
        for obj in activities:
            try:
                self.activity(obj)
            except _Refused as refused:
                self.refusals.append(Refusal(obj.id, refused.field_name, refused.message,
                                             obj.origin))
                if best_effort:
                    self.todo(obj, refused.message)
        for obj in self.source.objects:
            if obj.type and obj.type not in _KNOWN_TYPES and not obj.type.endswith(
                    "Activity"):
                self.refusals.append(Refusal(obj.id, None, f"{obj.type} is not translated",
                                             obj.origin))
        self.wire(activities)
        if self.refusals and not best_effort:
            raise TranslationError(self.refusals)
        return self.write()

    def todo(self, obj: PipelineObject, why: str) -> None:
        self.module.use("airflow.providers.standard.operators.bash", "BashOperator")
        message = f"TODO: {obj.id} ({obj.type}) was not translated: {why}"
        self.add(_Task(obj.id, "BashOperator", [
            ("task_id", obj.id), ("bash_command", f"echo {shlex.quote(message)} >&2; exit 1\n")],
            doc=message, upstream={d for d in obj.get_all("dependsOn")}))

    def wire(self, activities: Sequence[PipelineObject]) -> None:
        """Edges from the data nodes: whoever writes a node runs before whoever reads it;
        a node's preconditions are sensors before its readers."""
        writers: dict[str, set[str]] = {}
        for obj in activities:
            for output in obj.get_all("output"):
                writers.setdefault(output, set()).add(obj.id)
        for obj in activities:
            task = self.tasks.get(obj.id)
            if task is None:
                continue
            for node_id in obj.get_all("input"):
                task.upstream |= writers.get(node_id, set()) - {obj.id}
                node = self.by_id.get(node_id)
                if node is None:
                    continue
                try:
                    for precondition in self.refs(node, "precondition") if node.get(
                            "precondition") else []:
                        task.upstream.add(self.sensor(precondition, node).task_id)
                except _Refused as refused:
                    self.refusals.append(Refusal(node.id, refused.field_name, refused.message,
                                                 node.origin))
        for task in self.tasks.values():
            task.upstream = {self.done.get(u, u) if self.done.get(u) != task.task_id else u
                             for u in task.upstream} & set(self.tasks)

    def write(self) -> DagFile:
        module = self.module
        module.use("airflow.sdk", "DAG")
        dag_kwargs: list[tuple[str, Any]] = [("dag_id", self.source.dag_id)]
        if self.source.description:
            dag_kwargs.append(("description", self.source.description))
        table = timetable(self.schedule) if self.schedule else None
        if table is None or table.class_name is None:
            dag_kwargs.append(("schedule", None))
            if table is None:
                module.use("datetime")
        else:
            module.use(table.module, table.class_name)
            if table.kind == "cron":
                schedule = pycode.call(table.class_name, table.argument, timezone="UTC")
            else:
                module.use("datetime")
                schedule = pycode.call(table.class_name, pycode.call(
                    "datetime.timedelta", seconds=table.argument))
            dag_kwargs.append(("schedule", schedule))
            module.use("datetime")
            assert table.start is not None  # a timetable with a period has a start
            dag_kwargs.append(("start_date", _datetime(table.start)))
            if table.end:
                dag_kwargs.append(("end_date", _datetime(table.end)))
            # the service runs every period since the start, one at a time
            dag_kwargs += [("catchup", True), ("max_active_runs", 1)]
        if table is None:
            dag_kwargs.append(("start_date", _datetime(datetime(2020, 1, 1))))
        if self.deadlines:
            module.use("airflow.sdk", "AsyncCallback")
            module.use("airflow.sdk", "DeadlineAlert")
            module.use("airflow.sdk", "DeadlineReference")
            module.use("datetime")
            alerts = []
            for activity, seconds, notifier in sorted(self.deadlines, key=lambda d: d[:2]):
                alerts.append(pycode.call(
                    "DeadlineAlert", name=f"{activity} late",
                    reference=pycode.Name("DeadlineReference.DAGRUN_LOGICAL_DATE"),
                    interval=pycode.call("datetime.timedelta", seconds=seconds),
                    callback=pycode.call("AsyncCallback", pycode.Name(notifier.function),
                                         kwargs=pycode.Dict(tuple(notifier.kwargs),
                                                            explode=True))))
            dag_kwargs.append(("deadline", pycode.List(tuple(alerts), explode=True)))
        # a DAG Airflow sees for the first time waits for whoever moves the pipeline over
        dag_kwargs.append(("is_paused_upon_creation", True))
        dag_kwargs += [("default_args", pycode.Dict((("owner", "dataduct"),))),
                       ("tags", pycode.List(tuple(self.source.tags or ("dataduct",)))),
                       ("doc_md", pycode.Name("__doc__"))]
        body: list[str] = []
        if self.files:
            body.append(pycode.expression(pycode.Name(
                f"pathlib.Path(__file__).parent / {pycode.string(self.source.dag_id)}"),
                prefix="FILES = "))
            body += [pycode.expression(v, prefix=f"{k} = ") for k, v in
                     sorted(self.constants.items())]
            body.append("")
        for name in sorted(self.helpers):
            body += [*self.helpers[name], "", ""]
        body.append(pycode.expression(pycode.Call("DAG", (), tuple(dag_kwargs), True),
                                      prefix="with ", suffix=" as dag:")[:-len(":")] + ":")
        taken: set[str] = set()
        names = {task_id: _variable(task_id, taken) for task_id in self.ordered()}
        for task_id in self.ordered():
            task = self.tasks[task_id]
            kwargs = list(task.kwargs)
            if task.doc:
                kwargs.append(("doc_md", task.doc))
            body.append(pycode.expression(pycode.Call(task.operator, (), tuple(kwargs), True),
                                          1, prefix=f"{names[task_id]} = "))
        if not self.tasks:
            body.append("    pass")
        edges = sorted((names[up], names[t]) for t in self.ordered()
                       for up in self.tasks[t].upstream)
        if edges:
            body.append("")
            body += [f"    {a} >> {b}" if len(a) + len(b) + 8 <= pycode.LINE_LENGTH
                     else f"    (\n        {a}\n        >> {b}\n    )" for a, b in edges]
        module.docstring = self.docstring()
        module.body = body
        files = tuple(sorted(self.files.values(), key=lambda f: f.target))
        return DagFile(self.source.dag_id, f"{self.source.dag_id}.py", module.text(), files,
                       tuple(sorted(self.connections)), tuple(self.refusals),
                       tuple(self.ordered()), table.start if table is not None else None)

    def ordered(self) -> list[str]:
        """Task ids upstream first, ties by id: a stable, readable order."""
        done: list[str] = []
        placed: set[str] = set()
        remaining = sorted(self.tasks)
        while remaining:
            ready = [t for t in remaining if self.tasks[t].upstream <= placed] or remaining[:1]
            first = ready[0]
            done.append(first)
            placed.add(first)
            remaining.remove(first)
        return done

    def docstring(self) -> str:
        lines = [f"{self.source.dag_id}: translated from AWS Data Pipeline by {GENERATOR}.", ""]
        if self.source.origin:
            lines.append(f"Source: {self.source.origin}")
        if self.source.description:
            lines.append(f"Description: {self.source.description}")
        if self.connections:
            lines.append(f"Airflow connections: {', '.join(sorted(self.connections))}")
        if self.schedule is not None and self.schedule.kind != "ondemand":
            lines.append(f"Schedule: every {self.schedule.period} ({self.schedule.kind}) from "
                         f"{self.schedule.start}")
        if self.refusals:
            lines += ["", "Not translated (these tasks fail when run):"]
            lines += [f"- {r.format()}" for r in self.refusals]
        lines += ["", "Generated: edit the source and translate again, not this file."]
        return "\n".join(lines)


_KNOWN_TYPES = {"Default", "Schedule", "Ec2Resource", "EmrCluster", "S3DataNode",
                "SqlDataNode", "RedshiftDataNode", "TSV", "CSV", "SnsAlarm", *_DATABASE_TYPES,
                *_PRECONDITIONS}


def _step_parts(step: str) -> list[str]:
    """An EMR step's comma-separated parts (``jar,arg,...``): a comma inside an expression
    or escaped (``\\,``) does not separate."""
    parts, current, i = [], [], 0
    while i < len(step):
        if step.startswith("#{", i):
            end = expression_end(step, i) or len(step)
            current.append(step[i:end])
            i = end
        elif step.startswith("\\,", i):
            current.append(",")
            i += 2
        elif step[i] == ",":
            parts.append("".join(current))
            current, i = [], i + 1
        else:
            current.append(step[i])
            i += 1
    parts.append("".join(current))
    return parts


def _datetime(moment: datetime) -> pycode.Call:
    return pycode.call("datetime.datetime", moment.year, moment.month, moment.day,
                       moment.hour, moment.minute, tzinfo=pycode.Name("datetime.UTC"))


def translate(source: Source, settings: AirflowSettings, *, sql_dialect: str = "redshift",
              best_effort: bool = False) -> DagFile:
    """The DAG file of a definition. Raises :class:`TranslationError` listing every object
    and field that cannot be translated, unless ``best_effort``: then each refused activity
    is a task that fails when run, and :attr:`DagFile.refusals` lists them."""
    return _Translation(source, settings, sql_dialect).run(best_effort)
