"""The reconcile engine end to end on the embedded service, the manifests in a real git
repository: create, steady state, update in place, replace, prune, and the guards."""

import json
import os
import subprocess
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.config import Config

from reconciler import emulator
from reconciler.engine import PassOptions, run
from reconciler.live.aws import CALL_LOG, RETRIES, AwsEnvironment, record_calls
from reconciler.plan.planner import Action, State

SECRETS = {"MAESTRO_PASSWORD": "maestro-secret-value-1",
           "REDSHIFT_PASSWORD": "redshift-secret-value-2",
           "POSTGRES_PASSWORD": "postgres-secret-value-3"}
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # the emulator's frozen clock
SECRETS = {**SECRETS, "RECONCILER_SECRETS_KEY": "test-installation-key"}
WRITES = ("CreatePipeline", "PutPipelineDefinition", "ActivatePipeline", "DeactivatePipeline",
          "DeletePipeline", "AddTags", "RemoveTags")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


class World:
    """A manifests repository under git and the embedded AWS it is applied to."""

    def __init__(self, repo: Path, client):
        self.repo, self.client = repo, client
        git(repo, "init", "-q", "-b", "main")
        git(repo, "config", "user.email", "ci@example.com")
        git(repo, "config", "user.name", "CI")
        self.commit("initial")

    def commit(self, message: str) -> None:
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "--allow-empty", "-m", message)

    def connect(self, env, installation, environ, **_hooks):
        session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="testing",
                                        aws_secret_access_key="testing")
        clients = [session.client(name, config=RETRIES) for name in ("datapipeline", "s3")]
        for client in clients:  # the session's record of AWS calls (tests/test_iam.py)
            record_calls(client, os.environ.get(CALL_LOG))
        return AwsEnvironment(env, installation, *clients, creates_buckets=True)

    def run(self, apply=True, environments=None, now=NOW, environ=None, **options):
        emulator.CONTROLS.calls.clear()
        return run(self.repo, PassOptions(environments=tuple(environments or ()), apply=apply,
                                          **options),
                   now=now, environ={**SECRETS, **(environ or {})}, connect=self.connect)

    def edit(self, path: str, old: str, new: str) -> None:
        target = self.repo / path
        text = target.read_text()
        assert old in text, (path, old)
        target.write_text(text.replace(old, new))
        self.commit(f"edit {path}")

    def write(self, path: str, text: str) -> None:
        (self.repo / path).parent.mkdir(parents=True, exist_ok=True)
        (self.repo / path).write_text(textwrap.dedent(text))
        self.commit(f"write {path}")

    def remove(self, path: str) -> None:
        (self.repo / path).unlink()
        self.commit(f"remove {path}")

    def pipelines(self) -> dict[tuple[str, str], list[dict]]:
        """Every pipeline in the account by (environment tag, pipeline tag)."""
        ids, marker = [], None
        while True:
            page = self.client.list_pipelines(**({"marker": marker} if marker else {}))
            ids += [p["id"] for p in page["pipelineIdList"]]
            if not page["hasMoreResults"]:
                break
            marker = page["marker"]
        found: dict[tuple[str, str], list[dict]] = {}
        for start in range(0, len(ids), 25):
            for desc in self.client.describe_pipelines(pipelineIds=ids[start:start + 25])[
                    "pipelineDescriptionList"]:
                tags = {t["key"]: t["value"] for t in desc["tags"]}
                key = (tags.get("dataduct-reconciler/environment", "-"),
                       tags.get("dataduct-reconciler/pipeline", desc["name"]))
                found.setdefault(key, []).append(desc)
        return found

    def pipeline_id(self, env: str, name: str) -> str:
        (desc,) = self.pipelines()[(env, name)]
        return desc["pipelineId"]

    def state(self, env: str, name: str) -> str:
        (desc,) = self.pipelines()[(env, name)]
        return next(f["stringValue"] for f in desc["fields"] if f["key"] == "@pipelineState")


def actions(result, env: str) -> dict[str, tuple[Action, str]]:
    plan = next(e.plan for e in result.environments if e.environment == env)
    return {a.pipeline: (a.kind, a.reason) for a in plan.actions}


def writes() -> int:
    return sum(emulator.CONTROLS.calls.get(op, 0) for op in WRITES)


def policy(world: World, env: str, **settings) -> None:
    path = world.repo / "reconciler.yaml"
    data = yaml.safe_load(path.read_text())
    data["environments"][env].setdefault("policy", {}).update(settings)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.commit(f"policy {env} {settings}")


