"""The QA runner's command line: ``python -m reconciler.qa CHECK [options]``.

Options keep Dataduct's names (``--source_host``, ``--tolerance`` ...), the ones its QA steps
were written with. Exit codes: 0 the check passed, 1 it failed, 2 it could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

from . import checks
from .aws import AwsCli
from .databases import (
    MYSQL,
    POSTGRES,
    Database,
    Login,
    QaError,
    connect,
    login_from_parts,
    login_from_url,
    read_passwords,
    with_password,
)

PASSED, FAILED, ERROR = 0, 1, 2
DESCRIPTION = """\
Run one QA check of a Dataduct pipeline and report it: a JSON record on standard output, a
readable line on standard error, exit code 0 (passed), 1 (failed) or 2 (could not run).

Passwords are never arguments: --passwords_from_stdin reads source_password=... and
destination_password=... lines, else DATADUCT_QA_SOURCE_PASSWORD and
DATADUCT_QA_DESTINATION_PASSWORD are used (PostgreSQL also reads PGPASSWORD and ~/.pgpass).

examples:
  python -m reconciler.qa primary-key --table=prod.users --primary_key=id \\
      --destination_dsn=postgresql://postgres@127.0.0.1:5432/test
  python -m reconciler.qa count --source_sql='SELECT COUNT(*) FROM users' \\
      --destination_sql='SELECT COUNT(*) FROM prod.users' --tolerance=1 \\
      --source_dsn=mysql://root@127.0.0.1:3306/test \\
      --destination_dsn=postgresql://postgres@127.0.0.1:5432/test
  python -m reconciler.qa dependencies --pipelines=prod_orders,prod_users \\
      --start_date=2026-11-27 --refresh_rate=300
