"""The object-model check: each rule of the Developer Guide and dp-limits.md, and the model
file against the guide it is generated from."""

import importlib.util
import json
from pathlib import Path

import pytest

from reconciler.service.model import check_definition, period_seconds

from .conftest import GUIDE, PROJECT, require_reference


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
    require_reference(GUIDE)
    spec = importlib.util.spec_from_file_location("gen", PROJECT / "tools" /
                                                  "generate_service_model.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    monkeypatch.setattr(gen, "OUTPUT", tmp_path / "model.json")
    gen.main(str(GUIDE))
    committed = (PROJECT / "reconciler" / "service" / "service_model.json").read_text()
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
    assert any("uses '#{myPath}', which is neither a parameter nor a field" in m
               for m in messages(objects))
    params = [{"id": "myPath", "attributes": [{"key": "type", "stringValue": "String"}]},
              {"id": "path", "attributes": [{"key": "type", "stringValue": "Text"}]}]
    found = messages(objects, parameter_objects=params)
    assert any("must start with 'my'" in m for m in found)
    assert any("not one of String, Integer, Double" in m for m in found)


@pytest.mark.parametrize("text, seconds", [("15 minutes", 900), ("1 Hour", 3600),
                                           ("2 days", 172800), ("soon", None)])
def test_periods(text, seconds):
    assert period_seconds(text) == seconds


def test_the_guide_is_where_the_tests_expect_it():
    require_reference(GUIDE)
    assert Path(GUIDE, "dp-limits.md").is_file()


# -- what AWS accepts that the field tables do not say (each case cites its guide page) ------


@pytest.mark.parametrize("field, value", [
    ("scheduleType", "CRON"),            # dp-custom-templates.md, dp-object-pigactivity.md
    ("failureAndRerunMode", "CASCADE"),  # dp-object-default.md examples
])
def test_enumerations_are_case_insensitive(field, value):
    objects = [o if o["id"] != "Default" else obj("Default", role="R", resourceRole="RR",
                                                    schedule={"ref": "Sched"}, **{field: value})
               for o in base()]
    assert messages(objects) == []


def test_ondemand_written_in_capitals_is_on_demand():
    # emrcluster-example-private-subnet.md writes "scheduleType": "ONDEMAND"
    objects = [obj("Default", scheduleType="ONDEMAND", role="R", resourceRole="RR"),
               obj("Ec2", type="Ec2Resource"),
               obj("Act", type="ShellCommandActivity", command="echo", runsOn={"ref": "Ec2"}),
               obj("S", type="Schedule", period="1 days", startDateTime="2026-01-01T00:00:00")]
    assert any("must not have a Schedule object" in m for m in messages(objects))


def test_resource_failure_action_in_mixed_case():
    # dp-object-emrcluster.md example: "actionOnResourceFailure": "retryAll"
    assert messages(base(obj("C", type="EmrCluster", actionOnResourceFailure="retryAll"))) == []


def test_a_value_without_a_parameter_object_declares_the_parameter():
    # emrcluster-example-private-subnet.md gives values for ids no parameter object declares
    objects = base(obj("X", type="S3DataNode", directoryPath="#{myPath}"))
    assert messages(objects, parameter_values=[{"id": "myPath", "stringValue": "s3://b"}]) == []


def test_an_expression_may_name_a_field_of_the_object_its_parent_or_default():
    # dp-pipeline-expressions.md: "Expressions can use fields of the current object"
    own = obj("X", type="S3DataNode", myBucket="b", directoryPath="s3://#{myBucket}/x")
    parent = obj("P", myRoot="r")
    child = obj("Y", type="S3DataNode", parent={"ref": "P"}, directoryPath="s3://#{myRoot}")
    defaults = [o if o["id"] != "Default" else {**o, "fields": [*o["fields"], {
        "key": "myEnv", "stringValue": "prod"}]} for o in base()]
    via_default = obj("Z", type="S3DataNode", directoryPath="s3://b/#{myEnv}")
    assert messages([*defaults, own, parent, child, via_default]) == []


def test_parameter_values_are_checked_against_type_and_allowed_values():
    # dp-custom-templates.md, "Parameter Attributes": type and allowedValues
    objects = base(obj("X", type="S3DataNode", directoryPath="#{myPath}/#{myCount}"))
    params = [{"id": "myPath", "attributes": [{"key": "allowedValues", "stringValue": "s3://a"},
                                              {"key": "allowedValues", "stringValue": "s3://b"}]},
              {"id": "myCount", "attributes": [{"key": "type", "stringValue": "Integer"}]}]
    ok = [{"id": "myPath", "stringValue": "s3://b"}, {"id": "myCount", "stringValue": "3"}]
    assert messages(objects, parameter_objects=params, parameter_values=ok) == []
    bad = [{"id": "myPath", "stringValue": "s3://c"}, {"id": "myCount", "stringValue": "x"}]
    found = messages(objects, parameter_objects=params, parameter_values=bad)
    assert any("allows s3://a, s3://b; 's3://c' is not" in m for m in found)
    assert any("'myCount' is an Integer; 'x' is not" in m for m in found)


def test_type_default_on_the_default_object():
    # dp-object-default.md and most examples write "type": "Default"
    objects = [o if o["id"] != "Default" else {**o, "fields": [
        *o["fields"], {"key": "type", "stringValue": "Default"}]} for o in base()]
    assert messages(objects) == []
    assert any("unknown object type 'Default'" in m
               for m in messages(base(obj("D2", type="Default"))))


def test_fields_the_examples_use_are_accepted():
    # dp-object-redshiftcopyactivity.md writes logUri on an Ec2Resource; its table omits it
    assert check_definition(base(obj("E2", type="Ec2Resource", logUri="s3://b/logs"))) == []


def test_a_field_no_one_documents_is_a_warning_not_an_error():
    found = check_definition(base(obj("X", type="S3DataNode", colour="red")))
    assert [(f.severity, f.field) for f in found] == [("warning", "colour")]


def test_the_retry_limit_applies_to_activities_only():
    # dp-limits.md: "Maximum number of retries per activity: 5"
    assert messages(base(obj("E2", type="Ec2Resource", maximumRetries=10))) == []
    assert any("at most 5" in m for m in messages(base(obj(
        "A2", type="ShellCommandActivity", command="c", runsOn={"ref": "Ec2"},
        maximumRetries=6))))


def test_an_expression_skips_format_and_enumeration_checks():
    assert messages(base(obj("X", type="ShellCommandActivity", command="c",
                             runsOn={"ref": "Ec2"}, attemptTimeout="#{myTimeout}",
                             actionOnTaskFailure="#{myAction}", myTimeout="1 hours",
                             myAction="continue"))) == []


# -- what AWS refuses -------------------------------------------------------------------------


def test_both_members_of_a_specify_only_one_group_are_refused():
    # dp-object-shellcommandactivity.md: "Specify only one scriptUri, or command field"
    found = messages(base(obj("X", type="ShellCommandActivity", command="c",
                              scriptUri="s3://b/x.sh", runsOn={"ref": "Ec2"})))
    assert any("takes only one of command, scriptUri" in m for m in found)
    # dp-object-redshiftdatabase.md: "You can't specify both connectionString and clusterId"
    found = messages(base(obj("R", type="RedshiftDatabase", clusterId="c", username="u",
                              connectionString="jdbc:x", databaseName="d",
                              **{"*password": "p"})))
    assert any("takes only one of clusterId, connectionString" in m for m in found)


def test_script_arguments_with_a_script_uri_are_a_warning_as_aws_runs_them():
    # dp-object-shellcommandactivity.md: "Using it with scriptUri causes an error", but AWS's
    # own samples (awslabs/data-pipeline-samples: Kinesis to S3, Hadoop TeraSort) run it
    definition = base(obj("X", type="ShellCommandActivity", scriptUri="s3://b/x.sh",
                          scriptArgument="a", runsOn={"ref": "Ec2"}))
    assert messages(definition) == []
    warnings = [f.format() for f in check_definition(definition) if f.severity == "warning"]
    assert any("AWS runs the script with the arguments" in w for w in warnings)


def test_a_dangling_reference_in_a_user_field_is_refused():
    # dp-writing-pipeline-definition.md: a user-defined field can reference a component
    found = messages(base(obj("X", type="S3DataNode", myReference={"ref": "Nowhere"})))
    assert any("references 'Nowhere', which is not an object" in m for m in found)


@pytest.mark.parametrize("field, target, expected", [
    ("runsOn", "Data", "runsOn takes Ec2Resource or EmrCluster"),
    ("schedule", "Ec2", "schedule takes Schedule"),
    ("input", "Ec2", "input takes one of S3DataNode"),
])
def test_a_reference_to_an_object_of_the_wrong_type_is_refused(field, target, expected):
    objects = base(obj("Data", type="S3DataNode", directoryPath="s3://b/d"),
                   obj("X", type="ShellCommandActivity", command="c",
                       **({"runsOn": {"ref": "Ec2"}} if field != "runsOn" else {}),
                       **{field: {"ref": target}}))
    assert any(expected in m for m in messages(objects)), messages(objects)


def test_my_followed_by_a_lower_case_letter_is_not_a_user_field():
    # dp-writing-pipeline-definition.md: "my" then a capital letter or underscore
    assert messages(base(obj("X", type="S3DataNode", my_field="a", myField="b"))) == []
    assert any("'my' followed by a capital letter" in m
               for m in messages(base(obj("X", type="S3DataNode", myfield="a"))))