@pytest.fixture
def world(embedded, repo):
    return World(repo, embedded)


def test_the_full_lifecycle(world):
    # 1. create
    first = world.run()
    assert not first.failed, [(r.pipeline, r.messages) for e in first.environments
                              for r in e.results]
    for env in ("staging", "prod"):
        assert {k: v[0] for k, v in actions(first, env).items()} == {
            "users": Action.CREATE, "discussion_votes": Action.CREATE}
        for name in ("users", "discussion_votes"):
            assert world.state(env, name) == "SCHEDULED"
    revision = git(world.repo, "rev-parse", "HEAD")
    (users,) = world.pipelines()[("staging", "users")]
    tags = {t["key"]: t["value"] for t in users["tags"]}
    assert tags["dataduct-reconciler/revision"] == revision
    assert users["name"] == "staging-users"

    # 2. a second pass writes nothing and reads no definition but the drift checks' (the
    # default budget, 5 per environment, covers both pipelines of each)
    second = world.run()
    assert writes() == 0 and emulator.CONTROLS.calls.get("GetPipelineDefinition", 0) == 4
    assert all(a == Action.NOOP for env in ("staging", "prod")
               for a, _ in actions(second, env).values())

    # 3. an edited field: update in place, then re-activation
    world.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 0"')
    before = world.pipeline_id("staging", "users")
    third = world.run()
    action, reason = actions(third, "staging")["users"]
    assert action == Action.UPDATE and "1 change(s)" in reason
    plan = next(e.plan for e in third.environments if e.environment == "staging")
    (change,) = next(a for a in plan.actions if a.pipeline == "users").changes
    assert (change.object_id, change.field) == ("extract_rds_source", "selectQuery")
    assert world.pipeline_id("staging", "users") == before
    assert emulator.CONTROLS.calls["ActivatePipeline"] == 2  # staging and prod users
    active = world.client.get_pipeline_definition(pipelineId=before, version="active")
    source = next(o for o in active["pipelineObjects"] if o["id"] == "extract_rds_source")
    assert {"key": "selectQuery", "stringValue": "SELECT id, user_name, user_email FROM users "
            "WHERE id > 0"} in source["fields"]

    # 4. removing a step from an active pipeline: replace in staging, blocked in prod
    world.edit("pipelines/users.yaml", textwrap.dedent("""\

        - step_type: upsert
          name: upsert_users
          source: tables/staging.maestro_users.sql
          destination: tables/prod.users.sql
        """), "")
    old_staging, old_prod = before, world.pipeline_id("prod", "users")
    fourth = world.run()
    action, reason = actions(fourth, "staging")["users"]
    assert action == Action.REPLACE and "upsert_users: cannot remove an object" in reason
    action, reason = actions(fourth, "prod")["users"]
    assert action == State.BLOCKED and "set policy.allow_replace: true" in reason
    new_staging = world.pipeline_id("staging", "users")
    assert new_staging != old_staging and world.pipeline_id("prod", "users") == old_prod
    with pytest.raises(world.client.exceptions.PipelineDeletedException):
        world.client.describe_pipelines(pipelineIds=[old_staging])
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    archive = s3.get_object(Bucket="coursera-reinvent",
                            Key=f"staging/logs/users/archive/{old_staging}.jsonl")
    records = [json.loads(x) for x in archive["Body"].read().decode().splitlines() if x]
    assert {r["sphere"] for r in records} <= {"INSTANCE", "ATTEMPT"}
    # allow it in prod
    policy(world, "prod", allow_replace=True)
    fifth = world.run()
    assert actions(fifth, "prod")["users"][0] == Action.REPLACE
    assert world.pipeline_id("prod", "users") != old_prod

    # 5. a deleted manifest: nothing is deleted until prune is on
    world.remove("pipelines/discussion_votes.yaml")
    sixth = world.run()
    for env in ("staging", "prod"):
        action, reason = actions(sixth, env)["discussion_votes"]
        assert action == State.BLOCKED and "set policy.prune: true" in reason
        assert len(world.pipelines()[(env, "discussion_votes")]) == 1
    policy(world, "staging", prune=True, max_delete_percent=100)
    policy(world, "prod", prune=True, max_delete_percent=100)
    gone = world.pipeline_id("staging", "discussion_votes")
    seventh = world.run()
    assert not seventh.failed
    for env in ("staging", "prod"):
        assert actions(seventh, env)["discussion_votes"][0] == Action.DELETE
        assert (env, "discussion_votes") not in world.pipelines()
    s3.head_object(Bucket="coursera-reinvent",
                   Key=f"staging/logs/discussion_votes/archive/{gone}.jsonl")

    # 6. an empty repository is refused (allow_empty is off)
    world.remove("pipelines/users.yaml")
    eighth = world.run()
    for env in ("staging", "prod"):
        action, reason = actions(eighth, env)["users"]
        assert action == State.BLOCKED and "set policy.allow_empty: true" in reason
        assert (env, "users") in world.pipelines()
    assert writes() == 0


