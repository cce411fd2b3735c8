"""The embedded Data Pipeline against the documented behaviour of the service.

Each test names its source: a page of the Developer Guide under
shared/reference/aws-data-pipeline-guide/doc_source/, or the botocore API model
(botocore/data/datapipeline/2012-10-29/service-2.json). docs/emulator.md lists them.
"""

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from reconciler import emulator

ROLE = [{"key": "role", "stringValue": "DataPipelineDefaultRole"},
        {"key": "resourceRole", "stringValue": "DataPipelineDefaultResourceRole"}]


def f(key, value):
    return {"key": key, "stringValue": str(value)}


def ref(key, value):
    return {"key": key, "refValue": value}


def scheduled(start="2026-11-26T10:00:00", period="1 hours", occurrences=None, retries=1,
              extra=()):
    """A small scheduled pipeline: two activities, b depends on a, on a worker group, and a
    data node."""
    schedule = [f("type", "Schedule"), f("period", period), f("startDateTime", start)]
    if occurrences:
        schedule.append(f("occurrences", occurrences))
    return [
        {"id": "Default", "name": "Default", "fields": [
            f("scheduleType", "cron"), ref("schedule", "Hourly"), *ROLE,
            f("maximumRetries", retries), f("retryDelay", "2 minutes")]},
        {"id": "Hourly", "name": "Hourly", "fields": schedule},
        {"id": "a", "name": "a", "fields": [f("type", "ShellCommandActivity"),
                                              f("command", "echo a"), f("workerGroup", "wg")]},
        {"id": "b", "name": "b", "fields": [f("type", "ShellCommandActivity"),
                                              f("command", "echo b"), f("workerGroup", "wg"),
                                              ref("dependsOn", "a")]},
        {"id": "out", "name": "out", "fields": [f("type", "S3DataNode"),
                                                  f("directoryPath", "s3://bucket/out")]},
        *extra,
    ]


def ondemand():
    return [{"id": "Default", "name": "Default", "fields": [f("scheduleType", "ondemand"),
                                                             *ROLE]},
            {"id": "a", "name": "a", "fields": [f("type", "ShellCommandActivity"),
                                                  f("command", "echo"), f("workerGroup", "wg")]}]


def code(error: ClientError) -> str:
    return error.response["Error"]["Code"]


def new(client, objects=None, name="p", **kwargs):
    pid = client.create_pipeline(name=name, uniqueId=name + "-token", **kwargs)["pipelineId"]
    if objects is not None:
        result = client.put_pipeline_definition(pipelineId=pid, pipelineObjects=objects)
        assert not result["errored"], result
    return pid


def fields(client, pid):
    (desc,) = client.describe_pipelines(pipelineIds=[pid])["pipelineDescriptionList"]
    return {x["key"]: x["stringValue"] for x in desc["fields"]}


def advance(seconds):
    emulator.CONTROLS.advance(seconds)


# 1 ------------------------------------------------------------------------------------------


def test_create_pipeline_is_idempotent_on_name_and_unique_id(embedded):
    """service-2.json, CreatePipeline.uniqueId: a retried call returns the same pipeline."""
    first = embedded.create_pipeline(name="users", uniqueId="tok")["pipelineId"]
    assert embedded.create_pipeline(name="users", uniqueId="tok")["pipelineId"] == first
    other = embedded.create_pipeline(name="users-2", uniqueId="tok")["pipelineId"]
    assert other != first
    assert len(embedded.list_pipelines()["pipelineIdList"]) == 2


# 2 ------------------------------------------------------------------------------------------


