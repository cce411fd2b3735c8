"""The steps that load Redshift (and PostgreSQL): load-redshift, create-load-redshift,
upsert, reload, delta-load, load-reload-pk, load-postgres.
"""

from __future__ import annotations

from typing import Any

from ... import sql as sqlgen
from ..base import OutputNode, StepResult, param
from ..context import StepContext
from .common import (
    BuiltinStep,
    check_activity,
    grants_of,
    plain_names,
    sql_activity,
    sqlglot_dialect,
)

COMPRESSIONS = ("GZIP", "BZIP2", "LZOP", "ZSTD")


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


def _redshift_node(ctx: StepContext, table: sqlgen.TableDefinition, suffix: str,
                   key: str) -> OutputNode:
    plain_names(ctx, key, table.schema, table.name, *table.primary_key)
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
        plain_names(ctx, "table", param(ctx, "schema"), param(ctx, "table"))
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
                              grants=grants_of(ctx)).text()
        sql_activity(ctx, script)
        if param(ctx, "history"):
            history = ctx.table("history")
            with ctx.sql_errors("history"):
                history_script = sqlgen.history_sql(destination, history).text()
            sql_activity(ctx, history_script, suffix="history")
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
        sql_activity(ctx, load, suffix="stage")
        with ctx.sql_errors():
            upsert = sqlgen.upsert_sql(production, sqlgen.Source(table=staging), dedupe=False,
                                       analyze=param(ctx, "analyze_table", True),
                                       grants=grants_of(ctx)).text()
        sql_activity(ctx, upsert)
        check_activity(ctx, production, "primary_key_check")
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
                                       grants=grants_of(ctx)).text()
        sql_activity(ctx, script, suffix="reload")
        if production.primary_key:
            check_activity(ctx, production, "primary_key_check")
        return StepResult()


class LoadPostgres(BuiltinStep):
    step_type = "load-postgres"

    def compile(self, ctx: StepContext) -> StepResult:
        inputs = _load_input(ctx)
        insert = param(ctx, "insert_query")
        plain_names(ctx, "table", param(ctx, "table"))
        if insert is not None:
            ctx.parse(ctx.inline_sql("insert_query"), dialect=sqlglot_dialect("postgres"))
        target = ctx.add("table", "SqlDataNode", database=ctx.postgres(),
                         table=param(ctx, "table"), insertQuery=insert)
        ctx.activity("CopyActivity", inputs=inputs, outputs=[OutputNode(target, "")])
        return StepResult()
