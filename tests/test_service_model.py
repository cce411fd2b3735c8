"""The object-model check: each rule of the Developer Guide and dp-limits.md, and the model
file against the guide it is generated from."""

import importlib.util
import json
from pathlib import Path

import pytest

from reconciler.desired.servicemodel import check_definition, period_seconds

from .conftest import GUIDE, PROJECT


def obj(oid, **fields):
    out = []
    for key, value in fields.items():
        key = key.replace("__", "*")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                out.append({"key": key, "refValue": item["ref"]})
            else:
                out.append({"key": key, "stringValue": str(item)})
    return {"id": oid, "name": oid, "fields": out}


def base(*extra, schedule_type="cron"):
    objects = [
        obj("Default", scheduleType=schedule_type, role="R", resourceRole="RR",
            **({"schedule": {"ref": "Sched"}} if schedule_type != "ondemand" else {})),
        obj("Ec2", type="Ec2Resource"),
        obj("Act", type="ShellCommandActivity", command="echo", runsOn={"ref": "Ec2"}),
    ]
    if schedule_type != "ondemand":
        objects.append(obj("Sched", type="Schedule", period="1 days",
                           startDateTime="2026-01-01T00:00:00"))
    return [*objects, *extra]


def messages(objects, **kwargs):
    return [f.format() for f in check_definition(objects, **kwargs) if f.severity == "error"]


def test_a_valid_definition_has_no_findings():
    assert check_definition(base()) == []


def test_the_model_file_matches_the_guide(tmp_path, monkeypatch):
    """dp-object-*.md is the authority; regenerating from it changes nothing."""
    spec = importlib.util.spec_from_file_location("gen", PROJECT / "tools" /
                                                  "generate_service_model.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    monkeypatch.setattr(gen, "OUTPUT", tmp_path / "model.json")
    gen.main(str(GUIDE))
    committed = (PROJECT / "reconciler" / "desired" / "service_model.json").read_text()
    assert json.loads((tmp_path / "model.json").read_text()) == json.loads(committed)


@pytest.mark.parametrize("objects, expected", [
    ([obj("X", type="NoSuchType")], "unknown object type 'NoSuchType'"),
    ([obj("X", type="Schedule", period="1 days")],
     "Schedule requires one of startAt, startDateTime"),
    ([obj("X", type="SnsAlarm", topicArn="a", subject="s", message="m")], None),
    ([obj("X", type="ShellCommandActivity", command="c")],
     "ShellCommandActivity requires one of runsOn, workerGroup"),
    ([obj("X", type="ShellCommandActivity", command="c", runsOn={"ref": "Nope"})],
     "references 'Nope', which is not an object of this pipeline"),
    ([obj("X", type="ShellCommandActivity", command="c", runsOn="Ec2")],
     "must be a reference"),
    ([obj("X", type="ShellCommandActivity", command="c", runsOn={"ref": "Ec2"}, colour="red")],
     "unknown field for this object type (user-defined fields must start with 'my')"),
    ([obj("X", type="ShellCommandActivity", command="c", runsOn={"ref": "Ec2"},
          maximumRetries=6)], "the service allows at most 5"),
    ([obj("X", type="ShellCommandActivity", command="c", runsOn={"ref": "Ec2"},
          retryDelay="1 minutes")], "under the 2-minute minimum"),
    ([obj("S2", type="Schedule", period="10 minutes", startDateTime="2026-01-01T00:00:00")],
     "under the 15-minute minimum"),
    ([obj("X", type="ShellCommandActivity", command="c", runsOn={"ref": "Ec2"},
          attemptTimeout="soon")], "is not a period"),
    ([obj("X", type="ShellCommandActivity", command="c", runsOn={"ref": "Ec2"},
          **{"@status": "RUNNING"})], "runtime fields"),
    ([obj("Orphan", command="c")], "has no type"),
])
def test_rules_of_the_object_model(objects, expected):
    found = messages(base(*objects))
    if expected is None:  # SnsAlarm's role is inherited from Default
        assert found == []
    else:
        assert any(expected in m for m in found), found


def test_user_fields_starting_with_my_are_accepted():
    assert messages(base(obj("X", type="ShellCommandActivity", command="c",
                             runsOn={"ref": "Ec2"}, myColour="red"))) == []


def test_required_fields_are_inherited_from_default_and_parents():
    objects = base(obj("Parent", instanceType="m1.small"),
                   obj("Ec2b", type="Ec2Resource", parent={"ref": "Parent"}))
    assert messages(objects) == []
    no_role = [o for o in base() if o["id"] != "Default"] + [obj("Default", scheduleType="cron")]
    assert any("Ec2Resource requires field 'role'" in m for m in messages(no_role))


def test_size_limits():
    assert any("over the 10,240-byte limit per field" in m
               for m in messages(base(obj("X", type="S3DataNode", directoryPath="s" * 10_241))))
    wide = obj("W", type="S3DataNode", **{f"myField{i}": "v" for i in range(50)})
    assert any("51 fields, over the limit of 50" in m for m in messages(base(wide)))
    heavy = obj("H", type="S3DataNode", **{f"myField{i}": "v" * 400 for i in range(40)})
    assert any("over the limit of 15,360 bytes per object" in m for m in messages(base(heavy)))
    assert any("over the 256-byte limit" in m
               for m in messages(base(obj("i" * 257, type="S3DataNode"))))


def test_object_count_limit_is_configurable():
    many = [obj(f"N{i}", type="S3DataNode", directoryPath="s3://b/k") for i in range(100)]
    assert any("over the limit of 100 objects" in m for m in messages(base(*many)))
    assert messages(base(*many), max_objects=200) == []


def test_on_demand_rules():
    assert messages(base(schedule_type="ondemand")) == []
    with_schedule = base(obj("S", type="Schedule", period="1 days",
                             startDateTime="2026-01-01T00:00:00"), schedule_type="ondemand")
    assert any("must not have a Schedule object" in m for m in messages(with_schedule))
    mixed = base(obj("Y", type="ShellCommandActivity", command="c", runsOn={"ref": "Ec2"},
                     scheduleType="cron"), schedule_type="ondemand")
    assert any("on the Default object only" in m for m in messages(mixed))


def test_parameters_must_be_declared_and_named_my():
    objects = base(obj("X", type="S3DataNode", directoryPath="#{myPath}"))
    assert any("uses parameter '#{myPath}', which is not declared" in m
               for m in messages(objects))
    params = [{"id": "myPath", "attributes": [{"key": "type", "stringValue": "String"}]},
              {"id": "path", "attributes": [{"key": "type", "stringValue": "Text"}]}]
    found = messages(objects, parameter_objects=params,
                     parameter_values=[{"id": "myOther", "stringValue": "x"}])
    assert any("must start with 'my'" in m for m in found)
    assert any("not one of String, Integer, Double" in m for m in found)
    assert any("'myOther', which is not declared" in m for m in found)


@pytest.mark.parametrize("text, seconds", [("15 minutes", 900), ("1 Hour", 3600),
                                           ("2 days", 172800), ("soon", None)])
def test_periods(text, seconds):
    assert period_seconds(text) == seconds


def test_the_guide_is_where_the_tests_expect_it():
    assert Path(GUIDE, "dp-limits.md").is_file()
