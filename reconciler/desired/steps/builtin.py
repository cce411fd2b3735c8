"""Dataduct's 22 built-in step types, compiled to native Data Pipeline objects.

Each class says what its step is made of; the shared wiring (inputs, outputs, dependencies,
resource, retries, alarm) comes from :class:`~reconciler.desired.compiler.StepContext`.
SQL steps generate their statements from table definitions (``reconciler.desired.sql``) with
explicit column lists; every generated statement is parsed back by sqlglot.

The three checks that compare two databases (count-check, column-check) and
pipeline-dependencies run a command installed on the resource (``etl.QA_RUNNER``, default
``dataduct-qa``) with the generated SQL as arguments: Data Pipeline has no native object that
compares two databases or waits for another pipeline.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import sqlglot
from jsonschema import Draft202012Validator
from sqlglot import exp

from .. import sql as sqlgen
from ..schemas import step_validator
from .base import OutputNode, StepResult, param

DEFAULT_QA_RUNNER = "dataduct-qa"
STREAMING_JAR = "/home/hadoop/contrib/streaming/hadoop-streaming.jar"
SCHEDULED_DAY = "#{format(@scheduledStartTime, 'YYYY-MM-dd')}"


class BuiltinStep:
    step_type = ""
    produces_output = False
    resource = "ec2"

    def validator(self) -> Draft202012Validator:
        return step_validator(self.step_type)

    def compile(self, ctx) -> StepResult:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError


def _args(values: Any) -> list[str]:
    from ..compiler import staging_vars

    return [staging_vars(v) for v in (values or [])]


def _checked(ctx, sql: str, key: str | None = None) -> str:
    """SQL written in a manifest or a repository file, parsed as Redshift."""
    try:
        sqlgen.check_parses(sql)
    except ValueError as exc:
        ctx.fail(str(exc), key)
    return sql


def _wrap(statements: str, transaction: bool) -> str:
    body = statements.strip()
    if not transaction:
        return body
    if not body.endswith(";"):
        body += ";"
    return f"BEGIN;\n{body}\nCOMMIT;"


def _run_script_command(uri: str) -> str:
    name = uri.rsplit("/", 1)[-1]
    return f'aws s3 cp {uri} ./{name} && chmod +x ./{name} && ./{name} "$@"'


def _qa_runner(ctx) -> str:
    return str(ctx.config.get("etl", "QA_RUNNER", DEFAULT_QA_RUNNER))


def _qa_log_args(ctx) -> list[str]:
    args = [f"--test_name={ctx.pipeline_name}.{ctx.step.name}"]
    if param(ctx, "log_to_s3", False):
        qa = ctx.config.get("etl", "QA_LOG_PATH", "qa")
        args.append(f"--log_to_s3={ctx.s3_base()}/{qa}/{ctx.pipeline_name}/{ctx.step.name}/")
    topic = ctx.config.get("etl", "SNS_TOPIC_ARN_WARNING")
    if topic:
        args.append(f"--sns_topic_arn={topic}")
    return args


# -- extract steps ------------------------------------------------------------------------------


class ExtractS3(BuiltinStep):
    step_type = "extract-s3"
    produces_output = True
    resource = "none"

    def compile(self, ctx) -> StepResult:
        if param(ctx, "file_uri"):
            return StepResult(output=ctx.output_node(file_path=param(ctx, "file_uri")))
        return StepResult(output=ctx.output_node(path=param(ctx, "directory_uri").rstrip("/")))


class ExtractLocal(BuiltinStep):
    step_type = "extract-local"
    produces_output = True
    resource = "none"

    def compile(self, ctx) -> StepResult:
        return StepResult(output=ctx.output_node(file_path=ctx.file_uri("path")))


def _table_of_query(query: str, dialect: str) -> str | None:
    """The first table a SELECT reads, for the ``table`` field SqlDataNode requires."""
    try:
        parsed = sqlglot.parse_one(query, read=dialect)
    except sqlglot.errors.ParseError:
        return None
    table = next(parsed.find_all(exp.Table), None) if parsed else None
    return table.sql(dialect=dialect) if table is not None else None


def _copy_to_s3(ctx, database, table: str, query: str) -> StepResult:
    source = ctx.add("source", "SqlDataNode", table=table, selectQuery=query, database=database)
    output = ctx.output_node(data_format=ctx.tsv_format())
    source_node = OutputNode(source, "")
    ctx.activity("CopyActivity", inputs=[source_node], outputs=[output])
    return StepResult(output=output)


class ExtractRds(BuiltinStep):
    step_type = "extract-rds"
    produces_output = True

    def compile(self, ctx) -> StepResult:
        database = ctx.mysql(param(ctx, "host_name"), param(ctx, "database"))
        table = param(ctx, "table")
        query = param(ctx, "sql") or f"SELECT * FROM {table}"
        query = query.strip().rstrip(";")
        if table is None:
            table = _table_of_query(query, "mysql")
            if table is None:
                ctx.fail("the query does not parse as MySQL or reads no table", "sql")
        return _copy_to_s3(ctx, database, table, query)


class ExtractRedshift(BuiltinStep):
    step_type = "extract-redshift"
    produces_output = True

    def compile(self, ctx) -> StepResult:
        full = f"{param(ctx, 'schema')}.{param(ctx, 'table')}"
        return _copy_to_s3(ctx, ctx.redshift(), full, f"SELECT * FROM {full}")


class ExtractPostgres(BuiltinStep):
    step_type = "extract-postgres"
    produces_output = True

    def compile(self, ctx) -> StepResult:
        table = param(ctx, "table")
        query = (param(ctx, "sql") or f"SELECT * FROM {table}").strip().rstrip(";")
        if table is None:
            table = _table_of_query(query, "postgres")
            if table is None:
                ctx.fail("the query does not parse as PostgreSQL or reads no table", "sql")
        return _copy_to_s3(ctx, ctx.postgres(), table, query)


# -- transforms ---------------------------------------------------------------------------------


def _transform_command(ctx) -> tuple[str, list[str]]:
    extra = [f"aws s3 cp {uri} ./" for uri in param(ctx, "additional_s3_files", [])]
    if param(ctx, "command"):
        command = str(param(ctx, "command"))
    elif param(ctx, "script"):
        command = _run_script_command(ctx.file_uri("script"))
    else:
        name = param(ctx, "script_name")
        if not name:
            ctx.fail("script_directory needs script_name, the script to run", "script_name")
        prefix = ctx.directory_uri("script_directory")
        directory = prefix.rsplit("/", 1)[-1]
        script = f"./{directory}/{name}"
        command = (f"aws s3 cp --recursive {prefix}/ ./{directory}/ && chmod +x {script} && "
                   f'{script} "$@"')
    return " && ".join([*extra, command]), _args(param(ctx, "script_arguments"))


class Transform(BuiltinStep):
    step_type = "transform"
    produces_output = True

    def compile(self, ctx) -> StepResult:
        command, arguments = _transform_command(ctx)
        inputs = ctx.inputs()
        result = StepResult()
        outputs: list[OutputNode] = []
        if not param(ctx, "no_output", False):
            result.output = ctx.output_node()
            outputs = [result.output]
            for name in param(ctx, "output_node", []):
                result.named_outputs[name] = ctx.output_node(
                    name, path=f"{result.output.path}/{name}")
        ctx.activity("ShellCommandActivity", inputs=inputs, outputs=outputs, command=command,
                     scriptArgument=arguments, stage=bool(inputs or outputs))
        return result


class QaTransform(BuiltinStep):
    step_type = "qa-transform"

    def compile(self, ctx) -> StepResult:
        command, arguments = _transform_command(ctx)
        inputs = ctx.inputs()
        ctx.activity("ShellCommandActivity", inputs=inputs, command=command,
                     scriptArgument=[*arguments, *_qa_log_args(ctx)], stage=bool(inputs))
        return StepResult()


# -- EMR ----------------------------------------------------------------------------------------


class EmrStreaming(BuiltinStep):
    step_type = "emr-streaming"
    produces_output = True
    resource = "emr"

    def compile(self, ctx) -> StepResult:
        mapper = ctx.file_uri("mapper")
        files = [mapper]
        reducer = ctx.file_uri("reducer") if param(ctx, "reducer") else None
        if reducer:
            files.append(reducer)
        inputs = ctx.inputs()
        if not inputs:
            ctx.fail("emr-streaming reads an input; no earlier step writes one", "input_node")
        output = ctx.output_node()
        parts = [STREAMING_JAR, *param(ctx, "hadoop_params", []), "-files", ",".join(files),
                 "-mapper", mapper.rsplit("/", 1)[-1]]
        parts += ["-reducer", reducer.rsplit("/", 1)[-1]] if reducer else ["-numReduceTasks", "0"]
        for node in inputs:
            parts += ["-input", node.path]
        parts += ["-output", output.path]
        ctx.activity("EmrActivity", inputs=inputs, outputs=[output], resource="emr",
                     step=",".join(parts))
        return StepResult(output=output)


class EmrStep(BuiltinStep):
    step_type = "emr-step"
    produces_output = True
    resource = "emr"

    def compile(self, ctx) -> StepResult:
        inputs = ctx.inputs()
        output = ctx.output_node()
        ctx.activity("EmrActivity", inputs=inputs, outputs=[output], resource="emr",
                     step=param(ctx, "step_string"))
        return StepResult(output=output)


# -- loads --------------------------------------------------------------------------------------


def _copy_options(ctx) -> list[str]:
    """create-load-redshift's script_arguments as COPY options."""
    options: list[str] = []
    escape, gzip = True, False
    for arg in [str(a) for a in param(ctx, "script_arguments", [])]:
        key, _, value = arg.partition("=")
        value = value.strip().strip("'\"")
        if key == "--command_options":
            return [value]
        if key == "--max_error":
            if not value.isdigit():
                ctx.fail(f"--max_error needs a number, got '{value}'", "script_arguments")
            options.append(f"MAXERROR {int(value)}")
        elif key == "--replace_invalid_char":
            options.append(f"ACCEPTINVCHARS AS '{value}'")
        elif key == "--no_escape":
            escape = False
        elif key == "--gzip":
            gzip = True
        else:
            ctx.fail(f"unknown load option '{key}'", "script_arguments",
                     "use --max_error, --replace_invalid_char, --no_escape, --gzip or "
                     "--command_options")
    options.insert(0, "DELIMITER '\\t'")
    if escape:
        options.append("ESCAPE")
    if gzip:
        options.append("GZIP")
    return options


