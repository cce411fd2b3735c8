"""The activities of one step, their SQL for a scheduled time, and running them."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..desired.definition import CompiledPipeline, PipelineObject
from ..desired.sql import SqlError, to_postgres
from ..errors import ReconcilerError
from ..service.expressions import ExpressionError, format_joda, substitute
from ..service.model import period_seconds

RUNNER_MODULE = "reconciler.qa"


class LocalRunError(ReconcilerError):
    """A step that cannot be run locally, or whose SQL failed."""


@dataclass(frozen=True)
class StepActivity:
    """One activity of a step: a SqlActivity (``script``) or a QA activity (``check``)."""

    object: PipelineObject

    @property
    def id(self) -> str:
        return self.object.id

    @property
    def kind(self) -> str:
        if self.object.type == "SqlActivity":
            return "sql"
        if self.object.type == "ShellCommandActivity" and qa_check(self.object) is not None:
            return "qa"
        return "other"


def step_activities(compiled: CompiledPipeline, step: str) -> list[StepActivity]:
    """The activities of ``step`` in the order they run; an unknown name lists the known."""
    known = dict(compiled.step_activities)
    if step not in known:
        raise LocalRunError(f"{compiled.manifest} has no step named '{step}'; its steps: "
                            f"{', '.join(known) or 'none'}")
    objects = {o.id: o for o in compiled.objects}
    return [StepActivity(objects[a]) for a in known[step]]


def _schedule_period(compiled: CompiledPipeline) -> timedelta:
    schedule = next((o for o in compiled.objects if o.type == "Schedule"), None)
    seconds = period_seconds(schedule.get("period") or "1 day") if schedule else None
    return timedelta(seconds=seconds or 86400)


def evaluation(compiled: CompiledPipeline, activity: PipelineObject, scheduled: datetime
               ) -> Callable[[str], str]:
    """A function that evaluates the expressions of the activity's fields for a run scheduled
    at ``scheduled``: ``@scheduledStartTime``/``EndTime``, ``@actualStartTime``, the pipeline's
    parameter values and the activity's own fields."""
    values: dict[str, Any] = dict(compiled.parameter_values)
    start = scheduled.replace(tzinfo=None)
    times = {"@scheduledStartTime": start, "@scheduledEndTime": start +
             _schedule_period(compiled), "@actualStartTime": start}

    def lookup(name: str) -> Any:
        if name in times:
            return times[name]
        if name.startswith("*"):
            raise ExpressionError(f"{name} is a secret; it is not evaluated locally")
        own = activity.get(name)
        return own if own is not None else values.get(name)

    def evaluate(text: str) -> str:
        try:
            return substitute(text, lookup)
        except ExpressionError as exc:
            raise LocalRunError(f"{activity.id}: {exc}") from None

    return evaluate


def postgres_statements(activity: PipelineObject, evaluate: Callable[[str], str]
                        ) -> list[str]:
    """A SqlActivity's script as PostgreSQL statements, evaluated and transpiled."""
    script = activity.get("script")
    if script is None:
        raise LocalRunError(f"{activity.id} has no inline script (scriptUri is not read "
                            "locally)")
    arguments = [evaluate(a) for a in activity.get_all("scriptArgument")]
    try:
        statements, _ = to_postgres(script, evaluate, arguments)
    except SqlError as exc:
        raise LocalRunError(f"{activity.id}: {exc}") from None
    return statements


def run_sql(connection: Any, statements: Sequence[str], activity_id: str,
            echo: Callable[[str], None] = lambda _: None) -> None:
    """Run statements one by one on an autocommit connection (their BEGIN/COMMIT hold); on an
    error the open transaction is rolled back, as when a SqlActivity's session ends."""
    for number, statement in enumerate(statements, 1):
        echo(statement)
        try:
            connection.execute(statement)
        except Exception as exc:  # the driver's error, reported with the statement
            with contextlib.suppress(Exception):  # a broken connection: report the first
                connection.execute("ROLLBACK")
            first = str(exc).strip().splitlines()
            raise LocalRunError(f"{activity_id}: statement {number} of {len(statements)} "
                                f"failed: {first[0] if first else type(exc).__name__}\n"
                                f"  {statement[:300]}") from None


def qa_check(activity: PipelineObject) -> str | None:
    """The check a compiled QA activity runs (the word after ``-m reconciler.qa``)."""
    command = activity.get("command") or ""
    for line in command.splitlines():
        if f"-m {RUNNER_MODULE} " in line:
            words = shlex.split(line.split(f"-m {RUNNER_MODULE} ", 1)[1].split("<<", 1)[0])
            return words[0] if words else None
    return None


