"""Connections of the QA runner: the destination (Redshift, or PostgreSQL standing in for it,
through psycopg) and the source (MySQL/RDS, through PyMySQL).

A database is named by its parts (``--destination_host`` ...) as the compiled steps give them,
or by a URL for local runs (``postgresql://user@host:5432/db``, ``mysql://root@host/db``). A
URL with a password in it is refused: an argument list is readable by every user of the
machine. Passwords come from :func:`read_passwords`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from ..errors import ReconcilerError

POSTGRES, MYSQL = "postgres", "mysql"
DEFAULT_PORTS = {POSTGRES: 5439, MYSQL: 3306}
URL_SCHEMES = {"postgres": POSTGRES, "postgresql": POSTGRES, "redshift": POSTGRES,
               "mysql": MYSQL}
# The environment variables a password may come from, by role.
PASSWORD_VARIABLES = {"source": "DATADUCT_QA_SOURCE_PASSWORD",
                      "destination": "DATADUCT_QA_DESTINATION_PASSWORD"}


class QaError(ReconcilerError):
    """A check could not run (bad arguments, unreachable database, failing query)."""


@dataclass(frozen=True)
class Login:
    """Where a database is and who logs in; the password is never printed."""

    kind: str
    host: str
    port: int
    database: str
    user: str
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        return f"{self.kind} {self.user}@{self.host}:{self.port}/{self.database}"


def login_from_url(url: str, role: str) -> Login:
    parts = urlsplit(url)
    kind = URL_SCHEMES.get(parts.scheme)
    if kind is None:
        raise QaError(f"--{role}_dsn '{parts.scheme}://...' is not a database URL; use "
                      "postgresql://USER@HOST:PORT/DATABASE or mysql://USER@HOST:PORT/DATABASE")
    if parts.password is not None:
        raise QaError(f"--{role}_dsn has a password in it, readable in the process list; "
                      f"give it in {PASSWORD_VARIABLES[role]} or on standard input instead")
    try:
        port = parts.port or DEFAULT_PORTS[kind]
    except ValueError as exc:
        raise QaError(f"--{role}_dsn: {exc}") from None
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or (kind == POSTGRES and not database):
        raise QaError(f"--{role}_dsn needs a host and a database: "
                      f"{parts.scheme}://USER@HOST:PORT/DATABASE")
    return Login(kind, parts.hostname, port, database, unquote(parts.username or ""))


def login_from_parts(kind: str, role: str, host: str | None, port: int | None,
                     database: str | None, user: str | None) -> Login:
    # a MySQL login needs no default database (queries may name theirs: db.table)
    needed = (("host", host), ("user", user)) + ((("database", database),)
                                                 if kind == POSTGRES else ())
    missing = [f"--{role}_{name}" for name, value in needed if not value]
    if missing:
        raise QaError(f"the {role} database is not named: give --{role}_dsn, or "
                      f"{', '.join(missing)}")
    return Login(kind, str(host), int(port or DEFAULT_PORTS[kind]), str(database or ""),
                 str(user))


def read_passwords(stream: IO[str] | None, environ: dict[str, str] | os._Environ[str]
                   ) -> dict[str, str]:
    """``source`` and ``destination`` passwords: ``NAME_password=value`` lines on ``stream``
    (what the compiled steps feed the runner), else the environment."""
    found: dict[str, str] = {}
    if stream is not None:
        for number, line in enumerate(stream.read().splitlines(), 1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            role = name.strip().removesuffix("_password")
            if not sep or role not in PASSWORD_VARIABLES:
                raise QaError(f"standard input line {number} is not source_password=... or "
                              "destination_password=...")
            found[role] = value
    for role, variable in PASSWORD_VARIABLES.items():
        if role not in found and environ.get(variable):
            found[role] = environ[variable]
    return found


def with_password(login: Login, passwords: dict[str, str], role: str) -> Login:
    return replace(login, password=passwords.get(role, login.password))


class Database:
    """One open connection and the queries the checks run on it."""

    def __init__(self, login: Login, connection: Any):
        self.login = login
        self.connection = connection

    def scalar(self, sql: str) -> Any:
        rows, _ = self.rows(sql, limit=1)
        if not rows or not rows[0]:
            raise QaError(f"the query returned no value on {self.login.describe()}: "
                          f"{_first_line(sql)}")
        return rows[0][0]

    def rows(self, sql: str, params: Sequence[Any] | None = None, limit: int | None = None
             ) -> tuple[list[tuple[Any, ...]], list[tuple[str, Any]]]:
        """Rows (at most ``limit``) and (column name, type code) of a query."""
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(sql, params) if params is not None else cursor.execute(sql)
                columns = [(d[0], d[1]) for d in cursor.description or ()]
                fetched = cursor.fetchmany(limit) if limit is not None else cursor.fetchall()
                return [tuple(r) for r in fetched], columns
        except Exception as exc:  # the drivers' errors have no common base
            self._rollback()
            raise QaError(f"query failed on {self.login.describe()}: "
                          f"{_driver_message(exc)} (in: {_first_line(sql)})") from None

    def _rollback(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection; the error is reported
            self.connection.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection
            self.connection.close()


def _first_line(sql: str) -> str:
    line = " ".join(sql.split())
    return line if len(line) <= 120 else line[:117] + "..."


def _driver_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def connect(login: Login, retries: int = 0, pause: float = 5.0,
            sleep: Callable[[float], None] = time.sleep) -> Database:
    """Open a connection, trying ``retries`` more times ``pause`` seconds apart."""
    last: BaseException | None = None
    for attempt in range(retries + 1):
        if attempt:
            sleep(pause)
        try:
            return Database(login, _open(login))
        except QaError:
            raise
        except Exception as exc:  # network errors differ by driver
            last = exc
    raise QaError(f"cannot connect to {login.describe()}: {_driver_message(last)}"
                  if last else f"cannot connect to {login.describe()}")


def _open(login: Login) -> Any:
    if login.kind == POSTGRES:
        try:
            import psycopg
        except ImportError:
            raise QaError("psycopg is not installed: pip install "
                          "'dataduct-reconciler[qa]'") from None
        return psycopg.connect(host=login.host, port=login.port, dbname=login.database,
                               user=login.user, password=login.password, connect_timeout=30,
                               application_name="dataduct-qa")
    try:
        import pymysql
    except ImportError:
        raise QaError("PyMySQL is not installed: pip install 'dataduct-reconciler[qa]'") from None
    return pymysql.connect(host=login.host, port=login.port, database=login.database or None,
                           user=login.user, password=login.password or "", connect_timeout=30,
                           charset="utf8mb4")


def quote_identifier(name: str) -> str:
    """``schema.table`` with each part double-quoted (PostgreSQL and Redshift)."""
    parts = name.split(".")
    if not all(parts):
        raise QaError(f"'{name}' is not a table name (schema.table)")
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def quote_identifiers(names: Iterable[str]) -> str:
    return ", ".join(quote_identifier(n) for n in names)
