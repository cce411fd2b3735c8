"""The QA runner as the pipelines get it: this package's wheel, built the same every time,
uploaded with the driver wheels by an apply, installed on the resource by the compiled
command without a package index, and run with the passwords on its standard input."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest

import reconciler
from reconciler.local import evaluation, step_activities
from reconciler.qa.bundle import RUNNER_REQUIREMENTS, qa_runner, runner_wheel, wheelhouse

from .conftest import MANIFESTS, PROJECT, compile_repo, in_ci, run_cli
from .databases import postgres_database
from .test_cli_reconcile import SECRETS

WHEELHOUSE = PROJECT / "build" / "wheelhouse"


def require_wheelhouse() -> Path:
    if not any(WHEELHOUSE.glob("psycopg_binary-*.whl")):
        message = f"the QA runner's wheelhouse {WHEELHOUSE} is empty: run make wheelhouse"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return WHEELHOUSE


def test_the_runner_wheel_is_the_package_byte_for_byte_the_same_each_time():
    wheel = runner_wheel()
    assert wheel.name == f"dataduct_reconciler-{reconciler.__version__}-py3-none-any.whl"
    runner_wheel.cache_clear()
    assert runner_wheel().content == wheel.content
    with zipfile.ZipFile(io.BytesIO(wheel.content)) as archive:
        names = archive.namelist()
        record = archive.read(f"dataduct_reconciler-{reconciler.__version__}.dist-info/RECORD")
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    package = Path(reconciler.__file__).parent
    expected = {p.relative_to(package.parent).as_posix() for p in package.rglob("*.py")
                if "__pycache__" not in p.parts}
    assert expected <= set(names) and "reconciler/qa/cli.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert record.decode().count("\n") == len(names)
    runner = qa_runner()
    assert runner.requirements == (f"dataduct-reconciler=={reconciler.__version__}",
                                   *RUNNER_REQUIREMENTS)


def test_qa_steps_pin_the_runner_that_compiled_them():
    (users,) = [p for p in compile_repo(MANIFESTS, ["prod"]).compiled("prod")
                if p.name == "users"]
    runner = qa_runner()
    (artifact,) = [a for a in users.artifacts if a.path == runner.artifact_path]
    assert artifact.sha256 == runner.sha256
    assert artifact.s3_uri == (f"s3://coursera-reinvent/prod/artifacts/{runner.sha256[:32]}/"
                               f"{runner.wheel_name}")
    assert users.qa_wheelhouse == "s3://coursera-reinvent/prod/qa-runner/wheelhouse/"
    command = next(o for o in users.objects if o.id == "count_users").get("command")
    assert f"dataduct-reconciler=={reconciler.__version__}" in command
    assert f'runner="$HOME/.dataduct-reconciler/{runner.version}-{runner.sha256[:16]}"' in command


def test_the_compiled_command_installs_from_the_bucket_and_runs_the_check(
        tmp_path, mysql, monkeypatch):
    """An apply uploads the wheel and the wheelhouse; the count step's command, run by bash
    as Task Runner runs it, installs them with no index reachable and checks the counts."""
    require_wheelhouse()
    endpoint_proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "emulator", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        endpoint = ""
        for line in endpoint_proc.stdout:
            if "export AWS_ENDPOINT_URL=" in line:
                endpoint = line.split("=", 1)[1].strip()
                break
        aws_env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        applied = run_cli("apply", str(MANIFESTS), "--yes", "--env", "prod", "--allow-dirty",
                          env={**aws_env, **SECRETS,
                               "RECONCILER_WHEELHOUSE": str(WHEELHOUSE)})
        assert applied.code == 0, applied.stdout + applied.stderr
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="coursera-reinvent")["Contents"]}
        assert {f"prod/qa-runner/wheelhouse/{name}" for name in wheelhouse(
            {"RECONCILER_WHEELHOUSE": str(WHEELHOUSE)})} <= keys
        assert any(k.endswith(qa_runner().wheel_name) for k in keys)

        with postgres_database() as dsn:
            seeded = subprocess.run([sys.executable, str(PROJECT / "tools" / "load_seed.py"),
                                     "--dsn", dsn, "--source-dsn", mysql.dsn],
                                    capture_output=True, text=True, timeout=60)
            assert seeded.returncode == 0, seeded.stderr
            upserted = run_cli("run-step", str(MANIFESTS / "pipelines" / "users.yaml"),
                               "upsert_users", "--env", "prod", "--dsn", dsn)
            assert upserted.code == 0, upserted.stderr
            (users,) = [p for p in compile_repo(MANIFESTS, ["prod"]).compiled("prod")
                        if p.name == "users"]
            (count,) = step_activities(users, "count_users")
            activity = count.object
            # what the service does before Task Runner runs the command: expressions
            # evaluated, the encrypted parameters' values put in
            command = activity.get("command").replace(
                "#{*myMysqlMaestroPassword}", "").replace("#{*myRedshiftPassword}", "")
            evaluate = evaluation(users, activity, users_time())
            arguments = [evaluate(a) for a in activity.get_all("scriptArgument")]
            arguments += [f"--source_dsn={mysql.dsn}", f"--destination_dsn={dsn}"]
            home = tmp_path / "home"
            home.mkdir()
            environment = {
                "HOME": str(home), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                "PIP_INDEX_URL": "http://127.0.0.1:9/nothing-here", "PIP_NO_CACHE_DIR": "1",
                **aws_env}
            first = subprocess.run(["bash", "-c", command, "count_users", *arguments],
                                   capture_output=True, text=True, env=environment,
                                   timeout=300)
            assert first.returncode == 0, first.stdout + first.stderr
            assert '"passed": true' in first.stdout and '"source_rows": 12' in first.stdout
            installed = list((home / ".dataduct-reconciler").iterdir())
            assert [p.name for p in installed] == [
                f"{qa_runner().version}-{qa_runner().sha256[:16]}"]
            # installed once: the next run on the resource does not download again
            s3.delete_object(Bucket="coursera-reinvent",
                             Key=f"prod/artifacts/{qa_runner().sha256[:32]}/"
                                 f"{qa_runner().wheel_name}")
            again = subprocess.run(["bash", "-c", command, "count_users", *arguments],
                                   capture_output=True, text=True, env=environment,
                                   timeout=120)
            assert again.returncode == 0, again.stderr
    finally:
        endpoint_proc.terminate()
        endpoint_proc.wait(timeout=20)


def users_time():
    from datetime import datetime

    return datetime(2026, 11, 27, 12, 0, 0)


def test_without_a_wheelhouse_an_apply_says_the_runner_cannot_install(repo):
    """The plan is the same with or without a wheelhouse (the definitions name the prefix,
    not its files); an apply that has none to upload says what it means."""
    environment = {**SECRETS, "RECONCILER_WHEELHOUSE": str(repo / "no-such-directory")}
    applied = run_cli("apply", str(repo), "--yes", "--env", "prod", "--allow-dirty",
                      env=environment)
    assert applied.code == 0, applied.stderr
    (line,) = [x for x in applied.stdout.splitlines() if "create users" in x]
    assert ("warning: no QA runner wheelhouse to upload (RECONCILER_WHEELHOUSE); its QA "
            "steps install only if s3://coursera-reinvent/prod/qa-runner/wheelhouse/ holds "
            "the drivers' wheels already") in line
