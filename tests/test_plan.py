"""The pure parts of planning, on plain data: normalisation, field changes, classification
and guards."""

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from reconciler.desired.config import Policy
from reconciler.live.model import LiveDefinition, LivePipeline, LiveState
from reconciler.plan.diff import anchor_like_live, field_changes, normalise
from reconciler.plan.planner import (
    Action,
    Approval,
    DesiredEnvironment,
    State,
    plan_environment,
    starting_after,
)
from reconciler.snapshot import Relation

from .conftest import compile_repo


def f(key, value):
    return {"key": key, "stringValue": value}


def test_normalise_drops_runtime_fields_and_hides_encrypted_literals():
    objects = [{"id": "db", "name": "db", "fields": [
        f("@status", "RUNNING"), f("*password", "********"), f("username", "u"),
        {"key": "*token", "stringValue": "#{*myToken}"}, {"key": "parent", "refValue": "x"}]}]
    assert normalise(objects) == {"db": {"name": ("db",), "*password": ("<encrypted>",),
                                         "username": ("u",), "*token": ("#{*myToken}",),
                                         "parent": ("ref:x",)}}


def test_field_changes_are_typed_and_sorted():
    live = [{"id": "a", "name": "a", "fields": [f("cmd", "1"), f("arg", "x")]},
            {"id": "gone", "name": "gone", "fields": []}]
    want = [{"id": "a", "name": "a", "fields": [f("cmd", "2"), f("arg", "x"), f("arg", "y"),
                                                f("new", "n")]},
            {"id": "fresh", "name": "fresh", "fields": []}]
    assert [c.describe() for c in field_changes(live, want)] == [
        "~ a.arg: x -> x, y", "~ a.cmd: 1 -> 2", "+ a.new = n", "+ object fresh",
        "- object gone"]
    assert field_changes([], want)[0].kind == "add-object"


def test_the_start_date_of_a_live_schedule_is_kept_when_only_the_date_differs():
    live = [{"id": "S", "name": "S", "fields": [f("startDateTime", "2026-01-01T12:00:00")]}]
    same_time = [{"id": "S", "name": "S", "fields": [f("startDateTime", "2026-11-26T12:00:00")]}]
    other_time = [{"id": "S", "name": "S", "fields": [f("startDateTime",
                                                        "2026-11-26T13:00:00")]}]
    assert field_changes(live, anchor_like_live(same_time, live)) == ()
    (change,) = field_changes(live, anchor_like_live(other_time, live))
    assert (change.field, change.after) == ("startDateTime", ("2026-11-26T13:00:00",))


def test_the_digest_ignores_the_start_date_but_not_the_load_time(repo):
    from reconciler.desired.compiler import CompileOptions
    from reconciler.desired.project import compile_project
    from reconciler.qa.bundle import qa_runner
    from reconciler.source import read_snapshot

    def digests(day):
        result = compile_project(read_snapshot(repo), CompileOptions(day, qa_runner=qa_runner()))
        return {p.name: p.digest for p in result.compiled("staging")}

    assert digests(date(2026, 1, 1)) == digests(date(2026, 11, 26))
    before = digests(date(2026, 1, 1))
    text = (repo / "pipelines/users.yaml").read_text()
    (repo / "pipelines/users.yaml").write_text(text.replace("load_time: 12:00",
                                                            "load_time: 13:00"))
    after = digests(date(2026, 1, 1))
    assert after["users"] != before["users"]
    assert after["discussion_votes"] == before["discussion_votes"]


def live(name, digest, state="SCHEDULED", pid=None, manifest=None, revision="r1",
         created="2026-11-26T09:00:00"):
    return LivePipeline(pid or f"df-{name}", f"staging-{name}",
                        {"dataduct-reconciler/pipeline": name,
                         "dataduct-reconciler/digest": digest,
                         "dataduct-reconciler/revision": revision,
                         "dataduct-reconciler/manifest": manifest or f"pipelines/{name}.yaml"},
                        state, {"@creationTime": created})