def _redshift_node(ctx, table: sqlgen.TableDefinition, suffix: str) -> OutputNode:
    ref = ctx.add(suffix, "RedshiftDataNode", database=ctx.redshift(), tableName=table.name,
                  schemaName=table.schema, createTableSql=table.create_sql,
                  primaryKeys=list(table.primary_key) or None)
    return OutputNode(ref, table.full_name)


def _load_input(ctx) -> list[OutputNode]:
    inputs = ctx.inputs()
    if not inputs:
        ctx.fail(f"{ctx.step.step_type} loads an input; no earlier step writes one",
                 "input_node", "add an extract step before it or set input_node")
    return inputs


class LoadRedshift(BuiltinStep):
    step_type = "load-redshift"

    def compile(self, ctx) -> StepResult:
        inputs = _load_input(ctx)
        options = ["DELIMITER '\\t'"]
        if param(ctx, "max_errors") is not None:
            options.append(f"MAXERROR {param(ctx, 'max_errors')}")
        if param(ctx, "replace_invalid_char"):
            options.append(f"ACCEPTINVCHARS AS '{param(ctx, 'replace_invalid_char')}'")
        if param(ctx, "compression"):
            options.append(param(ctx, "compression").upper())
        target = ctx.add("table", "RedshiftDataNode", database=ctx.redshift(),
                         tableName=param(ctx, "table"), schemaName=param(ctx, "schema"))
        ctx.activity("RedshiftCopyActivity", inputs=inputs, outputs=[OutputNode(target, "")],
                     insertMode=param(ctx, "insert_mode", "TRUNCATE"), commandOptions=options)
        return StepResult()