def test_tags_at_creation_add_and_remove_and_the_limit_of_ten(embedded):
    """dp-adding-tags.md and service-2.json tagList (max 10)."""
    pid = new(embedded, tags=[{"key": "team", "value": "data"}])
    embedded.add_tags(pipelineId=pid, tags=[{"key": "env", "value": "prod"},
                                            {"key": "team", "value": "etl"}])
    (desc,) = embedded.describe_pipelines(pipelineIds=[pid])["pipelineDescriptionList"]
    assert sorted((t["key"], t["value"]) for t in desc["tags"]) == [("env", "prod"),
                                                                    ("team", "etl")]
    embedded.remove_tags(pipelineId=pid, tagKeys=["team"])
    (desc,) = embedded.describe_pipelines(pipelineIds=[pid])["pipelineDescriptionList"]
    assert desc["tags"] == [{"key": "env", "value": "prod"}]
    with pytest.raises(ClientError) as caught:
        embedded.add_tags(pipelineId=pid, tags=[{"key": f"k{i}", "value": "v"}
                                                for i in range(10)])
    assert code(caught.value) == "InvalidRequestException"
    with pytest.raises(ClientError):
        embedded.create_pipeline(name="many", uniqueId="m",
                                 tags=[{"key": f"k{i}", "value": "v"} for i in range(11)])


