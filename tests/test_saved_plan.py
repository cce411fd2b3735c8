"""A plan is a value: ``reconciler plan --out FILE`` saves it and ``reconciler apply FILE``
applies exactly it, or refuses naming what moved (the revision, a live pipeline, an item
planned differently) and changes nothing. Against a running ``reconciler emulator`` and a real
git repository."""

import json
from dataclasses import replace

from reconciler.desired.config import Policy
from reconciler.live.model import LiveState
from reconciler.plan.planner import Action, DesiredEnvironment, plan_environment
from reconciler.plan.saved import FORMAT, moved, saved_environment

from .test_cli_reconcile import pipelines
from .test_plan import live, users_of
from .test_safety import cli, commit, describe, dp, edit
from .test_safety import gitrepo as gitrepo  # a fixture

NEW_QUERY = ('FROM users"', 'FROM users WHERE id > 8"')


def test_apply_planfile_applies_exactly_the_saved_plan(endpoint, gitrepo, tmp_path):
    assert cli(endpoint, "sync", "--once", str(gitrepo)).code == 0
    (users,) = pipelines(endpoint)[("staging", "users")]
    (prod_users,) = pipelines(endpoint)[("prod", "users")]
    before = describe(endpoint, users)["tags"]["dataduct-reconciler/digest"]
    prod_before = describe(endpoint, prod_users)["tags"]["dataduct-reconciler/digest"]
    edit(gitrepo, "pipelines/users.yaml", *NEW_QUERY)
    planfile = tmp_path / "plan.json"
    planned = cli(endpoint, "plan", "--env", "staging", "--out", str(planfile), str(gitrepo))
    assert planned.code == 2, planned.stdout + planned.stderr
    saved = json.loads(planfile.read_text())
    assert saved["format"] == FORMAT and saved["environments"] == ["staging"]
    (staging,) = saved["plans"]
    assert {a["pipeline"]: a["action"] for a in staging["actions"]}["users"] == "update"
    assert "cli-maestro-secret-7" not in planfile.read_text()

    applied = cli(endpoint, "apply", str(planfile))  # no prompt: the plan was the review
    assert applied.code == 0, applied.stdout + applied.stderr
    assert "staging: update users: applied" in applied.stdout
    assert describe(endpoint, users)["tags"]["dataduct-reconciler/digest"] != before
    # only what the plan holds: prod was not in it
    assert describe(endpoint, prod_users)["tags"]["dataduct-reconciler/digest"] == prod_before
    assert cli(endpoint, "plan", "--env", "staging", str(gitrepo)).code == 0


def test_apply_planfile_refuses_when_git_or_aws_moved(endpoint, gitrepo, tmp_path):
    assert cli(endpoint, "sync", "--once", "--env", "staging", str(gitrepo)).code == 0
    found = pipelines(endpoint)
    (users,), (votes,) = found[("staging", "users")], found[("staging", "discussion_votes")]
    digest = describe(endpoint, users)["tags"]["dataduct-reconciler/digest"]
    edit(gitrepo, "pipelines/users.yaml", *NEW_QUERY)
    planfile = tmp_path / "plan.json"
    assert cli(endpoint, "plan", "--env", "staging", "--out", str(planfile),
               str(gitrepo)).code == 2

    # a newer commit: the file is for another revision
    first = commit(gitrepo, "unrelated commit")
    refused = cli(endpoint, "apply", str(planfile))
    assert refused.code == 1
    assert "the plan was made at revision" in refused.stderr and first[:12] in refused.stderr
    assert describe(endpoint, users)["tags"]["dataduct-reconciler/digest"] == digest

    # the same revision, but a live pipeline went since the plan: nothing is applied there
    assert cli(endpoint, "plan", "--env", "staging", "--out", str(planfile),
               str(gitrepo)).code == 2
    dp(endpoint).delete_pipeline(pipelineId=votes)
    refused = cli(endpoint, "apply", str(planfile))
    assert refused.code == 1, refused.stdout + refused.stderr
    assert f"discussion_votes ({votes}) is gone" in refused.stderr
    assert "nothing was applied: " in refused.stderr and "plan again" in refused.stderr
    assert describe(endpoint, users)["tags"]["dataduct-reconciler/digest"] == digest


def test_a_plan_file_is_checked_before_anything_runs(endpoint, gitrepo, tmp_path):
    planfile = tmp_path / "plan.json"
    assert cli(endpoint, "plan", "--env", "staging", "--out", str(planfile),
               str(gitrepo)).code == 2
    mixed = cli(endpoint, "apply", "--env", "prod", str(planfile))
    assert mixed.code == 2 and "a plan file carries its environments" in mixed.stderr
    junk = tmp_path / "junk.json"
    junk.write_text('{"format": "something else"}')
    wrong = cli(endpoint, "apply", str(junk))
    assert wrong.code == 1 and "not a plan file of this reconciler" in wrong.stderr
    moved_away = tmp_path / "elsewhere"
    moved_away.mkdir()
    (moved_away / "plan.json").write_text(planfile.read_text())
    lost = cli(endpoint, "apply", str(moved_away / "plan.json"))
    assert lost.code == 1 and "which is not there" in lost.stderr
    assert pipelines(endpoint) == {}  # nothing was created by any of them

    (gitrepo / "pipelines" / "users.yaml").write_text("name: [unclosed\n")
    commit(gitrepo, "a broken manifest")
    broken = tmp_path / "broken.json"
    failed = cli(endpoint, "plan", "--env", "staging", "--out", str(broken), str(gitrepo))
    assert failed.code == 1 and "not written: the plan has errors" in failed.stderr
    assert not broken.exists()


def test_an_item_planned_differently_is_named(repo):
    users = users_of(repo)
    desired = DesiredEnvironment("staging", (users,))
    state = LiveState("staging", [live("users", "old-digest")])
    saved = saved_environment(plan_environment(desired, state, _policy()), state)
    assert moved(saved, state, plan_environment(desired, state, _policy())) == []
    in_sync = LiveState("staging", [live("users", users.digest)])
    assert moved(saved, in_sync, plan_environment(desired, in_sync, _policy())) == [
        f"users (df-users) was changed: it carries digest {users.digest[:12]}, the plan saw "
        "old-digest"]
    suspended = DesiredEnvironment("staging", (replace(users, suspend=True),))
    (action,) = plan_environment(suspended, state, _policy()).actions
    assert action.action is Action.DEACTIVATE
    assert moved(saved, state, plan_environment(suspended, state, _policy())) == [
        "users: the plan says update, planned now: deactivate (suspend: true in the manifest)"]


def _policy() -> Policy:
    return Policy()
