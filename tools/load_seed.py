"""Load the example repository's seed data into local databases (``make seed``).

    python tools/load_seed.py [--dsn postgresql://...] [--source-dsn mysql://...]

``manifests/seed/postgres.sql`` goes to PostgreSQL (standing in for Redshift) and
``manifests/seed/mysql.sql`` to MySQL/MariaDB (the RDS source). Passwords, when the servers
need them: PGPASSWORD and DATADUCT_QA_SOURCE_PASSWORD.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psycopg
import pymysql
from pymysql.constants import CLIENT

from reconciler.qa.databases import login_from_url

SEED = Path(__file__).resolve().parent.parent / "manifests" / "seed"
DEFAULT_DSN = os.environ.get("RECONCILER_DSN", "postgresql://postgres@127.0.0.1:5432/test")
DEFAULT_SOURCE = os.environ.get("RECONCILER_SOURCE_DSN", "mysql://root@127.0.0.1:3306/test")


def load_postgres(dsn: str, script: str) -> None:
    login = login_from_url(dsn, "destination")
    with psycopg.connect(host=login.host, port=login.port, dbname=login.database,
                         user=login.user or None, autocommit=True) as connection:
        connection.execute(script)


def load_mysql(dsn: str, script: str) -> None:
    login = login_from_url(dsn, "source")
    connection = pymysql.connect(host=login.host, port=login.port, user=login.user,
                                 password=os.environ.get("DATADUCT_QA_SOURCE_PASSWORD", ""),
                                 database=login.database, autocommit=True,
                                 client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with connection.cursor() as cursor:
            cursor.execute(script)
            while cursor.nextset():
                pass
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=DEFAULT_DSN, help=f"default {DEFAULT_DSN}")
    parser.add_argument("--source-dsn", default=DEFAULT_SOURCE, help=f"default {DEFAULT_SOURCE}")
    parser.add_argument("--seed", type=Path, default=SEED, help="the seed directory")
    args = parser.parse_args(argv)
    load_postgres(args.dsn, (args.seed / "postgres.sql").read_text())
    print(f"loaded {args.seed / 'postgres.sql'} into {args.dsn}")
    load_mysql(args.source_dsn, (args.seed / "mysql.sql").read_text())
    print(f"loaded {args.seed / 'mysql.sql'} into {args.source_dsn}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