class CreateLoadRedshift(BuiltinStep):
    step_type = "create-load-redshift"

    def compile(self, ctx) -> StepResult:
        table = ctx.table("table_definition")
        inputs = _load_input(ctx)
        node = _redshift_node(ctx, table, "table")
        ctx.activity("RedshiftCopyActivity", inputs=inputs, outputs=[node],
                     insertMode="TRUNCATE", commandOptions=_copy_options(ctx))
        return StepResult()


def _sql_activity(ctx, script: str, *, suffix: str = "", arguments: list[str] | None = None,
                  queue: str | None = None):
    """A SqlActivity on Redshift. Scripts generated here are built from sqlglot's own output
    and pinned by tests that parse every generated script back; SQL that people wrote is
    parsed where the step reads it (``_checked``)."""
    return ctx.activity("SqlActivity", suffix=suffix, database=ctx.redshift(),
                        script=script, scriptArgument=arguments,
                        queue=queue)


def _source_select(ctx, destination: sqlgen.TableDefinition, *, dedupe: bool) -> str:
    keys = destination.primary_key if dedupe else ()
    if param(ctx, "source"):
        source = ctx.table("source")
        missing = [c for c in destination.column_names if c not in source.column_names]
        if missing:
            ctx.fail(f"the source table {source.full_name} lacks columns of the destination: "
                     f"{', '.join(missing)}", "source",
                     "rows are matched by column name; add the columns or use sql:")
        return sqlgen.source_select(destination.column_names, table=source, dedupe_on=keys)
    key = "sql" if param(ctx, "sql") else "script"
    query = _checked(ctx, param(ctx, "sql") or ctx.text("script"), key)
    return sqlgen.source_select(destination.column_names, sql=query, dedupe_on=keys)


