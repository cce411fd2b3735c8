"""Dataduct's 22 built-in step types, compiled to native Data Pipeline objects.

Each class says what its step is made of; the shared wiring (inputs, outputs, dependencies,
resource, retries, alarm) comes from :class:`~reconciler.desired.steps.context.StepContext`.
SQL steps generate their statements with sqlglot's builders from table definitions
(``reconciler.desired.sql``); SQL a person wrote is parsed where the step reads it, its errors
located in their file or YAML line. Every value put into a shell command is quoted, so
``shlex.split`` of a command gives exactly the intended arguments.

The checks that compare two databases (count-check, column-check), primary-key-check with
``log_to_s3``, and pipeline-dependencies run the QA runner (``reconciler.qa``): Data Pipeline
has no native object that compares two databases or waits for another pipeline. The
activity installs the runner on its resource from the artifacts bucket when that version is
not there yet (or runs the config's ``etl.QA_RUNNER`` instead).
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from sqlglot import exp

from .. import sql as sqlgen
from ..schemas import step_validator
from .base import OutputNode, StepResult, param
from .context import SqlSource, StepContext, staging_vars

DEFAULT_QA_PYTHON = "python3"
STREAMING_JAR = "/home/hadoop/contrib/streaming/hadoop-streaming.jar"
SCHEDULED_DAY = "#{format(@scheduledStartTime, 'YYYY-MM-dd')}"
COMPRESSIONS = ("GZIP", "BZIP2", "LZOP", "ZSTD")


class BuiltinStep:
    step_type = ""
    produces_output = False
    resource = "ec2"

    def validator(self) -> Draft202012Validator:
        return step_validator(self.step_type)

    def compile(self, ctx: StepContext) -> StepResult:  # pragma: no cover - overridden
        raise NotImplementedError


def _args(values: Any) -> list[str]:
    return [staging_vars(v) for v in (values or [])]


def _quote(value: str) -> str:
    """A value as one shell word. Data Pipeline expressions and staging variables stay
    outside single quotes where they must expand (``${INPUT1_STAGING_DIR}``)."""
    return shlex.quote(value)


def _run_script_command(uri: str) -> str:
    """Download a script and run it with the activity's arguments."""
    local = "./" + uri.rsplit("/", 1)[-1]
    return (f"aws s3 cp {_quote(uri)} {_quote(local)} && chmod +x {_quote(local)} && "
            f'{_quote(local)} "$@"')


def _custom_qa_runner(ctx: StepContext) -> list[str] | None:
    """The command words of a QA runner the config names instead of the bundled one
    (``etl.QA_RUNNER``, split like a shell would)."""
    runner = ctx.config.get("etl", "QA_RUNNER")
    if runner in (None, ""):
        return None
    try:
        words = shlex.split(str(runner))
    except ValueError as exc:
        ctx.fail(f"etl.QA_RUNNER '{runner}' is not a command: {exc}")
    if not words or not all(re.fullmatch(r"[A-Za-z0-9_./=:@+-]+", w) for w in words):
        ctx.fail(f"etl.QA_RUNNER '{runner}' is not a plain command",
                 hint="name the installed command and its fixed arguments, e.g. "
                      "'/opt/qa/bin/python -m reconciler.qa'")
    return words


def _qa_install(ctx: StepContext) -> str:
    """Shell lines that install the bundled QA runner on the resource unless this version is
    there already: its wheel and its drivers' wheels from the artifacts bucket (no package
    index), into a virtualenv moved into place only when complete. Sets ``runner``."""
    runner, wheel, wheelhouse = ctx.qa_runner()
    python = str(ctx.config.get("etl", "QA_PYTHON", DEFAULT_QA_PYTHON))
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", python):
        ctx.fail(f"etl.QA_PYTHON '{python}' is not a plain command",
                 hint="name the Python 3.11+ interpreter of the resource, e.g. python3.11")
    home = '"$HOME/.dataduct-reconciler"'
    packages = " ".join(_quote(r) for r in runner.requirements)
    return "\n".join([
        "set -e",
        f'runner="$HOME/.dataduct-reconciler/{runner.version}-{runner.sha256[:16]}"',
        'if [ ! -x "$runner/bin/python" ]; then',
        f"  mkdir -p {home}",
        '  work="$(mktemp -d "$HOME/.dataduct-reconciler/install.XXXXXX")"',
        f'  aws s3 cp --quiet {_quote(wheel.s3_uri)} "$work/wheels/{runner.wheel_name}"',
        f'  aws s3 cp --quiet --recursive {_quote(wheelhouse)} "$work/wheels/"',
        f'  {python} -m venv "$work/venv"',
        f'  "$work/venv/bin/python" -m pip install --quiet --no-index --no-deps '
        f'--find-links "$work/wheels" {packages}',
        '  mv -T "$work/venv" "$runner" 2>/dev/null || true',
        '  rm -rf "$work"',
        "fi",
    ])


