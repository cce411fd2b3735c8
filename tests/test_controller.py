"""The controller against real components: a git repository in a temp dir that it follows,
its HTTP server on 127.0.0.1, the embedded AWS as a server, and (for metrics) promtool."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from reconciler import emulator
from reconciler.controller import (
    Backoff,
    Controller,
    ControllerConfig,
    ControllerServer,
    GitSource,
    Redactor,
    configure_logging,
    signature_ok,
)
from reconciler.emulator.server import control
from reconciler.engine import connect_environment
from reconciler.live.pacing import Pacer

from .conftest import MANIFESTS, require_tool, run_cli

SECRETS = {"MAESTRO_PASSWORD": "ctl-maestro-s3cr3t", "REDSHIFT_PASSWORD": "ctl-redshift-s3cr3t",
           "POSTGRES_PASSWORD": "ctl-postgres-s3cr3t",
           "RECONCILER_SECRETS_KEY": "ctl-installation-key"}
WEBHOOK_SECRET = b"webhook-shared-secret"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


class Remote:
    """The manifests repository the controller follows, with commits made by the test."""

    def __init__(self, path: Path):
        self.path = path
        shutil.copytree(MANIFESTS, path, ignore=shutil.ignore_patterns(".reconciler"))
        git(path, "init", "-q", "-b", "main")
        git(path, "config", "user.email", "ci@example.com")
        git(path, "config", "user.name", "CI")
        self.commit("initial")

    def commit(self, message: str) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def edit(self, path: str, old: str, new: str) -> str:
        target = self.path / path
        text = target.read_text()
        assert old in text, (path, old)
        target.write_text(text.replace(old, new))
        return self.commit(f"edit {path}")


@pytest.fixture
def remote(tmp_path):
    return Remote(tmp_path / "remote")


def make_controller(remote: Remote, endpoint: str, tmp_path: Path, name: str = "a",
                    wall=None, connect=connect_environment, **config) -> Controller:
    environ = {**SECRETS, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    source = GitSource(str(remote.path), "main", tmp_path / f"cache-{name}")
    settings = {"interval": 300.0, "backoff": Backoff(base=60, factor=2, cap=600,
                                                      stall_after=3), **config}
    return Controller(source, ControllerConfig(**settings), environ=environ,
                      wall=wall or emulator.CONTROLS.now, connect=connect)


def datapipeline(endpoint: str):
    return boto3.client("datapipeline", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def managed(endpoint: str) -> dict[tuple[str, str], list[dict]]:
    """(environment, pipeline) -> the live pipelines' descriptions."""
    client = datapipeline(endpoint)
    ids = [p["id"] for p in client.list_pipelines()["pipelineIdList"]]
    found: dict[tuple[str, str], list[dict]] = {}
    for start in range(0, len(ids), 25):
        for desc in client.describe_pipelines(pipelineIds=ids[start:start + 25])[
                "pipelineDescriptionList"]:
            tags = {t["key"]: t["value"] for t in desc["tags"]}
            fields = {f["key"]: f.get("stringValue") for f in desc["fields"]}
            if fields.get("@pipelineState") == "DELETED":
                continue
            key = (tags.get("dataduct-reconciler/environment"),
                   tags.get("dataduct-reconciler/pipeline"))
            found.setdefault(key, []).append({"id": desc["pipelineId"], "tags": tags,
                                              "fields": fields})
    return found


def revision_of(endpoint: str, env: str, pipeline: str) -> str:
    (only,) = managed(endpoint)[(env, pipeline)]
    return only["tags"]["dataduct-reconciler/revision"]


def scrape(controller: Controller) -> str:
    return controller.metrics.exposition().decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series of an exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            return float(value)
    return 0.0


