"""The generated SQL and the QA runner, proven by running them: PostgreSQL standing in for
Redshift (the Redshift SQL transpiled as ``reconciler run-step`` does), MySQL/MariaDB for the
RDS sources. Each test loads rows, runs the SQL and compares the rows it finds."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from reconciler.desired.builder import load_table
from reconciler.desired.sql import (
    REDSHIFT_ONLY,
    Source,
    creation_order,
    delta_select,
    history_sql,
    parse_condition,
    parse_query,
    reload_sql,
    stage_delta_sql,
    to_postgres,
    upsert_sql,
)
from reconciler.local import LocalRunError
from reconciler.qa.cli import main as qa_main
from reconciler.service.expressions import mapping_lookup, substitute

from .conftest import DATADUCT_EXAMPLES, MANIFESTS, PROJECT, require_reference, run_cli
from .databases import postgres_connect, postgres_database

SCHEDULED = datetime(2026, 11, 27, 1, 0, 0)


def table(text: str, path: str = "tables/t.sql"):
    return load_table(path, text)


def users_tables(schema: str):
    destination = table(f"CREATE TABLE {schema}.users (id INTEGER DISTKEY, name VARCHAR(50) "
                        f"ENCODE zstd, email VARCHAR(100), PRIMARY KEY (id)) SORTKEY(id);")
    # the source lists its columns in another order: rows are matched by name
    source = table(f"CREATE TABLE {schema}.users_staging (email VARCHAR(100), id INTEGER, "
                   f"name VARCHAR(50));", "tables/staging.sql")
    return destination, source


def fill(pg, relation: str, columns: str, rows: list[tuple]) -> None:
    placeholders = ", ".join(["%s"] * len(rows[0]))
    with pg.connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {relation} ({columns}) VALUES ({placeholders})", rows)


# -- transpilation ---------------------------------------------------------------------------------


def test_only_redshift_layout_clauses_are_dropped():
    assert sorted(set(REDSHIFT_ONLY.values())) == ["DISTKEY", "DISTSTYLE", "ENCODE", "SORTKEY"]
    statements, dropped = to_postgres(
        "CREATE TABLE s.t (a INT ENCODE zstd DISTKEY SORTKEY, b CHAR(3) NOT NULL DEFAULT 'x', "
        "c TIMESTAMPTZ, PRIMARY KEY (a), UNIQUE (b)) DISTSTYLE KEY DISTKEY(a) "
        "INTERLEAVED SORTKEY(a, c);")
    assert dropped == {"DISTKEY", "DISTSTYLE", "ENCODE", "SORTKEY"}
    assert statements == ["CREATE TABLE s.t (a INT, b CHAR(3) NOT NULL DEFAULT 'x', "
                          "c TIMESTAMPTZ, PRIMARY KEY (a), UNIQUE (b))"]
    # everything else is kept: a script without those clauses loses nothing
    _, none = to_postgres("BEGIN; DELETE FROM s.t WHERE a > 1; COMMIT;")
    assert none == set()


def test_script_arguments_fill_placeholders_in_order_and_must_match():
    statements, _ = to_postgres("DELETE FROM t WHERE a = ? AND b < ?;", arguments=["x", "2"])
    assert statements == ["DELETE FROM t WHERE a = 'x' AND b < '2'"]
    with pytest.raises(Exception, match="more \\? placeholders"):
        to_postgres("DELETE FROM t WHERE a = ? AND b < ?;", arguments=["x"])
    with pytest.raises(Exception, match="fill no \\? placeholder"):
        to_postgres("DELETE FROM t;", arguments=["x"])


# -- tables ----------------------------------------------------------------------------------------


def _definitions(directory: Path) -> list:
    return [table(p.read_text(), str(p)) for p in sorted(directory.glob("*.sql"))]


@pytest.mark.parametrize("corpus", ["manifests", "dataduct"])
def test_every_table_definition_creates_on_postgres_in_foreign_key_order(corpus):
    directory = (MANIFESTS / "tables" if corpus == "manifests" else
                 require_reference(DATADUCT_EXAMPLES / "resources" / "tables"))
    definitions = creation_order(_definitions(directory))
    names = [t.full_name for t in definitions]
    for position, definition in enumerate(definitions):
        assert all(names.index(r) < position for r in definition.references if r in names)
    with postgres_database() as dsn:
        from reconciler.qa.databases import login_from_url

        connection = postgres_connect(login_from_url(dsn, "destination"))
        for schema in sorted({t.schema for t in definitions if t.schema}):
            connection.execute(f'CREATE SCHEMA "{schema}"')
        for definition in definitions:
            for statement in to_postgres(definition.create_if_not_exists())[0]:
                connection.execute(statement)
        for definition in definitions:
            found = connection.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s ORDER BY ordinal_position",
                [definition.schema or "public", definition.name]).fetchall()
            assert tuple(r[0] for r in found) == definition.column_names
        connection.close()


def test_foreign_keys_in_a_cycle_have_no_creation_order():
    a = table("CREATE TABLE a (id INT PRIMARY KEY, b_id INT REFERENCES b(id));", "tables/a.sql")
    b = table("CREATE TABLE b (id INT PRIMARY KEY, a_id INT REFERENCES a(id));", "tables/b.sql")
    with pytest.raises(Exception, match="foreign keys form a cycle"):
        creation_order([a, b])


def test_types_dataduct_mishandled_keep_their_meaning(pg):
    s = pg.name
    orders = table(f"""CREATE TABLE {s}.orders (
        order_id BIGINT IDENTITY(1, 1),
        region CHAR(2) NOT NULL DEFAULT 'EU' ENCODE bytedict,
        code VARCHAR(10),
        created TIMESTAMPTZ DEFAULT GETDATE(),
        amount DECIMAL(12, 2) DEFAULT 0,
        PRIMARY KEY (order_id, region),
        UNIQUE (code, region)
    ) DISTSTYLE KEY DISTKEY(order_id) COMPOUND SORTKEY(created, region);""")
    assert orders.primary_key == ("order_id", "region")
    pg.run(orders.create_if_not_exists())
    columns = pg.rows(
        f"SELECT column_name, data_type, character_maximum_length, is_identity FROM "
        f"information_schema.columns WHERE table_schema = '{s}' ORDER BY ordinal_position")
    assert columns == [("order_id", "bigint", None, "YES"), ("region", "character", 2, "NO"),
                       ("code", "character varying", 10, "NO"),
                       ("created", "timestamp with time zone", None, "NO"),
                       ("amount", "numeric", None, "NO")]
    pg.execute(f"INSERT INTO {s}.orders (code) VALUES ('a'), ('b')")
    rows = pg.rows(f"SELECT order_id, region, amount, created IS NOT NULL FROM {s}.orders "
                   "ORDER BY order_id")
    assert [(r[0], r[1], float(r[2]), r[3]) for r in rows] == [(1, "EU", 0.0, True),
                                                              (2, "EU", 0.0, True)]
    with pytest.raises(Exception, match="unique"):
        pg.execute(f"INSERT INTO {s}.orders (code, region) VALUES ('a', 'EU')")


def test_a_table_whose_columns_drifted_is_refused_naming_the_column(pg):
    destination, source = users_tables(pg.name)
    pg.run(source.create_sql)
    fill(pg, f"{pg.name}.users_staging", "id, name, email", [(1, "ada", "a@x")])
    pg.execute(f"CREATE TABLE {pg.name}.users (id INT PRIMARY KEY, name VARCHAR(50))")
    pg.execute(f"INSERT INTO {pg.name}.users VALUES (9, 'kept')")
    script = upsert_sql(destination, Source(table=source)).text()
    with pytest.raises(LocalRunError, match=r"differ from its definition .*missing column email"):
        pg.run(script)
    pg.execute(f"ALTER TABLE {pg.name}.users ADD COLUMN email VARCHAR(100), "
               "ADD COLUMN extra INT")
    with pytest.raises(LocalRunError, match="unexpected column extra"):
        pg.run(script)
    assert pg.rows(f"SELECT id, name FROM {pg.name}.users") == [(9, "kept")]


# -- upsert, reload --------------------------------------------------------------------------------


def test_upsert_updates_changed_rows_inserts_new_ones_and_leaves_the_others(pg):
    destination, source = users_tables(pg.name)
    pg.run(destination.create_if_not_exists())
    pg.run(source.create_sql)
    fill(pg, f"{pg.name}.users", "id, name, email",
         [(1, "ada", "old@x"), (2, "grace", "grace@x"), (3, "edsger", "edsger@x")])
    fill(pg, f"{pg.name}.users_staging", "email, id, name",
         [("new@x", 1, "ada"), ("ken@x", 4, "ken")])
    pg.run(upsert_sql(destination, Source(table=source)).text())
    assert pg.rows(f"SELECT id, name, email FROM {pg.name}.users ORDER BY id") == [
        (1, "ada", "new@x"), (2, "grace", "grace@x"), (3, "edsger", "edsger@x"),
        (4, "ken", "ken@x")]


def test_enforce_primary_key_keeps_one_row_per_key(pg):
    destination, source = users_tables(pg.name)
    pg.run(source.create_sql)
    fill(pg, f"{pg.name}.users_staging", "email, id, name",
         [("a@x", 1, "ada"), ("a@x", 1, "ada"), ("b@x", 2, "bob")])
    pg.run(upsert_sql(destination, Source(table=source), dedupe=True).text())
    assert pg.rows(f"SELECT id, COUNT(*) FROM {pg.name}.users GROUP BY id ORDER BY id") == [
        (1, 1), (2, 1)]


def test_filter_clause_loads_only_matching_rows_for_the_scheduled_day(pg):
    destination = table(f"CREATE TABLE {pg.name}.events (id INT PRIMARY KEY, day DATE);")
    source = table(f"CREATE TABLE {pg.name}.events_in (id INT, day DATE);", "tables/in.sql")
    pg.run(source.create_sql)
    fill(pg, f"{pg.name}.events_in", "id, day",
         [(1, "2026-11-25"), (2, "2026-11-26"), (3, "2026-11-27")])
    condition = parse_condition("day < '#{format(@scheduledStartTime, 'YYYY-MM-dd')}'")
    script = upsert_sql(destination, Source(table=source, filter=condition)).text()
    def evaluate(text: str) -> str:
        return substitute(text, mapping_lookup({"@scheduledStartTime": SCHEDULED}))

    pg.run(script, substitute=evaluate)
    assert pg.rows(f"SELECT id FROM {pg.name}.events ORDER BY id") == [(1,), (2,)]
    with pytest.raises(Exception, match="scheduled time"):
        pg.run(script)


def test_an_upsert_failing_halfway_leaves_the_destination_exactly_as_before(pg):
    destination, source = users_tables(pg.name)
    pg.run(destination.create_if_not_exists())
    pg.run(source.create_sql)
    fill(pg, f"{pg.name}.users", "id, name, email", [(1, "ada", "old@x"), (2, "bob", "b@x")])
    fill(pg, f"{pg.name}.users_staging", "email, id, name",
         [("new@x", 1, "ada"), ("boom@x", 3, "boom")])
    # the INSERT into the destination fails after its DELETE ran
    pg.execute(f"""CREATE FUNCTION {pg.name}.refuse() RETURNS trigger AS $$ BEGIN
        IF NEW.name = 'boom' THEN RAISE EXCEPTION 'injected failure'; END IF;
        RETURN NEW; END $$ LANGUAGE plpgsql""")
    pg.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON {pg.name}.users FOR EACH ROW "
               f"EXECUTE FUNCTION {pg.name}.refuse()")
    before = pg.rows(f"SELECT id, name, email FROM {pg.name}.users ORDER BY id")
    statements = to_postgres(upsert_sql(destination, Source(table=source)).text())[0]
    with pytest.raises(LocalRunError, match="statement 7 of 9 failed: injected failure"):
        pg.run(upsert_sql(destination, Source(table=source)).text())
    assert statements[5].startswith("DELETE FROM")  # the delete had run
    assert pg.rows(f"SELECT id, name, email FROM {pg.name}.users ORDER BY id") == before


def test_reload_replaces_the_whole_table(pg):
    destination, source = users_tables(pg.name)
    pg.run(destination.create_if_not_exists())
    pg.run(source.create_sql)
    fill(pg, f"{pg.name}.users", "id, name, email", [(1, "ada", "a@x"), (2, "bob", "b@x")])
    fill(pg, f"{pg.name}.users_staging", "email, id, name", [("c@x", 3, "cy")])
    pg.run(reload_sql(destination, Source(table=source)).text())
    assert pg.rows(f"SELECT id, name, email FROM {pg.name}.users") == [(3, "cy", "c@x")]


def test_a_source_query_is_embedded_as_written(pg):
    destination, source = users_tables(pg.name)
    pg.run(source.create_sql)
    fill(pg, f"{pg.name}.users_staging", "email, id, name", [("a@x", 1, "ada"), ("b@x", 2, "")])
    query = parse_query(f"SELECT id, UPPER(name) AS name, email -- a comment\n"
                        f"FROM {pg.name}.users_staging WHERE name <> ''")
    pg.run(upsert_sql(destination, Source(query=query)).text())
    assert pg.rows(f"SELECT id, name FROM {pg.name}.users") == [(1, "ADA")]


# -- delta-load and the staging table --------------------------------------------------------------


def _delta_tables(schema: str):
    production = table(f"CREATE TABLE {schema}.orders (id INT PRIMARY KEY, day DATE, "
                       "amount INT);", "tables/orders.sql")
    staging = table(f"CREATE TABLE {schema}.orders_delta (id INT, day DATE, amount INT);",
                    "tables/orders_delta.sql")
    incoming = table(f"CREATE TABLE {schema}.orders_in (id INT, day DATE, amount INT);",
                     "tables/orders_in.sql")
    return production, staging, incoming


def test_delta_load_stages_the_window_before_the_newest_date_and_upserts_it(pg):
    production, staging, incoming = _delta_tables(pg.name)
    for t in (production, staging, incoming):
        pg.run(t.create_if_not_exists())
    fill(pg, f"{pg.name}.orders", "id, day, amount", [(1, "2026-11-20", 10),
                                                     (2, "2026-11-25", 20)])
    fill(pg, f"{pg.name}.orders_in", "id, day, amount",
         [(1, "2026-11-20", 99), (2, "2026-11-25", 21), (3, "2026-11-26", 30),
          (4, "2026-11-22", 40)])
    select = delta_select(production.column_names, production, "day", 3,
                          Source(table=incoming), production.primary_key)
    pg.run(stage_delta_sql(staging, production, select, Source(table=incoming)).text())
    # newest production date 2026-11-25, window 3 days: rows from 2026-11-22 on
    assert pg.rows(f"SELECT id FROM {pg.name}.orders_delta ORDER BY id") == [(2,), (3,), (4,)]
    pg.run(upsert_sql(production, Source(table=staging), dedupe=False).text())
    assert pg.rows(f"SELECT id, amount FROM {pg.name}.orders ORDER BY id") == [
        (1, 10), (2, 21), (3, 30), (4, 40)]


def test_a_failed_staging_load_leaves_the_staging_table_as_it_was(pg):
    production, staging, incoming = _delta_tables(pg.name)
    for t in (production, staging, incoming):
        pg.run(t.create_if_not_exists())
    fill(pg, f"{pg.name}.orders_delta", "id, day, amount", [(7, "2026-11-01", 70)])
    fill(pg, f"{pg.name}.orders_in", "id, day, amount", [(1, "2026-11-20", 1),
                                                        (2, "2026-11-21", 0)])
    # the source query divides by zero on its second row, after the DELETE of the staging rows
    query = parse_query(f"SELECT id, day, 10 / amount AS amount FROM {pg.name}.orders_in")
    source = Source(query=query)
    select = delta_select(production.column_names, production, "day", 0, source)
    with pytest.raises(LocalRunError, match="division by zero"):
        pg.run(stage_delta_sql(staging, production, select, source).text())
    assert pg.rows(f"SELECT id, amount FROM {pg.name}.orders_delta") == [(7, 70)]


# -- history ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("start,end", [("effective_ts", "expiration_ts"),
                                       ("effective_start", "effective_end")])
def test_history_expires_changed_and_deleted_rows_and_opens_new_versions(pg, start, end):
    destination = table(f"CREATE TABLE {pg.name}.users (id INT PRIMARY KEY, name VARCHAR(20));")
    history = table(f"CREATE TABLE {pg.name}.users_history (id INT, name VARCHAR(20), "
                    f"{start} TIMESTAMP, {end} TIMESTAMP);", "tables/history.sql")
    pg.run(destination.create_if_not_exists())
    fill(pg, f"{pg.name}.users", "id, name", [(1, "ada"), (2, "bob"), (3, "cy")])
    script = history_sql(destination, history).text()
    pg.run(script)
    assert len(pg.rows(f"SELECT * FROM {pg.name}.users_history")) == 3
    pg.execute(f"UPDATE {pg.name}.users SET name = 'ADA' WHERE id = 1")
    pg.execute(f"DELETE FROM {pg.name}.users WHERE id = 2")
    pg.execute(f"INSERT INTO {pg.name}.users VALUES (4, 'dee')")
    pg.run(script)
    pg.run(script)  # nothing changed since: nothing happens
    rows = pg.rows(f"SELECT id, name, {end} > '9000-01-01', {start} <= {end} "
                   f"FROM {pg.name}.users_history ORDER BY id, {start}")
    assert rows == [(1, "ada", False, True), (1, "ADA", True, True), (2, "bob", False, True),
                    (3, "cy", True, True), (4, "dee", True, True)]
    # an expired version ends no later than its successor starts
    (gap,) = pg.rows(f"SELECT MIN(b.{start} - a.{end}) FROM {pg.name}.users_history a JOIN "
                     f"{pg.name}.users_history b ON a.id = b.id AND b.{start} > a.{start}")
    assert gap[0].total_seconds() >= 0


# -- the QA runner ---------------------------------------------------------------------------------


def qa(*arguments: str, stdin: str = "", environ=None) -> tuple[int, dict | None, str]:
    out, err = io.StringIO(), io.StringIO()
    code = qa_main(list(arguments), stdin=io.StringIO(stdin), stdout=out, stderr=err,
                   environ=environ or {})
    lines = out.getvalue().splitlines()
    return code, json.loads(lines[-1]) if lines else None, err.getvalue()


def test_primary_key_check_fails_on_a_duplicate_and_passes_on_clean_data(pg):
    pg.execute(f"CREATE TABLE {pg.name}.pairs (a INT, b INT)")
    fill(pg, f"{pg.name}.pairs", "a, b", [(1, 1), (1, 2), (2, 1)])
    target = [f"--table={pg.name}.pairs", "--primary_key=a,b", f"--destination_dsn={pg.dsn}"]
    code, record, text = qa("primary-key", *target, "--test_name=pairs")
    assert (code, record["passed"], record["duplicated_keys"]) == (0, True, 0)
    assert record["check"] == "primary-key" and record["test_name"] == "pairs"
    assert text.startswith("PASSED: primary-key check")
    fill(pg, f"{pg.name}.pairs", "a, b", [(1, 2)])
    code, record, text = qa("primary-key", *target)
    assert (code, record["passed"], record["duplicated_keys"]) == (1, False, 1)
    assert record["error_rate"] == 50.0 and record["tolerance"] == 0.0
    assert text.startswith("FAILED: primary-key check")


def _count_fixture(pg, mysql, source_rows: int, destination_rows: int) -> list[str]:
    mysql.execute("CREATE TABLE users (id INT PRIMARY KEY)",
                  "INSERT INTO users (id) VALUES " + ", ".join(
                      f"({i})" for i in range(source_rows)))
    pg.execute(f"CREATE TABLE {pg.name}.users (id INT)")
    fill(pg, f"{pg.name}.users", "id", [(i,) for i in range(destination_rows)])
    return ["--source_sql=SELECT COUNT(*) FROM users",
            f'--destination_sql=SELECT COUNT(*) FROM "{pg.name}"."users"',
            f"--source_dsn={mysql.dsn}", f"--destination_dsn={pg.dsn}"]


def test_count_check_fails_beyond_its_tolerance_and_passes_within(pg, mysql):
    arguments = _count_fixture(pg, mysql, 200, 197)  # 1.5 % lost
    code, record, _ = qa("count", *arguments, "--tolerance=2")
    assert (code, record["passed"], record["source_rows"], record["destination_rows"]) == (
        0, True, 200, 197)
    assert record["error_rate"] == 1.5
    code, record, text = qa("count", *arguments, "--tolerance=1")
    assert (code, record["passed"]) == (1, False)
    assert "error rate 1.5% (tolerance 1%)" in text


def test_column_check_finds_a_corrupted_value_in_a_sampled_row(pg, mysql):
    mysql.execute("CREATE TABLE users (id INT PRIMARY KEY, name CHAR(8), amount DECIMAL(8,2), "
                  "seen DATETIME)",
                  "INSERT INTO users VALUES (1, 'ada', 1.50, '2026-11-01 10:00:00'), "
                  "(2, 'bob', 2.00, '2026-11-02 10:00:00'), (3, 'cy', 3.25, NULL)")
    pg.execute(f"CREATE TABLE {pg.name}.users (user_id INT, name CHAR(8), amount NUMERIC(8,2),"
               " seen TIMESTAMPTZ)")
    fill(pg, f"{pg.name}.users", "user_id, name, amount, seen",
         [(1, "ada", 1.5, "2026-11-01 10:00:00+00"), (2, "bob", 2, "2026-11-02 10:00:00+00"),
          (3, "cy", 3.25, None)])
    arguments = ["--source_sql=SELECT id, name, amount, seen FROM users ORDER BY id",
                 f"--destination_sql=SELECT user_id, name, amount, seen FROM {pg.name}.users",
                 "--sample_size=3", "--tolerance=0", f"--source_dsn={mysql.dsn}",
                 f"--destination_dsn={pg.dsn}"]
    code, record, _ = qa("column", *arguments)
    assert (code, record["passed"], record["sampled_rows"]) == (0, True, 3)
    pg.execute(f"UPDATE {pg.name}.users SET amount = 3.26 WHERE user_id = 3")
    code, record, text = qa("column", *arguments)
    assert (code, record["passed"], record["mismatched_rows"]) == (1, False, 1)
    assert record["different_rows"] == [{"key": "3", "columns": ["amount"]}]
    assert "3.26" not in json.dumps(record) + text  # keys and columns, never values
    pg.execute(f"DELETE FROM {pg.name}.users WHERE user_id = 2")
    code, record, _ = qa("column", *arguments)
    assert record["missing_keys"] == ["2"] and record["error_rate"] == pytest.approx(66.666667)


def test_passwords_come_from_standard_input_never_the_argument_list(pg, mysql):
    user = f"qa_{mysql.name[2:12]}"
    mysql.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pa ss\"word$1'",
                  f"GRANT SELECT ON `{mysql.name}`.* TO '{user}'@'%'",
                  "CREATE TABLE users (id INT)", "INSERT INTO users VALUES (1)")
    try:
        pg.execute(f"CREATE TABLE {pg.name}.users (id INT)")
        fill(pg, f"{pg.name}.users", "id", [(1,)])
        host = mysql.dsn.split("@", 1)[1]
        command = [sys.executable, "-m", "reconciler.qa", "count",
                   "--source_sql=SELECT COUNT(*) FROM users",
                   f"--destination_sql=SELECT COUNT(*) FROM {pg.name}.users",
                   f"--source_dsn=mysql://{user}@{host}", f"--destination_dsn={pg.dsn}",
                   "--passwords_from_stdin"]
        ok = subprocess.run(command, input="source_password=pa ss\"word$1\n",
                            capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
        wrong = subprocess.run(command, input="source_password=nope\n", capture_output=True,
                               text=True, timeout=60)
        assert wrong.returncode == 2 and "Access denied" in wrong.stderr
        assert "nope" not in wrong.stderr + wrong.stdout
        in_url = subprocess.run([*command[:-1], f"--source_dsn=mysql://{user}:x@{host}"],
                                capture_output=True, text=True, timeout=60)
        assert in_url.returncode == 2 and "readable in the process list" in in_url.stderr
    finally:
        mysql.execute(f"DROP USER '{user}'@'%'")


# -- dependencies, on the embedded service ---------------------------------------------------------


def _aws_environment(endpoint: str) -> dict[str, str]:
    return {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def _ondemand_pipeline(dp, name: str) -> str:
    pid = dp.create_pipeline(name=name, uniqueId=name)["pipelineId"]
    dp.put_pipeline_definition(pipelineId=pid, pipelineObjects=[
        {"id": "Default", "name": "Default", "fields": [
            {"key": "scheduleType", "stringValue": "ondemand"},
            {"key": "maximumRetries", "stringValue": "0"}]},
        {"id": f"{name}_load", "name": "load", "fields": [
            {"key": "type", "stringValue": "ShellCommandActivity"},
            {"key": "command", "stringValue": "true"},
            {"key": "workerGroup", "stringValue": "w"}]}])
    dp.activate_pipeline(pipelineId=pid)
    return pid


def test_dependencies_check_waits_for_and_reads_other_pipelines(emulator_server, tmp_path):
    import boto3

    from reconciler.emulator.server import control

    endpoint = emulator_server.endpoint
    dp = boto3.client("datapipeline", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    control("outcomes", {"object_id": "extracts_load", "always_fail": True})
    for name in ("loads", "extracts"):
        _ondemand_pipeline(dp, name)
    day = control("clock", {})["now"][:10]
    environment = _aws_environment(endpoint)

    def check(*extra: str, timeout: int = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "reconciler.qa", "dependencies",
                               f"--start_date={day}", "--refresh_rate=1", *extra],
                              capture_output=True, text=True, env=environment, timeout=timeout)

    running = check("--pipelines=loads", "--timeout=2")
    assert running.returncode == 1, running.stderr
    assert json.loads(running.stdout)["timed_out"] is True
    assert "waiting for loads: 1 RUNNING" in running.stderr
    control("clock", {"advance_seconds": 600})
    finished = check("--pipelines=loads")
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["pipelines"] == {"loads": "1 FINISHED"}
    failed = check("--pipelines=loads,extracts")
    assert failed.returncode == 1 and json.loads(failed.stdout)["failed"] == ["extracts"]
    accepted = check("--pipelines=loads,extracts", "--ok_to_fail=extracts",
                     "--log_to_s3=s3://qa-logs/deps/")
    assert accepted.returncode == 2 and "NoSuchBucket" in accepted.stderr
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="qa-logs")
    accepted = check("--pipelines=loads,extracts", "--ok_to_fail=extracts",
                     "--log_to_s3=s3://qa-logs/deps/")
    assert accepted.returncode == 0, accepted.stderr
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    (logged,) = s3.list_objects_v2(Bucket="qa-logs", Prefix="deps/")["Contents"]
    record = json.loads(s3.get_object(Bucket="qa-logs", Key=logged["Key"])["Body"].read())
    assert record["passed"] is True and record["check"] == "dependencies"
    unknown = check("--pipelines=nope")
    assert unknown.returncode == 2 and "no pipeline is named nope" in unknown.stderr


# -- run-step on the example repository ------------------------------------------------------------


def test_run_step_runs_the_example_upsert_and_checks_on_the_seed_data(mysql):
    with postgres_database() as dsn:
        seeded = subprocess.run([sys.executable, str(PROJECT / "tools" / "load_seed.py"),
                                 "--dsn", dsn, "--source-dsn", mysql.dsn],
                                capture_output=True, text=True, timeout=60)
        assert seeded.returncode == 0, seeded.stderr
        users = str(MANIFESTS / "pipelines" / "users.yaml")

        def step(name: str, *extra: str):
            return run_cli("run-step", users, name, "--env", "prod", "--dsn", dsn,
                           "--source-dsn", mysql.dsn, "--scheduled-time", "2026-11-27T12:00:00",
                           *extra)

        upsert = step("upsert_users")
        assert upsert.code == 0, upsert.stderr
        from reconciler.qa.databases import login_from_url

        connection = postgres_connect(login_from_url(dsn, "destination"))
        assert connection.execute("SELECT COUNT(*), MIN(user_email) FROM prod.users").fetchone(
        ) == (12, "ada@example.com")
        for name in ("unique_users", "count_users", "sample_users"):
            result = step(name)
            assert result.code == 0, result.stderr
        connection.execute("DELETE FROM prod.users WHERE id = 12")
        lost = step("count_users")
        assert lost.code == 1 and json.loads(lost.stdout)["destination_rows"] == 11
        extract = step("extract_rds")
        assert extract.code == 1 and "do not run locally" in extract.stderr
        connection.close()


def test_sql_prints_what_a_step_runs():
    printed = run_cli("sql", str(MANIFESTS / "pipelines" / "users.yaml"), "upsert_users",
                      "--env", "prod")
    assert printed.code == 0, printed.stderr
    assert printed.stdout.startswith("-- upsert_users (SqlActivity)\nBEGIN;\n")
    assert 'DELETE FROM "prod"."users" USING "users_dataduct_staging"' in printed.stdout
    postgres = run_cli("sql", str(MANIFESTS / "pipelines" / "users.yaml"), "upsert_users",
                       "--env", "prod", "--dialect", "postgres")
    assert "DISTKEY" not in postgres.stdout and "ENCODE" not in postgres.stdout
    unknown = run_cli("sql", str(MANIFESTS / "pipelines" / "users.yaml"), "upsrt",
                      "--env", "prod")
    assert unknown.code == 1 and "its steps: extract_rds, load_staging, upsert_users" in \
        unknown.stderr
