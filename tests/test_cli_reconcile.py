"""plan, apply and sync as their users run them: real subprocesses against a running
``reconciler emulator`` (AWS_ENDPOINT_URL), crashes included."""

import json
import os
import signal
import subprocess
import sys

import boto3
import pytest

from .conftest import run_cli

SECRETS = {"MAESTRO_PASSWORD": "cli-maestro-secret-7", "REDSHIFT_PASSWORD": "cli-redshift-secret-8",
           "POSTGRES_PASSWORD": "cli-postgres-secret-9"}


def cli(endpoint, *args, **env):
    return run_cli(*args, env={"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                               "AWS_SECRET_ACCESS_KEY": "testing",
                               "AWS_DEFAULT_REGION": "us-east-1", **SECRETS, **env})


def pipelines(endpoint) -> dict[tuple[str, str], list[str]]:
    client = boto3.client("datapipeline", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    ids = [p["id"] for p in client.list_pipelines()["pipelineIdList"]]
    found: dict[tuple[str, str], list[str]] = {}
    for start in range(0, len(ids), 25):
        for desc in client.describe_pipelines(pipelineIds=ids[start:start + 25])[
                "pipelineDescriptionList"]:
            tags = {t["key"]: t["value"] for t in desc["tags"]}
            key = (tags["dataduct-reconciler/environment"], tags["dataduct-reconciler/pipeline"])
            found.setdefault(key, []).append(desc["pipelineId"])
    return found


def test_plan_exit_codes_and_formats(endpoint, repo):
    text = cli(endpoint, "plan", str(repo))
    assert text.code == 2, text.stderr
    assert "+   create   users: not in AWS yet" in text.stdout
    as_json = json.loads(cli(endpoint, "plan", str(repo), "--format", "json").stdout)
    assert as_json["has_changes"] is True
    assert {a["action"] for e in as_json["environments"] for a in e["actions"]} == {"create"}
    markdown = cli(endpoint, "plan", str(repo), "--format", "markdown").stdout
    assert markdown.startswith("### Dataduct plan for")
    assert "| staging | 2 | 0 | 0 | 0 | 0 | 0 | 0 | 0 |" in markdown
    assert "<summary><b>prod</b> · <code>users</code> · create: not in AWS yet</summary>" \
        in markdown
    applied = cli(endpoint, "apply", str(repo), "--yes")
    assert applied.code == 0, applied.stdout + applied.stderr
    assert cli(endpoint, "plan", str(repo)).code == 0
    (repo / "pipelines" / "users.yaml").write_text("name: users\nsteps: oops\n")
    broken = cli(endpoint, "plan", str(repo))
    assert broken.code == 1 and "users.yaml:2:1: error:" in broken.stderr
    assert "?   unknown  users" in broken.stdout


def test_apply_asks_and_does_nothing_when_told_no(endpoint, repo):
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", str(repo)],
        input="n\n", capture_output=True, text=True, timeout=120,
        env={**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
             "AWS_SECRET_ACCESS_KEY": "testing", **SECRETS})
    assert "Apply these changes to staging?" in proc.stdout
    assert pipelines(endpoint) == {}


def test_secrets_never_appear_in_any_output(endpoint, repo):
    outputs = []
    for args in (("plan", str(repo)), ("plan", str(repo), "--format", "json"),
                 ("plan", str(repo), "--format", "markdown"), ("apply", str(repo), "--yes"),
                 ("sync", "--once", str(repo)), ("validate", str(repo)),
                 ("render", str(repo / "pipelines/users.yaml"), "--env", "prod")):
        result = cli(endpoint, *args)
        outputs.append(result.stdout + result.stderr)
    (repo / "pipelines" / "users.yaml").write_text(
        (repo / "pipelines" / "users.yaml").read_text().replace("FROM users", "FROM users_v2"))
    for args in (("plan", str(repo)), ("sync", "--once", str(repo))):
        result = cli(endpoint, *args, REDSHIFT_PASSWORD="cli-redshift-secret-rotated")
        outputs.append(result.stdout + result.stderr)
    joined = "\n".join(outputs)
    assert "create" in joined and "update" in joined  # the scenario did run
    for secret in [*SECRETS.values(), "cli-redshift-secret-rotated"]:
        assert secret not in joined


@pytest.mark.parametrize("crash_after", ["CreatePipeline", "PutPipelineDefinition",
                                         "ActivatePipeline"])
def test_a_crash_at_any_point_converges_without_duplicates(endpoint, repo, crash_after):
    crashed = cli(endpoint, "sync", "--once", str(repo), RECONCILER_TEST_KILL_AFTER=crash_after,
                  RECONCILER_LEASE_SECONDS="2")
    assert crashed.code == -signal.SIGKILL
    assert all(len(ids) == 1 for ids in pipelines(endpoint).values())
    repaired = cli(endpoint, "sync", "--once", str(repo))
    assert repaired.code == 0, repaired.stdout + repaired.stderr
    found = pipelines(endpoint)
    assert sorted(found) == [("prod", "discussion_votes"), ("prod", "users"),
                             ("staging", "discussion_votes"), ("staging", "users")]
    assert all(len(ids) == 1 for ids in found.values())
    steady = cli(endpoint, "plan", str(repo))
    assert steady.code == 0, steady.stdout
    assert "staging (revision" in steady.stdout and "2 in sync" in steady.stdout