def test_classification_without_reading_definitions(repo):
    compiled = {p.name: p for p in compile_repo(repo, ["staging"]).compiled("staging")}
    users, votes = compiled["users"], compiled["discussion_votes"]
    desired = DesiredEnvironment("staging", (users, votes), frozenset({"pipelines/broken.yaml"}))
    state = LiveState("staging", [live("users", users.digest, "INACTIVE"),
                                  live("old", "x"), live("broken", "y",
                                                         manifest="pipelines/broken.yaml")])
    plan = plan_environment(desired, state, Policy(prune=True, max_delete_percent=100))
    got = {a.pipeline: (a.kind, a.reason) for a in plan.actions}
    assert got == {
        "users": (State.BLOCKED, "deactivated outside git; set policy.self_heal: true to "
                                  "re-activate it, or suspend: true in the manifest to keep it "
                                  "deactivated"),
        "discussion_votes": (Action.CREATE, "not in AWS yet"),
        "old": (Action.DELETE, "no manifest defines it for staging any more"),
        "broken": (State.UNKNOWN, "pipelines/broken.yaml does not compile; the pipeline is "
                                   "left as it is until it does"),
    }


def test_a_refused_edit_is_a_replace_or_blocked_by_policy(repo):
    (users,) = [p for p in compile_repo(repo, ["staging"]).compiled("staging")
                if p.name == "users"]
    objects = [o.api() for o in users.objects]
    live_objects = [*objects, {"id": "extra", "name": "extra", "fields": [f("type", "TSV")]}]
    current = live("users", "old-digest")
    state = LiveState("staging", [current])
    definitions = {current.pipeline_id: LiveDefinition(tuple(live_objects))}
    desired = DesiredEnvironment("staging", (users,))
    replaced = plan_environment(desired, state, Policy(allow_replace=True), definitions)
    (action,) = replaced.actions
    assert action.action is Action.REPLACE
    assert "extra: cannot remove an object from an activated pipeline" in action.reason
    blocked = plan_environment(desired, state, Policy(allow_replace=False), definitions)
    (action,) = blocked.actions
    assert (action.state, action.action) == (State.BLOCKED, Action.REPLACE)
    assert not action.will_change and action.approval is Approval.REPLACE
    pending = LiveState("staging", [live("users", "old-digest", state="PENDING")])
    (action,) = plan_environment(desired, pending, Policy(), definitions).actions
    assert action.action is Action.UPDATE  # never activated: anything goes


def test_duplicates_keep_the_matching_one(repo):
    (users,) = [p for p in compile_repo(repo, ["staging"]).compiled("staging")
                if p.name == "users"]
    state = LiveState("staging", [live("users", "pending", pid="df-b"),
                                  live("users", users.digest, pid="df-a")])
    plan = plan_environment(DesiredEnvironment("staging", (users,)), state, Policy())
    assert [(a.action, a.live.pipeline_id, a.repair) for a in plan.actions] == [
        (Action.DELETE, "df-b", True), (Action.NOOP, "df-a", False)]
    assert "whatever prune says" in plan.actions[0].reason


def test_drift_checks_go_to_the_pipelines_checked_longest_ago(repo):
    from reconciler.plan.planner import needs_definition

    compiled = {p.name: p for p in compile_repo(repo, ["staging"]).compiled("staging")}
    users, votes = compiled["users"], compiled["discussion_votes"]
    state = LiveState("staging", [live("users", users.digest, pid="df-u"),
                                  live("discussion_votes", "changed", pid="df-v")])
    desired = DesiredEnvironment("staging", (users, votes))
    assert needs_definition(desired, state) == ["df-v"]
    assert needs_definition(desired, state, 1) == ["df-v", "df-u"]
    state = LiveState("staging", [live("users", users.digest, pid="df-u"),
                                  live("discussion_votes", votes.digest, pid="df-v")])
    assert needs_definition(desired, state, 1, {"df-u": 10.0, "df-v": 5.0}) == ["df-v"]
    assert needs_definition(desired, state, 1, {"df-v": 5.0}) == ["df-u"]  # never checked