def http(url: str, data: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(url, data=data, headers=headers or {},
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


# -- a commit, a webhook ---------------------------------------------------------------------------


def test_a_commit_is_applied_by_the_next_pass(emulator_server, remote, tmp_path):
    endpoint = emulator_server.endpoint
    controller = make_controller(remote, endpoint, tmp_path)
    first = controller.run_once()
    assert first is not None and not first.failed, first.problems
    found = managed(endpoint)
    assert set(found) == {(e, p) for e in ("staging", "prod")
                          for p in ("users", "discussion_votes")}
    commit = remote.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 0"')
    controller.run_once()
    assert revision_of(endpoint, "staging", "users") == commit
    assert revision_of(endpoint, "prod", "users") == commit
    status = controller.status.to_json()
    assert status["source"]["revision"] == commit
    users = {p["pipeline"]: p for p in status["environments"]["prod"]["pipelines"]}["users"]
    assert (users["sync_status"], users["last_applied_revision"]) == ("Synced", commit)
    text = scrape(controller)
    assert sample(text, "dataduct_source_revision_info", revision=commit) == 1
    assert sample(text, "dataduct_sync_actions_total", env="prod", action="update",
                  result="applied") == 1
    # a pass with no commit compiles nothing; a one-file commit recompiles that pipeline
    controller.run_once()
    cache = controller.context.compile_cache
    assert cache is not None and cache.misses == 0
    remote.edit("pipelines/discussion_votes.yaml", "num_instances: 20", "num_instances: 10")
    controller.run_once()
    assert (cache.misses, cache.hits) == (2, 2)


def test_a_signed_webhook_applies_a_change_within_seconds_and_an_unsigned_one_nothing(
        emulator_server, remote, tmp_path):
    endpoint = emulator_server.endpoint
    controller = make_controller(remote, endpoint, tmp_path)
    server = ControllerServer(controller, "127.0.0.1", 0, WEBHOOK_SECRET)
    server.start()
    worker = threading.Thread(target=controller.loop)
    worker.start()
    try:
        assert wait_until(lambda: controller.passes >= 1 and ("prod", "users") in
                          managed(endpoint), 30)
        commit = remote.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 1"')
        body = json.dumps({"ref": "refs/heads/main", "after": commit}).encode()
        unsigned = http(f"{server.address}/webhook", body,
                        {"X-GitHub-Event": "push", "Content-Type": "application/json"})
        assert unsigned[0] == 401
        forged = http(f"{server.address}/webhook", body, {
            "X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64})
        assert forged[0] == 401
        time.sleep(1.0)
        assert controller.passes == 1 and revision_of(endpoint, "prod", "users") != commit
        signature = "sha256=" + hmac.new(WEBHOOK_SECRET, body, hashlib.sha256).hexdigest()
        started = time.monotonic()
        for _ in range(5):  # a burst of deliveries: one pass, not five
            code, _ = http(f"{server.address}/webhook", body,
                           {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature})
            assert code == 202
        assert wait_until(lambda: revision_of(endpoint, "prod", "users") == commit, 5)
        took = time.monotonic() - started
        assert took < 5, took
        time.sleep(0.5)
        assert controller.passes <= 3
        assert http(f"{server.address}/healthz")[0] == 200
        assert http(f"{server.address}/readyz")[0] == 200
        assert http(f"{server.address}/nothing")[0] == 404
        code, page = http(f"{server.address}/?env=prod&name=users")
        assert code == 200 and b'<a href="/pipelines/prod/users">users</a>' in page
        assert b"discussion_votes" not in page
        code, detail = http(f"{server.address}/pipelines/prod/users")
        assert code == 200 and b"<code>pipelines/users.yaml</code>" in detail
        assert b"<td>update</td><td class=\"\">applied</td>" in detail  # the webhook's apply
        assert commit[:12].encode() in detail
        assert http(f"{server.address}/pipelines/prod/nope")[0] == 404
        # reconciler refresh: a signed request for a pass that reads everything (a pipeline
        # deleted by hand is found, which a push's pass would not read), refused without
        # the secret
        (votes,) = managed(endpoint)[("staging", "discussion_votes")]
        datapipeline(endpoint).delete_pipeline(pipelineId=votes["id"])
        before = controller.passes
        secret_file = tmp_path / "webhook-secret"
        secret_file.write_bytes(WEBHOOK_SECRET)
        refreshed = run_cli("refresh", "--url", server.address, "--webhook-secret-file",
                            str(secret_file), "--env", "staging")
        assert refreshed.code == 0 and "pass requested" in refreshed.stdout, refreshed.stderr
        assert wait_until(lambda: controller.passes > before, 10)
        assert wait_until(lambda: ("staging", "discussion_votes") in managed(endpoint), 10)
        assert (controller.status.operations[-1].operation,
                controller.status.operations[-1].env) == ("refresh", "staging")
        secret_file.write_bytes(b"not-the-secret")
        refused = run_cli("refresh", "--url", server.address, "--webhook-secret-file",
                          str(secret_file))
        assert refused.code == 1 and "refused the refresh (401)" in refused.stderr
    finally:
        controller.stop()
        worker.join(30)
        server.stop()
    assert not worker.is_alive()


def _signed(body: bytes, delivery: str) -> dict[str, str]:
    return {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": "sha256=" + hmac.new(WEBHOOK_SECRET, body,
                                                        hashlib.sha256).hexdigest()}


def test_the_http_server_holds_up_to_crowds_idlers_big_bodies_and_replays(remote, tmp_path):
    controller = make_controller(remote, "http://127.0.0.1:9", tmp_path)
    server = ControllerServer(controller, "127.0.0.1", 0, WEBHOOK_SECRET)
    server.start()
    host, port = "127.0.0.1", int(server.address.rsplit(":", 1)[1])
    idle: list[socket.socket] = []
    try:
        # 500 connections that send half a request and then nothing (slowloris) ...
        for _ in range(500):
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            idle.append(sock)
        # ... do not keep 200 clients at once from being answered, without a reset
        answers: list[int | str] = []

        def probe() -> None:
            try:
                answers.append(http(f"{server.address}/healthz")[0])
            except OSError as exc:
                answers.append(repr(exc))

        started = time.monotonic()
        crowd = [threading.Thread(target=probe) for _ in range(200)]
        for thread in crowd:
            thread.start()
        for thread in crowd:
            thread.join(30)
        took = time.monotonic() - started
        assert answers == [200] * 200, [a for a in answers if a != 200][:5]
        assert took < 10, took
        # a body over the limit is refused from its Content-Length, before it is sent
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 20971520\r\n\r\n")
            assert sock.recv(200).startswith(b"HTTP/1.1 413")
        # a signed delivery starts a pass once; the same delivery replayed starts nothing
        body = json.dumps({"ref": "refs/heads/main"}).encode()
        assert http(f"{server.address}/webhook", body, _signed(body, "d-1"))[0] == 202
        replayed = http(f"{server.address}/webhook", body, _signed(body, "d-1"))
        assert replayed[0] == 200 and b"seen already" in replayed[1]
        assert http(f"{server.address}/webhook", body, _signed(body, "d-2"))[0] == 202
        assert server.webhooks_accepted == 2
        # an unsigned request naming a delivery does not use it up
        assert http(f"{server.address}/webhook", body, {"X-GitHub-Delivery": "d-3"})[0] == 401
        assert http(f"{server.address}/webhook", body, _signed(body, "d-3"))[0] == 202
    finally:
        for sock in idle:
            sock.close()
        server.stop()


def test_run_on_a_busy_port_is_a_one_line_error(remote, tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "run", str(remote.path),
             "--listen", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60,
            env={**os.environ, **SECRETS, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    finally:
        busy.close()
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the address is in use (another "
        "controller, or another program) (--listen HOST:PORT chooses another)"], done.stderr


def test_webhook_signatures_are_checked_exactly():
    body = b'{"ref": "refs/heads/main"}'
    good = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature_ok(b"k", body, good)
    assert not signature_ok(b"k", body + b" ", good)
    assert not signature_ok(b"other", body, good)
    assert not signature_ok(b"k", body, None)
    assert not signature_ok(b"k", body, good.replace("sha256=", "sha1="))


# -- bad input, an unreachable remote --------------------------------------------------------------


def test_a_broken_manifest_stops_only_itself(emulator_server, remote, tmp_path):
    endpoint = emulator_server.endpoint
    controller = make_controller(remote, endpoint, tmp_path)
    controller.run_once()
    before = managed(endpoint)[("prod", "users")][0]["id"]
    (remote.path / "pipelines/users.yaml").write_text("name: users\nsteps: oops\n")
    commit = remote.edit("pipelines/discussion_votes.yaml", "num_instances: 20",
                         "num_instances: 12")
    result = controller.run_once()
    assert result is not None and result.failed
    assert revision_of(endpoint, "prod", "discussion_votes") == commit
    assert managed(endpoint)[("prod", "users")][0]["id"] == before  # untouched, not deleted
    users = {p["pipeline"]: p for p in controller.status.to_json()["environments"]["prod"][
        "pipelines"]}["users"]
    assert users["sync_status"] == "Unknown" and users["health_status"] == "Unknown"
    assert sample(scrape(controller), "dataduct_pipeline_info", env="prod", pipeline="users",
                  sync_status="Unknown") == 1
    assert sample(scrape(controller), "dataduct_reconcile_total", env="prod",
                  result="failure") == 1


def test_an_unreachable_remote_keeps_the_last_good_revision(emulator_server, remote,
                                                            tmp_path):
    endpoint = emulator_server.endpoint
    controller = make_controller(remote, endpoint, tmp_path)
    server = ControllerServer(controller, "127.0.0.1", 0, None)
    server.start()
    try:
        controller.run_once()
        good = controller.status.source.revision
        assert http(f"{server.address}/readyz")[0] == 200
        success = sample(scrape(controller), "dataduct_source_last_success_timestamp_seconds")
        moved = remote.path.with_name("moved-away")
        remote.path.rename(moved)
        emulator.CONTROLS.advance(60)
        controller.run_once()
        code, body = http(f"{server.address}/readyz")
        assert code == 503 and b"source stale" in body
        text = scrape(controller)
        assert sample(text, "dataduct_source_errors_total") == 1
        assert sample(text, "dataduct_source_last_success_timestamp_seconds") == success
        assert sample(text, "dataduct_source_revision_info", revision=good) == 1
        assert len(managed(endpoint)) == 4  # nothing deleted
        assert controller.status.to_json()["source"]["stale"] is True
        moved.rename(remote.path)
        controller.run_once()
        assert http(f"{server.address}/readyz")[0] == 200
    finally:
        server.stop()


# -- runs ------------------------------------------------------------------------------------------


def test_runs_are_counted_once_with_their_retries_and_duration(emulator_server, remote,
                                                               tmp_path):
    endpoint = emulator_server.endpoint
    # upsert_users fails twice, then succeeds; each attempt takes 60 s, retries 10 minutes
    control("outcomes", {"object_id": "upsert_users", "fail_times": 2})
    controller = make_controller(remote, endpoint, tmp_path, environments=("staging",))
    controller.run_once()  # creates and activates; the first run is today at 12:00
    controller.run_once()  # baseline: nothing has run yet
    control("clock", {"advance_seconds": 8 * 3600})  # 17:00: the run is over
    controller.run_once()
    text = scrape(controller)
    labels = {"env": "staging", "pipeline": "users", "activity": "upsert_users"}
    assert sample(text, "dataduct_pipeline_runs_total", status="FINISHED", **labels) == 1
    assert sample(text, "dataduct_pipeline_run_retries_total", **labels) == 2
    assert sample(text, "dataduct_pipeline_run_duration_seconds_count", **labels) == 1
    assert sample(text, "dataduct_pipeline_run_duration_seconds_sum", **labels) == \
        3 * 60 + 2 * 600
    assert sample(text, "dataduct_pipeline_last_success_timestamp_seconds", env="staging",
                  pipeline="users") > 0
    controller.run_once()
    assert sample(scrape(controller), "dataduct_pipeline_runs_total", status="FINISHED",
                  **labels) == 1  # counted once across passes
    controller.context.leases.release()  # stopped, as a rollout stops the old pod
    restarted = make_controller(remote, endpoint, tmp_path, name="b",
                                environments=("staging",))
    restarted.run_once()
    again = scrape(restarted)
    assert sample(again, "dataduct_pipeline_runs_total", status="FINISHED", **labels) == 0
    assert sample(again, "dataduct_pipeline_last_success_timestamp_seconds", env="staging",
                  pipeline="users") == sample(text, "dataduct_pipeline_last_success_"
                                                    "timestamp_seconds", env="staging",
                                              pipeline="users")


def test_runs_before_the_first_read_and_while_the_controller_was_down_are_counted(
        emulator_server, remote, tmp_path):
    endpoint = emulator_server.endpoint
    labels = {"env": "staging", "pipeline": "users", "activity": "upsert_users",
              "status": "FINISHED"}
    controller = make_controller(remote, endpoint, tmp_path, environments=("staging",))
    controller.run_once()  # creates users: it runs daily at 12:00, from today
    control("clock", {"advance_seconds": 2 * 86400})  # two runs finish before a first read
    controller.run_once()
    assert sample(scrape(controller), "dataduct_pipeline_runs_total", **labels) == 2
    controller.context.leases.release()  # the controller stops; a day passes; it starts again
    control("clock", {"advance_seconds": 86400})
    restarted = make_controller(remote, endpoint, tmp_path, name="b",
                                environments=("staging",))
    restarted.run_once()
    assert sample(scrape(restarted), "dataduct_pipeline_runs_total", **labels) == 1
    restarted.run_once()
    assert sample(scrape(restarted), "dataduct_pipeline_runs_total", **labels) == 1
    cursors = json.loads(s3_client(endpoint).get_object(
        Bucket=LEASE_BUCKET, Key="staging/.reconciler/runs/default.json")["Body"].read())
    assert cursors["kind"] == "dataduct-reconciler/run-cursor" and cursors["pipelines"]
    restarted.context.leases.release()


# -- drift -----------------------------------------------------------------------------------------


def _edit_in_console(endpoint: str, pipeline_id: str) -> None:
    client = datapipeline(endpoint)
    definition = client.get_pipeline_definition(pipelineId=pipeline_id)
    for obj in definition["pipelineObjects"]:
        if obj["id"] == "upsert_users":
            for field in obj["fields"]:
                if field["key"] == "maximumRetries":
                    field["stringValue"] = "1"
    client.put_pipeline_definition(pipelineId=pipeline_id,
                                   pipelineObjects=definition["pipelineObjects"],
                                   parameterObjects=definition.get("parameterObjects", []),
                                   parameterValues=definition.get("parameterValues", []))


def _retries(endpoint: str, pipeline_id: str) -> str:
    objects = datapipeline(endpoint).get_pipeline_definition(pipelineId=pipeline_id)[
        "pipelineObjects"]
    upsert = next(o for o in objects if o["id"] == "upsert_users")
    return next(f["stringValue"] for f in upsert["fields"] if f["key"] == "maximumRetries")


@pytest.mark.parametrize("self_heal", [True, False])
def test_a_console_edit_is_drift_reverted_or_reported(emulator_server, remote, tmp_path,
                                                      self_heal):
    endpoint = emulator_server.endpoint
    text = (remote.path / "reconciler.yaml").read_text()
    (remote.path / "reconciler.yaml").write_text(text.replace(
        "      allow_replace: true\n",
        f"      allow_replace: true\n      self_heal: {str(self_heal).lower()}\n"
        "      drift_checks_per_pass: 10\n"))
    remote.commit("drift policy")
    controller = make_controller(remote, endpoint, tmp_path, environments=("staging",))
    controller.run_once()
    pipeline_id = managed(endpoint)[("staging", "users")][0]["id"]
    original = _retries(endpoint, pipeline_id)
    _edit_in_console(endpoint, pipeline_id)
    controller.run_once()
    assert sample(scrape(controller), "dataduct_drift_detected_total", env="staging") == 1
    users = {p["pipeline"]: p for p in controller.status.to_json()["environments"][
        "staging"]["pipelines"]}["users"]
    if self_heal:
        assert _retries(endpoint, pipeline_id) == original
        assert users["sync_status"] == "Synced"
    else:
        assert _retries(endpoint, pipeline_id) == "1"
        assert users["sync_status"] == "OutOfSync" and "changed outside git" in users["reason"]
        controller.run_once()  # still drifted: not counted again
        assert sample(scrape(controller), "dataduct_drift_detected_total",
                      env="staging") == 1


# -- failures and backoff --------------------------------------------------------------------------


def test_a_failing_pipeline_backs_off_and_a_refused_one_waits_for_a_new_revision(
        emulator_server, remote, tmp_path):
    from reconciler.emulator.service import backends

    endpoint = emulator_server.endpoint
    # botocore tries twice (not 8 times, with its adaptive delays) before a failure counts
    controller = make_controller(remote, endpoint, tmp_path, environments=("staging",),
                                 connect=partial(connect_environment, config=Config(
                                     retries={"mode": "standard", "max_attempts": 2})))
    # users compiles to 15 objects: the service refuses it (permanent), discussion_votes 13
    backends["123456789012"]["us-east-1"].max_objects = 14
    try:
        controller.run_once()
        users = controller.status.pipeline("staging", "users")
        assert users.failures == 1 and "at most 14" in (users.last_error or "")
        creates = emulator.CONTROLS.calls.get("CreatePipeline", 0)
        emulator.CONTROLS.advance(3600)
        controller.run_once()  # same revision: not tried again
        assert emulator.CONTROLS.calls.get("CreatePipeline", 0) == creates
        assert "waiting for a new revision" in controller.status.hold(
            "staging", "users", controller.revision)
        backends["123456789012"]["us-east-1"].max_objects = 100
        remote.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 5"')
        controller.run_once()
        assert controller.status.pipeline("staging", "users").failures == 0
        assert ("staging", "users") in managed(endpoint)
    finally:
        backends["123456789012"]["us-east-1"].max_objects = 100
    # a temporary failure (the service answers 500 to every CreatePipeline) backs off
    remote.edit("pipelines/discussion_votes.yaml", "name: discussion_votes",
                "name: discussion_votes_v2")
    control("faults", {"operation": "CreatePipeline", "5xx": 1.0})
    successes = sample(scrape(controller), "dataduct_reconcile_total", env="staging",
                       result="success")
    failures = sample(scrape(controller), "dataduct_reconcile_total", env="staging",
                      result="failure")
    try:
        controller.run_once()
        votes = controller.status.pipeline("staging", "discussion_votes_v2")
        assert votes.failures == 1 and votes.next_retry is not None
        assert "backing off after 1 failure" in controller.status.hold(
            "staging", "discussion_votes_v2", controller.revision)
        emulator.CONTROLS.advance(30)
        controller.run_once()
        assert votes.failures == 1  # held: not tried
        for _ in range(3):
            emulator.CONTROLS.advance(700)
            controller.run_once()
        assert votes.failures == 4 and votes.sync_status == "Stalled"
        assert sample(scrape(controller), "dataduct_pipeline_info", env="staging",
                      pipeline="discussion_votes_v2", sync_status="Stalled") == 1
        # the passes between retries, which try nothing, fail too (DataductReconcileFailing)
        text = scrape(controller)
        assert sample(text, "dataduct_reconcile_total", env="staging",
                      result="failure") == failures + 5
        assert sample(text, "dataduct_reconcile_total", env="staging",
                      result="success") == successes
    finally:
        control("faults", {"operation": "CreatePipeline"})
    emulator.CONTROLS.advance(700)
    controller.run_once()
    assert controller.status.pipeline("staging", "discussion_votes_v2").sync_status == "Synced"
    assert sample(scrape(controller), "dataduct_reconcile_total", env="staging",
                  result="success") == successes + 1


def test_an_invalid_reconciler_yaml_makes_the_controller_unready_and_failing(
        emulator_server, remote, tmp_path):
    endpoint = emulator_server.endpoint
    controller = make_controller(remote, endpoint, tmp_path)
    server = ControllerServer(controller, "127.0.0.1", 0, WEBHOOK_SECRET)
    server.start()
    try:
        controller.run_once()
        assert http(server.address + "/readyz")[0] == 200
        before = managed(endpoint)
        remote.edit("reconciler.yaml", "environments:", "environmentz:")
        for _ in range(2):
            controller.run_once()
        code, body = http(server.address + "/readyz")
        assert code == 503 and b"reconciler.yaml:" in body, body
        status = json.loads(http(server.address + "/status")[1])
        assert "reconciler.yaml:" in status["error"]
        text = scrape(controller)
        for env in ("staging", "prod"):
            assert sample(text, "dataduct_reconcile_total", env=env, result="failure") == 2
        assert managed(endpoint) == before  # nothing deleted, nothing changed
        assert http(server.address + "/healthz")[0] == 200  # alive: not restarted for it
        remote.edit("reconciler.yaml", "environmentz:", "environments:")
        controller.run_once()
        assert http(server.address + "/readyz")[0] == 200
        assert json.loads(http(server.address + "/status")[1])["error"] is None
    finally:
        server.stop()


def test_a_pipeline_with_a_blocked_action_is_out_of_sync_with_the_reason(emulator_server,
                                                                          remote, tmp_path):
    endpoint = emulator_server.endpoint
    controller = make_controller(remote, endpoint, tmp_path)
    controller.run_once()
    first = git(remote.path, "rev-parse", "HEAD")
    remote.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 8"')
    controller.run_once()
    git(remote.path, "reset", "-q", "--hard", first)  # a force-push back: a rollback
    result = controller.run_once()
    assert result is not None
    for env in ("staging", "prod"):
        plan = next(e for e in result.wanted if e.environment == env).plan
        assert plan is not None and [a.pipeline for a in plan.blocked] == ["users"]
        users = controller.status.pipeline(env, "users")
        assert users.sync_status == "OutOfSync"
        assert users.reason.endswith("a rollback is applied only when approved")
        assert controller.status.pipeline(env, "discussion_votes").sync_status == "Synced"
    text = scrape(controller)
    assert sample(text, "dataduct_pipeline_info", env="prod", pipeline="users",
                  sync_status="OutOfSync") == 1


class Outage:
    """A TCP proxy in front of the endpoint that can go dark: while ``down``, it takes
    connections and never answers (an outage, not a refusal)."""

    def __init__(self, target: str):
        self.target = target.removeprefix("http://").rsplit(":", 1)
        self.down = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                self.held.append(client)  # read nothing, answer nothing
                continue
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection((self.target[0], int(self.target[1])))
        except OSError:
            client.close()
            return

        def pump(source: socket.socket, sink: socket.socket) -> None:
            try:
                while (data := source.recv(65536)) and not self.down.is_set():
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for side in (source, sink):
                    with contextlib.suppress(OSError):
                        side.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        pump(client, upstream)

    def close(self) -> None:
        self.listener.close()
        for sock in self.held:
            sock.close()


def test_an_endpoint_down_for_30_s_keeps_the_controller_alive_but_unready(
        emulator_server, remote, tmp_path, monkeypatch):
    from reconciler.controller import loop

    # a pass stuck in botocore's retries (up to 20 s between attempts) is alive: with a floor
    # of 25 s, liveness that looked only at passes would fail during this outage
    monkeypatch.setattr(loop, "LIVENESS_FLOOR", 25.0)
    endpoint = emulator_server.endpoint
    outage = Outage(endpoint)
    # AWS's retries as configured, with a 2 s read timeout instead of 60 s
    controller = make_controller(remote, outage.endpoint, tmp_path, interval=1.0,
                                 connect=partial(connect_environment, config=Config(
                                     retries={"mode": "adaptive", "max_attempts": 8},
                                     connect_timeout=1, read_timeout=2)))
    server = ControllerServer(controller, "127.0.0.1", 0, WEBHOOK_SECRET)
    server.start()
    worker = threading.Thread(target=controller.loop)
    worker.start()
    try:
        assert wait_until(lambda: len(managed(endpoint)) == 4, 30)
        assert wait_until(lambda: http(server.address + "/readyz")[0] == 200, 10)
        outage.down.set()
        commit = remote.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 9"')
        health, ready = [], []
        started = time.monotonic()
        while time.monotonic() - started < 30:
            health.append(http(server.address + "/healthz")[0])
            ready.append(http(server.address + "/readyz"))
            time.sleep(0.5)
        outage.down.clear()
        assert wait_until(lambda: revision_of(endpoint, "prod", "users") == commit, 120)
        assert all(len(v) == 1 for v in managed(endpoint).values())  # no duplicate
    finally:
        controller.stop()
        worker.join(120)
        server.stop()
        outage.close()
    assert set(health) == {200}, health
    down = [body for code, body in ready if code == 503]
    # unready from the first attempt that timed out (2 s) to the end of the outage
    assert all(code == 503 for code, _ in ready[10:]), [code for code, _ in ready]
    assert b"endpoint not answering" in down[-1], down[-1]


# -- one writer ------------------------------------------------------------------------------------


def test_two_controllers_at_once_one_applies_and_the_other_takes_over_after_expiry(
        emulator_server, remote, tmp_path):
    endpoint = emulator_server.endpoint
    first = make_controller(remote, endpoint, tmp_path, "a", lease_seconds=20)
    second = make_controller(remote, endpoint, tmp_path, "b", lease_seconds=20)
    threads = [threading.Thread(target=c.run_once) for c in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(len(v) == 1 for v in managed(endpoint).values()) and len(managed(endpoint)) == 4
    waiting = [c for c in (first, second) if any(
        e.waiting for e in c.status.environments.values())]
    applying = [c for c in (first, second) if c not in waiting]
    assert len(waiting) == 1 and len(applying) == 1
    assert "holds the lease" in next(e.waiting for e in waiting[0].status.environments.values()
                                     if e.waiting)
    leader, standby = applying[0], waiting[0]
    assert sample(scrape(standby), "dataduct_reconcile_total", env="prod",
                  result="waiting") == 1
    # the leader is killed (its leases neither renewed nor released); a new commit waits
    # for its lease to expire
    leader.context.leases.abandon()
    commit = remote.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 2"')
    standby.run_once()
    assert revision_of(endpoint, "prod", "users") != commit
    emulator.CONTROLS.advance(25)
    standby.run_once()
    assert revision_of(endpoint, "prod", "users") == commit


LEASE_BUCKET = "coursera-reinvent"


def s3_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def lease_key(env: str) -> str:
    return f"{env}/.reconciler/lease/default.json"


def lease_body(endpoint: str, env: str) -> dict:
    got = s3_client(endpoint).get_object(Bucket=LEASE_BUCKET, Key=lease_key(env))
    return json.loads(got["Body"].read())


def test_a_deleted_lease_object_is_taken_again_and_the_next_commit_applied(
        emulator_server, remote, tmp_path):
    endpoint = emulator_server.endpoint
    controller = make_controller(remote, endpoint, tmp_path)
    controller.run_once()
    holder = lease_body(endpoint, "prod")["holder"]
    for env in ("staging", "prod"):  # by hand, or an embedded service that restarted empty
        s3_client(endpoint).delete_object(Bucket=LEASE_BUCKET, Key=lease_key(env))
    commit = remote.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 4"')
    result = controller.run_once()
    assert result is not None and not result.failed, result.problems
    assert revision_of(endpoint, "prod", "users") == commit
    assert revision_of(endpoint, "staging", "users") == commit
    for env in ("staging", "prod"):
        body = lease_body(endpoint, env)
        assert body["holder"] == holder and body["generation"] == 2, body
    controller.context.leases.release()


def test_the_lease_is_renewed_while_a_pass_runs_and_a_lost_one_stops_every_write(
        emulator_server, remote, tmp_path):
    from reconciler.live.lease import LeaseLost

    endpoint = emulator_server.endpoint
    controller = make_controller(remote, endpoint, tmp_path, lease_seconds=1.5)
    controller.run_once()
    lease = controller.context.leases.held["prod"]
    written = lease_body(endpoint, "prod")["written"]
    emulator.CONTROLS.advance(1)  # the renewal writes "written" from the clock it is given
    time.sleep(2.5)  # longer than the lease: only the renewal thread keeps it
    lease.check()
    assert lease_body(endpoint, "prod")["written"] != written
    # another writer overwrites it (a holder that took it over after a partition)
    s3_client(endpoint).put_object(Bucket=LEASE_BUCKET, Key=lease_key("prod"), Body=json.dumps(
        {"holder": "other:1:x", "expires": "2099-01-01T00:00:00+00:00",
         "generation": 9}).encode())
    assert wait_until(lambda: lease.lost is not None, 5)
    with pytest.raises(LeaseLost):
        lease.check()
    # whatever code path tries it, a Data Pipeline write of this controller is refused
    client = controller.context.clients["prod"].datapipeline
    with pytest.raises(LeaseLost):
        client.create_pipeline(name="late", uniqueId="late-write")
    assert not any(p["name"] == "late" for p in datapipeline(endpoint).list_pipelines()[
        "pipelineIdList"])
    remote.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 5"')
    before = managed(endpoint)
    controller.run_once()
    assert controller.status.environments["prod"].waiting
    assert "other:1:x" in controller.status.environments["prod"].waiting
    after = managed(endpoint)
    assert after[("prod", "users")] == before[("prod", "users")]
    controller.context.leases.release()


def test_a_standby_reads_no_pipeline_and_tries_again_when_the_lease_expires(
        emulator_server, remote, tmp_path):
    endpoint = emulator_server.endpoint
    leader = make_controller(remote, endpoint, tmp_path, "a", lease_seconds=30)
    leader.run_once()
    standby = make_controller(remote, endpoint, tmp_path, "b", lease_seconds=30,
                              interval=300.0)
    standby.run_once()
    assert all(e.waiting for e in standby.status.environments.values())
    text = scrape(standby)
    for operation in ("ListPipelines", "DescribePipelines", "GetPipelineDefinition"):
        assert sample(text, "dataduct_aws_requests_total", operation=operation) == 0, operation
    assert 0.5 <= standby.next_wait() <= 31.0
    leader.context.leases.release()


def test_an_apply_from_a_laptop_waits_for_the_controllers_lease(emulator_server, remote,
                                                                 tmp_path):
    from .conftest import run_cli

    endpoint = emulator_server.endpoint
    # the laptop's clock is the real one: so is the controller's here
    controller = make_controller(remote, endpoint, tmp_path, lease_seconds=600,
                                 wall=lambda: datetime.now(UTC))
    controller.run_once()
    remote.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 3"')
    applied = run_cli("apply", str(remote.path), "--yes", "--env", "prod",
                      "--lease-wait", "1",
                      env={**SECRETS, "AWS_ENDPOINT_URL": endpoint,
                           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    assert applied.code == 1
    assert "not applied" in applied.stderr and "holds the lease" in applied.stderr


# -- metrics, logs, the command --------------------------------------------------------------------


def scrape_after_runs(endpoint: str, remote: Remote, tmp_path: Path) -> bytes:
    """/metrics of a controller that applied the example repository and saw its pipelines
    run for 8 hours (one attempt failed and was retried), over real HTTP."""
    control("outcomes", {"object_id": "upsert_users", "fail_times": 1})
    controller = make_controller(remote, endpoint, tmp_path)
    server = ControllerServer(controller, "127.0.0.1", 0, None)
    server.start()
    try:
        controller.run_once()
        controller.run_once()
        control("clock", {"advance_seconds": 8 * 3600})
        controller.run_once()
        code, body = http(f"{server.address}/metrics")
    finally:
        server.stop()
    assert code == 200
    return body


def test_every_metric_of_the_api_is_exported_and_promtool_accepts_them(emulator_server,
                                                                        remote, tmp_path):
    promtool = require_tool("promtool")
    body = scrape_after_runs(emulator_server.endpoint, remote, tmp_path)
    text = body.decode()
    for name in ("dataduct_reconcile_duration_seconds", "dataduct_reconcile_total",
                 "dataduct_pipeline_info", "dataduct_sync_actions_total",
                 "dataduct_aws_requests_total", "dataduct_aws_throttles_total",
                 "dataduct_source_revision_info",
                 "dataduct_source_last_success_timestamp_seconds",
                 "dataduct_source_errors_total", "dataduct_drift_detected_total",
                 "dataduct_pipeline_run_duration_seconds", "dataduct_pipeline_runs_total",
                 "dataduct_pipeline_run_retries_total",
                 "dataduct_pipeline_last_success_timestamp_seconds",
                 "dataduct_pipeline_late_seconds", "dataduct_operations_total",
                 "dataduct_pass_progress_ratio"):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert sample(text, "dataduct_aws_requests_total", env="prod",
                  operation="CreatePipeline", code="OK") == 2
    checked = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_no_secret_reaches_the_logs(emulator_server, remote, tmp_path):
    stream = io.StringIO()
    redactor = Redactor()
    configure_logging(redactor, level=logging.DEBUG, fmt="json", stream=stream)
    try:
        endpoint = emulator_server.endpoint
        controller = make_controller(remote, endpoint, tmp_path)
        controller.redactor = redactor
        controller.run_once()
        # an error that would carry a secret in its message is redacted
        controller.log.error("boom", detail=f"password={SECRETS['REDSHIFT_PASSWORD']}")
        remote.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 4"')
        controller.run_once()
    finally:
        configure_logging(Redactor(), level=logging.WARNING, fmt="json", stream=sys.stderr)
    logs = stream.getvalue()
    assert '"event": "applied"' in logs and "[redacted]" in logs
    for value in SECRETS.values():
        assert value not in logs


def test_the_pacer_keeps_to_the_documented_rate():
    now = [0.0]
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        now[0] += seconds

    pacer = Pacer({"ListPipelines": (1, 10)}, clock=lambda: now[0], sleep=sleep)
    for _ in range(30):
        pacer.wait("account|us-east-1", "ListPipelines")
    pacer.wait("account|us-east-1", "AddTags")  # no quota: never waits
    # a burst of 9 (the margin under 10), then one call per 1/0.95 s
    assert len(waited) == 21
    assert now[0] == pytest.approx(21 / 0.95)
    pacer.wait("another-account|us-east-1", "ListPipelines")
    assert len(waited) == 21  # another account has its own bucket


def test_the_run_command_stops_cleanly_on_sigterm_and_releases_its_lease(emulator_server,
                                                                          remote, tmp_path):
    endpoint = emulator_server.endpoint
    environment = {**os.environ, **SECRETS, "AWS_ENDPOINT_URL": endpoint,
                   "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "RECONCILER_INTERVAL": "2", "RECONCILER_LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(remote.path),
         "--cache-dir", str(tmp_path / "cache"), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        assert wait_until(lambda: len(managed(endpoint)) == 4, 60)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, err = process.communicate(timeout=30)
        assert time.monotonic() - started < 30
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert '"event": "stopped"' in out
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    lease = json.loads(s3.get_object(Bucket="coursera-reinvent",
                                     Key="prod/.reconciler/lease/default.json")["Body"].read())
    assert lease["expires"] < lease["written"]  # released: expired on the way out


def _start_run(remote: Remote, endpoint: str, cache: Path, log: Path,
               lease_seconds: float) -> subprocess.Popen:
    environment = {**os.environ, **SECRETS, "AWS_ENDPOINT_URL": endpoint,
                   "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "RECONCILER_INTERVAL": "2", "RECONCILER_LOG_FORMAT": "json",
                   "RECONCILER_LEASE_SECONDS": str(lease_seconds)}
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", "--repo", str(remote.path),
             "--cache-dir", str(cache), "--listen", "127.0.0.1:0"],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=environment)


def _writes(log: Path, holder: str) -> list[tuple[float, float, str]]:
    """(start, end, holder) of every action a controller's log says it applied."""
    found = []
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("event") == "applied":
            end = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
            found.append((end - float(event["seconds"]), end, holder))
    return found


def test_after_kill_9_of_the_holder_the_standby_applies_within_one_lease_period(
        emulator_server, remote, tmp_path):
    endpoint, lease = emulator_server.endpoint, 6.0
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}
    first = _start_run(remote, endpoint, tmp_path / "cache-a", logs["a"], lease)
    processes = [first]
    try:
        assert wait_until(lambda: len(managed(endpoint)) == 4, 60), logs["a"].read_text()
        processes.append(_start_run(remote, endpoint, tmp_path / "cache-b", logs["b"], lease))
        assert wait_until(lambda: '"standby"' in logs["b"].read_text(), 30)
        assert str(first.pid) in lease_body(endpoint, "prod")["holder"]
        first.kill()  # kill -9: the lease is neither renewed nor released
        first.wait()
        killed = time.monotonic()
        commit = remote.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 6"')
        assert wait_until(lambda: revision_of(endpoint, "prod", "users") == commit, 30)
        took_over = time.monotonic() - killed
        # the old holder comes back: it is the standby now, and never writes with the other
        processes.append(_start_run(remote, endpoint, tmp_path / "cache-a", logs["a"], lease))
        time.sleep(3)
        commit = remote.edit("pipelines/users.yaml", "id > 6", "id > 7")
        assert wait_until(lambda: revision_of(endpoint, "staging", "users") == commit, 30)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
    print(f"took over {took_over:.1f} s after kill -9 (lease {lease:.0f} s, interval 2 s)")
    assert took_over <= lease + 2 + 2, took_over  # one lease period, a pass's wait, a pass
    writes = sorted(_writes(logs["a"], "a") + _writes(logs["b"], "b"))
    assert {holder for *_, holder in writes} == {"a", "b"}
    for (_, end, holder), (start, _, other) in itertools.pairwise(writes):
        assert holder == other or end <= start, writes
    assert all(len(v) == 1 for v in managed(endpoint).values())


def test_the_quick_start_applies_commits_in_a_row_on_the_embedded_service(remote, tmp_path):
    """`make run`: the embedded service in the controller's process, its state kept in the
    cache directory (revision trees come and go)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.update({**SECRETS, "RECONCILER_INTERVAL": "1", "RECONCILER_LOG_FORMAT": "json"})
    environment.pop("RECONCILER_EMBEDDED_STATE", None)
    log = tmp_path / "run.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", "--repo", str(remote.path),
             "--cache-dir", str(tmp_path / "cache"), "--listen", "127.0.0.1:0"],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=environment)

    def users_revision(env: str) -> str | None:
        found = re.search(r"the page: (http://[0-9.:]+)/ ", log.read_text())
        if not found:
            return None
        url = found[1]
        code, body = http(url + "/status")
        if code != 200:
            return None
        pipelines = json.loads(body)["environments"].get(env, {}).get("pipelines", [])
        return next((p["last_applied_revision"] for p in pipelines
                     if p["pipeline"] == "users"), None)

    try:
        first = git(remote.path, "rev-parse", "HEAD")
        assert wait_until(lambda: users_revision("prod") == first, 60), log.read_text()
        for number in range(5):
            commit = remote.edit("pipelines/users.yaml", 'FROM users',
                                 f'FROM users /* {number} */')
            assert wait_until(lambda c=commit: users_revision("prod") == c
                              and users_revision("staging") == c, 30), \
                (number, log.read_text()[-3000:])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert (tmp_path / "cache" / "embedded-state.json").is_file()
    assert not list((tmp_path / "cache").glob("trees/*/.reconciler"))
    assert "Traceback" not in log.read_text()


def test_a_git_sync_checkout_is_read_one_revision_at_a_time(remote, tmp_path):
    from reconciler.controller import CheckoutSource, SourceError

    link = tmp_path / "git" / "repo"
    link.parent.mkdir()
    source = CheckoutSource(link)
    with pytest.raises(SourceError, match="no checkout there yet"):
        source.read()

    def publish(name: str) -> str:
        """What git-sync does: a worktree per revision, then the link swapped atomically."""
        worktree = tmp_path / "git" / name
        subprocess.run(["git", "clone", "-q", str(remote.path), str(worktree)], check=True)
        temporary = link.with_name("repo.tmp")
        temporary.symlink_to(worktree)
        os.replace(temporary, link)
        return git(worktree, "rev-parse", "HEAD")

    first = publish("rev-1")
    read = source.read()
    assert read.git.revision == first and "pipelines/users.yaml" in read.snapshot.files
    second = remote.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 9"')
    publish("rev-2")
    again = source.read()
    assert again.git.revision == second != first
    assert b"WHERE id > 9" in again.snapshot.files["pipelines/users.yaml"]
    assert b"WHERE id > 9" not in read.snapshot.files["pipelines/users.yaml"]


def test_exporting_a_revision_unpacks_only_files_inside_the_tree(tmp_path, monkeypatch):
    """git archive output is the repository's (untrusted) content: with tarfile's data filter,
    and without it (Python before 3.11.4, such as Debian 12's 3.11.2), nothing lands outside
    the tree and no link is unpacked."""
    import contextlib
    import io
    import tarfile

    from reconciler.source.follow import _extract

    def archive() -> tarfile.TarFile:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, kind in (("pipelines", tarfile.DIRTYPE), ("pipelines/a.yaml", None),
                               ("../escaped.yaml", None), ("/etc/absolute.yaml", None),
                               ("link", tarfile.SYMTYPE)):
                info = tarfile.TarInfo(name)
                if kind is not None:
                    info.type = kind
                if kind == tarfile.SYMTYPE:
                    info.linkname = "/etc"
                data = b"name: a\n" if kind is None else b""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        buffer.seek(0)
        return tarfile.open(fileobj=buffer, mode="r:")

    for without_filter in (False, True):
        target = tmp_path / f"tree-{without_filter}"
        target.mkdir()
        if without_filter:
            monkeypatch.delattr(tarfile, "data_filter", raising=False)
        # the data filter may refuse the archive outright: also safe
        with contextlib.suppress(tarfile.TarError):
            _extract(archive(), target)
        assert not (tmp_path / "escaped.yaml").exists()
        assert not (target / "link").is_symlink()
        if without_filter:
            assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
                "pipelines", "pipelines/a.yaml"]


def test_a_webhook_pass_reads_what_the_commit_changed_and_the_interval_reads_it_all(
        emulator_server, remote, tmp_path):
    endpoint = emulator_server.endpoint
    controller = make_controller(remote, endpoint, tmp_path)
    controller.run_once()  # a full read of both environments, then the creates
    for env in ("staging", "prod"):  # each apply's progress: 2 creates of 2
        assert sample(scrape(controller), "dataduct_pass_progress_ratio", env=env) == 1
        progress = controller.status.to_json()["environments"][env]["progress"]
        assert (progress["done"], progress["total"], progress["failed"]) == (2, 2, 0)
        assert progress["estimated_end"] is not None

    def calls_during(targeted: bool) -> dict[str, int]:
        before = dict(emulator.CONTROLS.calls)
        controller.run_once(targeted=targeted)
        return {op: n - before.get(op, 0) for op, n in emulator.CONTROLS.calls.items()
                if n != before.get(op, 0)}

    calls_during(True)  # reads again what the first pass created, then nothing is written
    assert calls_during(True).get("DescribePipelines", 0) == 0  # nothing changed, nothing read
    revision = remote.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 8"')
    calls = calls_during(True)
    assert calls.get("ListPipelines", 0) == 0
    assert calls["DescribePipelines"] == 2  # users, in each environment
    # users' definition in each environment, read by the plan and again by the update: no
    # drift check of the pipelines in sync (those are the full reads')
    assert calls["GetPipelineDefinition"] == 4 and calls["PutPipelineDefinition"] == 2
    assert revision_of(endpoint, "staging", "users") == revision
    assert revision_of(endpoint, "prod", "users") == revision
    # what it wrote is read again once; then a webhook pass without a change reads nothing
    assert calls_during(True).get("PutPipelineDefinition", 0) == 0
    assert calls_during(True).get("DescribePipelines", 0) == 0

    # a pipeline deleted by hand: the interval's full read finds it and creates it again
    (votes,) = managed(endpoint)[("staging", "discussion_votes")]
    datapipeline(endpoint).delete_pipeline(pipelineId=votes["id"])
    assert calls_during(True).get("CreatePipeline", 0) == 0
    controller.trigger.set()  # a webhook came during the interval's pass: its read gives way
    assert "ListPipelines" not in calls_during(False)
    controller.trigger.clear()
    full = calls_during(False)
    # one listing of the account for both environments (they share endpoint and region)
    assert full["ListPipelines"] == 1 and full["CreatePipeline"] == 1
    assert ("staging", "discussion_votes") in managed(endpoint)
    controller.context.leases.release()


def test_a_rerun_made_without_the_controller_shows_in_its_history_and_is_counted_once(
        emulator_server, remote, tmp_path):
    """`reconciler rerun` holding the lease itself (no controller running) writes the
    operations journal; a controller shows what it finds there, and counts what is new."""
    endpoint = emulator_server.endpoint
    laptop = {**SECRETS, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
              "AWS_SECRET_ACCESS_KEY": "testing"}
    first = make_controller(remote, endpoint, tmp_path, environments=("staging",))
    first.run_once()
    control("outcomes", {"object_id": "upsert_users", "always_fail": True,
                         "error_message": "relation does not exist"})
    control("clock", {"advance_seconds": 2 * 86400})
    first.run_once()
    first.context.leases.release()  # stopped
    control("outcomes", {"object_id": "upsert_users", "always_fail": False})
    done = run_cli("rerun", "users", str(remote.path), "--env", "staging", "--failed", "--yes",
                   env=laptop)
    assert done.code == 0, done.stdout + done.stderr

    second = make_controller(remote, endpoint, tmp_path, name="b", environments=("staging",))
    second.run_once()
    [shown] = [h for h in second.status.pipeline("staging", "users").history
               if h["action"] == "rerun"]
    assert shown["outcome"].startswith("by ") and "run(s) set to RERUN" in shown["message"]
    # there before this controller started: shown, not counted again
    assert sample(scrape(second), "dataduct_operations_total", operation="rerun") == 0
    assert second.status.to_json()["operations"][0]["operation"] == "rerun"

    second.context.leases.release()
    control("clock", {"advance_seconds": 3600})
    day = emulator.CONTROLS.now().strftime("%Y-%m-%d")
    again = run_cli("rerun", "users", str(remote.path), "--env", "staging", "--from", "2000-01-01",
                    "--to", day, "--activity", "upsert_users", "--yes", env=laptop)
    assert again.code == 0, again.stdout + again.stderr
    second.run_once()
    second.run_once()  # an unchanged journal: nothing counted twice
    assert sample(scrape(second), "dataduct_operations_total", operation="rerun",
                  env="staging") == 1
    assert len([h for h in second.status.pipeline("staging", "users").history
                if h["action"] == "rerun"]) == 2