# Passwords reach a check on its standard input, never its argument list: a here-document
# with a quoted delimiter, so the shell expands nothing in them.
SECRETS_DELIMITER = "DATADUCT_QA_PASSWORDS"


def _with_passwords(command: str, passwords: dict[str, str]) -> str:
    """``command`` reading ``name=value`` lines (the encrypted parameters) on stdin."""
    if not passwords:
        return command
    lines = "\n".join(f"{k}={v}" for k, v in sorted(passwords.items()))
    return f"{command} <<'{SECRETS_DELIMITER}'\n{lines}\n{SECRETS_DELIMITER}"


def _qa_command(ctx: StepContext, check: str, passwords: dict[str, str] | None = None) -> str:
    """The command of a QA activity: the bundled runner (installed first when missing) or the
    config's ``etl.QA_RUNNER``, the check, and the passwords on standard input."""
    custom = _custom_qa_runner(ctx)
    if custom is not None:
        words = " ".join(_quote(w) for w in [*custom, check])
    else:
        words = f'{_qa_install(ctx)}\n"$runner/bin/python" -m reconciler.qa {check}'
    if passwords:
        words += " --passwords_from_stdin"
    return _with_passwords(words + ' "$@"', passwords or {})


def _qa_log_args(ctx: StepContext) -> list[str]:
    args = [f"--test_name={ctx.pipeline_name}.{ctx.step.name}"]
    if param(ctx, "log_to_s3", False):
        qa = str(ctx.config.get("etl", "QA_LOG_PATH", "qa")).strip("/")
        args.append(f"--log_to_s3={ctx.s3_base()}/{qa}/{ctx.pipeline_name}/{ctx.step.name}/")
    topic = ctx.config.get("etl", "SNS_TOPIC_ARN_WARNING")
    if topic:
        args.append(f"--sns_topic_arn={topic}")
    retries = ctx.config.get("etl", "CONNECTION_RETRIES")
    if retries is not None:
        args.append(f"--connection_retries={int(retries)}")
    return args


def _table_of(name: Any, ctx: StepContext, key: str, dialect: str) -> exp.Table:
    """A table a manifest names (``schema.table``), each part quoted."""
    parts = str(name).split(".")
    if not 1 <= len(parts) <= 3 or not all(parts):
        ctx.fail(f"'{name}' is not a table name (table, schema.table or db.schema.table)", key)
    quoted = [exp.to_identifier(p, quoted=True) for p in parts]
    return exp.Table(this=quoted[-1], db=quoted[-2] if len(quoted) > 1 else None,
                     catalog=quoted[0] if len(quoted) > 2 else None)


def _select_all(table: exp.Table, dialect: str) -> str:
    return exp.select("*").from_(table).sql(dialect=dialect)


# -- extract steps ------------------------------------------------------------------------------


class ExtractS3(BuiltinStep):
    step_type = "extract-s3"
    produces_output = True
    resource = "none"

    def compile(self, ctx: StepContext) -> StepResult:
        if param(ctx, "file_uri"):
            return StepResult(output=ctx.output_node(file_path=param(ctx, "file_uri")))
        return StepResult(output=ctx.output_node(path=param(ctx, "directory_uri").rstrip("/")))


class ExtractLocal(BuiltinStep):
    step_type = "extract-local"
    produces_output = True
    resource = "none"

    def compile(self, ctx: StepContext) -> StepResult:
        return StepResult(output=ctx.output_node(file_path=ctx.file_uri("path")))


