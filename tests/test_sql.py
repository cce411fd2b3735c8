"""Table definitions through sqlglot's Redshift dialect (with Dataduct's clauses) and the SQL
generated from them."""

import pytest
import sqlglot
from sqlglot import exp

from reconciler.desired import sql as sqlgen
from reconciler.desired.sql import TableDefinitionError, parse_table_definition

from .conftest import DATADUCT_EXAMPLES

USERS = parse_table_definition(
    "CREATE TABLE prod.users (id INTEGER DISTKEY PRIMARY KEY, user_name VARCHAR(255) "
    "ENCODE zstd, user_email VARCHAR(255)) SORTKEY(id);")


def test_sqlglot_version_is_the_pinned_one():
    assert sqlglot.__version__.startswith("30.30"), "the dialect extension is tested on 30.30"


@pytest.mark.parametrize("clause, sql", [
    ("column DISTKEY", "CREATE TABLE t (a INTEGER DISTKEY PRIMARY KEY, b INTEGER)"),
    ("column SORTKEY", "CREATE TABLE t (a INTEGER SORTKEY, b INTEGER)"),
    ("DISTKEY and SORTKEY", "CREATE TABLE t (a INTEGER, b INTEGER) DISTKEY(a) SORTKEY(b)"),
    ("COMPOUND SORTKEY", "CREATE TABLE t (a INTEGER, b INTEGER) COMPOUND SORTKEY(a, b)"),
    ("INTERLEAVED SORTKEY", "CREATE TABLE t (a INTEGER, b INTEGER) INTERLEAVED SORTKEY(a, b)"),
    ("ENCODE and DISTSTYLE", "CREATE TABLE t (a INTEGER ENCODE zstd, b CHAR(2)) DISTSTYLE ALL"),
    ("IDENTITY and DEFAULT", "CREATE TABLE t (a BIGINT IDENTITY(1, 1), b INTEGER DEFAULT 0)"),
])
def test_each_redshift_clause_parses_and_round_trips(clause, sql):
    table = parse_table_definition(sql + ";")
    assert table.column_names == ("a", "b"), clause
    assert parse_table_definition(table.create_sql).create_sql == table.create_sql


def test_interleaved_sortkey_is_a_property_not_an_opaque_command():
    parsed = sqlglot.parse_one("CREATE TABLE t (a INT) INTERLEAVED SORTKEY(a)",
                               read=sqlgen.DIALECT)
    assert isinstance(parsed, exp.Create)
    assert parsed.find(sqlgen.InterleavedSortKeyProperty) is not None


@pytest.mark.parametrize("path", sorted((DATADUCT_EXAMPLES / "resources" / "tables").glob("*.sql")),
                         ids=lambda p: p.name)
def test_every_example_table_parses(path):
    table = parse_table_definition(path.read_text())
    assert table.primary_key and table.column_names


def test_primary_keys_come_from_columns_and_table_constraints():
    table = parse_table_definition(
        "CREATE TABLE s.t (a INT NOT NULL, b INT, c INT, PRIMARY KEY (a, b));")
    assert (table.schema, table.name, table.primary_key) == ("s", "t", ("a", "b"))


@pytest.mark.parametrize("bad, message", [
    ("CREATE TABLE t (a INT,", "does not parse"),
    ("SELECT 1;", "not a CREATE TABLE"),
    ("CREATE TABLE a (x INT); CREATE TABLE b (y INT);", "expected one CREATE TABLE"),
    ("CREATE TABLE t (a INT, PRIMARY KEY (z));", "unknown columns: z"),
])
def test_bad_table_definitions_say_why(bad, message):
    with pytest.raises(TableDefinitionError, match=message):
        parse_table_definition(bad)


def _statements(script):
    return [s for s in sqlglot.parse(script, read=sqlgen.DIALECT) if s is not None]


def generated_scripts():
    history = parse_table_definition(
        "CREATE TABLE prod.users_history (id INTEGER, user_name VARCHAR(255), user_email "
        "VARCHAR(255), effective_start TIMESTAMP, effective_end TIMESTAMP);")
    select = sqlgen.source_select(USERS.column_names, sql="SELECT * FROM src",
                                  dedupe_on=USERS.primary_key)
    return {
        "upsert": sqlgen.upsert_sql(USERS, select),
        "reload": sqlgen.reload_sql(USERS, select),
        "delta": sqlgen.upsert_sql(USERS, sqlgen.delta_source_select(
            USERS.column_names, USERS, "id", 2, sql="SELECT * FROM src")),
        "history": sqlgen.history_sql(USERS, history),
        "primary key check": sqlgen.primary_key_check_sql(USERS),
        "count": sqlgen.count_sql(table=USERS),
        "sample": sqlgen.sample_sql(USERS),
    }


@pytest.mark.parametrize("name", list(generated_scripts()))
def test_generated_sql_parses_back_and_never_selects_star_by_position(name):
    script = generated_scripts()[name]
    statements = _statements(script)
    assert statements and not any(isinstance(s, exp.Command) for s in statements)
    for statement in statements:
        for insert in statement.find_all(exp.Insert):
            assert isinstance(insert.this, exp.Schema), "INSERT names its columns"
            select = insert.expression
            assert not any(isinstance(e, exp.Star) for e in select.expressions)


def test_upsert_deletes_by_primary_key_then_inserts_named_columns():
    script = generated_scripts()["upsert"]
    assert ("DELETE FROM prod.users USING users_dataduct_staging WHERE prod.users.id = "
            "users_dataduct_staging.id;") in script
    assert ("INSERT INTO prod.users (id, user_name, user_email) SELECT id, user_name, "
            "user_email FROM users_dataduct_staging;") in script
    assert "ROW_NUMBER() OVER (PARTITION BY source.id" in script


def test_history_needs_the_effective_columns():
    other = parse_table_definition("CREATE TABLE h (id INTEGER);")
    with pytest.raises(ValueError, match="lacks columns: user_name, user_email, "
                                         "effective_start, effective_end"):
        sqlgen.history_sql(USERS, other)


def test_primary_key_check_fails_through_a_cast_that_carries_the_count():
    script = sqlgen.primary_key_check_sql(USERS)
    assert "HAVING COUNT(*) > 1" in script
    assert "CAST('primary key (id) of prod.users has duplicates: ' || COUNT(*) AS INTEGER)" \
        in script
