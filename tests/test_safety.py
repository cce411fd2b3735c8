"""Safe to leave running: the command line against a running ``reconciler emulator``, the
manifests in a real git repository. Replace never loses a pipeline (create before delete,
crashes at every call), passes racing on two revisions keep one pipeline, git never applies
the past or what is not committed, exit codes never hide a problem, no file outside the
repository is ever uploaded."""

import signal
import subprocess
import textwrap
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from .test_cli_reconcile import SECRETS, cli, pipelines


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def gitrepo(repo):
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ci@example.com")
    git(repo, "config", "user.name", "CI")
    commit(repo, "initial")
    return repo


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def edit(repo: Path, path: str, old: str, new: str) -> str:
    target = repo / path
    assert old in target.read_text(), (path, old)
    target.write_text(target.read_text().replace(old, new))
    return commit(repo, f"edit {path}")


UPSERT = textwrap.dedent("""\

    - step_type: upsert
      name: upsert_users
      source: tables/staging.maestro_users.sql
      destination: tables/prod.users.sql
    """)


def dp(endpoint):
    return boto3.client("datapipeline", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def describe(endpoint, pipeline_id):
    (desc,) = dp(endpoint).describe_pipelines(pipelineIds=[pipeline_id])[
        "pipelineDescriptionList"]
    fields = {f["key"]: f.get("stringValue") for f in desc["fields"]}
    return {**fields, "tags": {t["key"]: t["value"] for t in desc["tags"]}}


# -- replace ----------------------------------------------------------------------------------

# PutObject: the archive of the old pipeline's run history (not a lease renewal)
REPLACE_CALLS = ["CreatePipeline", "PutPipelineDefinition", "PutObject~/archive/",
                 "DeactivatePipeline", "DeletePipeline", "ActivatePipeline", "AddTags"]


@pytest.mark.parametrize("crash_after", REPLACE_CALLS)
def test_a_crash_at_any_call_of_a_replace_never_loses_the_pipeline(endpoint, gitrepo,
                                                                  crash_after):
    assert cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo)).code == 0
    (old,) = pipelines(endpoint)[("staging", "users")]
    edit(gitrepo, "pipelines/users.yaml", UPSERT, "")  # removing an object: a replace
    crashed = cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo),
                  RECONCILER_TEST_KILL_AFTER=crash_after,
                  RECONCILER_LEASE_SECONDS="2")
    assert crashed.code == -signal.SIGKILL, crashed.stdout + crashed.stderr
    found = pipelines(endpoint)
    survivors = found.get(("staging", "users"), [])
    assert survivors, ("a crash in a replace must never leave a manifest without its pipeline",
                       found, crashed.stderr[-3000:])
    if crash_after in ("CreatePipeline", "PutPipelineDefinition", "PutObject~/archive/",
                       "DeactivatePipeline"):
        assert old in survivors and describe(endpoint, old)["@pipelineState"] != "DELETED"
    repaired = cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo))
    assert repaired.code == 0, repaired.stdout + repaired.stderr
    (kept,) = pipelines(endpoint)[("staging", "users")]
    assert describe(endpoint, kept)["@pipelineState"] == "SCHEDULED"
    steady = cli(endpoint, "plan", "--env", "staging", str(gitrepo))
    assert steady.code == 0, steady.stdout + steady.stderr


def test_a_replace_creates_before_it_deletes_and_starts_after_now(endpoint, gitrepo):
    assert cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo)).code == 0
    (old,) = pipelines(endpoint)[("staging", "users")]
    edit(gitrepo, "pipelines/users.yaml", UPSERT, "")
    replaced = cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo))
    assert replaced.code == 0, replaced.stdout + replaced.stderr
    line = next(x for x in replaced.stdout.splitlines() if "replace users" in x)
    assert line.index("created") < line.index(f"deleted {old}") < line.index("applied and")
    (new,) = pipelines(endpoint)[("staging", "users")]
    definition = dp(endpoint).get_pipeline_definition(pipelineId=new)["pipelineObjects"]
    schedule = next(o for o in definition if o["id"] == "DefaultSchedule")
    start = next(f["stringValue"] for f in schedule["fields"] if f["key"] == "startDateTime")
    assert start > datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), start