def _copy_to_s3(ctx: StepContext, database, table: str, query: str) -> StepResult:
    source = ctx.add("source", "SqlDataNode", table=table, selectQuery=query, database=database)
    output = ctx.output_node(data_format=ctx.tsv_format())
    ctx.activity("CopyActivity", inputs=[OutputNode(source, "")], outputs=[output])
    return StepResult(output=output)


def _extract_query(ctx: StepContext, dialect: str) -> tuple[str, str]:
    """(table, query) of an extract step: its ``sql`` (one SELECT) or ``table``."""
    table = param(ctx, "table")
    if param(ctx, "sql") is None:
        if table is None:
            ctx.fail("give sql or table", "sql")
        return str(table), _select_all(_table_of(table, ctx, "table", dialect), dialect)
    parsed = ctx.parse(ctx.inline_sql("sql"), query=True,
                       dialect=sqlglot_dialect(dialect), what="the extract query")
    query = parsed.text.strip().rstrip(";").strip()
    if table is None:
        first = next(parsed.statements[0].find_all(exp.Table))
        table = parsed.restore(first.sql(dialect=dialect))
    return str(table), query


def sqlglot_dialect(name: str) -> type:
    from sqlglot.dialects.dialect import Dialect

    return type(Dialect.get_or_raise(name))


class ExtractRds(BuiltinStep):
    step_type = "extract-rds"
    produces_output = True

    def compile(self, ctx: StepContext) -> StepResult:
        database = ctx.mysql(param(ctx, "host_name"), param(ctx, "database"))
        table, query = _extract_query(ctx, "mysql")
        return _copy_to_s3(ctx, database, table, query)


class ExtractRedshift(BuiltinStep):
    step_type = "extract-redshift"
    produces_output = True

    def compile(self, ctx: StepContext) -> StepResult:
        _plain_names(ctx, "table", param(ctx, "schema"), param(ctx, "table"))
        full = f"{param(ctx, 'schema')}.{param(ctx, 'table')}"
        query = _select_all(_table_of(full, ctx, "table", "redshift"), "redshift")
        return _copy_to_s3(ctx, ctx.redshift(), full, query)


class ExtractPostgres(BuiltinStep):
    step_type = "extract-postgres"
    produces_output = True

    def compile(self, ctx: StepContext) -> StepResult:
        table, query = _extract_query(ctx, "postgres")
        return _copy_to_s3(ctx, ctx.postgres(), table, query)


# -- transforms ---------------------------------------------------------------------------------


def _transform_command(ctx: StepContext) -> tuple[str, list[str]]:
    extra = [f"aws s3 cp {_quote(str(uri))} ./" for uri in param(ctx, "additional_s3_files", [])]
    if param(ctx, "command"):
        command = str(param(ctx, "command"))
    elif param(ctx, "script"):
        command = _run_script_command(ctx.file_uri("script"))
    else:
        name = param(ctx, "script_name")
        if not name:
            ctx.fail("script_directory needs script_name, the script to run", "script_name")
        if str(name).startswith("/") or ".." in str(name).split("/"):
            ctx.fail(f"script_name '{name}' must be a path inside script_directory",
                     "script_name")
        prefix = ctx.directory_uri("script_directory")
        directory = "./" + prefix.rsplit("/", 1)[-1]
        script = f"{directory}/{name}"
        command = (f"aws s3 cp --recursive {_quote(prefix + '/')} {_quote(directory + '/')} && "
                   f'chmod +x {_quote(script)} && {_quote(script)} "$@"')
    return " && ".join([*extra, command]), _args(param(ctx, "script_arguments"))


class Transform(BuiltinStep):
    step_type = "transform"
    produces_output = True

    def compile(self, ctx: StepContext) -> StepResult:
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

    def compile(self, ctx: StepContext) -> StepResult:
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

    def compile(self, ctx: StepContext) -> StepResult:
        mapper = ctx.file_uri("mapper")
        files = [mapper]
        reducer = ctx.file_uri("reducer") if param(ctx, "reducer") else None
        if reducer:
            files.append(reducer)
        for key, uri in (("mapper", mapper), ("reducer", reducer or "")):
            if "," in uri:
                ctx.fail(f"'{uri.rsplit('/', 1)[-1]}' has a comma, which would split the EMR "
                         "step's arguments", key, "rename the file")
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

    def compile(self, ctx: StepContext) -> StepResult:
        inputs = ctx.inputs()
        output = ctx.output_node()
        ctx.activity("EmrActivity", inputs=inputs, outputs=[output], resource="emr",
                     step=param(ctx, "step_string"))
        return StepResult(output=output)


