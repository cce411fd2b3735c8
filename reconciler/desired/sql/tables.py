"""Table definitions: one Redshift ``CREATE TABLE`` statement per file, read into plain data.

Names are normalised the way Redshift resolves them (unquoted and quoted alike, folded to lower
case), and every name the generator writes back is quoted, so a table called
``"evil; DROP TABLE users; --"`` stays a (strange) name and never becomes a statement.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from sqlglot import exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from .dialect import DIALECT
from .text import SqlError, parse_sql


class TableDefinitionError(SqlError):
    """A table definition file that is not one usable CREATE TABLE statement."""


@dataclass(frozen=True)
class Column:
    """One column: its name, its type as written in the dialect, and its constraints."""

    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False
    unique: bool = False
    default: str | None = None
    identity: bool = False


@dataclass(frozen=True)
class TableDefinition:
    """The parts of a CREATE TABLE statement that generated SQL needs."""

    schema: str | None
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    create_sql: str  # as written (normalised), with IF NOT EXISTS when it had it
    references: tuple[str, ...] = ()  # full names of the tables its foreign keys point at
    create_if_missing_sql: str = ""  # the same statement with IF NOT EXISTS

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def full_name(self) -> str:
        """``schema.name`` as a person reads it (unquoted; never put into SQL)."""
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def table(self, alias: str | None = None) -> exp.Table:
        """The table as a quoted sqlglot expression."""
        table = exp.Table(this=exp.to_identifier(self.name, quoted=True),
                          db=exp.to_identifier(self.schema, quoted=True) if self.schema else None)
        if alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
        return table

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def create_if_not_exists(self) -> str:
        return self.create_if_missing_sql or self.create_sql


def _constraint_kinds(column: exp.ColumnDef) -> list[exp.Expression]:
    return [c.args.get("kind") for c in column.args.get("constraints") or []]


def _column(item: exp.ColumnDef) -> Column:
    kinds = _constraint_kinds(item)
    not_null = [k for k in kinds if isinstance(k, exp.NotNullColumnConstraint)
                and not k.args.get("allow_null")]
    null = [k for k in kinds if isinstance(k, exp.NotNullColumnConstraint)
            and k.args.get("allow_null")]
    if not_null and null:
        raise TableDefinitionError(f"column {item.name} is declared both NULL and NOT NULL",
                                   hint="keep one of the two")
    default = next((k for k in kinds if isinstance(k, exp.DefaultColumnConstraint)), None)
    kind = item.args.get("kind")
    return Column(
        name=item.name,
        type=kind.sql(dialect=DIALECT) if kind is not None else "",
        nullable=not not_null and not any(isinstance(k, exp.PrimaryKeyColumnConstraint)
                                          for k in kinds),
        primary_key=any(isinstance(k, exp.PrimaryKeyColumnConstraint) for k in kinds),
        unique=any(isinstance(k, exp.UniqueColumnConstraint) for k in kinds),
        default=default.this.sql(dialect=DIALECT) if default is not None else None,
        identity=any(isinstance(k, exp.GeneratedAsIdentityColumnConstraint) for k in kinds),
    )


@lru_cache(maxsize=4096)
def parse_table_definition(text: str) -> TableDefinition:
    """Parse one ``CREATE TABLE`` statement (Redshift dialect, Dataduct's clauses included).

    Cached by text: many pipelines share a table file."""
    try:
        parsed = parse_sql(text)
    except TableDefinitionError:
        raise
    except SqlError as error:
        raise TableDefinitionError(str(error), error.line, error.column, error.hint) from None
    if parsed.expressions:
        raise TableDefinitionError("a table definition cannot use Data Pipeline expressions "
                                   "(#{...})", hint="write the names as they are")
    if len(parsed.statements) != 1:
        raise TableDefinitionError(
            f"expected one CREATE TABLE statement, found {len(parsed.statements)}")
    create = normalize_identifiers(parsed.statements[0].copy(), dialect=DIALECT)
    if not isinstance(create, exp.Create) or create.kind != "TABLE":
        raise TableDefinitionError("the statement is not a CREATE TABLE")
    schema_expr = create.this
    if not isinstance(schema_expr, exp.Schema):
        raise TableDefinitionError("CREATE TABLE needs a column list (AS SELECT is not supported)")
    table = schema_expr.this
    columns: list[Column] = []
    primary: list[str] = []
    references: list[str] = []
    for item in schema_expr.expressions:
        if isinstance(item, exp.ColumnDef):
            column = _column(item)
            if column.name in {c.name for c in columns}:
                raise TableDefinitionError(f"column {column.name} is defined twice")
            columns.append(column)
            if column.primary_key:
                primary.append(column.name)
            references += [_referenced(k) for k in _constraint_kinds(item)
                           if isinstance(k, exp.Reference)]
        elif isinstance(item, exp.PrimaryKey):
            primary.extend(e.name for e in item.expressions)
        elif isinstance(item, exp.ForeignKey) and isinstance(item.args.get("reference"),
                                                              exp.Reference):
            references.append(_referenced(item.args["reference"]))
    if not columns:
        raise TableDefinitionError("the table has no columns")
    missing = [p for p in primary if p not in {c.name for c in columns}]
    if missing:
        raise TableDefinitionError(f"primary key names unknown columns: {', '.join(missing)}")
    if primary:
        columns = [c if c.name not in primary else
                   Column(c.name, c.type, False, True, c.unique, c.default, c.identity)
                   for c in columns]
    create_sql, if_missing_sql = _create_statements(create)
    return TableDefinition(
        schema=table.db or None,
        name=table.name,
        columns=tuple(columns),
        primary_key=tuple(dict.fromkeys(primary)),
        create_sql=create_sql,
        references=tuple(r for r in dict.fromkeys(references) if r),
        create_if_missing_sql=if_missing_sql,
    )


_PLAIN, _IF_MISSING = "CREATE TABLE ", "CREATE TABLE IF NOT EXISTS "


def _create_statements(create: exp.Create) -> tuple[str, str]:
    """The statement as written and with IF NOT EXISTS, printed once: the two differ only in
    the clause after ``CREATE TABLE`` (printed twice when the text does not start so)."""
    had_it = bool(create.args.get("exists"))
    create.set("exists", True)
    if_missing = create.sql(dialect=DIALECT, identify=True) + ";"
    if had_it:
        return if_missing, if_missing
    if if_missing.startswith(_IF_MISSING):
        return _PLAIN + if_missing[len(_IF_MISSING):], if_missing
    create.set("exists", False)
    return create.sql(dialect=DIALECT, identify=True) + ";", if_missing


def _referenced(reference: exp.Reference) -> str:
    target = reference.this
    table = target.this if isinstance(target, exp.Schema) else target
    if not isinstance(table, exp.Table):
        return ""
    return f"{table.db}.{table.name}" if table.db else table.name


def creation_order(tables: Iterable[TableDefinition]) -> list[TableDefinition]:
    """The tables in an order that creates each after the tables its foreign keys reference
    (references to tables outside ``tables`` must exist already). Ties keep the given order.
    A cycle raises :class:`TableDefinitionError` naming its tables."""
    given = list(tables)
    by_name = {t.full_name: t for t in given}
    graph = {t.full_name: [r for r in t.references if r in by_name and r != t.full_name]
             for t in given}
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise TableDefinitionError(f"foreign keys form a cycle ({cycle}); no order creates "
                                   "these tables",
                                   hint="drop one REFERENCES of the cycle") from None
    position = {t.full_name: i for i, t in enumerate(given)}
    ordered: list[TableDefinition] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        ordered += [by_name[name] for name in ready]
        sorter.done(*ready)
    return ordered