"""


def _database_options(parser: argparse.ArgumentParser, role: str, what: str) -> None:
    group = parser.add_argument_group(f"{role} database ({what})")
    group.add_argument(f"--{role}_dsn", metavar="URL",
                       help="the whole address, e.g. postgresql://USER@HOST:PORT/DB or "
                            "mysql://USER@HOST:PORT/DB (no password in it)")
    group.add_argument(f"--{role}_host")
    group.add_argument(f"--{role}_port", type=int)
    group.add_argument(f"--{role}_database")
    group.add_argument(f"--{role}_user")


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--test_name", help="the name the result is reported under")
    parser.add_argument("--log_to_s3", metavar="S3_PREFIX",
                        help="also write the JSON record under this s3:// prefix")
    parser.add_argument("--sns_topic_arn", help="publish a notice there when the check fails")
    parser.add_argument("--connection_retries", type=int, default=0,
                        help="connection attempts after the first (default 0)")
    parser.add_argument("--passwords_from_stdin", action="store_true",
                        help="read source_password=... and destination_password=... lines")


def _percent(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage between 0 and 100")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a date (YYYY-MM-DD)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reconciler qa", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="check", required=True, metavar="CHECK")

    pk = sub.add_parser("primary-key", help="duplicates of a table's primary key",
                        description="Fails when a key of --primary_key appears on more than "
                                    "one row of --table.")
    pk.add_argument("--table", required=True, help="schema.table on the destination")
    pk.add_argument("--primary_key", required=True, help="its key columns, comma-separated")
    _database_options(pk, "destination", "Redshift or PostgreSQL")
    _common_options(pk)

    count = sub.add_parser("count", help="source and destination row counts",
                           description="Fails when the counts differ by more than "
                                       "--tolerance percent of the source's.")
    count.add_argument("--source_sql", required=True, help="a query returning one count")
    count.add_argument("--destination_sql", required=True, help="a query returning one count")
    count.add_argument("--tolerance", type=_percent, default=1.0, help="in %% (default 1)")
    count.add_argument("--table", help="the table the result is reported for")
    _database_options(count, "source", "MySQL")
    _database_options(count, "destination", "Redshift or PostgreSQL")
    _common_options(count)

    column = sub.add_parser("column", help="sampled rows compared column by column",
                            description="Fails when more than --tolerance percent of the "
                                        "sampled source rows differ from the destination's "
                                        "row of the same key. The first column of both "
                                        "queries is the key; columns are compared in order.")
    column.add_argument("--source_sql", required=True, help="the source rows to sample")
    column.add_argument("--destination_sql", required=True, help="the destination rows")
    column.add_argument("--sample_size", type=_positive, default=100)
    column.add_argument("--tolerance", type=_percent, default=1.0, help="in %% (default 1)")
    column.add_argument("--table", help="the table the result is reported for")
    _database_options(column, "source", "MySQL")
    _database_options(column, "destination", "Redshift or PostgreSQL")
    _common_options(column)

    deps = sub.add_parser("dependencies", help="wait for other pipelines' runs of a day",
                          description="Waits until every pipeline of --pipelines has finished "
                                      "its runs scheduled on --start_date; fails when one "
                                      "fails (unless --ok_to_fail names it) or at --timeout.")
    deps.add_argument("--pipelines", required=True, help="pipeline names in AWS, comma-separated")
    deps.add_argument("--ok_to_fail", default="", help="pipelines whose failure is accepted")
    deps.add_argument("--start_date", type=_day, required=True, help="the day (YYYY-MM-DD)")
    deps.add_argument("--refresh_rate", type=_positive, default=300,
                      help="seconds between looks (default 300)")
    deps.add_argument("--timeout", type=_positive, default=6 * 3600,
                      help="seconds before giving up (default 21600)")
    _common_options(deps)
    return parser


def _login(args: argparse.Namespace, role: str, kind: str, passwords: dict[str, str]) -> Login:
    url = getattr(args, f"{role}_dsn")
    if url:
        login = login_from_url(url, role)
        if login.kind != kind:
            raise QaError(f"--{role}_dsn is a {login.kind} URL; the {role} is {kind}")
    else:
        login = login_from_parts(kind, role, getattr(args, f"{role}_host"),
                                 getattr(args, f"{role}_port"), getattr(args, f"{role}_database"),
                                 getattr(args, f"{role}_user"))
    return with_password(login, passwords, role)


class _Connections:
    """Connections opened for one check, all closed after it."""

    def __init__(self, args: argparse.Namespace, passwords: dict[str, str]):
        self.args, self.passwords = args, passwords
        self.open: list[Database] = []

    def __call__(self, role: str, kind: str) -> Database:
        database = connect(_login(self.args, role, kind, self.passwords),
                           retries=max(0, self.args.connection_retries))
        self.open.append(database)
        return database

    def close(self) -> None:
        for database in self.open:
            database.close()


def _run_check(args: argparse.Namespace, passwords: dict[str, str],
               aws: Callable[[], AwsCli], progress: Callable[[str], None]) -> checks.Result:
    if args.check == "dependencies":
        names = [n for n in args.pipelines.split(",") if n]
        ok = [n for n in args.ok_to_fail.split(",") if n]
        return checks.dependencies(aws().runs, names, args.start_date, ok,
                                   args.refresh_rate, args.timeout, progress=progress)
    databases = _Connections(args, passwords)
    try:
        if args.check == "primary-key":
            keys = [k.strip() for k in args.primary_key.split(",") if k.strip()]
            return checks.primary_key(databases("destination", POSTGRES), args.table, keys)
        source = databases("source", MYSQL)
        destination = databases("destination", POSTGRES)
        if args.check == "count":
            return checks.count(source, destination, args.source_sql, args.destination_sql,
                                args.tolerance, args.table)
        return checks.column(source, destination, args.source_sql, args.destination_sql,
                             args.sample_size, args.tolerance, args.table)
    finally:
        databases.close()


def main(argv: Sequence[str] | None = None, *, stdin: IO[str] | None = None,
         stdout: IO[str] | None = None, stderr: IO[str] | None = None,
         environ: Any = None, aws: Callable[[], AwsCli] = AwsCli) -> int:
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    try:
        passwords = read_passwords(stdin if args.passwords_from_stdin else None, environ)
        result = _run_check(args, passwords, aws,
                            lambda line: print(line, file=stderr, flush=True))
    except QaError as exc:
        print(f"ERROR: {args.check} check could not run: {exc}", file=stderr)
        return ERROR
    result.test_name = args.test_name
    record = json.dumps(result.record(), sort_keys=True, default=str)
    print(record, file=stdout, flush=True)
    print(result.text(), file=stderr, flush=True)
    try:
        if args.log_to_s3:
            aws().put_text(_log_key(args.log_to_s3, result), record + "\n")
        if not result.passed and args.sns_topic_arn:
            aws().notify(args.sns_topic_arn, f"QA failed: {args.test_name or args.check}",
                         result.text())
    except QaError as exc:
        print(f"ERROR: the result could not be reported: {exc}", file=stderr)
        return ERROR
    return PASSED if result.passed else FAILED


def _log_key(prefix: str, result: checks.Result) -> str:
    if not prefix.startswith("s3://"):
        raise QaError(f"--log_to_s3 '{prefix}' is not an s3:// prefix")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{prefix.rstrip('/')}/{result.check}-{stamp}.json"
