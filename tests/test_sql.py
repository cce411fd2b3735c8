"""SQL through sqlglot: Dataduct's Redshift clauses, SQL people write (Data Pipeline expressions
masked, errors located), and the SQL the steps generate (built with sqlglot's builders, quoted,
parsed back statement by statement)."""

import pytest
import sqlglot
from sqlglot import exp

from reconciler.desired import sql as sqlgen
from reconciler.desired.sql import (
    ParsedSql,
    Source,
    SqlError,
    TableDefinitionError,
    parse_query,
    parse_sql,
    parse_table_definition,
)

USERS = parse_table_definition(
    "CREATE TABLE prod.users (id INTEGER DISTKEY PRIMARY KEY, user_name VARCHAR(255) "
    "ENCODE zstd, user_email VARCHAR(255)) SORTKEY(id);")
HISTORY = parse_table_definition(
    "CREATE TABLE prod.users_history (id INTEGER, user_name VARCHAR(255), user_email "
    "VARCHAR(255), effective_ts TIMESTAMP, expiration_ts TIMESTAMP);")
GUIDE_EXAMPLE = "'#{format(@scheduledStartTime, 'YYYY-MM-dd')}'"


def test_sqlglot_version_is_the_pinned_one():
    assert sqlglot.__version__.startswith("30.30"), "the dialect extension is tested on 30.30"


# -- table definitions ---------------------------------------------------------------------------

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


def test_columns_keep_their_types_and_constraints():
    table = parse_table_definition(
        "CREATE TABLE s.t (a CHAR(3) NOT NULL, b TIMESTAMPTZ DEFAULT GETDATE(), "
        "c BIGINT IDENTITY(1, 1), d VARCHAR(10) UNIQUE, PRIMARY KEY (a, c));")
    a, b, c, d = table.columns
    assert (a.type, a.nullable, a.primary_key) == ("CHAR(3)", False, True)
    assert b.type == "TIMESTAMP WITH TIME ZONE" and b.default == "GETDATE()"
    assert c.identity and c.primary_key and d.unique
    assert table.primary_key == ("a", "c")


def test_names_are_normalised_like_redshift_and_quoted_in_the_create():
    table = parse_table_definition('CREATE TABLE Prod."Users" (Id INT PRIMARY KEY);')
    assert (table.schema, table.name, table.column_names) == ("prod", "users", ("id",))
    assert table.create_sql == 'CREATE TABLE "prod"."users" ("id" INTEGER PRIMARY KEY);'


def test_foreign_keys_are_recorded_for_create_order():
    table = parse_table_definition(
        "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT REFERENCES customers(id), "
        "FOREIGN KEY (id) REFERENCES shop.invoices (id));")
    assert table.references == ("customers", "shop.invoices")


@pytest.mark.parametrize("bad, message", [
    ("CREATE TABLE t (a INT,", "does not parse"),
    ("SELECT 1;", "not a CREATE TABLE"),
    ("CREATE TABLE a (x INT); CREATE TABLE b (y INT);", "expected one CREATE TABLE"),
    ("CREATE TABLE t (a INT, PRIMARY KEY (z));", "unknown columns: z"),
    ("CREATE TABLE t (a INT NULL NOT NULL);", "declared both NULL and NOT NULL"),
    ("CREATE TABLE t (a INT, a INT);", "defined twice"),
    ("CREATE TABLE t (a VARCHAR(3) DEFAULT 'x);", "never closed"),
])
def test_bad_table_definitions_say_why(bad, message):
    with pytest.raises(TableDefinitionError, match=message):
        parse_table_definition(bad)


# -- SQL people write ----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    f"SELECT * FROM events WHERE day = {GUIDE_EXAMPLE}",
    "SELECT * FROM #{myTable} WHERE id > #{myLow} LIMIT #{myLimit}",
    "SELECT * FROM t WHERE a = '#{format(plusDays(@scheduledStartTime, 1), 'YYYY')}'",
])
def test_data_pipeline_expressions_are_legal_quoted_or_not(text):
    parsed = parse_query(text)
    assert len(parsed.statements) == 1
    assert parsed.restore(parsed.masked) == text


def test_an_unclosed_expression_is_located():
    with pytest.raises(SqlError, match="never closed") as caught:
        parse_sql("SELECT 1;\nSELECT '#{format(x'")
    assert (caught.value.line, caught.value.column) == (2, 9)