def test_a_failed_replace_leaves_the_old_pipeline_running(endpoint, gitrepo):
    assert cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo)).code == 0
    (old,) = pipelines(endpoint)[("staging", "users")]
    edit(gitrepo, "pipelines/users.yaml", UPSERT, "")
    dp_faults = {"operation": "PutPipelineDefinition", "5xx": 1}
    import json
    import urllib.request

    request = urllib.request.Request(f"{endpoint}/_reconciler/faults", method="POST",
                                     data=json.dumps(dp_faults).encode())
    urllib.request.urlopen(request, timeout=10).read()
    failed = cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo))
    assert failed.code == 1
    assert pipelines(endpoint)[("staging", "users")] == [old]  # no pending duplicate
    assert describe(endpoint, old)["@pipelineState"] == "SCHEDULED"


def test_a_replace_in_prod_needs_approval_once_or_in_the_manifest(endpoint, gitrepo):
    assert cli(endpoint, "sync", "--once", str(gitrepo)).code == 0
    edit(gitrepo, "pipelines/users.yaml", UPSERT, "")
    blocked = cli(endpoint, "apply", "--yes", str(gitrepo))
    assert blocked.code == 3, blocked.stdout + blocked.stderr
    assert "prod: users: needs replace" in blocked.stderr
    assert "(reconciler apply --allow-replace users)" in blocked.stderr  # the CLI's hint
    approved = cli(endpoint, "apply", "--yes", "--env", "prod", "--allow-replace", "users",
                   str(gitrepo))
    assert approved.code == 0, approved.stdout + approved.stderr
    edit(gitrepo, "pipelines/users.yaml", "- step_type: create-load-redshift",
         "- step_type: create-load-redshift\n  max_retries: 1\n  depends_on: []")
    edit(gitrepo, "pipelines/users.yaml", "description: Users", "replace: allowed\n"
                                                               "description: Users")
    by_manifest = cli(endpoint, "apply", "--yes", str(gitrepo))
    assert by_manifest.code == 0, by_manifest.stdout + by_manifest.stderr


# -- one pipeline per manifest and environment ------------------------------------------------


def test_passes_racing_on_two_revisions_keep_one_pipeline(endpoint, gitrepo, tmp_path):
    first = git(gitrepo, "rev-parse", "HEAD")
    edit(gitrepo, "pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 0"')
    other = tmp_path / "other"
    git(gitrepo, "worktree", "add", "-q", "--detach", str(other), first)
    for attempt in range(3):
        with ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(lambda root: cli(endpoint, "sync", "--once", "--env",
                                                  "staging", "--allow-rollback", str(root)),
                                 [gitrepo, other]))
        assert all(r.code in (0, 1) for r in runs), [r.stderr for r in runs]
        found = pipelines(endpoint)
        assert all(len(ids) == 1 for ids in found.values()), (attempt, found)
    final = cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo))
    assert final.code == 0, final.stdout + final.stderr
    assert all(len(ids) == 1 for ids in pipelines(endpoint).values())


def test_a_duplicate_is_removed_whatever_prune_says(endpoint, gitrepo):
    assert cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo)).code == 0
    (kept,) = pipelines(endpoint)[("staging", "users")]
    tags = describe(endpoint, kept)["tags"]
    copy = dp(endpoint).create_pipeline(name="staging-users", uniqueId="a-stale-copy", tags=[
        {"key": k, "value": "stale" if k.endswith("digest") else v} for k, v in tags.items()])
    plan = cli(endpoint, "plan", "--env", "staging", str(gitrepo))
    assert plan.code == 2 and "delete (duplicate) users" in plan.stdout
    assert cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo)).code == 0
    assert pipelines(endpoint)[("staging", "users")] == [kept]
    assert copy["pipelineId"] != kept


# -- never apply the past, never apply what is not committed -----------------------------------


