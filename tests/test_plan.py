"""The pure parts of planning, on plain data: normalisation, field changes, classification
and guards."""

from datetime import date

from reconciler.desired.config import Policy
from reconciler.live.model import LiveDefinition, LivePipeline, LiveState
from reconciler.plan.diff import anchor_like_live, field_changes, normalise
from reconciler.plan.planner import Action, DesiredEnvironment, plan_environment

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
    from reconciler.source import read_snapshot

    def digests(day):
        result = compile_project(read_snapshot(repo), CompileOptions(day))
        return {p.name: p.digest for p in result.compiled("staging")}

    assert digests(date(2026, 1, 1)) == digests(date(2026, 11, 26))
    before = digests(date(2026, 1, 1))
    text = (repo / "pipelines/users.yaml").read_text()
    (repo / "pipelines/users.yaml").write_text(text.replace("load_time: 12:00",
                                                            "load_time: 13:00"))
    after = digests(date(2026, 1, 1))
    assert after["users"] != before["users"]
    assert after["discussion_votes"] == before["discussion_votes"]


def live(name, digest, state="SCHEDULED", pid=None, manifest=None):
    return LivePipeline(pid or f"df-{name}", f"staging-{name}",
                        {"dataduct-reconciler/pipeline": name,
                         "dataduct-reconciler/digest": digest,
                         "dataduct-reconciler/manifest": manifest or f"pipelines/{name}.yaml"},
                        state)


def test_classification_without_reading_definitions(repo):
    compiled = {p.name: p for p in compile_repo(repo, ["staging"]).compiled("staging")}
    users, votes = compiled["users"], compiled["discussion_votes"]
    desired = DesiredEnvironment("staging", (users, votes), frozenset({"pipelines/broken.yaml"}))
    state = LiveState("staging", [live("users", users.digest, "INACTIVE"),
                                  live("old", "x"), live("broken", "y",
                                                         manifest="pipelines/broken.yaml")])
    plan = plan_environment(desired, state, Policy(prune=True, max_delete_percent=100))
    got = {a.pipeline: (a.action, a.reason) for a in plan.actions}
    assert got == {
        "users": (Action.ACTIVATE, "definition is current; the pipeline is inactive"),
        "discussion_votes": (Action.CREATE, "not in AWS yet"),
        "old": (Action.DELETE, "no manifest defines it for staging any more"),
        "broken": (Action.UNKNOWN, "pipelines/broken.yaml does not compile; the pipeline is "
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
    assert (action.action, action.blocked) == (Action.BLOCKED, Action.REPLACE)
    pending = LiveState("staging", [live("users", "old-digest", state="PENDING")])
    (action,) = plan_environment(desired, pending, Policy(), definitions).actions
    assert action.action is Action.UPDATE  # never activated: anything goes


def test_duplicates_keep_the_matching_one(repo):
    (users,) = [p for p in compile_repo(repo, ["staging"]).compiled("staging")
                if p.name == "users"]
    state = LiveState("staging", [live("users", "pending", pid="df-b"),
                                  live("users", users.digest, pid="df-a")])
    plan = plan_environment(DesiredEnvironment("staging", (users,)), state, Policy())
    assert [(a.action, a.live.pipeline_id) for a in plan.actions] == [
        (Action.NOOP, "df-a"), (Action.BLOCKED, "df-b")]


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
