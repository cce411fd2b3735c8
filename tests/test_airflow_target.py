"""An environment with ``target: airflow``, reconciled against a real Airflow 3.

A real Airflow (make install's .tools/airflow: its api-server and dag-processor on
127.0.0.1, SQLite) parses a DAG folder that a small sync fills from the embedded S3, in
MWAA's place; the reconciler (the command line) writes the DAG files to the embedded S3 and
talks to Airflow's REST API. Create, update, suspend, delete, a no-change pass, an import
error and a file the reconciler did not write are each checked against what Airflow shows.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from reconciler.apply.dags import DagApplier, DagUpload
from reconciler.controller.health import Health, health
from reconciler.desired.config import Policy
from reconciler.desired.definition import CompiledPipeline
from reconciler.engine import PassOptions, run
from reconciler.live.airflow import Airflow, AirflowApiError, DagFolder, MwaaApi, http_api
from reconciler.live.aws import record_calls
from reconciler.live.model import AirflowDag, ImportProblem, LiveDag, LiveFolder
from reconciler.plan.dags import DesiredDag, plan_dags
from reconciler.plan.planner import Action, DesiredEnvironment, EnvironmentPlan, PlannedAction

from .conftest import AWS_CALL_LOG, run_cli
from .test_airflow import airflow_env, require_airflow

BUCKET = "airflow-dags"


@dataclass
class AirflowServer:
    url: str
    dags: Path

    def api(self) -> Airflow:
        return Airflow(http_api(self.url, None))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def airflow_server(tmp_path_factory) -> Iterator[AirflowServer]:
    """Airflow's api-server and dag-processor on 127.0.0.1, everyone an admin (the simple
    auth manager's all-admins mode), the DAG folder listed every 2 s."""
    python = require_airflow()
    airflow = str(python.parent / "airflow")
    base = tmp_path_factory.mktemp("airflow")
    dags = base / "dags"
    dags.mkdir()
    port = _free_port()
    env = airflow_env(base / "home", dags)
    env.update({"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "1",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": "a-test-secret-of-enough-length-for-hs512-" * 2,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL":
                    f"http://127.0.0.1:{port}/execution/"})
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=120)
    logs = [(base / f"{name}.log").open("w") for name in ("api-server", "dag-processor")]
    processes = [
        subprocess.Popen([airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
                         env=env, stdout=logs[0], stderr=subprocess.STDOUT,
                         start_new_session=True),
        subprocess.Popen([airflow, "dag-processor"], env=env, stdout=logs[1],
                         stderr=subprocess.STDOUT, start_new_session=True)]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    pytest.fail("Airflow's api-server did not start: "
                                + (base / "api-server.log").read_text()[-2000:])
                time.sleep(0.5)
        yield AirflowServer(url, dags)
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for log in logs:
            log.close()


class FolderSync(threading.Thread):
    """MWAA's part: the DAG folder follows the bucket's prefix."""

    def __init__(self, s3, prefix: str, folder: Path):
        super().__init__(daemon=True)
        self.s3, self.prefix, self.folder = s3, prefix, folder
        self.stop = threading.Event()
        self.etags: dict[str, str] = {}

    def run(self) -> None:
        while not self.stop.wait(0.3):
            self.sync()

    def sync(self) -> None:
        listed = {o["Key"][len(self.prefix):]: o["ETag"] for o in self.s3.list_objects_v2(
            Bucket=BUCKET, Prefix=self.prefix).get("Contents", [])}
        for path, etag in listed.items():
            if self.etags.get(path) != etag:
                target = self.folder / path
                target.parent.mkdir(parents=True, exist_ok=True)
                body = self.s3.get_object(Bucket=BUCKET, Key=self.prefix + path)["Body"].read()
                target.write_bytes(body)
                self.etags[path] = etag
        for path in set(self.etags) - set(listed):
            (self.folder / path).unlink(missing_ok=True)
            del self.etags[path]


@pytest.fixture
def dag_bucket(endpoint, airflow_server) -> Iterator[Callable[[str], object]]:
    """The embedded S3's DAG bucket, and a function that starts syncing a prefix of it into
    Airflow's (emptied) DAG folder and gives the S3 client; the syncs stop after the test."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket=BUCKET)
    syncs: list[FolderSync] = []

    def sync(prefix: str):
        shutil.rmtree(airflow_server.dags)
        airflow_server.dags.mkdir()
        syncs.append(FolderSync(s3, prefix, airflow_server.dags))
        syncs[-1].start()
        return s3

    yield sync
    for folder_sync in syncs:
        folder_sync.stop.set()
        folder_sync.join(5)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)


def airflow_staging(repo: Path, url: str, prefix: str) -> None:
    """The example repository with staging on Airflow (its DAGs under ``prefix``)."""
    settings = repo / "reconciler.yaml"
    text = settings.read_text()
    old = "    name_prefix: staging-\n    policy:\n      allow_replace: true\n"
    assert old in text
    settings.write_text(text.replace(old, (
        "    name_prefix: staging-\n    target: airflow\n    airflow:\n"
        f"      dags: s3://{BUCKET}/{prefix}\n      api:\n        url: {url}\n"
        "      parse_timeout: 60\n    policy:\n      allow_replace: true\n      prune: true\n")))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ci@example.com")
    git(repo, "config", "user.name", "CI")
    commit(repo, "staging on Airflow")


def calls(log: Path, since: int) -> list[str]:
    return log.read_text().splitlines()[since:] if log.exists() else []


def test_an_airflow_environment_is_reconciled_create_update_suspend_delete(
        repo, tmp_path, endpoint, airflow_server, dag_bucket):
    prefix = "dags/"
    s3 = dag_bucket(prefix)
    try:
        airflow_staging(repo, airflow_server.url, prefix.rstrip("/"))
        env = {"AWS_ENDPOINT_URL": endpoint, AWS_CALL_LOG: str(tmp_path / "calls.log")}
        api = airflow_server.api()

        # a file someone else put in the folder is never touched
        s3.put_object(Bucket=BUCKET, Key=prefix + "staging-theirs.py", Body=b"# not a DAG\n")

        planned = run_cli("plan", str(repo), "--env", "staging", env=env)
        assert planned.code == 2, planned.stdout + planned.stderr
        assert "create" in planned.stdout and "staging-users" not in planned.stderr

        applied = run_cli("apply", str(repo), "--env", "staging", "--yes", env=env)
        assert applied.code == 0, applied.stdout + applied.stderr
        dags = api.dags("staging-")
        assert set(dags) == {"staging-users", "staging-discussion_votes"}, dags
        assert all(not d.is_paused for d in dags.values())
        folder = DagFolder(s3, f"s3://{BUCKET}/{prefix}")
        for dag in dags.values():
            tags = folder.tags(dag.file)
            assert tags is not None
            assert tags["dataduct-reconciler/environment"] == "staging"
            assert tags["dataduct-reconciler/activated"] == "true"
        assert folder.tags("staging-theirs.py") == {}

        # a pass in which nothing changed: the listing, the index and Airflow's API; no DAG
        # file read, no file's metadata read (the foreign file is in the index too)
        before = len(calls(tmp_path / "calls.log", 0))
        again = run_cli("plan", str(repo), "--env", "staging", env=env)
        assert again.code == 0, again.stdout + again.stderr
        # (CreateBucket: the embedded service's missing bucket, never called against AWS)
        made = [c for c in calls(tmp_path / "calls.log", before)
                if c.startswith("s3:") and c != "s3:CreateBucket"]
        assert sorted(made) == ["s3:GetObject", "s3:ListObjectsV2"], made
        # compiled another day (another startDateTime), the DAGs keep their start: no change
        later = run(repo, PassOptions(environments=("staging",)),
                    now=datetime.now(UTC) + timedelta(days=3), environ=env)
        [staging] = later.wanted
        assert staging.plan is not None and not staging.plan.has_changes, [
            (a.pipeline, a.reason) for a in staging.plan.actions]

        # an update: a new file, parsed again, still unpaused
        users = repo / "pipelines" / "users.yaml"
        text = users.read_text()
        users.write_text(text.replace("description: ", "description: Updated. ", 1))
        commit(repo, "describe users")
        updated = run_cli("apply", str(repo), "--env", "staging", "--yes", env=env)
        assert updated.code == 0, updated.stdout + updated.stderr
        assert "update" in updated.stdout
        body = s3.get_object(Bucket=BUCKET, Key=prefix + "staging-users.py")["Body"].read()
        assert b"Updated. " in body
        assert not api.dag("staging-users").is_paused

        # suspend: true pauses it; taking the flag away unpauses it
        users.write_text(users.read_text() + "suspend: true\n")
        commit(repo, "suspend users")
        suspended = run_cli("apply", str(repo), "--env", "staging", "--yes", env=env)
        assert suspended.code == 0, suspended.stdout + suspended.stderr
        assert api.dag("staging-users").is_paused

        # a pause made outside git is drift: reported, not reverted (self_heal is off)
        users.write_text(users.read_text().replace("suspend: true\n", ""))
        commit(repo, "resume users")
        resumed = run_cli("apply", str(repo), "--env", "staging", "--yes", env=env)
        assert resumed.code == 0, resumed.stdout + resumed.stderr
        assert not api.dag("staging-users").is_paused
        api.set_paused("staging-users", True)
        drift = run_cli("plan", str(repo), "--env", "staging", env=env)
        assert drift.code == 2 and "paused outside git" in drift.stdout, drift.stdout

        # delete (prune is on here): paused, the file removed; the foreign file stays
        users.unlink()
        commit(repo, "remove users")
        guarded = run_cli("apply", str(repo), "--env", "staging", "--yes", env=env)
        assert guarded.code == 1
        assert ("staging: error: would delete 1 of 2 managed pipelines (50%), over "
                "policy.max_delete_percent 30") in guarded.stderr
        settings = repo / "reconciler.yaml"
        settings.write_text(settings.read_text().replace(
            "      prune: true\n", "      prune: true\n      max_delete_percent: 50\n", 1))
        commit(repo, "allow deleting half")
        deleted = run_cli("apply", str(repo), "--env", "staging", "--yes", env=env)
        assert deleted.code == 0, deleted.stdout + deleted.stderr
        assert api.dag("staging-users").is_paused  # paused before its file went
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
                .get("Contents", [])}
        assert prefix + "staging-users.py" not in keys
        assert prefix + "staging-theirs.py" in keys
    finally:
        # what the command lines called counts for docs/iam-policy.json too (tests/test_iam.py)
        if (tmp_path / "calls.log").exists():
            with open(os.environ[AWS_CALL_LOG], "a", encoding="utf-8") as suite:
                suite.write((tmp_path / "calls.log").read_text())


def test_an_import_error_fails_the_action_naming_the_file_and_the_error(
        airflow_server, dag_bucket):
    prefix = "broken/"
    s3 = dag_bucket(prefix)
    pipeline = CompiledPipeline("broken", "staging", "pipelines/broken.yaml", None, ())
    desired = DesiredDag(pipeline, "staging-broken", "staging-broken.py", "0", "1")
    body = (b"from airflow.sdk import DAG\n"
            b"from airflow.providers.not_installed import Operator\n")
    folder = DagFolder(s3, f"s3://{BUCKET}/{prefix}")
    applier = DagApplier(folder, airflow_server.api(),
                         {"broken": DagUpload(desired, body)}, "default", "staging",
                         "abc", parse_timeout=60, poll_seconds=0.5)
    plan = EnvironmentPlan("staging", [PlannedAction("staging", "broken", Action.CREATE,
                                                     "new", desired=pipeline)])
    [result] = applier.apply(plan)
    assert result.failed
    assert ("Airflow cannot import staging-broken.py: ModuleNotFoundError: No module "
            "named 'airflow.providers.not_installed'") in " ".join(result.messages)
    assert airflow_server.api().dag("staging-broken") is None  # never unpaused, never run

def test_mwaa_is_reached_through_invoke_rest_api():
    """MWAA's API, with responses shaped as AWS's (the embedded service has no MWAA)."""
    client = boto3.client("mwaa", region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    record_calls(client, os.environ.get(AWS_CALL_LOG))
    airflow = Airflow(MwaaApi(client, "etl-staging"))
    with Stubber(client) as stub:
        stub.add_response("invoke_rest_api", {
            "RestApiStatusCode": 200,
            "RestApiResponse": {"dags": [{"dag_id": "staging-users", "is_paused": False,
                                          "relative_fileloc": "staging-users.py",
                                          "last_parsed_time": "2026-12-07T10:00:00Z"}],
                                "total_entries": 1}},
            {"Name": "etl-staging", "Path": "/dags", "Method": "GET",
             "QueryParameters": {"limit": 100, "order_by": "dag_id", "offset": 0,
                                 "dag_id_pattern": "staging-%"}})
        stub.add_client_error(
            "invoke_rest_api", "RestApiClientException", "The request failed", 400,
            modeled_fields={"RestApiStatusCode": 404,
                            "RestApiResponse": {"detail": "The Dag was not found"}},
            expected_params={"Name": "etl-staging", "Path": "/dags/staging-gone",
                             "Method": "GET"})
        stub.add_response("invoke_rest_api", {"RestApiStatusCode": 200,
                                              "RestApiResponse": {"is_paused": True}},
                          {"Name": "etl-staging", "Path": "/dags/staging-users",
                           "Method": "PATCH", "QueryParameters": {"update_mask": "is_paused"},
                           "Body": {"is_paused": True}})
        stub.add_client_error(
            "invoke_rest_api", "RestApiServerException", "The request failed", 400,
            modeled_fields={"RestApiStatusCode": 503, "RestApiResponse": {"detail": "busy"}})
        assert airflow.dags("staging-") == {"staging-users": AirflowDag(
            "staging-users", "staging-users.py", False, "2026-12-07T10:00:00Z")}
        assert airflow.dag("staging-gone") is None
        airflow.set_paused("staging-users", True)
        with pytest.raises(AirflowApiError) as busy:
            airflow.import_errors()
        assert busy.value.status == 503 and busy.value.temporary
        stub.assert_no_pending_responses()


def _dag(path: str, etag: str, tags: dict | None, paused: bool | None,
         error: str | None = None) -> LiveDag:
    dag = None if paused is None else AirflowDag(path[:-3], path, paused, "t")
    return LiveDag(path, etag, tags, dag, ImportProblem(error, "t") if error else None)


def test_the_dag_planner_keeps_the_guards():
    """Pure: ownership, prune, drift and an import error, without Airflow."""
    ours = {"dataduct-reconciler/managed-by": "default",
            "dataduct-reconciler/environment": "staging",
            "dataduct-reconciler/pipeline": "old", "dataduct-reconciler/manifest": "p/old.yaml",
            "dataduct-reconciler/activated": "true"}
    users = CompiledPipeline("users", "staging", "pipelines/users.yaml", None, ())
    votes = CompiledPipeline("votes", "staging", "pipelines/votes.yaml", None, ())
    wanted = [DesiredDag(users, "staging-users", "staging-users.py", "e1", "d1"),
              DesiredDag(votes, "staging-votes", "staging-votes.py", "e2", "d2")]
    live = LiveFolder((
        _dag("staging-users.py", "e1", ours, False,
             error="Traceback\nModuleNotFoundError: No module named 'x'"),
        _dag("staging-votes.py", "zz", {}, False),  # someone else's file at our path
        _dag("staging-old.py", "e3", ours, False),  # ours, its manifest gone
        _dag("staging-theirs.py", "e4", {}, True),  # someone else's: not planned at all
    ), frozenset())
    desired = DesiredEnvironment("staging", (users, votes))
    plan = plan_dags(desired, wanted, live, Policy(max_delete_percent=100), "default")
    by_name = {a.pipeline: a for a in plan.actions}
    assert set(by_name) == {"users", "votes", "old"}
    assert by_name["votes"].is_blocked and "was not written by this installation" in \
        by_name["votes"].reason
    assert by_name["old"].is_blocked and "prune is off" in by_name["old"].reason
    assert plan.errors == ["staging-users.py: Airflow cannot import it: ModuleNotFoundError: "
                           "No module named 'x'"]
    assert health(by_name["users"], None) == Health.DEGRADED
    pruned = plan_dags(desired, wanted, live, Policy(prune=True, max_delete_percent=100),
                       "default")
    assert [a.action for a in pruned.actions if a.pipeline == "old"] == [Action.DELETE]
    assert not next(a for a in pruned.actions if a.pipeline == "old").is_blocked