def test_a_rollback_is_blocked_unless_asked_for(endpoint, gitrepo):
    first = git(gitrepo, "rev-parse", "HEAD")
    assert cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo)).code == 0
    second = edit(gitrepo, "pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 0"')
    assert cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo)).code == 0
    git(gitrepo, "checkout", "-q", first)
    plan = cli(endpoint, "plan", "--env", "staging", str(gitrepo))
    assert plan.code == 2 and "--allow-rollback" in plan.stdout
    assert f"is older than {second[:12]}" in plan.stdout
    blocked = cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo))
    assert blocked.code == 3, blocked.stdout + blocked.stderr
    (users,) = pipelines(endpoint)[("staging", "users")]
    assert describe(endpoint, users)["tags"]["dataduct-reconciler/revision"] == second
    rolled = cli(endpoint, "sync", "--once", "--env", "staging", "--allow-rollback",
                 str(gitrepo))
    assert rolled.code == 0, rolled.stdout + rolled.stderr
    assert describe(endpoint, users)["tags"]["dataduct-reconciler/revision"] == first


def test_uncommitted_changes_are_planned_but_not_applied(endpoint, gitrepo):
    users = gitrepo / "pipelines/users.yaml"
    users.write_text(users.read_text().replace('FROM users"', 'FROM users WHERE id > 1"'))
    plan = cli(endpoint, "plan", "--env", "staging", str(gitrepo))
    assert plan.code == 2 and "uncommitted changes" in plan.stderr
    refused = cli(endpoint, "apply", "--yes", "--env", "staging", str(gitrepo))
    assert refused.code == 1 and "commit them, or pass --allow-dirty" in refused.stderr
    assert pipelines(endpoint) == {}
    forced = cli(endpoint, "apply", "--yes", "--env", "staging", "--allow-dirty",
                 str(gitrepo))
    assert forced.code == 0, forced.stdout + forced.stderr
    (pid,) = pipelines(endpoint)[("staging", "users")]
    assert describe(endpoint, pid)["tags"]["dataduct-reconciler/revision"].endswith("-dirty")


# -- exit codes and reviewable plans ---------------------------------------------------------


def test_exit_codes_of_plan_apply_and_sync(endpoint, gitrepo):
    assert cli(endpoint, "plan", str(gitrepo)).code == 2
    assert cli(endpoint, "apply", "--yes", str(gitrepo)).code == 0
    assert cli(endpoint, "plan", str(gitrepo)).code == 0
    assert cli(endpoint, "sync", "--once", str(gitrepo)).code == 0
    (gitrepo / "pipelines/broken.yaml").write_text("name: broken\nsteps: 3\n")
    commit(gitrepo, "a broken manifest")
    assert cli(endpoint, "plan", str(gitrepo)).code == 1
    assert cli(endpoint, "sync", "--once", str(gitrepo)).code == 1
    (gitrepo / "pipelines/broken.yaml").unlink()
    (gitrepo / "pipelines/users.yaml").unlink()
    commit(gitrepo, "users is gone; prune is off")
    blocked = cli(endpoint, "sync", "--once", str(gitrepo))
    assert blocked.code == 3 and "prune is off" in blocked.stderr


def test_the_plan_shows_changed_sql_as_a_whole_unified_diff(endpoint, gitrepo):
    assert cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo)).code == 0
    edit(gitrepo, "config/defaults.yaml", "- group: consumer_group",
         "- group: consumer_group\n    permission: select\n  - user: " + "analyst_" * 40)
    text = cli(endpoint, "plan", "--env", "staging", str(gitrepo))
    assert text.code == 2
    assert "~ upsert_users.script:" in text.stdout and "--- upsert_users.script (live)" \
        in text.stdout
    assert "+GRANT SELECT ON TABLE" in text.stdout and "..." not in text.stdout
    markdown = cli(endpoint, "plan", "--env", "staging", "--format", "markdown",
                   str(gitrepo)).stdout
    assert "```diff" in markdown and "<details>" in markdown and len(markdown) < 65_536


def test_validate_one_file_and_plan_one_pipeline(endpoint, gitrepo):
    one = cli(endpoint, "validate", str(gitrepo / "pipelines/users.yaml"))
    assert one.code == 0 and "1 manifest(s), 2 of 2" in one.stdout
    plan = cli(endpoint, "plan", "--pipeline", "users", str(gitrepo))
    assert plan.code == 2 and "users" in plan.stdout and "discussion_votes" not in plan.stdout
    assert cli(endpoint, "apply", "--yes", "--pipeline", "users", str(gitrepo)).code == 0
    assert sorted(pipelines(endpoint)) == [("prod", "users"), ("staging", "users")]


# -- secrets ----------------------------------------------------------------------------------