def qa_invocation(activity: PipelineObject, evaluate: Callable[[str], str],
                  destination_dsn: str | None, source_dsn: str | None) -> list[str]:
    """The QA runner's arguments for a compiled QA activity: its check and scriptArgument
    values (evaluated), the databases replaced by the given URLs."""
    check = qa_check(activity)
    if check is None:
        raise LocalRunError(f"{activity.id} does not run the bundled QA runner")
    replaced = [f"--{role}_{part}=" for role, dsn in (("destination", destination_dsn),
                                                       ("source", source_dsn)) if dsn
                for part in ("host", "port", "database", "user")]
    arguments = []
    for raw in activity.get_all("scriptArgument"):
        value = evaluate(raw)
        if value.startswith(tuple(replaced)):
            continue
        if value.startswith(("--log_to_s3=", "--sns_topic_arn=")):
            continue  # a local run reports on the terminal only
        arguments.append(value)
    if destination_dsn:
        arguments.append(f"--destination_dsn={destination_dsn}")
    if source_dsn and check in ("count", "column"):
        arguments.append(f"--source_dsn={source_dsn}")
    return [check, *arguments]


def scheduled_label(moment: datetime) -> str:
    return format_joda(moment, "YYYY-MM-dd'T'HH:mm:ss")


def step_sql(compiled: CompiledPipeline, step: str, dialect: str, scheduled: datetime
             ) -> Iterator[str]:
    """The SQL a step runs, for review (``reconciler sql``): each SQL activity's script
    (``postgres``: as ``run-step`` runs it, evaluated for ``scheduled`` and transpiled) and
    the queries each QA activity gives the QA runner."""
    for activity in step_activities(compiled, step):
        obj = activity.object
        yield f"-- {obj.id} ({obj.type})"
        if activity.kind == "sql":
            if dialect == "postgres":
                statements = postgres_statements(obj, evaluation(compiled, obj, scheduled))
                yield "\n".join(s + ";" for s in statements)
            else:
                yield obj.get("script") or f"-- script at {obj.get('scriptUri')}"
        elif activity.kind == "qa":
            for argument in obj.get_all("scriptArgument"):
                name, _, value = argument.partition("=")
                if name.endswith("_sql"):
                    yield f"-- {name.lstrip('-')}:\n{value.rstrip(';')};"
        else:
            yield "-- (runs no SQL)"
        yield ""


def postgres_connection(dsn: str) -> Any:
    """An autocommit connection to the PostgreSQL standing in for Redshift. ``dsn`` holds no
    password: libpq reads PGPASSWORD and ~/.pgpass."""
    from ..qa.databases import POSTGRES, QaError, login_from_url

    try:
        login = login_from_url(dsn, "destination")
    except QaError as exc:
        raise LocalRunError(str(exc).replace("--destination_dsn", "--dsn")) from None
    if login.kind != POSTGRES:
        raise LocalRunError("--dsn must be a postgresql:// URL")
    try:
        import psycopg
    except ImportError:
        raise LocalRunError("run-step needs psycopg: pip install "
                            "'dataduct-reconciler[qa]'") from None
    try:
        return psycopg.connect(host=login.host, port=login.port, dbname=login.database,
                               user=login.user or None, autocommit=True,
                               application_name="reconciler-run-step")
    except psycopg.Error as exc:
        raise LocalRunError(f"cannot connect to {login.describe()}: {exc}") from None


def run_step(compiled: CompiledPipeline, step: str, *, dsn: str, source_dsn: str | None,
             scheduled: datetime,
             report: Callable[[str], None] = lambda _: None,
             echo: Callable[[str], None] = lambda _: None) -> int:
    """Run a step's activities in order (``reconciler run-step``): SQL on PostgreSQL, QA
    checks with the QA runner on ``dsn`` and ``source_dsn``. Raises :class:`LocalRunError`
    when an activity does not run locally or its SQL fails; returns the QA runner's exit
    code when a check does not pass (0 when everything did). ``report`` gets a line per
    activity, ``echo`` each statement before it runs."""
    from ..qa.cli import main as qa_main

    activities = step_activities(compiled, step)
    unsupported = [a.id for a in activities if a.kind == "other"]
    if unsupported:
        raise LocalRunError(f"{step} has activities that do not run locally (they copy from "
                            f"S3 or run programs): {', '.join(unsupported)}")
    for activity in activities:
        obj = activity.object
        evaluate = evaluation(compiled, obj, scheduled)
        report(f"== {obj.id} ({obj.type})")
        if activity.kind == "qa":
            code = qa_main(qa_invocation(obj, evaluate, dsn, source_dsn))
            if code:
                return code
            continue
        statements = postgres_statements(obj, evaluate)
        with postgres_connection(dsn) as connection:
            run_sql(connection, statements, obj.id, echo=echo)
        report(f"   {len(statements)} statement(s) ran")
    return 0
