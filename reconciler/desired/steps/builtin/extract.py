"""The extract steps: S3, repository files, RDS (MySQL), Redshift and PostgreSQL into S3.
"""

from __future__ import annotations

from sqlglot import exp

from ..base import OutputNode, StepResult, param
from ..context import StepContext
from .common import BuiltinStep, plain_names, select_all, sqlglot_dialect, table_of


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
        return str(table), select_all(table_of(table, ctx, "table", dialect), dialect)
    parsed = ctx.parse(ctx.inline_sql("sql"), query=True,
                       dialect=sqlglot_dialect(dialect), what="the extract query")
    query = parsed.text.strip().rstrip(";").strip()
    if table is None:
        first = next(parsed.statements[0].find_all(exp.Table))
        table = parsed.restore(first.sql(dialect=dialect))
    return str(table), query


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
        plain_names(ctx, "table", param(ctx, "schema"), param(ctx, "table"))
        full = f"{param(ctx, 'schema')}.{param(ctx, 'table')}"
        query = select_all(table_of(full, ctx, "table", "redshift"), "redshift")
        return _copy_to_s3(ctx, ctx.redshift(), full, query)


class ExtractPostgres(BuiltinStep):
    step_type = "extract-postgres"
    produces_output = True

    def compile(self, ctx: StepContext) -> StepResult:
        table, query = _extract_query(ctx, "postgres")
        return _copy_to_s3(ctx, ctx.postgres(), table, query)
