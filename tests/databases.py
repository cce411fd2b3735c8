"""The real databases of the tests: PostgreSQL (standing in for Redshift) and MySQL/MariaDB
(the RDS sources), at the DSNs of RECONCILER_TEST_POSTGRES_DSN and RECONCILER_TEST_MYSQL_DSN.

Each test gets a schema (PostgreSQL) or a database (MySQL) of its own, dropped afterwards;
tests whose SQL names fixed schemas (the example repository's ``prod.users``) get a whole
PostgreSQL database of their own. A server that cannot be reached skips the test with its
address, and fails it under CI=true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from reconciler.desired.sql import to_postgres
from reconciler.local import run_sql
from reconciler.qa.databases import Login, login_from_url

POSTGRES_DSN = os.environ.get("RECONCILER_TEST_POSTGRES_DSN",
                              "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_DSN = os.environ.get("RECONCILER_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")


def _unavailable(what: str, dsn: str, exc: BaseException) -> None:
    message = (f"{what} at {dsn} is not reachable ({type(exc).__name__}: "
               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); start it or "
               f"point the tests elsewhere (README: running the tests elsewhere)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _reach(what: str, dsn: str, connect: Callable[[], Any]) -> Any:
    """``connect()``, or skip (fail under CI=true) naming the server that is not there."""
    try:
        return connect()
    except Exception as exc:  # the driver's connection errors
        _unavailable(what, dsn, exc)


def postgres_connect(login: Login, database: str | None = None, autocommit: bool = True):
    import psycopg

    return psycopg.connect(host=login.host, port=login.port, dbname=database or login.database,
                           user=login.user or None, password=login.password,
                           autocommit=autocommit, connect_timeout=10)


def mysql_connect(login: Login, database: str | None = None):
    import pymysql

    return pymysql.connect(host=login.host, port=login.port, user=login.user,
                           password=os.environ.get("DATADUCT_QA_SOURCE_PASSWORD", ""),
                           database=database or login.database, autocommit=True,
                           connect_timeout=10)


def url_of(login: Login, database: str) -> str:
    scheme = "postgresql" if login.kind == "postgres" else "mysql"
    user = f"{login.user}@" if login.user else ""
    return f"{scheme}://{user}{login.host}:{login.port}/{database}"


@dataclass
class PostgresSchema:
    """A schema of one test, on an autocommit connection."""

    connection: Any
    name: str
    dsn: str

    def run(self, script: str, **kwargs: Any) -> list[str]:
        """Run a Redshift script the way run-step does; returns the statements."""
        statements, _ = to_postgres(script, **kwargs)
        run_sql(self.connection, statements, "test")
        return statements

    def rows(self, sql: str) -> list[tuple]:
        return [tuple(r) for r in self.connection.execute(sql).fetchall()]

    def execute(self, sql: str) -> None:
        self.connection.execute(sql)


@contextmanager
def postgres_schema() -> Iterator[PostgresSchema]:
    login = login_from_url(POSTGRES_DSN, "destination")
    connection = _reach("PostgreSQL", POSTGRES_DSN, lambda: postgres_connect(login))
    name = f"t_{uuid.uuid4().hex[:12]}"
    connection.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield PostgresSchema(connection, name, POSTGRES_DSN)
    finally:
        if connection.info.transaction_status:
            connection.execute("ROLLBACK")
        connection.execute(f'DROP SCHEMA "{name}" CASCADE')
        connection.close()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of the test's own; yields its URL."""
    login = login_from_url(POSTGRES_DSN, "destination")
    admin = _reach("PostgreSQL", POSTGRES_DSN, lambda: postgres_connect(login))
    name = f"reconciler_t_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url_of(login, name)
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


@dataclass
class MysqlDatabase:
    connection: Any
    name: str
    dsn: str

    def execute(self, *statements: str) -> None:
        with self.connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


@contextmanager
def mysql_database() -> Iterator[MysqlDatabase]:
    login = login_from_url(MYSQL_DSN, "source")
    connection = _reach("MySQL", MYSQL_DSN, lambda: mysql_connect(login))
    name = f"t_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
        cursor.execute(f"USE `{name}`")
    try:
        yield MysqlDatabase(connection, name, url_of(login, name))
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE `{name}`")
        connection.close()
