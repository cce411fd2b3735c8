"""The tables a pipeline definition writes, read from its objects (pure).

Used to warn when two pipelines would load the same table: a RedshiftDataNode or SqlDataNode
that an activity writes, and the targets of INSERT, UPDATE, DELETE, COPY and CREATE TABLE in
the SQL scripts of SqlActivity objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlglot import exp

from ..desired.sql import SqlError, parse_sql
from ..desired.sql.text import REDSHIFT_COMMANDS
from ..service.model import fields_of


def tables_written(objects: Iterable[Mapping[str, Any]]) -> set[str]:
    """``schema.table`` names (lower case) the definition's activities write."""
    by_id = {o["id"]: fields_of(o) for o in objects}
    written: set[str] = set()
    outputs = {v for f in by_id.values() for v, is_ref in f.get("output", []) if is_ref}
    for oid in outputs:
        fields = by_id.get(oid, {})
        table = (fields.get("tableName") or fields.get("table") or [("", False)])[0][0]
        schema = (fields.get("schemaName") or [("", False)])[0][0]
        if table:
            written.add(f"{schema}.{table}".lower() if schema else table.lower())
    for fields in by_id.values():
        for script, _ in fields.get("script", []):
            written |= _script_targets(script)
    return written


def _script_targets(script: str) -> set[str]:
    try:
        statements = parse_sql(script, commands=REDSHIFT_COMMANDS).statements
    except SqlError:
        return set()
    found = set()
    for statement in statements:
        if isinstance(statement, (exp.Insert, exp.Update, exp.Delete, exp.Create)):
            target = statement.this
            table = target.this if isinstance(target, exp.Schema) else target
            if isinstance(table, exp.Table) and not _temporary(statement):
                found.add(f"{table.db}.{table.name}".lower() if table.db
                          else table.name.lower())
    return found


def _temporary(statement: exp.Expression) -> bool:
    properties = statement.args.get("properties")
    return bool(properties and any(isinstance(p, exp.TemporaryProperty)
                                   for p in properties.expressions))