def test_repeated_references_compare_as_a_set_and_strings_in_order():
    a = [{"id": "x", "name": "x", "fields": [{"key": "dependsOn", "refValue": "a"},
                                             {"key": "dependsOn", "refValue": "b"},
                                             f("scriptArgument", "1"), f("scriptArgument", "2")]}]
    b = [{"id": "x", "name": "x", "fields": [{"key": "dependsOn", "refValue": "b"},
                                             {"key": "dependsOn", "refValue": "a"},
                                             f("scriptArgument", "2"), f("scriptArgument", "1")]}]
    (change,) = field_changes(a, b)
    assert change.field == "scriptArgument"


def users_of(repo):
    (users,) = [p for p in compile_repo(repo, ["staging"]).compiled("staging")
                if p.name == "users"]
    return users


def one(desired, state, policy=None, definitions=None):
    (action,) = plan_environment(desired, state, policy or Policy(), definitions).actions
    return action


def test_a_suspended_pipeline_is_deactivated_then_left_alone(repo):
    users = replace(users_of(repo), suspend=True)
    desired = DesiredEnvironment("staging", (users,))
    assert one(desired, LiveState("staging", [live("users", "old")])).action is \
        Action.DEACTIVATE
    left = one(desired, LiveState("staging", [live("users", "old", "INACTIVE")]))
    assert (left.action, left.reason) == (Action.NOOP, "suspended (suspend: true); inactive")
    assert one(desired, LiveState("staging", [])).action is Action.NOOP


def test_a_hand_deactivated_pipeline_is_reactivated_only_with_self_heal(repo):
    users = users_of(repo)
    desired = DesiredEnvironment("staging", (users,))
    state = LiveState("staging", [live("users", users.digest, "INACTIVE")])
    held = one(desired, state)
    assert (held.state, held.action, held.will_change) == (State.BLOCKED, Action.ACTIVATE, False)
    assert one(desired, state, Policy(self_heal=True)).action is Action.ACTIVATE
    never = LiveState("staging", [live("users", users.digest, "PENDING")])
    assert one(desired, never).action is Action.ACTIVATE  # an apply that did not finish


def test_drift_is_reported_unless_self_heal_reverts_it(repo):
    users = users_of(repo)
    edited = [o.api() for o in users.objects]
    edited[0] = {**edited[0], "name": "edited-in-the-console"}
    current = live("users", users.digest)
    definitions = {current.pipeline_id: LiveDefinition(tuple(edited))}
    desired = DesiredEnvironment("staging", (users,))
    state = LiveState("staging", [current])
    reported = one(desired, state, Policy(), definitions)
    assert (reported.state, reported.action) == (State.BLOCKED, Action.UPDATE)
    assert reported.changes and "changed outside git" in reported.reason
    assert one(desired, state, Policy(self_heal=True), definitions).action is Action.UPDATE


@pytest.mark.parametrize("relation, action", [
    (Relation.NEWER, Action.UPDATE), (Relation.SAME, Action.UPDATE),
    (Relation.UNVERSIONED, Action.UPDATE), (Relation.OLDER, State.BLOCKED),
    (Relation.UNRELATED, State.BLOCKED), (Relation.UNKNOWN, State.BLOCKED)])
def test_git_never_applies_the_past_without_allow_rollback(repo, relation, action):
    users = users_of(repo)
    desired = DesiredEnvironment("staging", (users,), revision="r2", relations={"r1": relation})
    state = LiveState("staging", [live("users", "old-digest", revision="r1")])
    planned = one(desired, state)
    assert planned.kind == action
    if action is State.BLOCKED:
        assert planned.approval is Approval.ROLLBACK and planned.action is Action.UPDATE
        assert planned.reason.endswith("a rollback is applied only when approved")
        allowed = replace(desired, allow_rollback=True)
        assert one(allowed, state).action is Action.UPDATE