# -- loads --------------------------------------------------------------------------------------


def _invalid_char(ctx: StepContext, value: Any, key: str) -> str:
    """ACCEPTINVCHARS takes one ASCII character, written as a SQL string."""
    text = str(value)
    if len(text) != 1 or not (32 <= ord(text) < 127) or text in "'\\":
        ctx.fail(f"replace_invalid_char must be one printable ASCII character other than ' "
                 f"and \\, not {text!r}", key)
    return f"ACCEPTINVCHARS AS '{text}'"


def _copy_options(ctx: StepContext) -> list[str]:
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
            options.append(_invalid_char(ctx, value, "script_arguments"))
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


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def _plain_names(ctx: StepContext, key: str, *names: Any) -> None:
    """Names the service writes into its own SQL (RedshiftCopyActivity's COPY, SqlDataNode):
    they must be plain identifiers, as the service does not quote them."""
    for name in names:
        if name is not None and not all(_IDENTIFIER.fullmatch(part)
                                        for part in str(name).split(".")):
            ctx.fail(f"'{name}' is not a plain table or column name; AWS Data Pipeline puts it "
                     "into SQL as it is", key,
                     "use letters, digits, '_' and '$' (and '.' between schema and table)")


def _redshift_node(ctx: StepContext, table: sqlgen.TableDefinition, suffix: str,
                   key: str) -> OutputNode:
    _plain_names(ctx, key, table.schema, table.name, *table.primary_key)
    ref = ctx.add(suffix, "RedshiftDataNode", database=ctx.redshift(), tableName=table.name,
                  schemaName=table.schema, createTableSql=table.create_sql,
                  primaryKeys=list(table.primary_key) or None)
    return OutputNode(ref, table.full_name)


def _load_input(ctx: StepContext) -> list[OutputNode]:
    inputs = ctx.inputs()
    if not inputs:
        ctx.fail(f"{ctx.step.step_type} loads an input; no earlier step writes one",
                 "input_node", "add an extract step before it or set input_node")
    return inputs


class LoadRedshift(BuiltinStep):
    step_type = "load-redshift"

    def compile(self, ctx: StepContext) -> StepResult:
        inputs = _load_input(ctx)
        options = ["DELIMITER '\\t'"]
        if param(ctx, "max_errors") is not None:
            options.append(f"MAXERROR {int(param(ctx, 'max_errors'))}")
        if param(ctx, "replace_invalid_char"):
            options.append(_invalid_char(ctx, param(ctx, "replace_invalid_char"),
                                         "replace_invalid_char"))
        if param(ctx, "compression"):
            compression = str(param(ctx, "compression")).upper()
            if compression not in COMPRESSIONS:
                ctx.fail(f"compression '{compression}' is not one of {', '.join(COMPRESSIONS)}",
                         "compression")
            options.append(compression)
        _plain_names(ctx, "table", param(ctx, "schema"), param(ctx, "table"))
        target = ctx.add("table", "RedshiftDataNode", database=ctx.redshift(),
                         tableName=param(ctx, "table"), schemaName=param(ctx, "schema"))
        ctx.activity("RedshiftCopyActivity", inputs=inputs, outputs=[OutputNode(target, "")],
                     insertMode=param(ctx, "insert_mode", "TRUNCATE"), commandOptions=options)
        return StepResult()


class CreateLoadRedshift(BuiltinStep):
    step_type = "create-load-redshift"

    def compile(self, ctx: StepContext) -> StepResult:
        table = ctx.table("table_definition")
        inputs = _load_input(ctx)
        node = _redshift_node(ctx, table, "table", "table_definition")
        ctx.activity("RedshiftCopyActivity", inputs=inputs, outputs=[node],
                     insertMode="TRUNCATE", commandOptions=_copy_options(ctx))
        return StepResult()


def _sql_activity(ctx: StepContext, script: str, *, suffix: str = "",
                  arguments: list[str] | None = None, queue: str | None = None):
    """A SqlActivity on Redshift."""
    return ctx.activity("SqlActivity", suffix=suffix, database=ctx.redshift(),
                        script=script, scriptArgument=arguments, queue=queue)