@pytest.mark.parametrize("text, message, line", [
    ("SELECT 'abc", "string starting with ' is never closed", 1),
    ("SELECT 1\n/* x", "/* comment is never closed", 2),
    ("SELECT a\nFROM t\nWHERE (", "does not parse", 3),
])
def test_errors_in_sql_say_the_line_of_the_text_as_written(text, message, line):
    with pytest.raises(SqlError, match=message) as caught:
        parse_sql(text)
    assert caught.value.line == line


@pytest.mark.parametrize("text, message", [
    ("SELECT a FROM t; SELECT b FROM u", "must be one SELECT statement; found 2"),
    ("SELECT 1", "reads no table"),
    ("DELETE FROM t", "must be a SELECT"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "reads no table"),
])
def test_a_source_query_is_one_select_that_reads_a_table(text, message):
    with pytest.raises(SqlError, match=message):
        parse_query(text)


def test_the_second_statement_is_where_the_error_points():
    with pytest.raises(SqlError) as caught:
        parse_query("SELECT a FROM t;\n  DROP TABLE t")
    assert (caught.value.line, caught.value.column) == (2, 3)


# -- the transaction wrapper ---------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "DELETE FROM t -- trailing comment, no semicolon",
    "DELETE FROM t; -- comment after the semicolon",
    "DELETE FROM t;\nINSERT INTO t VALUES (1) /* block */",
    f"DELETE FROM t WHERE d < {GUIDE_EXAMPLE} -- x",
])
def test_no_user_text_can_swallow_the_commit(text):
    wrapped = sqlgen.wrap_in_transaction(parse_sql(text))
    statements = parse_sql(wrapped).statements
    assert isinstance(statements[0], exp.Transaction)
    assert isinstance(statements[-1], exp.Commit)
    assert len(statements) == len(parse_sql(text).statements) + 2
    assert wrapped.rstrip().endswith("COMMIT;")


# -- generated SQL -------------------------------------------------------------------------------

SOURCE = Source(query=parse_query(f"SELECT * FROM src WHERE day = {GUIDE_EXAMPLE} -- note"))


def generated_scripts():
    return {
        "upsert": sqlgen.upsert_sql(USERS, SOURCE),
        "reload": sqlgen.reload_sql(USERS, SOURCE),
        "history": sqlgen.history_sql(USERS, HISTORY),
        "primary key check": sqlgen.primary_key_check_sql(USERS),
        "count": sqlgen.count_sql(SOURCE),
        "sample": sqlgen.sample_sql(USERS),
        "grants": sqlgen.grants_sql(USERS, (("select", "consumers", True), ("all", "etl", False))),
    }


@pytest.mark.parametrize("name", list(generated_scripts()))
def test_generated_sql_parses_back_as_exactly_the_statements_meant(name):
    script = generated_scripts()[name]
    text = script.text()
    assert tuple(sqlgen.statement_types(text)) == script.kinds
    for statement in parse_sql(text).statements:
        for insert in statement.find_all(exp.Insert):
            assert isinstance(insert.this, exp.Schema), "INSERT names its columns"
            assert not any(isinstance(e, exp.Star) for e in insert.expression.expressions)


def test_the_upsert_is_one_transaction_of_named_columns():
    text = generated_scripts()["upsert"].text()
    kinds = [k.__name__ for k in sqlgen.statement_types(text)]
    assert kinds == ["Transaction", "Create", "Select", "Create", "Insert", "Delete", "Insert",
                     "Commit", "Analyze"]
    assert ('DELETE FROM "prod"."users" USING "users_dataduct_staging" WHERE '
            '"prod"."users"."id" = "users_dataduct_staging"."id";') in text
    assert ('INSERT INTO "prod"."users" ("id", "user_name", "user_email") SELECT "id", '
            '"user_name", "user_email" FROM "users_dataduct_staging";') in text
    assert GUIDE_EXAMPLE in text, "the expression is restored for the service to evaluate"


def test_a_persons_text_that_changes_the_scripts_structure_is_refused():
    # a source query that got past the parser (made by hand here) cannot add a statement:
    # a script holding a person's text is parsed back when it is frozen
    smuggled = ParsedSql("SELECT 1\n) AS q;\nDROP TABLE prod.users;\nSELECT * FROM (SELECT 1",
                         "", (), ())
    source = Source(query=smuggled)
    script = sqlgen.Script().add(exp.select(exp.Star()).from_(source.relation("q")), source)
    assert script.holds_text
    with pytest.raises(SqlError, match=r"parses back as 3 statement\(s\) \(Select, Drop, "
                                       r"Select\), not the 1 it was built from"):
        script.text()