def _permissions(ctx, table: sqlgen.TableDefinition) -> list[str]:
    grants = []
    for grant in (ctx.config.section("database").get("permissions") or []):
        permission = grant["permission"].upper()
        if grant.get("user"):
            grants.append(f"GRANT {permission} ON {table.full_name} TO {grant['user']};")
        if grant.get("group"):
            grants.append(f"GRANT {permission} ON {table.full_name} TO GROUP {grant['group']};")
    return grants


class Upsert(BuiltinStep):
    step_type = "upsert"
    generate = staticmethod(sqlgen.upsert_sql)

    def compile(self, ctx) -> StepResult:
        destination = ctx.table("destination")
        if self.step_type == "upsert" and not destination.primary_key:
            ctx.fail(f"{destination.full_name} has no primary key; upsert matches rows by it",
                     "destination", "add PRIMARY KEY to the table definition")
        select = _source_select(ctx, destination, dedupe=param(ctx, "enforce_primary_key", True)
                                and bool(destination.primary_key))
        script = self.generate(destination, select, analyze=param(ctx, "analyze_table", True))
        script = "\n".join([script, *_permissions(ctx, destination)])
        _sql_activity(ctx, script)
        if param(ctx, "history"):
            history = ctx.table("history")
            try:
                history_script = sqlgen.history_sql(destination, history)
            except ValueError as exc:
                ctx.fail(str(exc), "history")
            _sql_activity(ctx, history_script, suffix="history", key="history")
        return StepResult()


class Reload(Upsert):
    step_type = "reload"
    generate = staticmethod(sqlgen.reload_sql)


class DeltaLoad(BuiltinStep):
    step_type = "delta-load"

    def compile(self, ctx) -> StepResult:
        staging = ctx.table("staging_table_definition")
        production = ctx.table("production_table_definition")
        if not production.primary_key:
            ctx.fail(f"{production.full_name} has no primary key; delta-load upserts by it",
                     "production_table_definition")
        dedupe = production.primary_key if param(ctx, "enforce_primary_key", True) else ()
        columns = production.column_names
        kwargs: dict[str, Any] = {"dedupe_on": dedupe}
        if param(ctx, "source"):
            kwargs["table"] = ctx.table("source")
        else:
            key = "sql" if param(ctx, "sql") else "script"
            kwargs["sql"] = _checked(ctx, param(ctx, "sql") or ctx.text("script"), key)
        try:
            select = sqlgen.delta_source_select(columns, production, param(ctx, "date_column"),
                                                param(ctx, "window", 0), **kwargs)
        except ValueError as exc:
            ctx.fail(str(exc), "date_column")
        missing = [c for c in columns if c not in staging.column_names]
        if missing:
            ctx.fail(f"the staging table lacks columns of the production table: "
                     f"{', '.join(missing)}", "staging_table_definition")
        load = "\n".join([
            staging.create_if_not_exists(), "BEGIN;", f"DELETE FROM {staging.full_name};",
            f"INSERT INTO {staging.full_name} ({', '.join(columns)}) {select};", "COMMIT;"])
        _sql_activity(ctx, load, suffix="stage")
        upsert = sqlgen.upsert_sql(production, sqlgen.source_select(columns, table=staging),
                                   analyze=param(ctx, "analyze_table", True))
        _sql_activity(ctx, "\n".join([upsert, *_permissions(ctx, production)]))
        _sql_activity(ctx, sqlgen.primary_key_check_sql(production), suffix="primary_key_check")
        return StepResult()


