"""The embedded service as a server: loopback endpoint, control API over HTTP, faults on the
wire, the state file, the ``reconciler emulator`` command and the real AWS CLI."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from reconciler import emulator
from reconciler.emulator.server import EmulatorServer, control

from .conftest import require_tool, run_cli

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
               "region_name": "us-east-1"}


def client(endpoint, service="datapipeline", **config):
    return boto3.client(service, endpoint_url=endpoint,
                        config=Config(**config) if config else None, **CREDENTIALS)


def post(endpoint, action, body=None):
    request = urllib.request.Request(f"{endpoint}/_reconciler/{action}",
                                     data=json.dumps(body or {}).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_the_server_binds_loopback_and_serves_every_service(emulator_server):
    endpoint = emulator_server.endpoint
    assert endpoint.startswith("http://127.0.0.1:")
    dp = client(endpoint)
    pid = dp.create_pipeline(name="n", uniqueId="u")["pipelineId"]
    assert dp.list_pipelines()["pipelineIdList"] == [{"id": pid, "name": "n"}]
    s3 = client(endpoint, "s3")
    s3.create_bucket(Bucket="artifacts-bucket")
    s3.put_object(Bucket="artifacts-bucket", Key="k", Body=b"v")
    assert s3.get_object(Bucket="artifacts-bucket", Key="k")["Body"].read() == b"v"
    assert client(endpoint, "sts").get_caller_identity()["Account"] == "123456789012"
    assert client(endpoint, "sns").create_topic(Name="alerts")["TopicArn"].endswith(":alerts")
    with pytest.raises(ClientError) as caught:
        dp.describe_pipelines(pipelineIds=["df-MISSING"])
    assert caught.value.response["Error"]["Code"] == "PipelineNotFoundException"


def test_the_control_api_moves_the_clock_and_sets_outcomes(emulator_server):
    endpoint = emulator_server.endpoint
    now = post(endpoint, "clock", {"set": "2026-11-26T09:00:00"})["now"]
    assert now == "2026-11-26T09:00:00"
    post(endpoint, "outcomes", {"object_id": "a", "always_fail": True,
                                "error_message": "boom"})
    dp = client(endpoint)
    pid = dp.create_pipeline(name="n", uniqueId="u")["pipelineId"]
    dp.put_pipeline_definition(pipelineId=pid, pipelineObjects=[
        {"id": "Default", "name": "Default", "fields": [
            {"key": "scheduleType", "stringValue": "ondemand"},
            {"key": "maximumRetries", "stringValue": "0"}]},
        {"id": "a", "name": "a", "fields": [
            {"key": "type", "stringValue": "ShellCommandActivity"},
            {"key": "command", "stringValue": "x"}, {"key": "workerGroup", "stringValue": "w"}]}])
    dp.activate_pipeline(pipelineId=pid)
    assert post(endpoint, "clock", {"advance_seconds": 120})["now"] == "2026-11-26T09:02:00"
    (instance,) = dp.query_objects(pipelineId=pid, sphere="INSTANCE")["ids"]
    (obj,) = dp.describe_objects(pipelineId=pid, objectIds=[instance])["pipelineObjects"]
    values = {f["key"]: f.get("stringValue") for f in obj["fields"]}
    assert (values["@status"], values["errorMessage"]) == ("FAILED", "boom")
    calls = json.loads(urllib.request.urlopen(f"{endpoint}/_reconciler/calls").read())["calls"]
    assert calls["ActivatePipeline"] == 1 and calls["QueryObjects"] == 1


def test_a_bad_control_request_says_why(emulator_server):
    with pytest.raises(urllib.error.HTTPError) as caught:
        post(emulator_server.endpoint, "warp", {})
    assert caught.value.code == 400
    assert "unknown control action 'warp'" in json.loads(caught.value.read())["error"]


def test_injected_faults_on_the_wire(emulator_server):
    endpoint = emulator_server.endpoint
    no_retries = {"retries": {"mode": "standard", "max_attempts": 1}}
    post(endpoint, "faults", {"operation": "ListPipelines", "5xx": 1.0})
    with pytest.raises(ClientError) as caught:
        client(endpoint, **no_retries).list_pipelines()
    assert caught.value.response["Error"]["Code"] == "InternalServiceError"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    post(endpoint, "faults", {"operation": "ListPipelines", "drop": 1.0})
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        client(endpoint, **no_retries).list_pipelines()
    post(endpoint, "faults", {"operation": "ListPipelines", "throttle": 0.3})
    post(endpoint, "faults", {"operation": "*"})
    retrying = client(endpoint, retries={"mode": "adaptive", "max_attempts": 10})
    attempts = [retrying.list_pipelines()["ResponseMetadata"]["RetryAttempts"]
                for _ in range(10)]
    assert sum(attempts) > 0


def test_throttling_over_http_answers_like_aws(emulator_server):
    endpoint = emulator_server.endpoint
    post(endpoint, "throttling", {"enabled": True})
    dp = client(endpoint, retries={"mode": "standard", "max_attempts": 1})
    codes = []
    for _ in range(105):
        try:
            dp.list_pipelines()
            codes.append("ok")
        except ClientError as error:
            codes.append(error.response["Error"]["Code"])
    assert codes[:100] == ["ok"] * 100
    assert "ThrottlingException" in codes[100:]


def test_the_state_file_keeps_pipelines_across_a_restart(tmp_path):
    state = tmp_path / "state.json"
    control("reset", {})
    first = EmulatorServer(port=0, state_file=str(state))
    endpoint = first.start()
    pid = client(endpoint).create_pipeline(name="kept", uniqueId="k",
                                           tags=[{"key": "owner", "value": "me"}])["pipelineId"]
    client(endpoint).put_pipeline_definition(pipelineId=pid, pipelineObjects=[
        {"id": "Default", "name": "Default", "fields": [
            {"key": "scheduleType", "stringValue": "ondemand"}]}])
    first.stop()
    control("reset", {})
    second = EmulatorServer(port=0, state_file=str(state))
    endpoint = second.start()
    try:
        dp = client(endpoint)
        (desc,) = dp.describe_pipelines(pipelineIds=[pid])["pipelineDescriptionList"]
        assert desc["tags"] == [{"key": "owner", "value": "me"}]
        assert dp.get_pipeline_definition(pipelineId=pid)["pipelineObjects"][0]["id"] == \
            "Default"
        assert dp.create_pipeline(name="kept", uniqueId="k")["pipelineId"] == pid
    finally:
        second.stop()
        control("reset", {})


def _start_cli_emulator(tmp_path, *extra):
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "emulator", "--port", "0",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path)
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("Ctrl-C"):
            break
    endpoint = next(x.split()[-1] for x in lines if "export AWS_ENDPOINT_URL=" in x)
    return proc, endpoint.split("=", 1)[1], lines


def test_the_emulator_command_prints_what_to_use_and_keeps_state(tmp_path):
    proc, endpoint, lines = _start_cli_emulator(tmp_path, "--state", "state.json")
    try:
        assert endpoint.startswith("http://127.0.0.1:")
        assert any("AWS_ACCESS_KEY_ID=testing" in x for x in lines)
        pid = client(endpoint).create_pipeline(name="from-cli", uniqueId="c")["pipelineId"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    saved = json.loads((tmp_path / "state.json").read_text())
    (pipeline,) = saved["accounts"]["123456789012"]["us-east-1"]["pipelines"]
    assert pipeline["id"] == pid
    proc, endpoint, _ = _start_cli_emulator(tmp_path, "--state", "state.json")
    try:
        names = client(endpoint).list_pipelines()["pipelineIdList"]
        assert names == [{"id": pid, "name": "from-cli"}]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_the_aws_cli_creates_puts_activates_lists_and_gets_back(tmp_path, repo):
    """The real AWS CLI against ``reconciler emulator``, with a definition from
    ``reconciler render --format definition``."""
    aws = shutil.which("aws") or str(Path(sys.executable).parent / "aws")
    if not Path(aws).exists():
        require_tool("aws")
    rendered = run_cli("render", str(repo / "pipelines/users.yaml"), "--env", "staging",
                       "--format", "definition", "--start-date", "2026-11-26")
    assert rendered.code == 0, rendered.stderr
    definition = tmp_path / "users.json"
    definition.write_text(rendered.stdout)
    proc, endpoint, _ = _start_cli_emulator(tmp_path)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}

    def aws_cli(*args):
        result = subprocess.run([aws, "datapipeline", *args, "--output", "json"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else {}

    try:
        post(endpoint, "clock", {"set": "2026-11-26T08:00:00"})
        pid = aws_cli("create-pipeline", "--name", "users", "--unique-id", "users-staging")[
            "pipelineId"]
        put = aws_cli("put-pipeline-definition", "--pipeline-id", pid,
                      "--pipeline-definition", f"file://{definition}")
        assert put["errored"] is False, put
        aws_cli("activate-pipeline", "--pipeline-id", pid, "--parameter-values",
                "*myMysqlMaestroPassword=secret-1", "*myRedshiftPassword=secret-2")
        listed = aws_cli("list-pipelines")["pipelineIdList"]
        assert listed == [{"id": pid, "name": "users"}]
        back = aws_cli("get-pipeline-definition", "--pipeline-id", pid)
        sent = json.loads(rendered.stdout)
        assert {o["id"] for o in back["objects"]} == {o["id"] for o in sent["objects"]}
        assert next(o for o in back["objects"] if o["id"] == "upsert_users") == \
            next(o for o in sent["objects"] if o["id"] == "upsert_users")
        assert not back.get("values")  # the values were given at activation, not put
        active = aws_cli("get-pipeline-definition", "--pipeline-id", pid, "--pipeline-version",
                         "active")
        assert active["values"] == {"*myMysqlMaestroPassword": "********",
                                    "*myRedshiftPassword": "********"}
        described = aws_cli("describe-pipelines", "--pipeline-ids", pid)
        state = {f["key"]: f["stringValue"] for f in
                 described["pipelineDescriptionList"][0]["fields"]}["@pipelineState"]
        assert state == "SCHEDULED"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        control("reset", {})
        emulator.CONTROLS.reset()


def test_the_embedded_endpoint_is_started_once_per_process():
    from reconciler.emulator.server import embedded_endpoint

    first = embedded_endpoint()
    assert first == embedded_endpoint() and first.startswith("http://127.0.0.1:")
    assert client(first).list_pipelines()["pipelineIdList"] is not None


# -- bad input to the embedded service --------------------------------------------------------


def raw(endpoint, path="/", body=b"", headers=None, method="POST"):
    """A hand-made request; (status, content type, body)."""
    import http.client
    from urllib.parse import urlparse

    where = urlparse(endpoint)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    connection.putrequest(method, path)
    for key, value in (headers or {}).items():
        connection.putheader(key, value)
    if "Content-Length" not in (headers or {}):
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    return response.status, response.getheader("content-type"), response.read()


DP = {"Content-Type": "application/x-amz-json-1.1"}


@pytest.mark.parametrize("action, body, message", [
    ("clock", {"advance_seconds": 1e12}, "advance_seconds"),
    ("clock", {"advance_seconds": -5}, "advance_seconds"),
    ("clock", {"set": "tomorrow"}, "set"),
    ("clock", {"set": "9999-12-31T23:59:59"}, "set"),
    ("outcomes", {"object_id": "a", "fail_times": "abc"}, "fail_times"),
    ("outcomes", {"fail_times": 1}, "object_id"),
    ("outcomes", {"object_id": "a", "duration_seconds": 10**12}, "duration_seconds"),
    ("faults", {"throttle": 0.7, "5xx": 0.7}, "more than 1"),
    ("faults", {"operation": "DropTables", "5xx": 1}, "no operation 'DropTables'"),
    ("throttling", {"enabled": "yes"}, "enabled"),
    ("calls", {"extra": 1}, "extra"),
    ("clock", [1, 2], "the body"),
])
def test_the_control_api_refuses_bad_bodies_and_stays_usable(emulator_server, action, body,
                                                             message):
    endpoint = emulator_server.endpoint
    status, kind, data = raw(endpoint, f"/_reconciler/{action}", json.dumps(body).encode())
    assert (status, kind) == (400, "application/json")
    assert message in json.loads(data)["error"]
    dp = client(endpoint)
    pid = dp.create_pipeline(name="after", uniqueId="after")["pipelineId"]
    assert dp.describe_pipelines(pipelineIds=[pid])["pipelineDescriptionList"]
    assert post(endpoint, "clock", {})["now"] == "2026-11-26T09:00:00"


def test_a_control_body_that_is_not_json_is_refused(emulator_server):
    status, _, data = raw(emulator_server.endpoint, "/_reconciler/clock", b"{not json")
    assert status == 400 and "not JSON" in json.loads(data)["error"]


@pytest.mark.parametrize("headers, body, code", [
    ({**DP, "X-Amz-Target": "DataPipeline.DropEverything"}, b"{}", "UnknownOperationException"),
    ({**DP, "X-Amz-Target": "DataPipeline.PollForTask"}, b"{}", "UnknownOperationException"),
    ({**DP, "X-Amz-Target": "DataPipeline.ListPipelines"}, b"{not json",
     "SerializationException"),
    ({**DP, "X-Amz-Target": "DataPipeline.ListPipelines"}, b"[1, 2]", "SerializationException"),
    ({**DP, "X-Amz-Target": "DataPipeline.DescribePipelines"}, b'{"pipelineIds": "df-1"}',
     "ValidationException"),
    ({**DP, "X-Amz-Target": "DataPipeline.CreatePipeline"}, b'{"name": 5}',
     "ValidationException"),
    ({**DP, "X-Amz-Target": "DynamoDB_20120810.GetItem"}, b"{}", "UnknownOperationException"),
    ({"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261126/us-east-1/dynamodb/"
                       "aws4_request, SignedHeaders=host, Signature=0"}, b"",
     "UnknownOperationException"),
])
def test_bad_requests_get_aws_shaped_errors(emulator_server, headers, body, code):
    status, kind, data = raw(emulator_server.endpoint, "/", body, headers)
    assert (status, kind) == (400, "application/x-amz-json-1.1")
    assert json.loads(data)["__type"] == code


@pytest.mark.parametrize("length, status", [("-1", 400), ("abc", 400),
                                            (str(10**12), 413)])
def test_a_bad_content_length_is_refused_before_the_body_is_read(emulator_server, length,
                                                                 status):
    started = time.monotonic()
    got, _, data = raw(emulator_server.endpoint, "/", b"",
                       {**DP, "X-Amz-Target": "DataPipeline.ListPipelines",
                        "Content-Length": length})
    assert got == status and "__type" in json.loads(data)
    assert time.monotonic() - started < 5


def test_the_state_file_is_private_and_holds_no_secret(tmp_path):
    state = tmp_path / "state.json"
    server = EmulatorServer(port=0, state_file=str(state))
    endpoint = server.start()
    try:
        dp = client(endpoint)
        pid = dp.create_pipeline(name="s", uniqueId="s")["pipelineId"]
        objects = [{"id": "Default", "name": "Default", "fields": [
            {"key": "scheduleType", "stringValue": "ondemand"},
            {"key": "role", "stringValue": "R"}, {"key": "resourceRole", "stringValue": "RR"},
            {"key": "myDbPassword", "stringValue": "#{*myPassword}"}]},
            {"id": "a", "name": "a", "fields": [
                {"key": "type", "stringValue": "ShellCommandActivity"},
                {"key": "command", "stringValue": "echo"},
                {"key": "workerGroup", "stringValue": "wg"}]}]
        dp.put_pipeline_definition(
            pipelineId=pid, pipelineObjects=objects,
            parameterObjects=[{"id": "*myPassword", "attributes": [
                {"key": "type", "stringValue": "String"}]}],
            parameterValues=[{"id": "*myPassword", "stringValue": "hunter2-secret"}])
    finally:
        server.stop()
    assert state.stat().st_mode & 0o777 == 0o600
    assert "hunter2-secret" not in state.read_text()
    assert "*myPassword" in state.read_text()  # the parameter is kept, its value is not


@pytest.mark.parametrize("path", ["/nowhere", "/nowhere/deeper?x=1"])
def test_a_big_post_to_an_unknown_path_gets_a_4xx_in_aws_form(emulator_server, path):
    status, kind, data = raw(emulator_server.endpoint, path, b"x" * (20 << 20))
    assert (status, kind) == (400, "application/xml"), data[:200]
    assert b"<Code>InvalidRequest</Code>" in data
    # the service is still there
    assert client(emulator_server.endpoint).list_pipelines()["pipelineIdList"] == []


@pytest.mark.parametrize("content, why", [
    ("[1, 2]\n", "not the embedded service's state"),
    ('{"foo": 1}\n', "not the embedded service's state"),
    ('{"kind": "terraform-state", "clock": {}}\n', "not the embedded service's state"),
    ("not json\n", "not JSON"),
])
def test_a_state_file_of_another_kind_is_a_clear_error_and_is_kept(tmp_path, content, why):
    state = tmp_path / "other.json"
    state.write_text(content)
    done = run_cli("emulator", "--port", "0", "--state", str(state))
    assert done.code == 1
    assert f"error: {state}:1: {why}" in done.stderr, done.stderr
    assert "delete" in done.stderr and "Traceback" not in done.stderr
    assert state.read_text() == content  # neither read into the service nor overwritten
