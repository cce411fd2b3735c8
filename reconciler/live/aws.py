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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ReconcilerError
from ..service.quotas import THROTTLING
from .model import (
    TAG_ENVIRONMENT,
    TAG_MANAGED_BY,
    LiveDefinition,
    LivePipeline,
    LiveState,
)
from .pacing import Pacer, RequestHook, attach

RETRIES = Config(retries={"mode": "adaptive", "max_attempts": 8},
                 connect_timeout=10, read_timeout=60)
NOT_THERE = ("PipelineNotFoundException", "PipelineDeletedException")
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class Environment(Protocol):
    """What the live layer needs to know of an environment (``reconciler.yaml`` says it)."""

    @property
    def name(self) -> str: ...
    @property
    def region(self) -> str | None: ...
    @property
    def role_arn(self) -> str | None: ...
    @property
    def endpoint_url(self) -> str | None: ...
    @property
    def name_prefix(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def airflow(self) -> Any: ...  # its AirflowSettings (mwaa: the MWAA environment's name)



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


class ReadInterrupted(ReconcilerError):
    """A full read given up for something more urgent (a webhook's commit): nothing is
    wrong, the read is made again later."""

    def __init__(self, operation: str):
        super().__init__(f"the full read was interrupted before {operation}")


def call(client: Any, operation: str, **kwargs: Any) -> Any:
    """``client.<operation>(**kwargs)``, every botocore error turned into an AwsError."""
    name = "".join(w.capitalize() for w in operation.split("_"))
    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as exc:
        raise client_error(name, exc) from None
    except BotoCoreError as exc:  # no connection, no credentials, a bad parameter...
        raise AwsError(name, type(exc).__name__, str(exc),
                       400 if type(exc).__name__ == "ParamValidationError" else None) from None


def missing(exc: AwsError) -> bool:
    """The error says the S3 object is not there (HeadObject answers a bare 404)."""
    return exc.status == 404 or exc.code in ("404", "NoSuchKey", "NotFound")


def client_error(operation: str, exc: ClientError) -> AwsError:
    """A botocore ClientError as an AwsError: the service's code, message and status."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return AwsError(operation, str(error.get("Code") or "Unknown"),
                    str(error.get("Message") or exc), status or 400)


SET_STATUS_BATCH = 25  # object ids in one SetStatus call
CALL_LOG = "RECONCILER_AWS_CALL_LOG"


def record_calls(client: Any, path: str | None) -> None:
    """Append ``service:Operation`` to the file at ``path`` for every call ``client`` makes
    ($RECONCILER_AWS_CALL_LOG): what the controller needs allowed by IAM, from a real run
    (tests/test_iam.py checks docs/iam-policy.json against it)."""
    if not path:
        return
    service = client.meta.service_model.signing_name

    def log(model: Any, **_: Any) -> None:
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{service}:{model.name}\n")

    # before-parameter-build reaches every handler (before-call stops at a stubbed answer)
    client.meta.events.register("before-parameter-build", log)


def _assumed_role_session(base: Any, env: Environment, region: str, endpoint: str | None,
                          call_log: str | None = None) -> Any:
    """A session whose credentials are ``env.role_arn`` assumed, refreshed by botocore before
    they expire. The role is assumed at once, so a role that cannot be assumed is an error
    of this environment now, not of some later call."""
    source = base.get_credentials()
    if source is None:
        raise AwsError("AssumeRole", "NoCredentialsError", "no credentials to assume "
                       f"{env.role_arn} with", None)

    def create_client(service: str, **kwargs: Any) -> Any:
        client = base._session.create_client(service, endpoint_url=endpoint,
                                             region_name=region, **kwargs)
        record_calls(client, call_log)
        return client

    fetcher = AssumeRoleCredentialFetcher(
        create_client, source, env.role_arn,
        extra_args={"RoleSessionName": f"dataduct-reconciler-{env.name}"})
    try:
        fetcher.fetch_credentials()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsError("AssumeRole", str(error.get("Code") or "Unknown"),
                       str(error.get("Message") or exc),
                       exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")) from None
    except BotoCoreError as exc:
        raise AwsError("AssumeRole", type(exc).__name__, str(exc), None) from None
    credentials = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials,
                                                 method="assume-role")
    core = _core_session()
    core._credentials = credentials
    return boto3.session.Session(botocore_session=core, region_name=region)


_LOADER = botocore.session.Session().get_component("data_loader")


def _core_session(**credentials: str) -> botocore.session.Session:
    """A botocore session reading the service models through one loader for the process:
    each session would otherwise parse and keep its own copy of every model (S3's alone is
    several MiB in memory), once per environment."""
    core = botocore.session.Session()
    core.register_component("data_loader", _LOADER)
    if credentials:
        core.set_credentials(credentials["aws_access_key_id"],
                             credentials["aws_secret_access_key"])
    return core


@dataclass
class AwsEnvironment:
    """boto3 clients for one environment (Data Pipeline, S3), with its role assumed."""

    env: Environment
    installation: str
    datapipeline: Any
    s3: Any
    # a local service that starts with no buckets (the embedded one): a missing bucket is
    # created; against AWS it is the user's to create
    creates_buckets: bool = False
    mwaa: Any = None  # the MWAA client of an environment with target: airflow on MWAA
    # which account's pipelines ListPipelines shows (endpoint, region, role): environments of
    # one scope share one listing per pass
    scope: str = ""
    local_endpoint: str | None = None  # a local service's endpoint (its control API is there)

    @classmethod
    def connect(cls, env: Environment, installation: str,
                environ: Mapping[str, str] | None = None, *, endpoint: str | None = None,
                local: bool = False, pacer: Pacer | None = None,
                on_request: RequestHook | None = None, config: Config = RETRIES
                ) -> AwsEnvironment:
        """Clients for ``env``: its endpoint (``endpoint``, else $AWS_ENDPOINT_URL, else the
        environment's) and region, its role assumed with credentials that refresh themselves
        before they expire (a controller runs for months; an assumed role lasts an hour),
        every Data Pipeline call paced by ``pacer`` and every attempt reported to
        ``on_request``. ``local``: a local service (test credentials when there are none,
        missing buckets created)."""
        environ = os.environ if environ is None else environ
        # a process-wide diagnostic: also read from the process's environment
        call_log = environ.get(CALL_LOG) or os.environ.get(CALL_LOG)
        endpoint = endpoint or environ.get("AWS_ENDPOINT_URL") or env.endpoint_url
        region = env.region or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        session = boto3.session.Session(botocore_session=_core_session(), region_name=region)
        if local and session.get_credentials() is None:
            session = boto3.session.Session(botocore_session=_core_session(**LOCAL_CREDENTIALS),
                                            region_name=region)
        if env.role_arn:
            session = _assumed_role_session(session, env, region, endpoint, call_log)
        scope = f"{endpoint or 'aws'}|{region}|{env.role_arn or 'default credentials'}"
        datapipeline = session.client("datapipeline", endpoint_url=endpoint, config=config)
        s3 = session.client("s3", endpoint_url=endpoint, config=config)
        attach(datapipeline, pacer=pacer, scope=scope, on_request=on_request)
        attach(s3, pacer=None, scope=scope, on_request=on_request)
        for client in (datapipeline, s3):
            record_calls(client, call_log)
        mwaa = None
        if env.target == "airflow" and env.airflow.mwaa:
            mwaa = session.client("mwaa", endpoint_url=endpoint, config=config)
            attach(mwaa, pacer=None, scope=scope, on_request=on_request)
            record_calls(mwaa, call_log)
        return cls(env, installation, datapipeline, s3, creates_buckets=local, scope=scope,
                   mwaa=mwaa, local_endpoint=endpoint if local else None)

    # -- reading --------------------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return call(self.datapipeline, operation, **kwargs)

    def list_pipelines(self, interrupted: Callable[[], bool] | None = None
                       ) -> list[tuple[str, str]]:
        """Every pipeline the scope's account shows (id, name): ListPipelines, page by page;
        :class:`ReadInterrupted` between pages once ``interrupted()``."""
        ids: list[tuple[str, str]] = []
        marker = None
        while True:
            if interrupted is not None and interrupted():
                raise ReadInterrupted("ListPipelines")
            page = self._call("list_pipelines", **({"marker": marker} if marker else {}))
            ids += [(p["id"], p["name"]) for p in page.get("pipelineIdList", [])]
            if not page.get("hasMoreResults"):
                break
            marker = page["marker"]
        return ids

    def read_managed(self, listed: list[tuple[str, str]] | None = None,
                     interrupted: Callable[[], bool] | None = None) -> LiveState:
        """Every pipeline of this installation and environment, from its tags; ``listed``:
        the scope's listing of this pass, when another environment made it already;
        :class:`ReadInterrupted` between calls once ``interrupted()``."""
        ids = self.list_pipelines(interrupted) if listed is None else listed
        prefix = self.env.name_prefix
        candidates = [pid for pid, name in ids if name.startswith(prefix)]
        return LiveState(self.env.name, self.describe_managed(candidates, interrupted))

    def describe_managed(self, pipeline_ids: list[str],
                         interrupted: Callable[[], bool] | None = None) -> list[LivePipeline]:
        """Those of ``pipeline_ids`` that this installation manages in this environment
        (DescribePipelines in batches of 25); the ones gone are left out."""
        managed = []
        for start in range(0, len(pipeline_ids), 25):
            if interrupted is not None and interrupted():
                raise ReadInterrupted("DescribePipelines")
            for desc in self._describe(pipeline_ids[start:start + 25]):
                tags = {t["key"]: t["value"] for t in desc.get("tags", [])}
                if (tags.get(TAG_MANAGED_BY) != self.installation
                        or tags.get(TAG_ENVIRONMENT) != self.env.name):
                    continue
                fields = {f["key"]: f.get("stringValue", "") for f in desc.get("fields", [])}
                managed.append(LivePipeline(desc["pipelineId"], desc["name"], tags,
                                            fields.get("@pipelineState", "UNKNOWN"), fields))
        return managed

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
            for obj in self._objects(pipeline_id, sphere):
                yield {"sphere": sphere, **obj}

    def _objects(self, pipeline_id: str, sphere: str, query: dict[str, Any] | None = None
                 ) -> Iterator[dict[str, Any]]:
        """The run objects of ``sphere`` the query selects (QueryObjects page by page, then
        DescribeObjects 25 ids at a time), each as ``{"id", "name", "fields"}`` with its
        string and reference fields in one mapping."""
        marker = None
        while True:
            kwargs: dict[str, Any] = {"pipelineId": pipeline_id, "sphere": sphere,
                                      "limit": 100}
            if query:
                kwargs["query"] = query
            if marker:
                kwargs["marker"] = marker
            page = self._call("query_objects", **kwargs)
            ids = page.get("ids", [])
            for first in range(0, len(ids), 25):
                described = self._call("describe_objects", pipelineId=pipeline_id,
                                       objectIds=ids[first:first + 25])
                for obj in described.get("pipelineObjects", []):
                    yield {"id": obj["id"], "name": obj.get("name"),
                           "fields": {f["key"]: f.get("stringValue", f.get("refValue"))
                                      for f in obj.get("fields", [])}}
            if not page.get("hasMoreResults"):
                return
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
        """Put ``content`` at an s3:// URI. On a local service a missing bucket is created;
        against AWS it is an error."""
        bucket, _, key = uri[len("s3://"):].partition("/")
        try:
            call(self.s3, "put_object", Bucket=bucket, Key=key, Body=content)
        except AwsError as exc:
            if exc.code != "NoSuchBucket" or not self.create_missing_bucket(bucket):
                raise
            call(self.s3, "put_object", Bucket=bucket, Key=key, Body=content)

    def create_missing_bucket(self, bucket: str) -> bool:
        """Create a bucket on a local service (which starts with none); False against AWS,
        where a missing bucket is the user's to create."""
        if not self.creates_buckets:
            return False
        call(self.s3, "create_bucket", Bucket=bucket)
        return True

    def set_status(self, pipeline_id: str, object_ids: list[str], status: str) -> None:
        """SetStatus on instances (RERUN, MARK_FINISHED, TRY_CANCEL), 25 ids a call."""
        for start in range(0, len(object_ids), SET_STATUS_BATCH):
            self._call("set_status", pipelineId=pipeline_id,
                       objectIds=object_ids[start:start + SET_STATUS_BATCH], status=status)

    def instances(self, pipeline_id: str, scheduled_since: str | None
                  ) -> list[dict[str, Any]]:
        """The instances scheduled at or after ``scheduled_since`` (the service's
        ``2015-04-07T16:05:58`` form; None: all), each as ``{"id", "name", "fields"}`` with
        its string and reference fields in one mapping."""
        query = None
        if scheduled_since:
            query = {"selectors": [{"fieldName": "@scheduledStartTime",
                                    "operator": {"type": "GE", "values": [scheduled_since]}}]}
        return list(self._objects(pipeline_id, "INSTANCE", query))