def test_deleting_too_large_a_share_is_refused(world):
    policy(world, "staging", prune=True)
    for i in range(3):
        world.write(f"pipelines/extra_{i}.yaml", f"""\
            name: extra_{i}
            frequency: daily
            steps:
            - step_type: extract-s3
              file_uri: s3://bucket/extra-{i}.tsv
            - step_type: load-redshift
              schema: dev
              table: extra_{i}
            """)
    assert not world.run(environments=["staging"]).failed  # 5 pipelines
    world.remove("pipelines/extra_0.yaml")
    world.remove("pipelines/extra_1.yaml")
    result = world.run(environments=["staging"])
    plan = result.environments[0].plan
    assert plan.errors == ["would delete 2 of 5 managed pipelines (40%), over "
                           "policy.max_delete_percent 30"]
    assert {name: a for name, (a, _) in actions(result, "staging").items()
            if name.startswith("extra")} == {"extra_0": State.BLOCKED,
                                             "extra_1": State.BLOCKED,
                                             "extra_2": Action.NOOP}
    assert ("staging", "extra_0") in world.pipelines() and writes() == 0


def test_pipelines_that_are_not_ours_are_never_touched(world):
    foreign = world.client.create_pipeline(name="staging-users", uniqueId="theirs")["pipelineId"]
    other_installation = world.client.create_pipeline(
        name="staging-discussion_votes", uniqueId="other",
        tags=[{"key": "dataduct-reconciler/managed-by", "value": "someone-else"},
              {"key": "dataduct-reconciler/environment", "value": "staging"},
              {"key": "dataduct-reconciler/pipeline", "value": "discussion_votes"}])[
        "pipelineId"]
    policy(world, "staging", prune=True, allow_empty=True, max_delete_percent=100)
    for _ in range(2):
        assert not world.run(environments=["staging"]).failed
    world.remove("pipelines/users.yaml")
    world.remove("pipelines/discussion_votes.yaml")
    world.run(environments=["staging"])
    descs = world.client.describe_pipelines(pipelineIds=[foreign, other_installation])[
        "pipelineDescriptionList"]
    assert [d["pipelineId"] for d in descs] == [foreign, other_installation]
    assert world.client.get_pipeline_definition(pipelineId=foreign)["pipelineObjects"] == []
    assert ("staging", "users") not in world.pipelines()  # ours was pruned


def test_a_manifest_that_stops_compiling_is_left_alone(world):
    assert not world.run().failed
    policy(world, "staging", prune=True, max_delete_percent=100)
    world.edit("pipelines/users.yaml", "step_type: upsert", "step_type: upsertt")
    result = world.run()
    action, reason = actions(result, "staging")["users"]
    assert action == State.UNKNOWN and "does not compile" in reason
    assert actions(result, "staging")["discussion_votes"][0] == Action.NOOP
    assert len(world.pipelines()[("staging", "users")]) == 1 and writes() == 0
    assert any("unknown step type 'upsertt'" in p.message for p in result.problems)


def test_promotion_waits_for_the_earlier_environment(world):
    policy(world, "prod", promote_from="staging")
    planned = world.run(apply=False)
    action, reason = actions(planned, "prod")["users"]
    assert action == State.BLOCKED and "waiting for staging" in reason
    assert actions(planned, "staging")["users"][0] == Action.CREATE
    synced = world.run()
    assert [e.environment for e in synced.environments] == ["staging", "prod"]
    assert actions(synced, "prod")["users"][0] == Action.CREATE
    assert ("prod", "users") in world.pipelines()