# 3 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 50, 51, 100, 101])
def test_list_pipelines_pages_every_count(embedded, count):
    """service-2.json ListPipelines: marker and hasMoreResults; stock moto drops the last
    pipeline at 50k+1."""
    created = {new(embedded, name=f"p{i}") for i in range(count)}
    seen, marker, pages = [], None, 0
    while True:
        page = embedded.list_pipelines(**({"marker": marker} if marker else {}))
        seen += [p["id"] for p in page["pipelineIdList"]]
        pages += 1
        if not page["hasMoreResults"]:
            assert "marker" not in page
            break
        marker = page["marker"]
    assert len(seen) == len(set(seen)) == count and set(seen) == created
    assert pages == max(1, -(-count // 50))


# 4 ------------------------------------------------------------------------------------------


def test_describe_calls_take_at_most_25_ids(embedded):
    """service-2.json DescribePipelines.pipelineIds / DescribeObjects.objectIds: 25 at most."""
    ids = [new(embedded, name=f"p{i}") for i in range(26)]
    assert len(embedded.describe_pipelines(pipelineIds=ids[:25])["pipelineDescriptionList"]) == 25
    with pytest.raises(ClientError) as caught:
        embedded.describe_pipelines(pipelineIds=ids)
    assert code(caught.value) == "InvalidRequestException"
    with pytest.raises(ClientError) as caught:
        embedded.describe_objects(pipelineId=ids[0], objectIds=[f"o{i}" for i in range(26)])
    assert code(caught.value) == "InvalidRequestException"


# 5, 13 --------------------------------------------------------------------------------------

OPERATIONS = {
    "describe_pipelines": lambda c, p: c.describe_pipelines(pipelineIds=[p]),
    "get_pipeline_definition": lambda c, p: c.get_pipeline_definition(pipelineId=p),
    "put_pipeline_definition": lambda c, p: c.put_pipeline_definition(
        pipelineId=p, pipelineObjects=ondemand()),
    "validate_pipeline_definition": lambda c, p: c.validate_pipeline_definition(
        pipelineId=p, pipelineObjects=ondemand()),
    "activate_pipeline": lambda c, p: c.activate_pipeline(pipelineId=p),
    "deactivate_pipeline": lambda c, p: c.deactivate_pipeline(pipelineId=p),
    "add_tags": lambda c, p: c.add_tags(pipelineId=p, tags=[{"key": "k", "value": "v"}]),
    "remove_tags": lambda c, p: c.remove_tags(pipelineId=p, tagKeys=["k"]),
    "query_objects": lambda c, p: c.query_objects(pipelineId=p, sphere="COMPONENT"),
    "describe_objects": lambda c, p: c.describe_objects(pipelineId=p, objectIds=["a"]),
    "delete_pipeline": lambda c, p: c.delete_pipeline(pipelineId=p),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_unknown_and_deleted_ids_give_typed_errors(embedded, operation):
    """service-2.json: PipelineNotFoundException / PipelineDeletedException per operation
    (DeletePipeline lists no PipelineDeletedException: a deleted id is not found)."""
    call = OPERATIONS[operation]
    with pytest.raises(ClientError) as caught:
        call(embedded, "df-DOESNOTEXIST0000000")
    assert code(caught.value) == "PipelineNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    pid = new(embedded, ondemand())
    embedded.delete_pipeline(pipelineId=pid)
    with pytest.raises(ClientError) as caught:
        call(embedded, pid)
    expected = "PipelineNotFoundException" if operation == "delete_pipeline" \
        else "PipelineDeletedException"
    assert code(caught.value) == expected
    assert pid not in [p["id"] for p in embedded.list_pipelines()["pipelineIdList"]]


# 6, 7 ---------------------------------------------------------------------------------------


def test_put_saves_latest_and_reports_validation_errors_in_the_aws_shape(embedded):
    """service-2.json PutPipelineDefinitionOutput: validationErrors [{id, errors}],
    validationWarnings [{id, warnings}], errored; errored definitions are saved."""
    pid = new(embedded)
    broken = ondemand() + [{"id": "x", "name": "x", "fields": [
        f("type", "ShellCommandActivity"), f("workerGroup", "wg"), f("maximumRetries", 9)]}]
    result = embedded.put_pipeline_definition(pipelineId=pid, pipelineObjects=broken)
    assert result["errored"] is True
    errors = {e["id"]: e["errors"] for e in result["validationErrors"]}
    assert any("requires one of command, scriptUri" in m for m in errors["x"])
    assert any("maximumRetries" in m and "at most 5" in m for m in errors["x"])
    saved = embedded.get_pipeline_definition(pipelineId=pid)["pipelineObjects"]
    assert {o["id"] for o in saved} == {"Default", "a", "x"}


def test_validate_gives_the_same_verdict_without_saving(embedded):
    """service-2.json ValidatePipelineDefinition."""
    pid = new(embedded, ondemand())
    broken = _drop(ondemand(), "a", "command")
    verdict = embedded.validate_pipeline_definition(pipelineId=pid, pipelineObjects=broken)
    assert verdict["errored"] is True
    put = embedded.put_pipeline_definition(pipelineId=pid, pipelineObjects=broken)
    assert (put["validationErrors"], put["errored"]) == (verdict["validationErrors"], True)
    fine = embedded.validate_pipeline_definition(pipelineId=pid, pipelineObjects=ondemand())
    assert fine["errored"] is False and fine["validationErrors"] == []


@pytest.mark.parametrize("objects, message", [
    ([{"id": "a", "name": "a", "fields": [f("type", "")]}], "empty string or reference"),
    ([{"id": f"n{i}", "name": "n", "fields": [f("type", "TSV")]} for i in range(101)],
     "at most 100"),
])
def test_hard_errors_are_refused_and_store_nothing(embedded, objects, message):
    """service-2.json PutPipelineDefinition: saved unless a name or id is missing, a field is
    empty, or there are too many objects. (botocore itself refuses an empty id or name.)"""
    pid = new(embedded, ondemand())
    with pytest.raises(ClientError) as caught:
        embedded.put_pipeline_definition(pipelineId=pid, pipelineObjects=objects)
    assert code(caught.value) == "InvalidRequestException"
    assert message in caught.value.response["Error"]["Message"]
    kept = embedded.get_pipeline_definition(pipelineId=pid)["pipelineObjects"]
    assert {o["id"] for o in kept} == {"Default", "a"}


# 8 ------------------------------------------------------------------------------------------


def test_parameters_are_stored_and_encrypted_values_masked(embedded):
    """dp-custom-templates.md (parameters, values) and encrypted '*' parameters."""
    pid = new(embedded)
    objects = ondemand() + [{"id": "db", "name": "db", "fields": [
        f("type", "JdbcDatabase"), f("connectionString", "jdbc:mysql://h/#{myDb}"),
        f("jdbcDriverClass", "com.mysql.jdbc.Driver"), f("username", "u"),
        f("*password", "#{*myPassword}")]}]
    params = [{"id": "myDb", "attributes": [{"key": "type", "stringValue": "String"}]},
              {"id": "*myPassword", "attributes": [{"key": "type", "stringValue": "String"}]}]
    values = [{"id": "myDb", "stringValue": "users"},
              {"id": "*myPassword", "stringValue": "s3cret"}]
    result = embedded.put_pipeline_definition(pipelineId=pid, pipelineObjects=objects,
                                              parameterObjects=params, parameterValues=values)
    assert not result["errored"], result
    got = embedded.get_pipeline_definition(pipelineId=pid)
    assert got["parameterObjects"] == params
    assert {v["id"]: v["stringValue"] for v in got["parameterValues"]} == {
        "myDb": "users", "*myPassword": "********"}
    db = next(o for o in got["pipelineObjects"] if o["id"] == "db")
    assert f("*password", "#{*myPassword}") in db["fields"]


# 9, 10, 11 ----------------------------------------------------------------------------------


def test_latest_and_active_differ_until_activation(embedded):
    """service-2.json GetPipelineDefinition.version: latest (default) or active."""
    pid = new(embedded, ondemand())
    assert embedded.get_pipeline_definition(pipelineId=pid, version="active")[
        "pipelineObjects"] == []
    embedded.activate_pipeline(pipelineId=pid)
    changed = ondemand()
    changed[1]["fields"][1] = f("command", "echo changed")
    embedded.put_pipeline_definition(pipelineId=pid, pipelineObjects=changed)

    def command(version):
        objects = embedded.get_pipeline_definition(pipelineId=pid, version=version)[
            "pipelineObjects"]
        return next(x["stringValue"] for o in objects if o["id"] == "a" for x in o["fields"]
                    if x["key"] == "command")

    assert (command("latest"), command("active")) == ("echo changed", "echo")
    embedded.activate_pipeline(pipelineId=pid)
    assert command("active") == "echo changed"


def test_activation_refuses_empty_errored_and_backfilling_definitions(embedded):
    """service-2.json ActivatePipeline; dp-concepts-schedules.md (activation is blocked when
    the scheduled start is more than one day ago)."""
    pid = new(embedded)
    with pytest.raises(ClientError) as caught:
        embedded.activate_pipeline(pipelineId=pid)
    assert "no definition" in caught.value.response["Error"]["Message"]
    embedded.put_pipeline_definition(pipelineId=pid, pipelineObjects=[
        {"id": "Default", "name": "Default", "fields": [f("scheduleType", "ondemand")]},
        {"id": "a", "name": "a", "fields": [f("type", "ShellCommandActivity")]}])
    with pytest.raises(ClientError) as caught:
        embedded.activate_pipeline(pipelineId=pid)
    assert "validation errors" in caught.value.response["Error"]["Message"]
    old = new(embedded, scheduled(start="2026-11-20T10:00:00"), name="old")
    with pytest.raises(ClientError) as caught:
        embedded.activate_pipeline(pipelineId=old)
    assert "more than one day in the past" in caught.value.response["Error"]["Message"]
    assert fields(embedded, old)["@pipelineState"] == "PENDING"
    embedded.activate_pipeline(pipelineId=old, startTimestamp=datetime(2026, 11, 26, 9,
                                                                       tzinfo=UTC))
    assert fields(embedded, old)["@pipelineState"] == "SCHEDULED"


def test_activation_takes_parameter_values_and_needs_every_parameter(embedded):
    """service-2.json ActivatePipeline.parameterValues."""
    pid = new(embedded)
    objects = ondemand()
    objects[1]["fields"][1] = f("command", "echo #{myGreeting}")
    params = [{"id": "myGreeting", "attributes": [{"key": "type", "stringValue": "String"}]}]
    embedded.put_pipeline_definition(pipelineId=pid, pipelineObjects=objects,
                                     parameterObjects=params)
    with pytest.raises(ClientError) as caught:
        embedded.activate_pipeline(pipelineId=pid)
    assert "no value for parameters: myGreeting" in caught.value.response["Error"]["Message"]
    embedded.activate_pipeline(pipelineId=pid, parameterValues=[{"id": "myGreeting",
                                                                 "stringValue": "hi"}])
    active = embedded.get_pipeline_definition(pipelineId=pid, version="active")
    assert active["parameterValues"] == [{"id": "myGreeting", "stringValue": "hi"}]


def test_pipeline_states_through_activation_deactivation_and_reactivation(embedded):
    """dp-interpret-status.md and service-2.json DeactivatePipeline (cancelActive)."""
    pid = new(embedded, scheduled(start="2026-11-26T09:00:00"))
    assert fields(embedded, pid)["@pipelineState"] == "PENDING"
    embedded.activate_pipeline(pipelineId=pid)
    assert fields(embedded, pid)["@pipelineState"] == "SCHEDULED"
    advance(30)  # a is running
    embedded.deactivate_pipeline(pipelineId=pid, cancelActive=False)
    assert fields(embedded, pid)["@pipelineState"] == "DEACTIVATING"
    advance(60)
    assert fields(embedded, pid)["@pipelineState"] == "INACTIVE"
    embedded.activate_pipeline(pipelineId=pid)
    assert fields(embedded, pid)["@pipelineState"] == "SCHEDULED"
    advance(30)
    embedded.deactivate_pipeline(pipelineId=pid)  # cancelActive defaults to true
    assert fields(embedded, pid)["@pipelineState"] == "INACTIVE"
    statuses = {x["stringValue"] for o in embedded.describe_objects(
        pipelineId=pid, objectIds=embedded.query_objects(pipelineId=pid, sphere="INSTANCE")[
            "ids"])["pipelineObjects"] for x in o["fields"] if x["key"] == "@status"}
    assert "CANCELED" in statuses


# 12 -----------------------------------------------------------------------------------------

EDITS = {
    "removing an object": (lambda o: [x for x in o if x["id"] != "b"], "b",
                           "cannot remove an object"),
    "changing a schedule period": (lambda o: _set(o, "Hourly", "period", "2 hours"), "Hourly",
                                   "period: cannot change the schedule period"),
    "changing the scheduled start": (lambda o: _set(o, "Hourly", "startDateTime",
                                                    "2026-11-27T10:00:00"), "Hourly",
                                     "startDateTime: cannot change the scheduled start"),
    "adding a reference field": (lambda o: _add(o, "a", ref("dependsOn", "b")), "a",
                                 "dependsOn: cannot add, change or remove a reference field"),
    "removing a reference field": (lambda o: _drop(o, "b", "dependsOn"), "b",
                                   "dependsOn: cannot add, change or remove a reference field"),
    "a new object writing to an existing one": (
        lambda o: o + [{"id": "c", "name": "c", "fields": [
            f("type", "ShellCommandActivity"), f("command", "x"), f("workerGroup", "wg"),
            ref("output", "out")]}], "c", "cannot reference the existing object out in an output"),
}


def _set(objects, oid, key, value):
    return [{**o, "fields": [f(key, value) if x["key"] == key else x for x in o["fields"]]}
            if o["id"] == oid else o for o in objects]


def _add(objects, oid, field):
    return [{**o, "fields": [*o["fields"], field]} if o["id"] == oid else o for o in objects]


def _drop(objects, oid, key):
    return [{**o, "fields": [x for x in o["fields"] if x["key"] != key]} if o["id"] == oid
            else o for o in objects]


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_activated_pipeline_refuses_what_the_guide_says(embedded, edit):
    """dp-manage-pipeline-modify-console.md, Limitations."""
    change, oid, message = EDITS[edit]
    pid = new(embedded, scheduled(start="2026-11-26T09:00:00"))
    before = change(scheduled(start="2026-11-26T09:00:00"))
    assert not embedded.validate_pipeline_definition(pipelineId=pid,
                                                     pipelineObjects=before)["errored"]
    embedded.activate_pipeline(pipelineId=pid)
    result = embedded.put_pipeline_definition(pipelineId=pid, pipelineObjects=before)
    assert result["errored"] is True
    errors = {e["id"]: e["errors"] for e in result["validationErrors"]}
    assert any(message in m for m in errors[oid]), errors
    with pytest.raises(ClientError):
        embedded.activate_pipeline(pipelineId=pid)


def test_other_edits_are_saved_as_latest_and_apply_on_reactivation(embedded):
    """dp-manage-pipeline-modify-console.md: other changes apply after re-activation."""
    pid = new(embedded, scheduled(start="2026-11-26T09:00:00"))
    embedded.activate_pipeline(pipelineId=pid)
    edited = _set(scheduled(start="2026-11-26T09:00:00"), "a", "command", "echo A")
    result = embedded.put_pipeline_definition(pipelineId=pid, pipelineObjects=edited)
    assert result["errored"] is False
    embedded.activate_pipeline(pipelineId=pid)
    active = embedded.get_pipeline_definition(pipelineId=pid, version="active")
    assert f("command", "echo A") in next(o for o in active["pipelineObjects"]
                                          if o["id"] == "a")["fields"]


# 14 -----------------------------------------------------------------------------------------


def instances(client, pid, **query):
    ids = client.query_objects(pipelineId=pid, sphere="INSTANCE", **query)["ids"]
    if not ids:
        return {}
    objs = client.describe_objects(pipelineId=pid, objectIds=ids)["pipelineObjects"]
    return {o["id"]: {x["key"]: x.get("stringValue", x.get("refValue")) for x in o["fields"]}
            for o in objs}


def test_runs_follow_the_schedule_dependencies_and_retries(embedded):
    """dp-concepts-schedules.md (cron instances at period starts), dp-interpret-status.md,
    dp-object-shellcommandactivity.md (maximumRetries, retryDelay)."""
    emulator.CONTROLS.outcomes[("*", "a")] = emulator.Outcome(fail_times=1,
                                                              duration_seconds=300)
    pid = new(embedded, scheduled(start="2026-11-26T09:00:00", occurrences=2, retries=2))
    embedded.activate_pipeline(pipelineId=pid)
    found = instances(embedded, pid)
    assert set(found) == {"@a_2026-11-26T09:00:00", "@b_2026-11-26T09:00:00"}
    a, b = found["@a_2026-11-26T09:00:00"], found["@b_2026-11-26T09:00:00"]
    assert a["@status"] == "RUNNING" and b["@status"] == "WAITING_ON_DEPENDENCIES"
    assert (a["@scheduledStartTime"], a["@scheduledEndTime"]) == ("2026-11-26T09:00:00",
                                                                 "2026-11-26T10:00:00")
    advance(3600)  # 10:00: a failed once (09:05), retried at 09:07, done 09:12; b 09:12-09:17
    found = instances(embedded, pid)
    a = found["@a_2026-11-26T09:00:00"]
    assert (a["@status"], a["@attemptCount"], a["@triesLeft"]) == ("FINISHED", "2", "1")
    assert (a["@actualStartTime"], a["@actualEndTime"]) == ("2026-11-26T09:00:00",
                                                           "2026-11-26T09:12:00")
    assert a["@headAttempt"] == "@a_2026-11-26T09:00:00_Attempt=2"
    b = found["@b_2026-11-26T09:00:00"]
    assert (b["@status"], b["@actualStartTime"]) == ("FINISHED", "2026-11-26T09:12:00")
    assert "@a_2026-11-26T10:00:00" in found  # second period
    attempts = embedded.query_objects(pipelineId=pid, sphere="ATTEMPT")["ids"]
    first = embedded.describe_objects(pipelineId=pid, objectIds=[
        "@a_2026-11-26T09:00:00_Attempt=1"])["pipelineObjects"][0]
    first = {x["key"]: x.get("stringValue", x.get("refValue")) for x in first["fields"]}
    assert (first["@status"], first["errorMessage"]) == ("FAILED", "simulated failure")
    assert len(attempts) >= 3
    advance(3600)
    desc = fields(embedded, pid)
    assert desc["@pipelineState"] == "FINISHED" and desc["@healthStatus"] == "HEALTHY"
    assert desc["@latestRunTime"] == "2026-11-26T10:00:00" and "@nextRunTime" not in desc


def test_exhausted_retries_fail_and_cascade(embedded):
    """dp-interpret-status.md: FAILED, CASCADE_FAILED; dp-interpret-health-status.md."""
    emulator.CONTROLS.outcomes[("*", "a")] = emulator.Outcome(always_fail=True,
                                                              error_message="exit 1")
    pid = new(embedded, scheduled(start="2026-11-26T09:00:00", retries=1))
    embedded.activate_pipeline(pipelineId=pid)
    advance(1800)
    found = instances(embedded, pid)
    a, b = found["@a_2026-11-26T09:00:00"], found["@b_2026-11-26T09:00:00"]
    assert (a["@status"], a["@attemptCount"], a["@triesLeft"], a["errorMessage"]) == (
        "FAILED", "2", "0", "exit 1")
    assert b["@status"] == "CASCADE_FAILED"
    desc = fields(embedded, pid)
    assert desc["@healthStatus"] == "ERROR"
    assert desc["@nextRunTime"] == "2026-11-26T10:00:00"


def test_query_objects_selectors_limit_and_marker(embedded):
    """service-2.json QueryObjects: selectors with EQ, REF_EQ, LE, GE, BETWEEN; limit, marker."""
    pid = new(embedded, scheduled(start="2026-11-26T09:00:00"))
    embedded.activate_pipeline(pipelineId=pid)
    advance(5 * 3600)

    def query(*selectors, **kwargs):
        return embedded.query_objects(pipelineId=pid, sphere="INSTANCE",
                                      query={"selectors": list(selectors)}, **kwargs)

    def sel(name, kind, *values):
        return {"fieldName": name, "operator": {"type": kind, "values": list(values)}}

    assert len(query()["ids"]) == 12  # 6 periods x 2 activities
    assert len(query(sel("@status", "EQ", "FINISHED"))["ids"]) == 10
    assert len(query(sel("@componentParent", "REF_EQ", "b"))["ids"]) == 6
    assert len(query(sel("@scheduledStartTime", "GE", "2026-11-26T13:00:00"))["ids"]) == 4
    assert len(query(sel("@scheduledStartTime", "LE", "2026-11-26T09:00:00"))["ids"]) == 2
    assert len(query(sel("@scheduledStartTime", "BETWEEN", "2026-11-26T10:00:00",
                         "2026-11-26T11:00:00"))["ids"]) == 4
    first = query(limit=5)
    assert len(first["ids"]) == 5 and first["hasMoreResults"]
    rest = query(limit=10, marker=first["marker"])
    assert len(rest["ids"]) == 7 and not rest["hasMoreResults"]
    assert not set(first["ids"]) & set(rest["ids"])
    components = embedded.query_objects(pipelineId=pid, sphere="COMPONENT")["ids"]
    assert set(components) == {"Default", "Hourly", "a", "b", "out"}


def test_on_demand_pipelines_run_once_per_activation(embedded):
    """dp-concepts-schedules.md, On-Demand."""
    pid = new(embedded, ondemand())
    embedded.activate_pipeline(pipelineId=pid)
    advance(3600)
    assert len(instances(embedded, pid)) == 1
    advance(3600)
    assert len(instances(embedded, pid)) == 1
    embedded.activate_pipeline(pipelineId=pid)
    advance(120)
    runs = instances(embedded, pid)
    assert len(runs) == 2 and all(r["@status"] == "FINISHED" for r in runs.values())


# 15 -----------------------------------------------------------------------------------------


def test_throttling_at_the_documented_rates(embedded):
    """dp-limits.md, Web Service Call Limits: 1 call/s, burst 100 for ListPipelines."""
    import boto3
    from botocore.config import Config

    client = boto3.client("datapipeline", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(retries={"mode": "standard", "max_attempts": 1}))
    clock = [1000.0]
    emulator.CONTROLS.monotonic = lambda: clock[0]
    try:
        emulator.CONTROLS.throttling = True
        for _ in range(100):
            client.list_pipelines()
        with pytest.raises(ClientError) as caught:
            client.list_pipelines()
        assert code(caught.value) == "ThrottlingException"
        clock[0] += 1.0  # one token a second
        client.list_pipelines()
        with pytest.raises(ClientError):
            client.list_pipelines()
    finally:
        emulator.CONTROLS.monotonic = __import__("time").monotonic


def test_botocore_retries_throttled_calls(embedded):
    """A ThrottlingException is retried by botocore's retry logic (adaptive mode)."""
    import boto3
    from botocore.config import Config

    client = boto3.client("datapipeline", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(retries={"mode": "adaptive", "max_attempts": 10}))
    emulator.CONTROLS.faults["ListPipelines"] = {"throttle": 0.5}
    retries = [client.list_pipelines()["ResponseMetadata"]["RetryAttempts"] for _ in range(10)]
    assert sum(retries) > 0
    assert emulator.CONTROLS.calls["ListPipelines"] == 10 + sum(retries)


# 16 -----------------------------------------------------------------------------------------


def test_formats_and_one_account_with_sts(embedded):
    """service-2.json timestamps in fields; @accountId consistent with STS."""
    import boto3

    pid = new(embedded)
    desc = fields(embedded, pid)
    assert desc["@creationTime"] == "2026-11-26T09:00:00"
    sts = boto3.client("sts", region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    assert desc["@accountId"] == sts.get_caller_identity()["Account"]
    assert pid.startswith("df-") and len(pid) == 22


def test_the_simulated_clock_only_moves_when_told(embedded):
    before = emulator.CONTROLS.now()
    assert emulator.CONTROLS.advance(90) - before == timedelta(seconds=90)


# the service accepts what the guide's examples write ----------------------------------------


def test_an_ondemand_pipeline_written_in_capitals_runs_on_demand(embedded):
    """emrcluster-example-private-subnet.md writes "scheduleType": "ONDEMAND"."""
    objects = _set(ondemand(), "Default", "scheduleType", "ONDEMAND")
    pid = new(embedded, objects)
    embedded.activate_pipeline(pipelineId=pid)
    advance(120)
    (only,) = instances(embedded, pid).values()
    assert only["@status"] == "FINISHED"
    embedded.activate_pipeline(pipelineId=pid)  # each activation is one more run
    advance(120)
    assert len(instances(embedded, pid)) == 2


def test_an_optional_parameter_needs_no_value_at_activation(embedded):
    """dp-custom-templates.md: "optional ... The default is false"."""
    objects = _set(ondemand(), "a", "command", "echo #{myGreeting}")
    pid = new(embedded)
    params = [{"id": "myGreeting", "attributes": [{"key": "optional", "stringValue": "true"}]}]
    assert not embedded.put_pipeline_definition(pipelineId=pid, pipelineObjects=objects,
                                                parameterObjects=params)["errored"]
    embedded.activate_pipeline(pipelineId=pid)
    required = [{"id": "myGreeting", "attributes": [{"key": "type", "stringValue": "String"}]}]
    other = new(embedded, name="q")
    embedded.put_pipeline_definition(pipelineId=other, pipelineObjects=objects,
                                     parameterObjects=required)
    with pytest.raises(ClientError) as caught:
        embedded.activate_pipeline(pipelineId=other)
    assert code(caught.value) == "InvalidRequestException"
    assert "no value for parameters: myGreeting" in caught.value.response["Error"]["Message"]


def test_expressions_in_schedule_fields_are_evaluated(embedded):
    objects = _set(scheduled(occurrences=2), "Hourly", "startDateTime", "#{myStart}")
    objects = _set(objects, "Hourly", "occurrences", "#{myRuns}")
    pid = new(embedded)
    result = embedded.put_pipeline_definition(
        pipelineId=pid, pipelineObjects=objects,
        parameterValues=[{"id": "myStart", "stringValue": "2026-11-26T08:00:00"},
                         {"id": "myRuns", "stringValue": "1"}])
    assert not result["errored"], result
    embedded.activate_pipeline(pipelineId=pid)
    advance(4 * 3600)
    assert {i["@scheduledStartTime"] for i in instances(embedded, pid).values()} == {
        "2026-11-26T08:00:00"}


@pytest.mark.parametrize("start", ["#{myUnset}", "#{format(", "tomorrow"])
def test_a_schedule_expression_that_cannot_be_evaluated_is_a_typed_error(embedded, start):
    """Never an HTTP 500: InvalidRequestException, as AWS answers a bad definition."""
    objects = _set(scheduled(), "Hourly", "startDateTime", start)
    pid = new(embedded)
    embedded.put_pipeline_definition(pipelineId=pid, pipelineObjects=objects)
    with pytest.raises(ClientError) as caught:
        embedded.activate_pipeline(pipelineId=pid)
    assert code(caught.value) == "InvalidRequestException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