class LoadReloadPk(BuiltinStep):
    step_type = "load-reload-pk"

    def compile(self, ctx) -> StepResult:
        staging = ctx.table("staging_table_definition")
        production = ctx.table("production_table_definition")
        inputs = _load_input(ctx)
        node = _redshift_node(ctx, staging, "staging_table")
        ctx.activity("RedshiftCopyActivity", suffix="load", inputs=inputs, outputs=[node],
                     insertMode="TRUNCATE", commandOptions=_copy_options(ctx))
        missing = [c for c in production.column_names if c not in staging.column_names]
        if missing:
            ctx.fail(f"the staging table lacks columns of the production table: "
                     f"{', '.join(missing)}", "staging_table_definition")
        select = sqlgen.source_select(production.column_names, table=staging,
                                      dedupe_on=production.primary_key)
        _sql_activity(ctx, "\n".join([sqlgen.reload_sql(production, select),
                                      *_permissions(ctx, production)]), suffix="reload")
        if production.primary_key:
            _sql_activity(ctx, sqlgen.primary_key_check_sql(production),
                          suffix="primary_key_check")
        return StepResult()


class LoadPostgres(BuiltinStep):
    step_type = "load-postgres"

    def compile(self, ctx) -> StepResult:
        inputs = _load_input(ctx)
        target = ctx.add("table", "SqlDataNode", database=ctx.postgres(),
                         table=param(ctx, "table"), insertQuery=param(ctx, "insert_query"))
        ctx.activity("CopyActivity", inputs=inputs, outputs=[OutputNode(target, "")])
        return StepResult()


# -- SQL ----------------------------------------------------------------------------------------


def _format_arguments(ctx, sql: str) -> str:
    """Dataduct filled ``%s`` in SQL from script_arguments; do it here, at compile time."""
    arguments = [str(a) for a in param(ctx, "script_arguments", [])]
    if not arguments:
        return sql
    slots = re.findall(r"%s", sql.replace("%%", ""))
    if len(slots) != len(arguments):
        ctx.fail(f"the SQL has {len(slots)} %s placeholder(s) and script_arguments gives "
                 f"{len(arguments)} value(s)", "script_arguments")
    parts = sql.replace("%%", "\0").split("%s")
    out = parts[0]
    for value, part in zip(arguments, parts[1:], strict=True):
        out += value + part
    return out.replace("\0", "%")


class SqlCommand(BuiltinStep):
    step_type = "sql-command"

    def compile(self, ctx) -> StepResult:
        key = "command" if param(ctx, "command") else "script"
        sql = param(ctx, "command") or ctx.text("script")
        script = _wrap(sql, param(ctx, "wrap_transaction", True))
        _checked(ctx, script, key)
        _sql_activity(ctx, script, arguments=[str(a) for a in
                                                       param(ctx, "script_arguments", [])],
                      queue=param(ctx, "queue"))
        return StepResult()


class CreateUpdateSql(BuiltinStep):
    step_type = "create-update-sql"

    def compile(self, ctx) -> StepResult:
        table = ctx.table("table_definition")
        key = "command" if param(ctx, "command") else "script"
        sql = _format_arguments(ctx, param(ctx, "command") or ctx.text("script"))
        _checked(ctx, sql, key)
        parts = [table.create_if_not_exists(), *_permissions(ctx, table),
                 _wrap(sql, not param(ctx, "non_transactional", False))]
        if param(ctx, "analyze_table", True):
            parts.append(f"ANALYZE {table.full_name};")
        _sql_activity(ctx, "\n".join(parts))
        return StepResult()


# -- checks -------------------------------------------------------------------------------------


class PrimaryKeyCheck(BuiltinStep):
    step_type = "primary-key-check"

    def compile(self, ctx) -> StepResult:
        table = ctx.table("table_definition")
        if not table.primary_key:
            ctx.fail(f"{table.full_name} has no primary key to check", "table_definition")
        if param(ctx, "script"):
            command = _run_script_command(ctx.file_uri("script"))
            ctx.activity("ShellCommandActivity", command=command, scriptArgument=[
                *_args(param(ctx, "script_arguments")), f"--table={table.full_name}",
                *_qa_log_args(ctx)])
        else:
            _sql_activity(ctx, sqlgen.primary_key_check_sql(table),
                          arguments=_args(param(ctx, "script_arguments")) or None)
        return StepResult()


def _source_args(ctx) -> list[str]:
    host = param(ctx, "source_host")
    hosts = ctx.config.section("mysql")
    if host not in hosts:
        ctx.fail(f"host '{host}' is not in the mysql section of the config", "source_host")
    cfg = hosts[host]
    password = ctx.builder.secret_parameter("mysql", host, cfg.get("PASSWORD"), f"mysql.{host}")
    return [f"--source_host={cfg.get('HOST')}", f"--source_user={cfg.get('USERNAME')}",
            f"--source_password={password}"]