def test_a_definition_aws_refuses_fails_that_pipeline_only(world):
    from reconciler.emulator.service import backends

    # users compiles to 15 objects, discussion_votes to 13 (staging has no alarm)
    backends["123456789012"]["us-east-1"].max_objects = 14
    result = world.run(environments=["staging"])
    outcome = {r.pipeline: r for r in result.environments[0].results}
    assert outcome["users"].failed
    assert "InvalidRequestException: the definition has 15 objects; at most 14" in \
        outcome["users"].messages[-1]
    assert not outcome["discussion_votes"].failed
    assert result.failed


def test_throttling_and_errors_are_retried_until_the_pass_converges(world):
    emulator.CONTROLS.faults["*"] = {"throttle": 0.2, "5xx": 0.1}
    first = world.run()
    emulator.CONTROLS.faults.clear()
    assert not first.failed, [r.messages for e in first.environments for r in e.results]
    assert all(len(v) == 1 for v in world.pipelines().values())
    assert all(a == Action.NOOP for env in ("staging", "prod")
               for a, _ in actions(world.run(), env).values())


def test_a_rotated_secret_updates_the_pipeline(world):
    assert not world.run().failed
    SECRETS_BEFORE = dict(SECRETS)
    try:
        SECRETS["REDSHIFT_PASSWORD"] = "rotated"
        result = world.run()
        assert actions(result, "staging")["users"] == (Action.UPDATE,
                                                       "a secret's value changed")
        assert not result.failed
        assert all(a == Action.NOOP for a, _ in actions(world.run(), "staging").values())
    finally:
        SECRETS.update(SECRETS_BEFORE)


