"""Validate+compile time of 1,000 generated manifests, as a ratio to bare YAML parsing of the
same files. Two baselines: ``yaml.safe_load`` (what "parse the YAML" means in most code: PyYAML's
pure-Python SafeLoader) and ``yaml.load(..., CSafeLoader)`` (libyaml, the fastest PyYAML can
parse). Everything runs on bytes already in memory, in this process, one after the other; each
figure is the best of a few repetitions.

    python benchmarks/compile.py [--manifests 1000] [--repeat 3]

Target: validate+compile for one environment within 3x bare parsing. The first two figures
compile in this process; the third with the processes ``compile_project`` forks on its own
for a big repository (one per core).

The generated manifests mix three shapes (RDS to Redshift with upsert and a primary key check,
EMR templates, S3 transform and load); each upsert pipeline has a table of its own, so the
generated SQL (parsed back by sqlglot) differs from pipeline to pipeline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

from reconciler.desired import sql as sqlgen
from reconciler.desired.compiler import CompileOptions
from reconciler.desired.project import compile_project
from reconciler.processes import PROCESSES_VARIABLE, forked_map
from reconciler.qa.bundle import qa_runner
from reconciler.source import read_snapshot

ROOT = Path(__file__).resolve().parent.parent
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

TEMPLATES = [
    """\
name: users_{i}
frequency: daily
load_time: 12:00
description: Users table from RDS database, copy {i}
steps:
- step_type: extract-rds
  sql: "SELECT id, user_name, user_email FROM users_{i}"
  host_name: maestro
  database: userDb
- step_type: create-load-redshift
  name: load_staging
  table_definition: tables/staging.maestro_users.sql
- step_type: upsert
  name: upsert_users
  source: tables/staging.maestro_users.sql
  destination: tables/prod.users_{i}.sql
- step_type: primary-key-check
  table_definition: tables/prod.users_{i}.sql
""",
    """\
name: votes_{i}
frequency: hourly
emr_cluster_config:
  num_instances: 4
  instance_size: m1.xlarge
steps:
- step_type: aegisthus
  cql_schema_definition: cassandra_tables/vote.vote_kvs_timestamp.cql
- step_type: scalding
  name: vote_emr
  job_name: org.coursera.etl.vote.VotesETLJob{i}
  output_node: [questions, answers]
- step_type: create-load-redshift
  name: load_questions
  input_node: vote_emr/questions
  table_definition: tables/staging.cassandra_discussion_question_votes.sql
""",
    """\
name: report_{i}
frequency: one-time
load_time: 01:00
steps:
- step_type: extract-s3
  file_uri: s3://bucket/input/{i}.tsv
- step_type: transform
  command: "sort ${{INPUT1_STAGING_DIR}}/* > ${{OUTPUT1_STAGING_DIR}}/sorted.tsv"
- step_type: load-redshift
  schema: dev
  table: report_{i}
- step_type: sql-command
  command: "DELETE FROM dev.report_{i} WHERE id < 0;"
""",
]


def generate(root: Path, count: int) -> None:
    shutil.copytree(ROOT / "manifests", root)
    for path in (root / "pipelines").glob("*.yaml"):
        path.unlink()
    users = (root / "tables" / "prod.users.sql").read_text()
    for i in range(count):
        (root / "pipelines" / f"p{i:04d}.yaml").write_text(TEMPLATES[i % 3].format(i=i))
        if i % 3 == 0:  # a table of its own, so generated SQL differs from pipeline to pipeline
            (root / "tables" / f"prod.users_{i}.sql").write_text(
                users.replace("prod.users", f"prod.users_{i}"))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        generate(root, args.manifests)
        snapshot = read_snapshot(root)
    files = [snapshot.files[p] for p in sorted(snapshot.files) if p.startswith("pipelines/")]
    options = CompileOptions(date(2026, 11, 26), qa_runner=qa_runner())

    def parse_only():
        for content in files:
            yaml.load(content, Loader=LOADER)

    def safe_load_only():
        for content in files:
            yaml.safe_load(content)

    def compile_env(envs):
        def run():
            # input-dependent caches start cold in every repetition; the compiled JSON Schema
            # validators stay warm, as they do in a controller process
            sqlgen.clear_caches()
            result = compile_project(snapshot, options, environments=envs, mapper=forked_map)
            errors = result.errors
            if errors:
                raise SystemExit(f"generated manifests do not compile: {errors[0].format()}")
        return run

    compile_env(["staging"])()  # warm caches (schemas, validators) outside the timing
    parse = best(parse_only, args.repeat)
    safe = best(safe_load_only, args.repeat)
    os.environ[PROCESSES_VARIABLE] = "1"
    one = best(compile_env(["staging"]), args.repeat)
    both = best(compile_env(None), args.repeat)
    del os.environ[PROCESSES_VARIABLE]
    forked = best(compile_env(["staging"]), args.repeat)
    n = len(files)
    print(f"manifests: {n}   yaml: {'C' if LOADER is not yaml.SafeLoader else 'pure Python'}")
    print(f"yaml.safe_load (pure Python)    : {safe:7.3f} s  ({safe / n * 1e3:.2f} ms each)")
    print(f"yaml.load, CSafeLoader (libyaml): {parse:7.3f} s  ({parse / n * 1e3:.2f} ms each)")
    for label, took in (("1 environment ", one), ("2 environments", both),
                        (f"1 env, {os.cpu_count()} procs", forked)):
        print(f"validate+compile, {label}: {took:7.3f} s  ({took / n * 1e3:.2f} ms each)  "
              f"{took / safe:.2f}x safe_load, {took / parse:.2f}x CSafeLoader")
    print("target: 1 environment <= 3x bare parsing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