def _source(ctx: StepContext, columns: tuple[str, ...]) -> sqlgen.Source:
    """Where an upsert, reload or delta-load reads: the ``source`` table (which must have the
    columns, matched by name) or one query (``sql`` or ``script``), only its rows where
    ``filter_clause`` holds."""
    condition = None
    if param(ctx, "filter_clause") is not None:
        condition = ctx.parse(ctx.inline_sql("filter_clause"), condition=True,
                              what="filter_clause")
    if param(ctx, "source"):
        source = ctx.table("source")
        missing = [c for c in columns if c not in source.column_names]
        if missing:
            ctx.fail(f"the source table {source.full_name} lacks columns of the destination: "
                     f"{', '.join(missing)}", "source",
                     "rows are matched by column name; add the columns or use sql:")
        return sqlgen.Source(table=source, filter=condition)
    query = ctx.parse(ctx.sql_source("sql", "script"), query=True, what="the source query")
    return sqlgen.Source(query=query, filter=condition)


_PRIVILEGE = re.compile(r"[A-Za-z]+( [A-Za-z]+)*")


def _grants(ctx: StepContext) -> sqlgen.Grants:
    """The config's database.permissions as (permission, principal, is_group)."""
    grants = []
    for index, grant in enumerate(ctx.config.section("database").get("permissions") or []):
        if not _PRIVILEGE.fullmatch(str(grant.get("permission", ""))):
            ctx.fail(f"permission '{grant.get('permission')}' is not a privilege such as "
                     "SELECT or ALL", hint="write one privilege (select, insert, all...)",
                     location=ctx.config.locate("database", "permissions", index,
                                                "permission"))
        if grant.get("user"):
            grants.append((str(grant["permission"]), str(grant["user"]), False))
        if grant.get("group"):
            grants.append((str(grant["permission"]), str(grant["group"]), True))
    return tuple(grants)


def _check_activity(ctx: StepContext, table: sqlgen.TableDefinition, suffix: str = "") -> None:
    """The primary-key check of a table: SQL on Redshift, or the QA runner when its result is
    logged to S3 (``log_to_s3``)."""
    if param(ctx, "log_to_s3", False):
        passwords: dict[str, str] = {}
        arguments = [f"--table={table.full_name}",
                     f"--primary_key={','.join(table.primary_key)}",
                     *_redshift_args(ctx, passwords), *_qa_log_args(ctx)]
        ctx.activity("ShellCommandActivity", suffix=suffix,
                     command=_qa_command(ctx, "primary-key", passwords),
                     scriptArgument=arguments)
        return
    with ctx.sql_errors():
        _sql_activity(ctx, sqlgen.primary_key_check_sql(table).text(), suffix=suffix)


class Upsert(BuiltinStep):
    step_type = "upsert"

    def compile(self, ctx: StepContext) -> StepResult:
        destination = ctx.table("destination")
        if self.step_type == "upsert" and not destination.primary_key:
            ctx.fail(f"{destination.full_name} has no primary key; upsert matches rows by it",
                     "destination", "add PRIMARY KEY to the table definition")
        source = _source(ctx, destination.column_names)
        dedupe = bool(param(ctx, "enforce_primary_key", True)) and bool(destination.primary_key)
        generate = sqlgen.upsert_sql if self.step_type == "upsert" else sqlgen.reload_sql
        with ctx.sql_errors("sql" if source.query is not None else "source"):
            script = generate(destination, source, dedupe=dedupe,
                              analyze=param(ctx, "analyze_table", True),
                              grants=_grants(ctx)).text()
        _sql_activity(ctx, script)
        if param(ctx, "history"):
            history = ctx.table("history")
            with ctx.sql_errors("history"):
                history_script = sqlgen.history_sql(destination, history).text()
            _sql_activity(ctx, history_script, suffix="history")
        return StepResult()


class Reload(Upsert):
    step_type = "reload"