def _redshift_args(ctx) -> list[str]:
    ref = ctx.redshift()
    obj = ctx.builder.objects[ref.id]
    return [f"--destination_database={obj.get('databaseName') or ''}",
            f"--destination_user={obj.get('username') or ''}",
            f"--destination_password={obj.get('*password')}"]


class CountCheck(BuiltinStep):
    step_type = "count-check"

    def compile(self, ctx) -> StepResult:
        if param(ctx, "source_count_sql"):
            source = param(ctx, "source_count_sql")
        else:
            source = sqlgen.count_sql(sql=param(ctx, "source_sql"),
                                      table_name=param(ctx, "source_table_name"))
        _checked_dialect(ctx, source, "mysql", "source_sql")
        if param(ctx, "destination_table_definition"):
            destination = sqlgen.count_sql(table=ctx.table("destination_table_definition"))
        else:
            destination = sqlgen.count_sql(sql=param(ctx, "destination_sql"),
                                           table_name=param(ctx, "destination_table_name"))
        _checked(ctx, destination, "destination_sql")
        command = (_run_script_command(ctx.file_uri("script")) if param(ctx, "script")
                   else f'{_qa_runner(ctx)} count-check "$@"')
        ctx.activity("ShellCommandActivity", command=command, scriptArgument=[
            f"--source_sql={source}", f"--destination_sql={destination}",
            f"--tolerance={param(ctx, 'tolerance', 1)}", *_source_args(ctx),
            *_redshift_args(ctx), *_qa_log_args(ctx), *_args(param(ctx, "script_arguments"))])
        return StepResult()


class ColumnCheck(BuiltinStep):
    step_type = "column-check"

    def compile(self, ctx) -> StepResult:
        source = param(ctx, "source_sql").strip().rstrip(";")
        tail = param(ctx, "sql_tail_for_source")
        sample = param(ctx, "sample_size", 100)
        if tail:
            source = f"{source} {tail.replace('LIMIT_PLACEHOLDER', str(sample))}"
        _checked_dialect(ctx, source, "mysql", "source_sql")
        if param(ctx, "destination_table_definition"):
            destination = sqlgen.sample_sql(ctx.table("destination_table_definition"))
        else:
            destination = param(ctx, "destination_sql")
        _checked(ctx, destination, "destination_sql")
        command = (_run_script_command(ctx.file_uri("script")) if param(ctx, "script")
                   else f'{_qa_runner(ctx)} column-check "$@"')
        ctx.activity("ShellCommandActivity", command=command, scriptArgument=[
            f"--source_sql={source}", f"--destination_sql={destination}",
            f"--sample_size={sample}", f"--tolerance={param(ctx, 'tolerance', 1)}",
            *_source_args(ctx), *_redshift_args(ctx), *_qa_log_args(ctx),
            *_args(param(ctx, "script_arguments"))])
        return StepResult()


def _checked_dialect(ctx, sql: str, dialect: str, key: str) -> None:
    try:
        sqlgen.check_parses(sql, dialect)
    except ValueError as exc:
        ctx.fail(str(exc), key)


class PipelineDependencies(BuiltinStep):
    step_type = "pipeline-dependencies"

    def compile(self, ctx) -> StepResult:
        args = [f"--pipelines={','.join(param(ctx, 'dependent_pipelines'))}",
                f"--refresh_rate={param(ctx, 'refresh_rate', 300)}",
                f"--start_date={param(ctx, 'start_date', SCHEDULED_DAY)}"]
        ok_to_fail = param(ctx, "dependent_pipelines_ok_to_fail", [])
        if ok_to_fail:
            args.append(f"--ok_to_fail={','.join(ok_to_fail)}")
        ctx.activity("ShellCommandActivity", command=f'{_qa_runner(ctx)} wait-for-pipelines "$@"',
                     scriptArgument=args)
        return StepResult()


BUILTIN_STEPS: tuple[type[BuiltinStep], ...] = (
    ExtractS3, ExtractLocal, ExtractRds, ExtractRedshift, ExtractPostgres, Transform,
    QaTransform, SqlCommand, EmrStreaming, EmrStep, LoadRedshift, LoadPostgres,
    CreateLoadRedshift, LoadReloadPk, Upsert, Reload, DeltaLoad, CreateUpdateSql,
    PrimaryKeyCheck, CountCheck, ColumnCheck, PipelineDependencies,
)


@cache
def builtin_steps() -> dict[str, BuiltinStep]:
    return {cls.step_type: cls() for cls in BUILTIN_STEPS}
