"""The QA steps: primary-key-check, count-check and column-check (which compare two
databases with the QA runner) and pipeline-dependencies.
"""

from __future__ import annotations

from sqlglot import exp

from ... import sql as sqlgen
from ..base import StepResult, param
from ..context import StepContext
from .common import (
    SCHEDULED_DAY,
    BuiltinStep,
    argument_list,
    check_activity,
    qa_command,
    qa_log_args,
    redshift_args,
    run_script_command,
    sqlglot_dialect,
    table_of,
    with_passwords,
)


class PrimaryKeyCheck(BuiltinStep):
    step_type = "primary-key-check"

    def compile(self, ctx: StepContext) -> StepResult:
        table = ctx.table("table_definition")
        if not table.primary_key:
            ctx.fail(f"{table.full_name} has no primary key to check", "table_definition")
        if param(ctx, "script"):
            ctx.activity("ShellCommandActivity", command=run_script_command(
                ctx.file_uri("script")), scriptArgument=[
                *argument_list(param(ctx, "script_arguments")), f"--table={table.full_name}",
                *qa_log_args(ctx)])
        else:
            check_activity(ctx, table)
        return StepResult()


def _source_args(ctx: StepContext, passwords: dict[str, str]) -> list[str]:
    """Where the source database is; its password goes into ``passwords``."""
    login = ctx.mysql_login(param(ctx, "source_host"), "source_host")
    passwords["source_password"] = login.password
    database = [f"--source_database={login.database}"] if login.database else []
    return [f"--source_host={login.host}", f"--source_port={login.port}", *database,
            f"--source_user={login.user}"]


def _mysql_source(ctx: StepContext, key: str, text: str) -> str:
    """A source-side query (MySQL) after checking it parses."""
    ctx.parse(ctx.inline_sql(key, text), dialect=sqlglot_dialect("mysql"))
    return text


def _comparison(ctx: StepContext, check: str, reported: list[str], source: str,
                destination: str, extra: tuple[str, ...] | list[str] = ()) -> None:
    """The activity of a check that compares the source database with Redshift (count,
    column): the queries, the tolerance, both logins (their passwords kept out of the
    arguments), where to report, and the step's own arguments; the QA runner or the step's
    ``script`` runs it."""
    passwords: dict[str, str] = {}
    arguments = [*reported, f"--source_sql={source}", f"--destination_sql={destination}",
                 *extra, f"--tolerance={param(ctx, 'tolerance', 1)}",
                 *_source_args(ctx, passwords), *redshift_args(ctx, passwords),
                 *qa_log_args(ctx), *argument_list(param(ctx, "script_arguments"))]
    command = (with_passwords(run_script_command(ctx.file_uri("script")), passwords)
               if param(ctx, "script") else qa_command(ctx, check, passwords))
    ctx.activity("ShellCommandActivity", command=command, scriptArgument=arguments)


class CountCheck(BuiltinStep):
    step_type = "count-check"

    def compile(self, ctx: StepContext) -> StepResult:
        if param(ctx, "source_count_sql"):
            source = _mysql_source(ctx, "source_count_sql", param(ctx, "source_count_sql"))
        elif param(ctx, "source_sql"):
            query = ctx.parse(ctx.inline_sql("source_sql"), query=True,
                              dialect=sqlglot_dialect("mysql"), what="source_sql")
            source = f"SELECT COUNT(*) FROM (\n{query.text.strip().rstrip(';')}\n) AS counted"
        else:
            table = table_of(param(ctx, "source_table_name"), ctx, "source_table_name", "mysql")
            source = exp.select(exp.Count(this=exp.Star())).from_(table).sql(dialect="mysql")
        reported: list[str] = []
        with ctx.sql_errors("destination_sql"):
            if param(ctx, "destination_table_definition"):
                counted = ctx.table("destination_table_definition")
                destination = sqlgen.count_sql(sqlgen.Source(table=counted)).text()
                reported.append(f"--table={counted.full_name}")
            elif param(ctx, "destination_sql"):
                query = ctx.parse(ctx.inline_sql("destination_sql"), query=True,
                                  what="destination_sql")
                destination = sqlgen.count_sql(sqlgen.Source(query=query)).text()
            else:
                destination = sqlgen.table_name_count_sql(
                    str(param(ctx, "destination_table_name"))).text()
                reported.append(f"--table={param(ctx, 'destination_table_name')}")
        _comparison(ctx, "count", reported, source, destination)
        return StepResult()


class ColumnCheck(BuiltinStep):
    step_type = "column-check"

    def compile(self, ctx: StepContext) -> StepResult:
        source = str(param(ctx, "source_sql")).strip().rstrip(";")
        tail = param(ctx, "sql_tail_for_source")
        sample = int(param(ctx, "sample_size", 100))
        if tail:
            source = f"{source} {str(tail).replace('LIMIT_PLACEHOLDER', str(sample))}"
        _mysql_source(ctx, "source_sql", source)
        reported: list[str] = []
        if param(ctx, "destination_table_definition"):
            table = ctx.table("destination_table_definition")
            with ctx.sql_errors("destination_table_definition"):
                destination = sqlgen.sample_sql(table).text()
            reported.append(f"--table={table.full_name}")
        else:
            destination = str(param(ctx, "destination_sql"))
            ctx.parse(ctx.inline_sql("destination_sql"), query=True, what="destination_sql")
        _comparison(ctx, "column", reported, source, destination, [f"--sample_size={sample}"])
        return StepResult()


class PipelineDependencies(BuiltinStep):
    step_type = "pipeline-dependencies"

    def compile(self, ctx: StepContext) -> StepResult:
        names = [ctx.pipeline_in_aws(n, "dependent_pipelines")
                 for n in param(ctx, "dependent_pipelines")]
        args = [f"--pipelines={','.join(names)}",
                f"--refresh_rate={int(param(ctx, 'refresh_rate', 300))}",
                f"--start_date={param(ctx, 'start_date', SCHEDULED_DAY)}"]
        ok_to_fail = [ctx.pipeline_in_aws(n, "dependent_pipelines_ok_to_fail")
                      for n in param(ctx, "dependent_pipelines_ok_to_fail", [])]
        if ok_to_fail:
            args.append(f"--ok_to_fail={','.join(ok_to_fail)}")
        ctx.activity("ShellCommandActivity", command=qa_command(ctx, "dependencies"),
                     scriptArgument=args)
        return StepResult()