def test_a_replace_is_approved_once_by_name_or_by_the_manifest(repo):
    users = users_of(repo)
    objects = [o.api() for o in users.objects]
    current = live("users", "old-digest")
    definitions = {current.pipeline_id: LiveDefinition(tuple(
        [*objects, {"id": "extra", "name": "extra", "fields": [f("type", "TSV")]}]))}
    state = LiveState("staging", [current])
    desired = DesiredEnvironment("staging", (users,))
    held = one(desired, state, Policy(), definitions)
    assert (held.state, held.action, held.approval) == (State.BLOCKED, Action.REPLACE,
                                                        Approval.REPLACE)
    assert "--" not in held.reason  # the planner names no flag: the CLI adds how to approve
    approved = replace(desired, allow_replace=frozenset({"users"}))
    assert one(approved, state, Policy(), definitions).action is Action.REPLACE
    allowed = DesiredEnvironment("staging", (replace(users, replace_allowed=True),))
    assert one(allowed, state, Policy(), definitions).action is Action.REPLACE


def test_a_replacement_starts_at_its_next_scheduled_time_after_now(repo):
    users = users_of(repo)  # daily at 12:00, anchored on the compile date (2026-11-26)
    after_noon = datetime(2026, 11, 26, 15, 30, tzinfo=UTC)
    moved = starting_after(users, after_noon)
    schedule = next(o for o in moved.objects if o.id == "DefaultSchedule")
    assert schedule.get("startDateTime") == "2026-11-27T12:00:00"
    before_noon = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    kept = next(o for o in starting_after(users, before_noon).objects
                if o.id == "DefaultSchedule")
    assert kept.get("startDateTime") == "2026-11-26T12:00:00"
    assert moved.digest == users.digest


def test_duplicates_keep_the_one_that_matches_else_the_newest_activated(repo):
    users = users_of(repo)
    older = live("users", "a", pid="df-old", created="2026-11-01T00:00:00")
    newer = live("users", "b", pid="df-new", created="2026-11-20T00:00:00")
    pending = live("users", "pending", "PENDING", pid="df-pending", created="2026-11-25T00:00:00")
    plan = plan_environment(DesiredEnvironment("staging", (users,)),
                            LiveState("staging", [older, pending, newer]), Policy())
    kept = [a for a in plan.actions if not a.repair]
    assert [a.live.pipeline_id for a in kept] == ["df-new"]
    assert sorted(a.live.pipeline_id for a in plan.actions if a.repair) == ["df-old",
                                                                           "df-pending"]
    definitions = {"df-pending": LiveDefinition(tuple(o.api() for o in users.objects))}
    desired = DesiredEnvironment("staging", (users,), valid={"df-pending": True})
    plan = plan_environment(desired, LiveState("staging", [older, pending, newer]), Policy(),
                            definitions)
    (kept,) = [a for a in plan.actions if not a.repair]
    assert kept.live.pipeline_id == "df-pending" and kept.action is Action.ACTIVATE


def test_a_rename_with_previous_names_adopts_the_live_pipeline(repo):
    users = replace(users_of(repo), name="members", previous_names=("users",))
    state = LiveState("staging", [live("users", users.digest)])
    adopted = one(DesiredEnvironment("staging", (users,)), state)
    assert adopted.action is Action.ADOPT and "renamed from users" in adopted.reason


def test_a_rename_without_previous_names_warns_that_two_would_load_one_table(repo):
    users = users_of(repo)
    renamed = replace(users, name="members")
    old = live("users", users.digest)
    definitions = {old.pipeline_id: LiveDefinition(tuple(o.api() for o in users.objects))}
    plan = plan_environment(DesiredEnvironment("staging", (renamed,)),
                            LiveState("staging", [old]), Policy(), definitions)
    (warning,) = plan.warnings
    assert "members will run beside users, and both write prod.users" in warning
    assert "previous_names: [users]" in warning