def test_apply_shows_a_progress_bar_and_no_json_on_a_terminal_and_json_in_ci(endpoint, repo):
    import pty

    environ = {key: value for key, value in os.environ.items() if key != "CI"}
    environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                    **SECRETS})
    leader, follower = pty.openpty()  # stderr is a terminal, as when a person runs it
    proc = subprocess.run([sys.executable, "-m", "reconciler", "apply", "--yes", "--env",
                           "staging", str(repo)], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=follower, env=environ, timeout=120)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal is closed and drained
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert proc.returncode == 0, shown.decode(errors="replace")
    assert b"staging: applying" in shown and b"2/2" in shown
    assert b'"event": "applied"' not in shown  # the bar stands for each success's log line
    # on a terminal the logs are for a person, and only warnings: no JSON line among the bar
    assert b'{"' not in shown and b'"level"' not in shown, shown.decode(errors="replace")
    quiet = cli(endpoint, "apply", "--yes", "--env", "prod", str(repo), CI="true")
    assert quiet.code == 0 and "applying" not in quiet.stderr
    assert '"event": "planned"' in quiet.stderr  # JSON lines where no person reads them


def _control(endpoint, action, body):
    import urllib.request

    request = urllib.request.Request(f"{endpoint}/_reconciler/{action}",
                                     data=json.dumps(body).encode(), method="POST")
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


def test_rerun_runs_failed_runs_again_and_backfills_a_window(endpoint, repo):
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    _control(endpoint, "clock", {"set": today.strftime("%Y-%m-%dT%H:%M:%S")})
    assert cli(endpoint, "apply", "--yes", "--env", "staging", str(repo)).code == 0
    client = boto3.client("datapipeline", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    [pid] = pipelines(endpoint)[("staging", "users")]
    components = client.describe_objects(pipelineId=pid, objectIds=[
        i for i in client.query_objects(pipelineId=pid, sphere="COMPONENT")["ids"]])
    activities = [o["id"] for o in components["pipelineObjects"]
                  if any(f["key"] == "type" and f.get("stringValue", "").endswith("Activity")
                         for f in o["fields"])]
    first = activities[0]
    _control(endpoint, "outcomes", {"object_id": first, "always_fail": True,
                                    "error_message": "load failed"})
    _control(endpoint, "clock", {"advance_seconds": 3 * 86400})

    def statuses() -> dict[str, str]:
        ids = client.query_objects(pipelineId=pid, sphere="INSTANCE")["ids"]
        found = client.describe_objects(pipelineId=pid, objectIds=ids)["pipelineObjects"]
        return {o["id"]: next(f["stringValue"] for f in o["fields"] if f["key"] == "@status")
                for o in found}

    before = statuses()
    failed = sorted(i for i, s in before.items() if s == "FAILED")
    assert failed and any(s == "CASCADE_FAILED" for s in before.values()), before

    declined = run_cli("rerun", "users", str(repo), "--env", "staging", "--failed",
                       env={"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing", **SECRETS})
    # asked, with no one to answer (no terminal, no --yes): aborted, nothing changed
    assert declined.code == 1 and "Aborted!" in declined.stderr
    assert f"{len(failed)} run(s) to rerun" in declined.stdout
    assert statuses() == before

    _control(endpoint, "outcomes", {"object_id": first, "always_fail": False})
    done = cli(endpoint, "rerun", "users", str(repo), "--env", "staging", "--failed", "--yes")
    assert done.code == 0, done.stdout + done.stderr
    assert f"{len(failed)} run(s) of users set to RERUN" in done.stdout
    _control(endpoint, "clock", {"advance_seconds": 3600})
    after = statuses()
    assert all(after[i] == "FINISHED" for i in failed), after
    assert "CASCADE_FAILED" not in after.values() and "FAILED" not in after.values()

    # a backfill of one day: every run scheduled in it again, the others left alone
    day = (today + timedelta(days=1)).strftime("%Y-%m-%d")
    window = cli(endpoint, "rerun", "users", str(repo), "--env", "staging", "--from", day,
                 "--to", (today + timedelta(days=2)).strftime("%Y-%m-%d"), "--yes")
    assert window.code == 0, window.stdout + window.stderr
    rerun_ids = [line.split()[0] for line in window.stdout.splitlines()
                 if line.startswith("  ") and "FINISHED" in line]
    assert rerun_ids and all(a in activities for a in rerun_ids)
    wrong = cli(endpoint, "rerun", "nope", str(repo), "--env", "staging", "--failed")
    assert wrong.code == 1 and "no pipeline 'nope' of this installation runs in staging" in \
        wrong.stderr
    usage = cli(endpoint, "rerun", "users", str(repo), "--env", "staging")
    assert usage.code == 2 and "give --failed, or a window with --from" in usage.stderr
