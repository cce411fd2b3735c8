"""Shared fixtures: copies of the example repository, the Dataduct corpus, and a runner for
the real ``reconciler`` command in a subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from reconciler.desired.compiler import CompileOptions
from reconciler.desired.definition import QaRunner
from reconciler.desired.project import ProjectResult, compile_project
from reconciler.qa.bundle import qa_runner
from reconciler.source import read_snapshot

PROJECT = Path(__file__).resolve().parent.parent
MANIFESTS = PROJECT / "manifests"
REFERENCE = PROJECT.parent / "shared" / "reference"
DATADUCT_EXAMPLES = REFERENCE / "dataduct" / "examples"
GUIDE = REFERENCE / "aws-data-pipeline-guide" / "doc_source"
START = date(2026, 11, 26)

CUSTOM_EXTRACT_LOCAL = """\
# Dataduct's custom step example (custom_extract_local.py) as a declarative template.
step_type: custom-extract-local
description: Uploads a repository file and copies it to the step's output
parameters:
  path: {type: file, required: true, description: file to upload}
activity:
  type: ShellCommandActivity
  fields:
    command: "aws s3 cp {{ files.path }} ${OUTPUT1_STAGING_DIR}/"
    stage: true
"""


# Every AWS call the reconciler makes during the test session, in this process and in the
# subprocesses it starts (reconciler.live.aws.record_calls); tests/test_iam.py, run last,
# checks docs/iam-policy.json against it.
AWS_CALL_LOG = "RECONCILER_AWS_CALL_LOG"
RUN_LAST = ("test_iam.py",)
FULL_SUITE = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(AWS_CALL_LOG):
        directory = Path(tempfile.mkdtemp(prefix="reconciler-aws-calls-"))
        os.environ[AWS_CALL_LOG] = str(directory / "calls.log")
    # the record is complete when make test ran the suite before (RECONCILER_AWS_CALLS_COMPLETE)
    # or this is the whole suite in one process: no selection by keyword, mark, file or
    # last-failed, and no xdist workers (they would not run tests/test_iam.py last)
    config.stash[FULL_SUITE] = os.environ.get("RECONCILER_AWS_CALLS_COMPLETE") == "1" or (
        not config.option.keyword and not config.option.markexpr
        and not getattr(config.option, "lf", False)
        and not getattr(config.option, "numprocesses", None)
        and all(Path(a).resolve() == PROJECT / "tests" for a in config.args))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name in RUN_LAST)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(message: str) -> None:
    """Skip a test whose outside tool or corpus is missing; under CI=true, fail it."""
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """The path of an outside tool (on PATH, in this virtualenv, or in .tools/bin where make
    install puts helm and checkov); skip without it, but fail under CI=true."""
    places = [str(Path(sys.executable).parent), str(PROJECT / ".tools" / "bin")]
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(places))
    if path is None:
        unavailable(f"'{name}' is not installed (make install provides it where it can)")
    return path


def require_reference(path: Path) -> Path:
    """A reference corpus next to the project (../shared/reference); a clone on its own does
    not have it: skip with its name, but fail under CI=true."""
    if not path.exists():
        unavailable(f"the reference corpus {path} is missing (it lives next to the project "
                    "in ../shared/reference, not in the repository)")
    return path


@pytest.fixture
def pg():
    """A PostgreSQL schema of the test's own (tests/databases.py)."""
    from .databases import postgres_schema

    with postgres_schema() as schema:
        yield schema


@pytest.fixture
def mysql():
    """A MySQL database of the test's own (tests/databases.py)."""
    from .databases import mysql_database

    with mysql_database() as database:
        yield database


# A QA runner that does not change with the code, for golden files (the real one's wheel, and
# so its hash, changes with every edit of the package).
GOLDEN_RUNNER = QaRunner("0.1.0", "dataduct_reconciler-0.1.0-py3-none-any.whl", "0" * 64, 1024,
                         ("dataduct-reconciler==0.1.0", "psycopg", "psycopg-binary", "PyMySQL",
                          "typing-extensions"))


def compile_repo(root: Path, environments=None, runner: QaRunner | None = None
                 ) -> ProjectResult:
    options = CompileOptions(START, qa_runner=runner or qa_runner())
    return compile_project(read_snapshot(root), options, environments=environments)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


CRASHING = Path(__file__).parent / "crashing.py"


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> CliResult:
    """The real command line, in a subprocess; with RECONCILER_TEST_KILL_AFTER in ``env``,
    the one that crashes after that AWS call (tests/crashing.py)."""
    program = [str(CRASHING)] if "RECONCILER_TEST_KILL_AFTER" in (env or {}) else \
        ["-m", "reconciler"]
    proc = subprocess.run([sys.executable, *program, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A writable copy of the example manifests repository."""
    target = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, target)
    return target


STEP_FIXTURES = Path(__file__).parent / "fixtures" / "steps"


@pytest.fixture
def steps_repo(repo: Path) -> Path:
    """The example repository plus this project's pipelines that use every step type."""
    for item in STEP_FIXTURES.iterdir():
        if item.is_dir():
            shutil.copytree(item, repo / item.name, dirs_exist_ok=True)
    return repo


@pytest.fixture
def corpus_repo(repo: Path) -> Path:
    """The example repository plus every Dataduct example pipeline and its resources."""
    require_reference(DATADUCT_EXAMPLES)
    for item in (DATADUCT_EXAMPLES / "resources").iterdir():
        shutil.copytree(item, repo / item.name, dirs_exist_ok=True)
    for example in DATADUCT_EXAMPLES.glob("*.yaml"):
        shutil.copy(example, repo / "pipelines" / example.name)
    (repo / "steps" / "custom-extract-local.yaml").write_text(CUSTOM_EXTRACT_LOCAL)
    return repo


# -- the embedded service ---------------------------------------------------------------------


@pytest.fixture
def endpoint(emulator_process):
    """A running `reconciler emulator` (a subprocess, one per test worker), emptied before
    each test: its URL, for AWS_ENDPOINT_URL."""
    import urllib.request

    request = urllib.request.Request(f"{emulator_process}/_reconciler/reset", data=b"{}",
                                     method="POST")
    urllib.request.urlopen(request, timeout=10).read()
    return emulator_process


@pytest.fixture(scope="session")
def emulator_process(tmp_path_factory):
    from .test_emulator_server import _start_cli_emulator

    proc, url, _ = _start_cli_emulator(tmp_path_factory.mktemp("emulator"))
    yield url
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


FROZEN = "2026-11-26T09:00:00"


@pytest.fixture
def embedded():
    """boto3's Data Pipeline client on the in-process embedded service, clock frozen."""
    import boto3
    from moto import mock_aws

    from reconciler import emulator
    from reconciler.emulator.backend import utc

    emulator.install()
    emulator.CONTROLS.reset()
    emulator.CONTROLS.set_time(utc(FROZEN))
    with mock_aws():
        yield boto3.client("datapipeline", region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")
    emulator.CONTROLS.reset()


@pytest.fixture
def emulator_server(tmp_path):
    """The embedded service as a loopback server (port chosen by the OS)."""
    from reconciler import emulator
    from reconciler.emulator.backend import utc
    from reconciler.emulator.server import EmulatorServer, control

    emulator.install()
    control("reset", {})
    emulator.CONTROLS.set_time(utc(FROZEN))
    server = EmulatorServer(port=0)
    server.start()
    yield server
    server.stop()
    control("reset", {})