class DeltaLoad(BuiltinStep):
    step_type = "delta-load"

    def compile(self, ctx: StepContext) -> StepResult:
        staging = ctx.table("staging_table_definition")
        production = ctx.table("production_table_definition")
        if not production.primary_key:
            ctx.fail(f"{production.full_name} has no primary key; delta-load upserts by it",
                     "production_table_definition")
        missing = [c for c in production.column_names if c not in staging.column_names]
        if missing:
            ctx.fail(f"the staging table lacks columns of the production table: "
                     f"{', '.join(missing)}", "staging_table_definition")
        dedupe = production.primary_key if param(ctx, "enforce_primary_key", True) else ()
        source = _source(ctx, production.column_names)
        with ctx.sql_errors("date_column"):
            select = sqlgen.delta_select(production.column_names, production,
                                         param(ctx, "date_column"), param(ctx, "window", 0),
                                         source, dedupe)
            load = sqlgen.stage_delta_sql(staging, production, select, source).text()
        _sql_activity(ctx, load, suffix="stage")
        with ctx.sql_errors():
            upsert = sqlgen.upsert_sql(production, sqlgen.Source(table=staging), dedupe=False,
                                       analyze=param(ctx, "analyze_table", True),
                                       grants=_grants(ctx)).text()
        _sql_activity(ctx, upsert)
        _check_activity(ctx, production, "primary_key_check")
        return StepResult()


class LoadReloadPk(BuiltinStep):
    step_type = "load-reload-pk"

    def compile(self, ctx: StepContext) -> StepResult:
        staging = ctx.table("staging_table_definition")
        production = ctx.table("production_table_definition")
        inputs = _load_input(ctx)
        node = _redshift_node(ctx, staging, "staging_table", "staging_table_definition")
        ctx.activity("RedshiftCopyActivity", suffix="load", inputs=inputs, outputs=[node],
                     insertMode="TRUNCATE", commandOptions=_copy_options(ctx))
        missing = [c for c in production.column_names if c not in staging.column_names]
        if missing:
            ctx.fail(f"the staging table lacks columns of the production table: "
                     f"{', '.join(missing)}", "staging_table_definition")
        with ctx.sql_errors():
            script = sqlgen.reload_sql(production, sqlgen.Source(table=staging),
                                       grants=_grants(ctx)).text()
        _sql_activity(ctx, script, suffix="reload")
        if production.primary_key:
            _check_activity(ctx, production, "primary_key_check")
        return StepResult()


class LoadPostgres(BuiltinStep):
    step_type = "load-postgres"

    def compile(self, ctx: StepContext) -> StepResult:
        inputs = _load_input(ctx)
        insert = param(ctx, "insert_query")
        _plain_names(ctx, "table", param(ctx, "table"))
        if insert is not None:
            ctx.parse(ctx.inline_sql("insert_query"), dialect=sqlglot_dialect("postgres"))
        target = ctx.add("table", "SqlDataNode", database=ctx.postgres(),
                         table=param(ctx, "table"), insertQuery=insert)
        ctx.activity("CopyActivity", inputs=inputs, outputs=[OutputNode(target, "")])
        return StepResult()


# -- SQL ----------------------------------------------------------------------------------------


def _format_arguments(ctx: StepContext, source: SqlSource) -> SqlSource:
    """Dataduct filled ``%s`` in SQL from script_arguments; do it here, at compile time."""
    arguments = [str(a) for a in param(ctx, "script_arguments", [])]
    if not arguments:
        return source
    sql = source.text
    slots = re.findall(r"%s", sql.replace("%%", ""))
    if len(slots) != len(arguments):
        ctx.fail(f"the SQL has {len(slots)} %s placeholder(s) and script_arguments gives "
                 f"{len(arguments)} value(s)", "script_arguments")
    parts = sql.replace("%%", "\0").split("%s")
    out = parts[0]
    for value, part in zip(arguments, parts[1:], strict=True):
        out += value + part
    return SqlSource(out.replace("\0", "%"), source.key, source.file)


class SqlCommand(BuiltinStep):
    step_type = "sql-command"

    def compile(self, ctx: StepContext) -> StepResult:
        source = ctx.sql_source("command", "script")
        parsed = ctx.parse(source, script=True)
        script = parsed.text
        if param(ctx, "wrap_transaction", True):
            with ctx.sql_errors(source.key):
                script = sqlgen.wrap_in_transaction(parsed)
        _sql_activity(ctx, script, arguments=[str(a) for a in param(ctx, "script_arguments", [])],
                      queue=param(ctx, "queue"))
        return StepResult()


