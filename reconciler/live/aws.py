"""The AWS client of one environment: the only place that calls AWS.

Reads are batched the way the service allows (ListPipelines pages of 50, DescribePipelines
25 ids at a time) and recognise managed pipelines by their tags, so a pass with no changes
needs no GetPipelineDefinition. botocore's adaptive retry mode retries throttling and 5xx
answers. Every call, to Data Pipeline, S3 or STS, goes through :func:`call`, which turns
whatever botocore raises (service errors, connection errors, missing credentials) into one
:class:`AwsError` saying which call failed and whether trying again later can help.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..desired.config import Environment
from ..errors import ReconcilerError
from .model import (
    TAG_ENVIRONMENT,
    TAG_MANAGED_BY,
    LiveDefinition,
    LivePipeline,
    LiveState,
)

EMBEDDED = "embedded"
RETRIES = Config(retries={"mode": "adaptive", "max_attempts": 8},
                 connect_timeout=10, read_timeout=60)
NOT_THERE = ("PipelineNotFoundException", "PipelineDeletedException")


THROTTLING = frozenset({"ThrottlingException", "Throttling", "RequestLimitExceeded",
                        "TooManyRequestsException", "SlowDown", "RequestThrottled"})


class AwsError(ReconcilerError):
    """A call that failed after botocore's retries; the message is the service's."""

    def __init__(self, operation: str, code: str, message: str, status: int | None = None):
        super().__init__(f"{operation}: {code}: {message}")
        self.operation, self.code, self.message, self.status = operation, code, message, status

    @property
    def temporary(self) -> bool:
        """Throttling, a 5xx answer or no answer at all: trying again later can help. Anything
        else (a definition AWS refuses, a missing pipeline, denied access) needs a change."""
        return (self.code in THROTTLING or (self.status is not None and self.status >= 500)
                or self.status is None)


def call(client: Any, operation: str, **kwargs: Any) -> Any:
    """``client.<operation>(**kwargs)``, every botocore error turned into an AwsError."""
    name = "".join(w.capitalize() for w in operation.split("_"))
    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise AwsError(name, str(error.get("Code") or "Unknown"),
                       str(error.get("Message") or exc), status or 400) from None
    except BotoCoreError as exc:  # no connection, no credentials, a bad parameter...
        raise AwsError(name, type(exc).__name__, str(exc),
                       400 if type(exc).__name__ == "ParamValidationError" else None) from None


def endpoint_for(env: Environment, environ: Mapping[str, str]) -> str | None:
    """AWS_ENDPOINT_URL wins (it aims everything at one endpoint, a running emulator for
    instance); ``embedded`` starts the built-in service in this process."""
    if environ.get("AWS_ENDPOINT_URL"):
        return environ["AWS_ENDPOINT_URL"]
    if env.endpoint_url == EMBEDDED:
        from ..emulator.server import STATE_VARIABLE, embedded_endpoint

        return embedded_endpoint(environ.get(STATE_VARIABLE))
    return env.endpoint_url


@dataclass
class AwsEnvironment:
    """boto3 clients for one environment (Data Pipeline, S3), with its role assumed."""

    env: Environment
    installation: str
    datapipeline: Any
    s3: Any

    @classmethod
    def connect(cls, env: Environment, installation: str,
                environ: Mapping[str, str] | None = None) -> AwsEnvironment:
        environ = os.environ if environ is None else environ
        endpoint = endpoint_for(env, environ)
        region = env.region or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        session = boto3.session.Session(region_name=region)
        if endpoint and env.endpoint_url == EMBEDDED and session.get_credentials() is None:
            session = boto3.session.Session(region_name=region, aws_access_key_id="testing",
                                            aws_secret_access_key="testing")
        if env.role_arn:
            sts = session.client("sts", endpoint_url=endpoint, config=RETRIES)
            creds = call(sts, "assume_role", RoleArn=env.role_arn,
                         RoleSessionName=f"dataduct-reconciler-{env.name}")["Credentials"]
            session = boto3.session.Session(
                region_name=region, aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"])
        return cls(env, installation,
                   session.client("datapipeline", endpoint_url=endpoint, config=RETRIES),
                   session.client("s3", endpoint_url=endpoint, config=RETRIES))

    # -- reading --------------------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return call(self.datapipeline, operation, **kwargs)

    def read_managed(self) -> LiveState:
        """Every pipeline of this installation and environment, from its tags."""
        ids: list[tuple[str, str]] = []
        marker = None
        while True:
            page = self._call("list_pipelines", **({"marker": marker} if marker else {}))
            ids += [(p["id"], p["name"]) for p in page.get("pipelineIdList", [])]
            if not page.get("hasMoreResults"):
                break
            marker = page["marker"]
        prefix = self.env.name_prefix
        candidates = [pid for pid, name in ids if name.startswith(prefix)]
        managed = []
        for start in range(0, len(candidates), 25):
            for desc in self._describe(candidates[start:start + 25]):
                tags = {t["key"]: t["value"] for t in desc.get("tags", [])}
                if (tags.get(TAG_MANAGED_BY) != self.installation
                        or tags.get(TAG_ENVIRONMENT) != self.env.name):
                    continue
                fields = {f["key"]: f.get("stringValue", "") for f in desc.get("fields", [])}
                managed.append(LivePipeline(desc["pipelineId"], desc["name"], tags,
                                            fields.get("@pipelineState", "UNKNOWN"), fields))
        return LiveState(self.env.name, managed)

    def _describe(self, batch: list[str]) -> list[dict[str, Any]]:
        try:
            return self._call("describe_pipelines", pipelineIds=batch)[
                "pipelineDescriptionList"]
        except AwsError as exc:
            if exc.code not in NOT_THERE:
                raise
        # one of the batch went away between the listing and now: ask one by one
        found = []
        for pid in batch:
            try:
                found += self._call("describe_pipelines", pipelineIds=[pid])[
                    "pipelineDescriptionList"]
            except AwsError as exc:
                if exc.code not in NOT_THERE:
                    raise
        return found

    def read_definition(self, pipeline_id: str) -> LiveDefinition | None:
        """The latest definition; None when the pipeline is gone."""
        try:
            got = self._call("get_pipeline_definition", pipelineId=pipeline_id)
        except AwsError as exc:
            if exc.code in NOT_THERE:
                return None
            raise
        return LiveDefinition(tuple(got.get("pipelineObjects", [])),
                              tuple(got.get("parameterObjects", [])),
                              tuple(got.get("parameterValues", [])))

    # -- writing --------------------------------------------------------------------------------

    def create(self, name: str, unique_id: str, description: str | None,
               tags: Mapping[str, str]) -> str:
        kwargs: dict[str, Any] = {"name": name, "uniqueId": unique_id,
                                  "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        if description:
            kwargs["description"] = description[:1024]
        return self._call("create_pipeline", **kwargs)["pipelineId"]

    def put(self, pipeline_id: str, objects, parameters, values) -> dict[str, Any]:
        return self._call("put_pipeline_definition", pipelineId=pipeline_id,
                          pipelineObjects=list(objects), parameterObjects=list(parameters),
                          parameterValues=list(values))

    def activate(self, pipeline_id: str, start: datetime | None = None) -> None:
        kwargs: dict[str, Any] = {"pipelineId": pipeline_id}
        if start is not None:
            kwargs["startTimestamp"] = start
        self._call("activate_pipeline", **kwargs)

    def deactivate(self, pipeline_id: str, cancel_active: bool = False) -> None:
        """Stop scheduling runs; running ones finish unless ``cancel_active``."""
        self._call("deactivate_pipeline", pipelineId=pipeline_id, cancelActive=cancel_active)

    def validate(self, pipeline_id: str, definition: LiveDefinition) -> bool:
        """Whether the service accepts ``definition`` for the pipeline (nothing is saved)."""
        answer = self._call("validate_pipeline_definition", pipelineId=pipeline_id,
                            pipelineObjects=list(definition.objects),
                            parameterObjects=list(definition.parameters),
                            parameterValues=list(definition.values))
        return not answer.get("errored")

    def tag(self, pipeline_id: str, tags: Mapping[str, str]) -> None:
        self._call("add_tags", pipelineId=pipeline_id,
                   tags=[{"key": k, "value": v} for k, v in tags.items()])

    def untag(self, pipeline_id: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            self._call("remove_tags", pipelineId=pipeline_id, tagKeys=keys)

    def delete(self, pipeline_id: str) -> None:
        try:
            self._call("delete_pipeline", pipelineId=pipeline_id)
        except AwsError as exc:
            if exc.code not in NOT_THERE:
                raise

    def run_history(self, pipeline_id: str) -> Iterable[dict[str, Any]]:
        """Instances and attempts with their fields, for the archive before a delete."""
        for sphere in ("INSTANCE", "ATTEMPT"):
            marker = None
            while True:
                kwargs: dict[str, Any] = {"pipelineId": pipeline_id, "sphere": sphere,
                                          "limit": 100}
                if marker:
                    kwargs["marker"] = marker
                page = self._call("query_objects", **kwargs)
                ids = page.get("ids", [])
                for start in range(0, len(ids), 25):
                    described = self._call("describe_objects", pipelineId=pipeline_id,
                                           objectIds=ids[start:start + 25])
                    for obj in described.get("pipelineObjects", []):
                        yield {"sphere": sphere, "id": obj["id"], "name": obj.get("name"),
                               "fields": {f["key"]: f.get("stringValue", f.get("refValue"))
                                          for f in obj.get("fields", [])}}
                if not page.get("hasMoreResults"):
                    break
                marker = page["marker"]

    def upload(self, uri: str, content: bytes) -> bool:
        """Put ``content`` at an s3:// URI unless it is there already; True when uploaded."""
        bucket, _, key = uri[len("s3://"):].partition("/")
        try:
            call(self.s3, "head_object", Bucket=bucket, Key=key)
            return False
        except AwsError as exc:
            if exc.code not in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                raise
        self.write(uri, content)
        return True

    def write(self, uri: str, content: bytes) -> None:
        """Put ``content`` at an s3:// URI. The embedded service starts with no buckets, so
        there a missing bucket is created; against AWS it is an error."""
        bucket, _, key = uri[len("s3://"):].partition("/")
        try:
            call(self.s3, "put_object", Bucket=bucket, Key=key, Body=content)
        except AwsError as exc:
            if exc.code != "NoSuchBucket" or self.env.endpoint_url != EMBEDDED:
                raise
            call(self.s3, "create_bucket", Bucket=bucket)
            call(self.s3, "put_object", Bucket=bucket, Key=key, Body=content)