def test_every_missing_secret_is_reported(endpoint, gitrepo):
    result = cli(endpoint, "plan", "--env", "staging", str(gitrepo), MAESTRO_PASSWORD="",
                 REDSHIFT_PASSWORD="")
    assert "environment variable MAESTRO_PASSWORD is set but empty" in result.stdout
    assert "environment variable REDSHIFT_PASSWORD is set but empty" in result.stdout


def test_nothing_uploaded_holds_a_secret_or_the_controllers_environment(endpoint, gitrepo):
    (gitrepo / "data").mkdir()
    (gitrepo / "data/rows.tsv").write_text("1\tone\n")
    (gitrepo / "real").mkdir()
    (gitrepo / "real/env.txt").symlink_to("/proc/self/environ")
    (gitrepo / "linked").symlink_to(gitrepo / "real")
    (gitrepo / "pipelines/files.yaml").write_text(
        "name: files\nsteps:\n- {step_type: extract-local, path: data/rows.tsv}\n"
        "- {step_type: transform, command: cat, input_node: extract_local_rows}\n")
    commit(gitrepo, "a file, and a link to the environment")
    (gitrepo / "pipelines/leak.yaml").write_text(
        "name: leak\nsteps:\n- {step_type: extract-local, path: linked/env.txt}\n")
    commit(gitrepo, "try to upload the environment")
    marker = {"LEAK_MARKER": "do-not-upload-0xfeed"}
    result = cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo), **marker)
    assert result.code == 1 and "leads outside the repository" in result.stderr
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    uploaded = []
    for bucket in s3.list_buckets()["Buckets"]:
        for item in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            uploaded.append(s3.get_object(Bucket=bucket["Name"], Key=item["Key"])["Body"]
                            .read())
    assert uploaded, "the scenario uploads the files pipeline's artifact"
    for content in uploaded:
        for secret in [*SECRETS.values(), *marker.values()]:
            assert secret.encode() not in content


# -- small things with a big effect -----------------------------------------------------------


def test_the_embedded_service_keeps_its_state_between_commands(repo):
    from .conftest import run_cli

    environ = {k: v for k, v in SECRETS.items()}
    applied = run_cli("sync", "--once", str(repo), env={**environ, "AWS_ENDPOINT_URL": ""})
    assert applied.code == 0, applied.stdout + applied.stderr
    assert "embedded AWS: state kept in" in applied.stderr
    state = repo / ".reconciler" / "embedded-state.json"
    assert state.is_file() and (repo / ".reconciler" / ".gitignore").read_text().endswith("*\n")
    planned = run_cli("plan", str(repo), env={**environ, "AWS_ENDPOINT_URL": ""})
    assert planned.code == 0, planned.stdout + planned.stderr
    assert "2 in sync" in planned.stdout


def test_a_bootstrap_never_renames_the_pipelines_own_steps(repo):
    from .conftest import compile_repo

    config = repo / "config/defaults.yaml"
    config.write_text(config.read_text() + "bootstrap:\n  ec2:\n  - step_type: transform\n"
                                           "    command: echo setup\n    no_output: true\n")
    (repo / "pipelines/t.yaml").write_text(
        "name: t\nsteps:\n- {step_type: transform, command: echo, no_output: true}\n")
    result = compile_repo(repo, ["staging"])
    (pipeline,) = [r.compiled for r in result.pipelines if r.manifest == "pipelines/t.yaml"]
    ids = {o.id for o in pipeline.objects}
    assert "transform" in ids and "transform_2" in ids
    assert next(o for o in pipeline.objects if o.id == "transform").get("command") == "echo"


def test_a_missing_database_section_is_one_error_not_two(repo):
    from .conftest import compile_repo

    config = repo / "config/defaults.yaml"
    text = config.read_text()
    start = text.index("redshift:")
    end = text.index("postgres:")
    config.write_text(text[:start] + text[end:])
    staging = repo / "config/staging.yaml"
    staging.write_text(staging.read_text().split("redshift:")[0])
    errors = [p for p in compile_repo(repo, ["staging"]).errors
              if p.location.file == "pipelines/users.yaml"]
    messages = {p.message for p in errors}
    assert messages == {"this step needs Redshift, and the config has no redshift section"}