class CreateUpdateSql(BuiltinStep):
    step_type = "create-update-sql"

    def compile(self, ctx: StepContext) -> StepResult:
        table = ctx.table("table_definition")
        parsed = ctx.parse(_format_arguments(ctx, ctx.sql_source("command", "script")),
                           script=True)
        body = parsed.text
        if not param(ctx, "non_transactional", False):
            with ctx.sql_errors():
                body = sqlgen.wrap_in_transaction(parsed)
        with ctx.sql_errors():
            grants = sqlgen.grants_sql(table, _grants(ctx)).text() if _grants(ctx) else ""
            analyze = (sqlgen.analyze_sql(table).text()
                       if param(ctx, "analyze_table", True) else "")
            script = sqlgen.join_scripts(table.create_if_not_exists(), grants, body, analyze)
        _sql_activity(ctx, script)
        return StepResult()


# -- checks -------------------------------------------------------------------------------------


class PrimaryKeyCheck(BuiltinStep):
    step_type = "primary-key-check"

    def compile(self, ctx: StepContext) -> StepResult:
        table = ctx.table("table_definition")
        if not table.primary_key:
            ctx.fail(f"{table.full_name} has no primary key to check", "table_definition")
        if param(ctx, "script"):
            ctx.activity("ShellCommandActivity", command=_run_script_command(
                ctx.file_uri("script")), scriptArgument=[
                *_args(param(ctx, "script_arguments")), f"--table={table.full_name}",
                *_qa_log_args(ctx)])
        else:
            _check_activity(ctx, table)
        return StepResult()


def _source_args(ctx: StepContext, passwords: dict[str, str]) -> list[str]:
    """Where the source database is; its password goes into ``passwords``."""
    login = ctx.mysql_login(param(ctx, "source_host"), "source_host")
    passwords["source_password"] = login.password
    database = [f"--source_database={login.database}"] if login.database else []
    return [f"--source_host={login.host}", f"--source_port={login.port}", *database,
            f"--source_user={login.user}"]


def _redshift_args(ctx: StepContext, passwords: dict[str, str]) -> list[str]:
    """Where Redshift is; its password goes into ``passwords``."""
    ctx.redshift()
    login = ctx.redshift_login()
    passwords["destination_password"] = login.password
    return [f"--destination_host={login.host}", f"--destination_port={login.port}",
            f"--destination_database={login.database}", f"--destination_user={login.user}"]


def _mysql_source(ctx: StepContext, key: str, text: str) -> str:
    """A source-side query (MySQL) after checking it parses."""
    ctx.parse(ctx.inline_sql(key, text), dialect=sqlglot_dialect("mysql"))
    return text


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
            table = _table_of(param(ctx, "source_table_name"), ctx, "source_table_name", "mysql")
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
        passwords: dict[str, str] = {}
        arguments = [*reported, f"--source_sql={source}", f"--destination_sql={destination}",
                     f"--tolerance={param(ctx, 'tolerance', 1)}", *_source_args(ctx, passwords),
                     *_redshift_args(ctx, passwords), *_qa_log_args(ctx),
                     *_args(param(ctx, "script_arguments"))]
        command = (_with_passwords(_run_script_command(ctx.file_uri("script")), passwords)
                   if param(ctx, "script") else _qa_command(ctx, "count", passwords))
        ctx.activity("ShellCommandActivity", command=command, scriptArgument=arguments)
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
        passwords: dict[str, str] = {}
        arguments = [*reported, f"--source_sql={source}", f"--destination_sql={destination}",
                     f"--sample_size={sample}", f"--tolerance={param(ctx, 'tolerance', 1)}",
                     *_source_args(ctx, passwords), *_redshift_args(ctx, passwords),
                     *_qa_log_args(ctx), *_args(param(ctx, "script_arguments"))]
        command = (_with_passwords(_run_script_command(ctx.file_uri("script")), passwords)
                   if param(ctx, "script") else _qa_command(ctx, "column", passwords))
        ctx.activity("ShellCommandActivity", command=command, scriptArgument=arguments)
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
        ctx.activity("ShellCommandActivity", command=_qa_command(ctx, "dependencies"),
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