def test_a_role_is_assumed_through_sts(embedded):
    from reconciler.desired.config import Environment

    iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    role = iam.create_role(RoleName="deployer", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    env = Environment("prod", "config/prod.yaml", region="us-east-1", role_arn=role)
    aws = AwsEnvironment.connect(env, "default", environ={})
    credentials = aws.datapipeline._request_signer._credentials
    assert credentials.access_key != "testing" and credentials.token
    assert aws.read_managed().pipelines == []


def test_an_unreachable_environment_does_not_stop_the_others(world):
    settings = yaml.safe_load((world.repo / "reconciler.yaml").read_text())
    settings["environments"]["prod"]["endpoint_url"] = "http://127.0.0.1:9"
    (world.repo / "reconciler.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    world.commit("prod unreachable")

    def connect(env, installation, environ, **hooks):
        if env.name == "prod":  # refused at once: botocore's retries would only be slow
            return AwsEnvironment.connect(env, installation, environ={}, config=Config(
                retries={"mode": "standard", "max_attempts": 2}, connect_timeout=1), **hooks)
        return world.connect(env, installation, environ)

    result = run(world.repo, PassOptions(apply=True), now=NOW, environ=SECRETS, connect=connect)
    by_env = {e.environment: e for e in result.environments}
    assert by_env["prod"].error and "ListPipelines" in by_env["prod"].error.replace(
        "list_pipelines", "ListPipelines")
    assert [r.outcome for r in by_env["staging"].results] == ["applied", "applied"]
    assert result.failed


def test_the_promotion_gate_holds_when_only_prod_is_applied(world):
    policy(world, "prod", promote_from="staging")
    result = world.run(environments=["prod"])
    by_env = {e.environment: e for e in result.environments}
    assert by_env["staging"].for_gate_only and by_env["staging"].results == []
    assert actions(result, "prod")["users"][0] == State.BLOCKED
    assert world.pipelines() == {}
    world.run(environments=["staging"])
    world.run(environments=["prod"])
    assert ("prod", "users") in world.pipelines()


def test_drift_made_outside_git_is_found_by_the_drift_checks(world):
    assert not world.run(environments=["staging"]).failed
    pid = world.pipeline_id("staging", "users")
    objects = world.client.get_pipeline_definition(pipelineId=pid)["pipelineObjects"]
    for obj in objects:
        if obj["id"] == "extract_rds_source":
            obj["fields"] = [{"key": "selectQuery", "stringValue": "SELECT 1"}
                             if f["key"] == "selectQuery" else f for f in obj["fields"]]
    world.client.put_pipeline_definition(pipelineId=pid, pipelineObjects=objects)
    policy(world, "staging", drift_checks_per_pass=0)
    unnoticed = world.run(environments=["staging"], apply=False)
    assert actions(unnoticed, "staging")["users"][0] == Action.NOOP  # drift checks off
    data = yaml.safe_load((world.repo / "reconciler.yaml").read_text())
    del data["environments"]["staging"]["policy"]["drift_checks_per_pass"]
    (world.repo / "reconciler.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    world.commit("drift checks at their default")
    reported = world.run(environments=["staging"])  # on by default
    action, reason = actions(reported, "staging")["users"]
    assert action == State.BLOCKED and reason.startswith("changed outside git (1 change(s))")
    policy(world, "staging", drift_checks_per_pass=2, self_heal=True)
    found = world.run(environments=["staging"])
    action, reason = actions(found, "staging")["users"]
    assert action == Action.UPDATE and reason.startswith("drifted from git")
    restored = world.client.get_pipeline_definition(pipelineId=pid)["pipelineObjects"]
    source = next(o for o in restored if o["id"] == "extract_rds_source")
    assert {"key": "selectQuery", "stringValue": "SELECT id, user_name, user_email FROM users"} \
        in source["fields"]


def test_name_prefix_and_tags_of_the_config_reach_aws_and_follow_edits(world):
    config = world.repo / "config/defaults.yaml"
    config.write_text(config.read_text().replace(
        "etl:\n", "etl:\n  NAME_PREFIX: dev\n  TAGS:\n    team: {string: data}\n"
                  "    Name: {variable: name}\n", 1))
    world.commit("name prefix and tags")
    assert not world.run(environments=["staging"]).failed
    (users,) = world.pipelines()[("staging", "users")]
    tags = {t["key"]: t["value"] for t in users["tags"]}
    assert users["name"] == "staging-dev_users"
    assert (tags["team"], tags["Name"]) == ("data", "dev_users")
    assert len(tags) == 9
    world.edit("config/defaults.yaml", "    team: {string: data}\n", "")
    assert not world.run(environments=["staging"]).failed
    (users,) = world.pipelines()[("staging", "users")]
    assert "team" not in {t["key"] for t in users["tags"]}


def test_suspend_deactivates_and_leaves_the_pipeline_alone(world):
    assert not world.run(environments=["staging"]).failed
    world.edit("pipelines/users.yaml", "frequency: daily", "frequency: daily\nsuspend: true")
    suspended = world.run(environments=["staging"])
    assert actions(suspended, "staging")["users"][0] == Action.DEACTIVATE
    assert world.state("staging", "users") == "INACTIVE"
    world.edit("pipelines/users.yaml", 'FROM users"', 'FROM users WHERE id > 3"')
    left = world.run(environments=["staging"])
    assert actions(left, "staging")["users"][0] == Action.NOOP and writes() == 0
    world.edit("pipelines/users.yaml", "suspend: true\n", "")
    resumed = world.run(environments=["staging"])
    assert actions(resumed, "staging")["users"][0] == Action.UPDATE
    assert world.state("staging", "users") == "SCHEDULED"


def test_a_pipeline_deactivated_by_hand_is_drift_reactivated_only_with_self_heal(world):
    assert not world.run(environments=["staging"]).failed
    world.client.deactivate_pipeline(pipelineId=world.pipeline_id("staging", "users"))
    reported = world.run(environments=["staging"])
    action, reason = actions(reported, "staging")["users"]
    assert action == State.BLOCKED and "deactivated outside git" in reason
    assert world.state("staging", "users") == "INACTIVE"
    policy(world, "staging", self_heal=True)
    world.run(environments=["staging"])
    assert world.state("staging", "users") == "SCHEDULED"


def test_a_rename_with_previous_names_adopts_instead_of_running_two(world):
    assert not world.run(environments=["staging"]).failed
    pid = world.pipeline_id("staging", "users")
    world.edit("pipelines/users.yaml", "name: users\nfrequency",
               "name: members\nprevious_names: [users]\nfrequency")
    renamed = world.run(environments=["staging"])
    action, reason = actions(renamed, "staging")["members"]
    # the log path has the name in it: the rename is an update in place, never a replace
    assert action == Action.UPDATE and reason.startswith("renamed from users")
    assert world.pipeline_id("staging", "members") == pid
    assert ("staging", "users") not in world.pipelines()


def test_a_rename_without_previous_names_warns_before_two_pipelines_load_one_table(world):
    assert not world.run(environments=["staging"]).failed
    world.edit("pipelines/users.yaml", "name: users\nfrequency", "name: members\nfrequency")
    plan = world.run(environments=["staging"], apply=False)
    (env,) = plan.environments
    assert any("members will run beside users, and both write prod.users" in w
               for w in env.plan.warnings)


def test_a_finished_one_time_pipeline_is_left_alone(world):
    world.edit("pipelines/users.yaml", "frequency: daily", "frequency: one-time")
    world.edit("pipelines/users.yaml", "load_time: 12:00", "load_time: 01:00")
    assert not world.run(environments=["staging"]).failed
    emulator.CONTROLS.advance(6 * 3600)
    assert world.state("staging", "users") == "FINISHED"
    again = world.run(environments=["staging"], now=NOW + timedelta(hours=6))
    assert actions(again, "staging")["users"][0] == Action.NOOP and writes() == 0


def test_the_secrets_tag_is_an_hmac_under_the_installations_key(world):
    import hashlib
    import hmac

    assert not world.run(environments=["staging"]).failed
    (users,) = world.pipelines()[("staging", "users")]
    tag = {t["key"]: t["value"] for t in users["tags"]}["dataduct-reconciler/secrets"]
    text = ("users\0*myMysqlMaestroPassword=" + SECRETS["MAESTRO_PASSWORD"]
            + "\0*myRedshiftPassword=" + SECRETS["REDSHIFT_PASSWORD"])
    assert tag == hmac.new(b"test-installation-key", text.encode(),
                           hashlib.sha256).hexdigest()[:32]
    assert tag != hashlib.sha256(text.encode()).hexdigest()[:32]


def test_an_unreadable_wheelhouse_fails_only_the_pipelines_with_qa_steps(world, tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    (wheelhouse / "broken.whl").mkdir(parents=True)  # read as a file, it raises
    result = world.run(environments=["staging"],
                       environ={"RECONCILER_WHEELHOUSE": str(wheelhouse)})
    outcome = {r.pipeline: r for r in result.environments[0].results}
    assert outcome["discussion_votes"].outcome == "applied"
    assert outcome["users"].outcome == "failed"
    assert "cannot read the QA runner's wheelhouse (RECONCILER_WHEELHOUSE)" in \
        outcome["users"].messages[-1]
    assert ("staging", "users") not in world.pipelines()


LATER = NOW + timedelta(hours=6, minutes=10)  # past the load time: replacements move on


def why_failed(result) -> list:
    """What made a pass fail, for an assertion's message."""
    return [result.error, [p.format() for p in result.problems if p.severity == "error"],
            [(e.environment, e.error, e.waiting, [r.messages for r in e.results if r.failed])
             for e in result.wanted]]


@pytest.mark.parametrize("edits", [
    [("frequency: daily", "frequency: hourly")],
    [("frequency: daily", "frequency: hourly"), ("frequency: hourly", "frequency: 2-hours")],
    [("frequency: daily", "frequency: 3-days")],
    [("load_time: 12:00", "load_time: 13:30")],
    [("\n- step_type: upsert\n  name: upsert_users\n  source: tables/staging.maestro_users.sql\n"
      "  destination: tables/prod.users.sql\n", "\n")],
    [("database: userDb", "database: archiveDb")],
], ids=["period", "period-twice", "period-days", "start", "removed-object", "reference"])
def test_after_a_replace_the_next_plans_are_empty(world, edits):
    policy(world, "prod", allow_replace=True)
    assert not world.run(now=LATER).failed
    for old, new in edits:
        world.edit("pipelines/users.yaml", old, new)
        before = {env: world.pipeline_id(env, "users") for env in ("staging", "prod")}
        replaced = world.run(now=LATER)
        assert not replaced.failed, why_failed(replaced)
        for env in ("staging", "prod"):
            assert actions(replaced, env)["users"][0] == Action.REPLACE
            assert world.pipeline_id(env, "users") != before[env]
    # the pipeline it was replaced with is what the manifest says, now and on the days after
    for now in (LATER, LATER + timedelta(minutes=50), LATER + timedelta(days=1, hours=3),
                LATER + timedelta(days=9)):
        again = world.run(now=now)
        assert writes() == 0, (now, {env: actions(again, env) for env in ("staging", "prod")})
        for env in ("staging", "prod"):
            assert {a for a, _ in actions(again, env).values()} == {Action.NOOP}
    # and so is the definition, read and compared field by field
    for env in ("staging", "prod"):
        policy(world, env, drift_checks_per_pass=10)
    checked = world.run(now=LATER + timedelta(days=1))
    assert writes() == 0 and emulator.CONTROLS.calls.get("GetPipelineDefinition", 0) > 0
    for env in ("staging", "prod"):
        assert actions(checked, env)["users"] == (Action.NOOP, "in sync (definition checked)")
