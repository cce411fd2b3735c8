"""The same error scenarios through botocore's Stubber (responses shaped from the botocore
model) and through the embedded service give the same results to a caller: the modelled
exception class, the error code and the HTTP status."""

from datetime import UTC, datetime

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from reconciler import emulator

NO_RETRY = Config(retries={"mode": "standard", "max_attempts": 1})


def observe(client, call):
    """What a caller sees: the modelled exception, the code and the status."""
    try:
        call(client)
    except ClientError as error:
        modelled = [name for name in ("PipelineNotFoundException", "PipelineDeletedException",
                                      "InvalidRequestException", "InternalServiceError")
                    if isinstance(error, getattr(client.exceptions, name))]
        return (modelled, error.response["Error"]["Code"],
                error.response["ResponseMetadata"]["HTTPStatusCode"],
                bool(error.response["Error"]["Message"]))
    return ("no error",)


def fresh_client():
    return boto3.client("datapipeline", region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=NO_RETRY)


SCENARIOS = {
    "not found": (lambda c, pid: c.describe_pipelines(pipelineIds=["df-UNKNOWN"]),
                  "describe_pipelines", "PipelineNotFoundException", 400),
    "deleted": (lambda c, pid: c.get_pipeline_definition(pipelineId=pid),
                "get_pipeline_definition", "PipelineDeletedException", 400),
    "invalid request": (lambda c, pid: c.describe_pipelines(
        pipelineIds=[f"df-{i}" for i in range(26)]),
        "describe_pipelines", "InvalidRequestException", 400),
    "throttled": (lambda c, pid: c.list_pipelines(), "list_pipelines", "ThrottlingException",
                  400),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_stubbed_and_embedded_errors_look_the_same(embedded, scenario):
    call, method, error_code, status = SCENARIOS[scenario]

    stubbed = fresh_client()
    with Stubber(stubbed) as stub:
        stub.add_client_error(method, service_error_code=error_code,
                              service_message="as AWS says it", http_status_code=status)
        expected = observe(stubbed, lambda c: call(c, "df-0123456789ABCDEFGHIJ"))

    live = fresh_client()
    pid = live.create_pipeline(name="gone", uniqueId="g")["pipelineId"]
    live.delete_pipeline(pipelineId=pid)
    if scenario == "throttled":
        emulator.CONTROLS.faults["ListPipelines"] = {"throttle": 1.0}
    assert observe(live, lambda c: call(c, pid)) == expected
    assert expected[1] == error_code


def test_stubbed_and_embedded_success_shapes_match_the_model(embedded):
    """A successful DescribePipelines from the embedded service passes the Stubber's check of
    the botocore output shape."""
    pid = embedded.create_pipeline(name="n", uniqueId="u", description="d",
                                   tags=[{"key": "k", "value": "v"}])["pipelineId"]
    response = embedded.describe_pipelines(pipelineIds=[pid])
    response.pop("ResponseMetadata")
    stubbed = fresh_client()
    with Stubber(stubbed) as stub:  # add_response validates against the output shape
        stub.add_response("describe_pipelines", response, {"pipelineIds": [pid]})
        assert stubbed.describe_pipelines(pipelineIds=[pid]) == response
    created = datetime.strptime(
        next(f["stringValue"] for f in response["pipelineDescriptionList"][0]["fields"]
             if f["key"] == "@creationTime"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    assert created == emulator.CONTROLS.now()
