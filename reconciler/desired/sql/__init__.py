"""SQL, through sqlglot: Dataduct's Redshift dialect (``dialect``), table definitions
(``tables``), SQL people write with Data Pipeline expressions in it (``text``) and the SQL the
steps generate (``generate``). Pure: text in, text or located errors out."""

from .dialect import DIALECT, DataductRedshift, InterleavedSortKeyProperty
from .generate import (
    HISTORY_CONVENTIONS,
    Generated,
    Grants,
    Script,
    Source,
    analyze_sql,
    columns_check,
    count_sql,
    delta_select,
    grants_sql,
    history_sql,
    join_scripts,
    primary_key_check_sql,
    reload_sql,
    sample_sql,
    source_select,
    stage_delta_sql,
    table_name_count_sql,
    upsert_sql,
    wrap_in_transaction,
)
from .tables import (
    Column,
    TableDefinition,
    TableDefinitionError,
    creation_order,
    parse_table_definition,
)
from .text import (
    REDSHIFT_COMMANDS,
    ParsedSql,
    SqlError,
    mask_expressions,
    parse_condition,
    parse_query,
    parse_sql,
    restore_expressions,
    split_statements,
    statement_types,
)
from .transpile import REDSHIFT_ONLY, to_postgres


def clear_caches() -> None:
    """Forget every parsed and generated statement (benchmarks measure cold caches)."""
    from . import generate as _generate
    from . import tables as _tables
    from . import text as _text

    for module in (_generate, _tables, _text):
        for value in vars(module).values():
            if hasattr(value, "cache_clear"):
                value.cache_clear()


__all__ = [
    "DIALECT",
    "HISTORY_CONVENTIONS",
    "REDSHIFT_COMMANDS",
    "REDSHIFT_ONLY",
    "Column",
    "DataductRedshift",
    "Generated",
    "Grants",
    "InterleavedSortKeyProperty",
    "ParsedSql",
    "Script",
    "Source",
    "SqlError",
    "TableDefinition",
    "TableDefinitionError",
    "analyze_sql",
    "clear_caches",
    "columns_check",
    "count_sql",
    "creation_order",
    "delta_select",
    "grants_sql",
    "history_sql",
    "join_scripts",
    "mask_expressions",
    "parse_condition",
    "parse_query",
    "parse_sql",
    "parse_table_definition",
    "primary_key_check_sql",
    "reload_sql",
    "restore_expressions",
    "sample_sql",
    "source_select",
    "split_statements",
    "stage_delta_sql",
    "statement_types",
    "table_name_count_sql",
    "to_postgres",
    "upsert_sql",
    "wrap_in_transaction",
]
