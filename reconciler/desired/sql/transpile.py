"""Redshift SQL for PostgreSQL, PostgreSQL standing in for Redshift when SQL is run locally.

The SQL the steps run is generated in Redshift's dialect (what production runs). To run it on
PostgreSQL (``reconciler run-step``, the tests that prove the generated SQL), each statement is
parsed and generated again in PostgreSQL's dialect by sqlglot. Redshift's physical-layout
clauses have no meaning there and are the only things dropped: ``DISTKEY``, ``SORTKEY`` (column
and table level, ``COMPOUND`` and ``INTERLEAVED``), ``DISTSTYLE`` and ``ENCODE``.
:func:`to_postgres` returns what it dropped, so a test can pin that list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlglot import exp

from .dialect import DistKeyColumnConstraint, InterleavedSortKeyProperty, SortKeyColumnConstraint
from .text import REDSHIFT_COMMANDS, SqlError, parse_sql

# Redshift-only clauses, by the name a person knows them by.
REDSHIFT_ONLY: dict[type[exp.Expression], str] = {
    DistKeyColumnConstraint: "DISTKEY", SortKeyColumnConstraint: "SORTKEY",
    exp.DistKeyProperty: "DISTKEY", exp.SortKeyProperty: "SORTKEY",
    InterleavedSortKeyProperty: "SORTKEY", exp.DistStyleProperty: "DISTSTYLE",
    exp.EncodeColumnConstraint: "ENCODE",
}


def _strip(statement: exp.Expr, dropped: set[str]) -> exp.Expr:
    """The statement without Redshift's layout clauses (a copy; the parse is shared)."""
    statement = statement.copy()
    for node in list(statement.walk()):
        kind = type(node)
        if isinstance(node, exp.ColumnConstraint) and type(node.args.get("kind")) in REDSHIFT_ONLY:
            dropped.add(REDSHIFT_ONLY[type(node.args["kind"])])
            node.pop()
        elif kind in REDSHIFT_ONLY and not isinstance(node.parent, exp.ColumnConstraint):
            dropped.add(REDSHIFT_ONLY[kind])
            node.pop()
    return statement


def to_postgres(script: str, substitute: Callable[[str], str] | None = None,
                arguments: Sequence[str] = ()) -> tuple[list[str], set[str]]:
    """The statements of a Redshift script as PostgreSQL, and the clauses dropped.

    ``substitute`` evaluates the Data Pipeline expressions of the script first (as the service
    does before the SQL runs); without it, the script must have none. ``arguments`` fill the
    script's ``?`` placeholders in order, as strings (a SqlActivity's ``scriptArgument``)."""
    text = substitute(script) if substitute is not None else script
    parsed = parse_sql(text, commands=REDSHIFT_COMMANDS)
    if parsed.expressions:
        raise SqlError("the script has Data Pipeline expressions (#{...}); give a scheduled "
                       "time to evaluate them")
    dropped: set[str] = set()
    statements, remaining = [], list(arguments)
    for statement in parsed.statements:
        if isinstance(statement, exp.Command):
            statements.append(statement.sql(dialect="postgres"))
            continue
        statement = _strip(statement, dropped)
        for placeholder in list(statement.find_all(exp.Placeholder, bfs=False)):
            if not remaining:
                raise SqlError("the script has more ? placeholders than script arguments")
            placeholder.replace(exp.Literal.string(remaining.pop(0)))
        statements.append(statement.sql(dialect="postgres"))
    if remaining:
        raise SqlError(f"{len(remaining)} script argument(s) fill no ? placeholder")
    return statements, dropped