def test_hostile_names_stay_names():
    evil = parse_table_definition(
        'CREATE TABLE "evil; DROP TABLE prod.users; --" (id INT PRIMARY KEY, "a""b" INT);')
    text = sqlgen.upsert_sql(evil, Source(table=evil)).text()
    assert '"evil; drop table prod.users; --"' in text
    assert not any(isinstance(s, exp.Drop) for s in parse_sql(text).statements)


HOSTILE_TABLES = [
    USERS,
    parse_table_definition('CREATE TABLE "evil; DROP TABLE prod.users; --" '
                           '(id INT PRIMARY KEY, "a""b" INT);'),
    parse_table_definition("CREATE TABLE \"o'k\\\".\"back\\slash'--\" (\"line\nbreak\" INT, "
                           "\"é\" VARCHAR(3), k2 INT, PRIMARY KEY (\"é\", k2));"),
    parse_table_definition('CREATE TABLE "__dd0__" ("__dd1__" INT PRIMARY KEY, '
                           '"__ddraw2__" INT);'),
]


@pytest.mark.parametrize("generate", [sqlgen.upsert_sql, sqlgen.reload_sql],
                         ids=["upsert", "reload"])
@pytest.mark.parametrize("dedupe, analyze, grants", [
    (True, True, ()), (False, False, (("select", "reporting", True), ("all", "etl", False)))])
@pytest.mark.parametrize("destination", HOSTILE_TABLES, ids=lambda t: t.name[:12])
def test_a_script_from_its_shapes_template_is_the_script_generated_directly(
        generate, dedupe, analyze, grants, destination):
    # the upsert and the reload print once per table shape and put each table's names in:
    # for names holding quotes, backslashes, semicolons, line breaks and placeholder look-
    # alikes, that must be exactly the text generated for the table itself
    from reconciler.desired.sql import generate as module
    direct = {sqlgen.upsert_sql: module._upsert, sqlgen.reload_sql: module._reload}[generate]
    for source in HOSTILE_TABLES:
        templated = generate(destination, Source(table=source), dedupe=dedupe, analyze=analyze,
                             grants=grants)
        expected = direct(destination, Source(table=source), (dedupe, analyze, grants))
        assert templated == expected
        assert tuple(type(s) for s in parse_sql(templated.sql).statements) == templated.kinds
    assert sqlgen.primary_key_check_sql(destination) == module._primary_key_check(
        destination, Source(), (False, False, ()))


def test_a_template_refuses_a_placeholder_outside_names_and_strings():
    from reconciler.desired.sql.template import Template
    assert Template.of('SELECT "__dd0__" FROM t WHERE x = \'__dd1__.__dd2__\'').holes == (
        (0, "identifier"), (1, "string"), (2, "string"))
    with pytest.raises(AssertionError, match="outside identifiers and strings"):
        Template.of("SELECT __dd0__ FROM t")


@pytest.mark.parametrize("convention", sqlgen.HISTORY_CONVENTIONS, ids=lambda c: c.start)
def test_history_works_with_dataducts_names_and_the_projects(convention):
    history = parse_table_definition(
        f"CREATE TABLE prod.h (id INTEGER, user_name VARCHAR(255), user_email VARCHAR(255), "
        f"{convention.start} TIMESTAMP, {convention.end} TIMESTAMP);")
    text = sqlgen.history_sql(USERS, history).text()
    assert f"'{convention.open_end}'" in text
    kinds = [k.__name__ for k in sqlgen.statement_types(text)]
    assert kinds == ["Create", "Transaction", "Update", "Update", "Insert", "Commit"]


def test_history_needs_validity_columns_and_every_destination_column():
    with pytest.raises(SqlError, match="no validity columns"):
        sqlgen.history_sql(USERS, parse_table_definition("CREATE TABLE h (id INTEGER);"))
    partial = parse_table_definition(
        "CREATE TABLE h (id INTEGER, effective_ts TIMESTAMP, expiration_ts TIMESTAMP);")
    with pytest.raises(SqlError, match=r"lacks columns of prod\.users: user_name, user_email"):
        sqlgen.history_sql(USERS, partial)


def test_primary_key_check_fails_through_a_cast_that_carries_the_count():
    text = sqlgen.primary_key_check_sql(USERS).text()
    assert "HAVING COUNT(*) > 1" in text
    assert "CAST('primary key (id) of prod.users has duplicates: ' || COUNT(*) AS INTEGER)" \
        in text


def test_a_permission_must_be_a_privilege_word():
    with pytest.raises(SqlError, match="not a privilege"):
        sqlgen.grants_sql(USERS, (("select; drop table x", "g", True),))
