"""Table definitions and the SQL that steps generate from them, through sqlglot.

Dataduct's tables are Redshift ``CREATE TABLE`` statements. sqlglot's Redshift dialect (pinned
in pyproject.toml) parses most of them; :class:`DataductRedshift` teaches it the clauses it
misses: column-level ``DISTKEY`` and ``SORTKEY`` and table-level ``INTERLEAVED SORTKEY(...)``.

The upsert family (upsert, reload, delta-load, history) and the QA checks build their SQL from a
:class:`TableDefinition` with explicit column lists: rows are matched by column name, never by
position. Every generated statement is parsed back by sqlglot before it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.dialects.redshift import Redshift
from sqlglot.errors import ParseError
from sqlglot.expressions.core import ColumnConstraintKind, Expression
from sqlglot.expressions.properties import Property


class DistKeyColumnConstraint(Expression, ColumnConstraintKind):
    """``id INTEGER DISTKEY``"""

    arg_types: dict = {}


class SortKeyColumnConstraint(Expression, ColumnConstraintKind):
    """``id INTEGER SORTKEY``"""

    arg_types: dict = {}


class InterleavedSortKeyProperty(Property):
    """``INTERLEAVED SORTKEY(a, b)``"""

    arg_types = {"this": True}


class DataductRedshift(Redshift):
    """Redshift as Dataduct's table definitions write it."""

    class Parser(Redshift.Parser):
        CONSTRAINT_PARSERS = {
            **Redshift.Parser.CONSTRAINT_PARSERS,
            "DISTKEY": lambda self: self.expression(DistKeyColumnConstraint()),
            "SORTKEY": lambda self: self.expression(SortKeyColumnConstraint()),
        }
        PROPERTY_PARSERS = {
            **Redshift.Parser.PROPERTY_PARSERS,
            "INTERLEAVED": lambda self: self._parse_interleaved_sortkey(),
        }

        def _parse_interleaved_sortkey(self):
            if not self._match_text_seq("SORTKEY"):
                self.raise_error("expected SORTKEY after INTERLEAVED")
            return self.expression(
                InterleavedSortKeyProperty(this=self._parse_wrapped_id_vars())
            )

    class Generator(Redshift.Generator):
        TRANSFORMS = {
            **Redshift.Generator.TRANSFORMS,
            DistKeyColumnConstraint: lambda self, e: "DISTKEY",
            SortKeyColumnConstraint: lambda self, e: "SORTKEY",
            InterleavedSortKeyProperty: lambda self, e: (
                f"INTERLEAVED SORTKEY({self.expressions(e, key='this', flat=True)})"
            ),
        }
        PROPERTIES_LOCATION = {
            **Redshift.Generator.PROPERTIES_LOCATION,
            InterleavedSortKeyProperty: exp.Properties.Location.POST_SCHEMA,
        }


DIALECT = DataductRedshift


