"""The steps that run SQL a person wrote: sql-command and create-update-sql.
"""

from __future__ import annotations

import re

from ... import sql as sqlgen
from ..base import StepResult, param
from ..context import SqlSource, StepContext
from .common import BuiltinStep, grants_of, sql_activity


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
        sql_activity(ctx, script, arguments=[str(a) for a in param(ctx, "script_arguments", [])],
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
            grants = sqlgen.grants_sql(table, grants_of(ctx)).text() if grants_of(ctx) else ""
            analyze = (sqlgen.analyze_sql(table).text()
                       if param(ctx, "analyze_table", True) else "")
            script = sqlgen.join_scripts(table.create_if_not_exists(), grants, body, analyze)
        sql_activity(ctx, script)
        return StepResult()