class TableDefinitionError(ValueError):
    """A table definition file that is not one usable CREATE TABLE statement."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.line = line
        self.column = column


@dataclass(frozen=True)
class TableDefinition:
    """The parts of a CREATE TABLE statement that generated SQL needs."""

    schema: str | None
    name: str
    column_names: tuple[str, ...]
    primary_key: tuple[str, ...]
    create_sql: str

    @property
    def full_name(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def create_if_not_exists(self) -> str:
        return self.create_sql.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1)


@lru_cache(maxsize=4096)
def parse_table_definition(text: str) -> TableDefinition:
    """Parse one ``CREATE TABLE`` statement (Redshift dialect, Dataduct's clauses included).

    Cached by text: many pipelines share a table file."""
    try:
        statements = [s for s in sqlglot.parse(text, read=DIALECT) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        raise TableDefinitionError(
            f"SQL does not parse: {first.get('description', str(exc))}",
            first.get("line"), first.get("col"),
        ) from None
    if len(statements) != 1:
        raise TableDefinitionError(f"expected one CREATE TABLE statement, found {len(statements)}")
    create = statements[0]
    if not isinstance(create, exp.Create) or create.kind != "TABLE":
        raise TableDefinitionError("the statement is not a CREATE TABLE")
    schema_expr = create.this
    if not isinstance(schema_expr, exp.Schema):
        raise TableDefinitionError("CREATE TABLE needs a column list (AS SELECT is not supported)")
    table = schema_expr.this
    columns: list[str] = []
    primary: list[str] = []
    for item in schema_expr.expressions:
        if isinstance(item, exp.ColumnDef):
            name = item.name
            columns.append(name)
            for constraint in item.args.get("constraints") or []:
                if isinstance(constraint.args.get("kind"), exp.PrimaryKeyColumnConstraint):
                    primary.append(name)
        elif isinstance(item, exp.PrimaryKey):
            primary.extend(e.name for e in item.expressions)
    if not columns:
        raise TableDefinitionError("the table has no columns")
    missing = [p for p in primary if p not in columns]
    if missing:
        raise TableDefinitionError(f"primary key names unknown columns: {', '.join(missing)}")
    return TableDefinition(
        schema=table.db or None,
        name=table.name,
        column_names=tuple(columns),
        primary_key=tuple(primary),
        create_sql=create.sql(dialect=DIALECT) + ";",
    )


@lru_cache(maxsize=16384)
def check_parses(sql: str, dialect=DIALECT) -> None:
    """Raise ValueError when SQL does not parse in the dialect (cached by text)."""
    try:
        parsed = sqlglot.parse(sql, read=dialect)
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" (line {first['line']}, column {first['col']} of the SQL)" if first else ""
        raise ValueError(f"SQL does not parse: {first.get('description', 'syntax error')}"
                         f"{where}") from None
    for statement in parsed:
        if isinstance(statement, exp.Command):
            raise ValueError(f"SQL is not understood by sqlglot: {statement.sql()[:80]}")


def _cols(names, prefix: str = "") -> str:
    return ", ".join(f"{prefix}{n}" for n in names)


def _matches(keys, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{k} = {right}.{k}" for k in keys)


def _same(columns, left: str, right: str) -> str:
    return " AND ".join(
        f"({left}.{c} = {right}.{c} OR ({left}.{c} IS NULL AND {right}.{c} IS NULL))"
        for c in columns
    )


def source_select(columns, *, sql: str | None = None, table: TableDefinition | None = None,
                  dedupe_on: tuple[str, ...] = ()) -> str:
    """A SELECT of ``columns`` by name from a query or a table, optionally one row per key."""
    source = table.full_name if table is not None else f"({(sql or '').strip().rstrip(';')})"
    select = f"SELECT {_cols(columns, 'source.')} FROM {source} AS source"
    if not dedupe_on:
        return select
    return (
        f"SELECT {_cols(columns)} FROM (SELECT {_cols(columns, 'source.')}, ROW_NUMBER() OVER "
        f"(PARTITION BY {_cols(dedupe_on, 'source.')} ORDER BY {_cols(dedupe_on, 'source.')}) "
        f"AS dataduct_row_number FROM {source} AS source) AS ranked "
        f"WHERE dataduct_row_number = 1"
    )


def staging_name(destination: TableDefinition) -> str:
    return f"{destination.name}_dataduct_staging"


def load_staging_sql(destination: TableDefinition, select: str) -> list[str]:
    staging = staging_name(destination)
    return [
        destination.create_if_not_exists(),
        f"CREATE TEMP TABLE {staging} (LIKE {destination.full_name});",
        f"INSERT INTO {staging} ({_cols(destination.column_names)}) {select};",
    ]


def _swap_in(destination: TableDefinition, select: str, delete: str, analyze: bool) -> str:
    """Load the rows into a temporary staging table, delete what they replace, insert them."""
    staging = staging_name(destination)
    cols = _cols(destination.column_names)
    statements = [
        "BEGIN;",
        *load_staging_sql(destination, select),
        delete,
        f"INSERT INTO {destination.full_name} ({cols}) SELECT {cols} FROM {staging};",
        "COMMIT;",
    ]
    if analyze:
        statements.append(f"ANALYZE {destination.full_name};")
    return "\n".join(statements)


def upsert_sql(destination: TableDefinition, select: str, *, analyze: bool = True) -> str:
    """Update rows whose primary key exists, insert the others (Dataduct's upsert)."""
    if not destination.primary_key:
        raise ValueError(f"{destination.full_name} has no primary key; upsert matches rows by "
                         "primary key")
    staging = staging_name(destination)
    delete = (f"DELETE FROM {destination.full_name} USING {staging} WHERE "
              f"{_matches(destination.primary_key, destination.full_name, staging)};")
    return _swap_in(destination, select, delete, analyze)


def reload_sql(destination: TableDefinition, select: str, *, analyze: bool = True) -> str:
    """Replace the whole content of the destination (Dataduct's reload)."""
    return _swap_in(destination, select, f"DELETE FROM {destination.full_name};", analyze)


def delta_source_select(columns, production: TableDefinition, date_column: str, window_days: int,
                        *, sql: str | None = None, table: TableDefinition | None = None,
                        dedupe_on: tuple[str, ...] = ()) -> str:
    """Dataduct's delta load: only source rows dated at most ``window_days`` before the newest
    date already in the production table (every row when it is empty)."""
    if date_column not in production.column_names:
        raise ValueError(f"date_column '{date_column}' is not a column of {production.full_name}")
    select = source_select(columns, sql=sql, table=table, dedupe_on=dedupe_on)
    return (
        f"SELECT {_cols(columns, 'delta.')} FROM ({select}) AS delta WHERE delta.{date_column} >= "
        f"COALESCE((SELECT MAX({date_column}) FROM {production.full_name}), "
        f"CAST('2000-01-01' AS DATE)) - {int(window_days)}"
    )


HISTORY_START = "effective_start"
HISTORY_END = "effective_end"
OPEN_END = "'9999-12-31 00:00:00'"


def history_sql(destination: TableDefinition, history: TableDefinition) -> str:
    """Keep a type-2 history of the destination: close changed rows, open new versions.

    The history table has every destination column plus ``effective_start`` and
    ``effective_end`` timestamps; the current version of a row has the far-future end.
    Runs after the destination has been loaded, in the same transaction-free script.
    """
    missing = [c for c in (*destination.column_names, HISTORY_START, HISTORY_END)
               if c not in history.column_names]
    if missing:
        raise ValueError(f"history table {history.full_name} lacks columns: {', '.join(missing)}")
    if not destination.primary_key:
        raise ValueError(f"{destination.full_name} has no primary key; history matches rows by "
                         "primary key")
    dest, hist = destination.full_name, history.full_name
    cols = destination.column_names
    values = [c for c in cols if c not in destination.primary_key]
    changed = f"NOT ({_same(values, hist, dest)})" if values else "FALSE"
    return "\n".join([
        history.create_if_not_exists(),
        "BEGIN;",
        f"UPDATE {hist} SET {HISTORY_END} = GETDATE() FROM {dest} WHERE "
        f"{_matches(destination.primary_key, hist, dest)} AND {hist}.{HISTORY_END} = {OPEN_END} "
        f"AND {changed};",
        f"UPDATE {hist} SET {HISTORY_END} = GETDATE() WHERE {HISTORY_END} = {OPEN_END} AND NOT "
        f"EXISTS (SELECT 1 FROM {dest} WHERE {_matches(destination.primary_key, dest, hist)});",
        f"INSERT INTO {hist} ({_cols(cols)}, {HISTORY_START}, {HISTORY_END}) SELECT "
        f"{_cols(cols, dest + '.')}, GETDATE(), {OPEN_END} FROM {dest} WHERE NOT EXISTS (SELECT 1 "
        f"FROM {hist} WHERE {_matches(destination.primary_key, hist, dest)} AND "
        f"{hist}.{HISTORY_END} = {OPEN_END});",
        "COMMIT;",
    ])


def primary_key_check_sql(table: TableDefinition) -> str:
    """Fails (a cast error carrying the count) when the primary key has duplicates."""
    if not table.primary_key:
        raise ValueError(f"{table.full_name} has no primary key to check")
    keys = _cols(table.primary_key)
    label = f"primary key ({keys}) of {table.full_name} has duplicates: "
    return (
        f"SELECT CASE WHEN COUNT(*) > 0 THEN CAST('{label}' || COUNT(*) AS INTEGER) ELSE 0 END "
        f"FROM (SELECT {keys} FROM {table.full_name} GROUP BY {keys} HAVING COUNT(*) > 1) "
        f"AS duplicates;"
    )


def count_sql(*, sql: str | None = None, table_name: str | None = None,
              table: TableDefinition | None = None) -> str:
    """A statement returning one row count, for the row-count comparison."""
    if table is not None:
        return f"SELECT COUNT(*) FROM {table.full_name};"
    if table_name is not None:
        return f"SELECT COUNT(*) FROM {table_name};"
    return f"SELECT COUNT(*) FROM ({(sql or '').strip().rstrip(';')}) AS counted;"


def sample_sql(table: TableDefinition) -> str:
    """The destination side of the sampled column comparison, columns named explicitly."""
    return f"SELECT {_cols(table.column_names)} FROM {table.full_name};"
