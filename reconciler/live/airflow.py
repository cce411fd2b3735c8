"""An Airflow environment as it is: the DAG files in its folder and what Airflow made of them.

The DAG folder is an S3 prefix (MWAA's ``dags/``, or the bucket a self-hosted Airflow syncs
from). Each file the reconciler writes carries its ownership and the digest of what was
translated as S3 object metadata; a listing gives every file's ETag, which for a plain
upload is the MD5 of its bytes, so a pass in which nothing changed reads no file body and
no metadata. Airflow's REST API (v2) says which DAGs it parsed, which are paused and which
files failed to import; it is reached over HTTP with a bearer token (a self-hosted Airflow)
or through MWAA's ``InvokeRestApi``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from botocore.exceptions import ClientError

from .aws import AwsError, call, client_error, missing
from .model import TAG_PREFIX, AirflowDag, ImportProblem, LiveDag, LiveFolder

# S3 metadata keys cannot hold "/": the tag ``dataduct-reconciler/pipeline`` is kept as
# ``x-amz-meta-dataduct-reconciler-pipeline``.
_META_PREFIX = TAG_PREFIX.rstrip("/") + "-"
PAGE = 100  # the API's page size (its maximum is 100 by default)


def metadata_of(tags: Mapping[str, str]) -> dict[str, str]:
    """The S3 metadata that records the tags."""
    return {_META_PREFIX + k[len(TAG_PREFIX):]: v for k, v in tags.items()
            if k.startswith(TAG_PREFIX)}


def tags_of(metadata: Mapping[str, str]) -> dict[str, str]:
    """The tags an object's metadata records (the reverse of :func:`metadata_of`)."""
    return {TAG_PREFIX + k[len(_META_PREFIX):]: v for k, v in metadata.items()
            if k.startswith(_META_PREFIX)}


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/dags`` -> ``("bucket", "dags/")``."""
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class DagFolder:
    """The DAG folder in S3: list, read the metadata of, write and remove files by their
    path inside it."""

    def __init__(self, s3: Any, uri: str):
        self.s3, self.uri = s3, uri
        self.bucket, self.prefix = split_uri(uri)

    def list(self) -> dict[str, str]:
        """Every file under the folder: path inside it -> ETag (without quotes)."""
        found: dict[str, str] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
            if token:
                kwargs["ContinuationToken"] = token
            try:
                page = call(self.s3, "list_objects_v2", **kwargs)
            except AwsError as exc:
                raise AwsError(exc.operation, exc.code, f"the DAG folder {self.uri} "
                               f"(airflow.dags): {exc.message}", exc.status) from None
            for item in page.get("Contents", []):
                found[item["Key"][len(self.prefix):]] = item["ETag"].strip('"')
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return found

    def tags(self, path: str) -> dict[str, str] | None:
        """The reconciler's tags of a file (empty: a file it did not write); None when the
        file is gone."""
        try:
            head = call(self.s3, "head_object", Bucket=self.bucket, Key=self.prefix + path)
        except AwsError as exc:
            if missing(exc):
                return None
            raise
        return tags_of(head.get("Metadata", {}))

    def read_index(self, path: str) -> dict[str, dict[str, Any]]:
        """The index kept at ``path``: file path -> {"etag", "tags"}; empty when there is
        none or it cannot be read (the files' own metadata is the truth: a file the index
        does not know with its ETag has its metadata read)."""
        try:
            body = call(self.s3, "get_object", Bucket=self.bucket, Key=self.prefix + path)
        except AwsError as exc:
            if missing(exc):
                return {}
            raise
        try:
            files = json.loads(body["Body"].read()).get("files", {})
        except (ValueError, AttributeError):
            return {}
        return {k: v for k, v in files.items() if isinstance(v, dict)}

    def write_index(self, path: str, files: Mapping[str, Mapping[str, Any]]) -> None:
        body = json.dumps({"version": 1, "files": files}, sort_keys=True).encode()
        call(self.s3, "put_object", Bucket=self.bucket, Key=self.prefix + path, Body=body,
             ContentType="application/json")

    def put(self, path: str, body: bytes, tags: Mapping[str, str] | None = None) -> str:
        """Write a file (with the tags as metadata); its new ETag."""
        done = call(self.s3, "put_object", Bucket=self.bucket, Key=self.prefix + path,
                    Body=body, Metadata=metadata_of(tags or {}),
                    ContentType="text/x-python" if path.endswith(".py") else
                    "application/octet-stream")
        return str(done.get("ETag", "")).strip('"')

    def retag(self, path: str, tags: Mapping[str, str]) -> None:
        """Replace a file's tags, its bytes unchanged (a copy onto itself)."""
        key = self.prefix + path
        call(self.s3, "copy_object", Bucket=self.bucket, Key=key,
             CopySource={"Bucket": self.bucket, "Key": key}, Metadata=metadata_of(tags),
             MetadataDirective="REPLACE", ContentType="text/x-python")

    def delete(self, paths: Iterable[str]) -> None:
        keys = [{"Key": self.prefix + p} for p in sorted(set(paths))]
        for start in range(0, len(keys), 1000):
            call(self.s3, "delete_objects", Bucket=self.bucket,
                 Delete={"Objects": keys[start:start + 1000], "Quiet": True})


def index_path(installation: str, environment: str) -> str:
    """Where, in the DAG folder, the index of an installation's files for an environment is
    kept (Airflow ignores it: it is no Python file, and .airflowignore names the folder)."""
    return f".dataduct/{installation}-{environment}.json"


class RestApi(Protocol):
    def __call__(self, method: str, path: str, query: Mapping[str, Any] | None = None,
                 body: Mapping[str, Any] | None = None) -> Any: ...


class AirflowApiError(AwsError):
    """Airflow's REST API refused a request or could not be reached."""


def http_api(base_url: str, token: str | None, timeout: float = 10.0,
             opener: Callable[..., Any] = urllib.request.urlopen) -> RestApi:
    """Airflow's REST API over HTTP. Without a token one is asked of ``/auth/token``, which
    an auth manager that lets everyone in (``simple_auth_manager_all_admins``) gives."""
    base = base_url.rstrip("/")
    held = {"token": token}

    def send(method: str, url: str, data: bytes | None, headers: dict[str, str]) -> Any:
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with opener(request, timeout=timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise AirflowApiError(f"{method} {url.removeprefix(base)}", str(exc.code),
                                  f"Airflow answered {exc.code}: {detail}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise AirflowApiError(f"{method} {url.removeprefix(base)}", "Unreachable",
                                  f"Airflow's API at {base} did not answer: {exc}") from None
        return json.loads(text) if text else None

    def bearer() -> str:
        token = held["token"]
        if token is None:
            answer = send("GET", f"{base}/auth/token", None, {"Accept": "application/json"})
            token = held["token"] = str(answer["access_token"])
        return token

    def request(method: str, path: str, query: Mapping[str, Any] | None = None,
                body: Mapping[str, Any] | None = None) -> Any:
        url = f"{base}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "Authorization": f"Bearer {bearer()}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            return send(method, url, data, headers)
        except AirflowApiError as exc:
            if exc.status != 401 or token is not None:
                raise
            # a token asked of /auth/token expires (a day by default): ask again, once
            held["token"] = None
            headers["Authorization"] = f"Bearer {bearer()}"
            return send(method, url, data, headers)

    return request


class MwaaApi:
    """Airflow's REST API of an MWAA environment, through the AWS API ``InvokeRestApi``
    (paths without the ``/api/v2`` prefix; an error Airflow answered comes back as a
    RestApiClientException or RestApiServerException holding its status)."""

    def __init__(self, client: Any, environment: str):
        self.airflow, self.environment = client, environment

    def __call__(self, method: str, path: str, query: Mapping[str, Any] | None = None,
                 body: Mapping[str, Any] | None = None) -> Any:
        kwargs: dict[str, Any] = {"Name": self.environment,
                                  "Path": path.removeprefix("/api/v2"), "Method": method}
        if query:
            kwargs["QueryParameters"] = dict(query)
        if body is not None:
            kwargs["Body"] = dict(body)
        try:  # not call(): an error holds the status Airflow answered
            answer = self.airflow.invoke_rest_api(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "Unknown")
            if code in ("RestApiClientException", "RestApiServerException"):
                # the status and answer Airflow gave, as modeled fields of the error
                status = exc.response.get("RestApiStatusCode")
                detail = json.dumps(exc.response.get("RestApiResponse"))[:500]
                raise AirflowApiError(f"{method} {path}", str(status or code),
                                      f"Airflow answered {status}: {detail}",
                                      int(status) if status else 400) from None
            raise client_error("InvokeRestApi", exc) from None
        return answer.get("RestApiResponse")


class Airflow:
    """The calls the reconciler makes to one Airflow."""

    def __init__(self, api: RestApi):
        self.api = api

    def dags(self, prefix: str = "") -> dict[str, AirflowDag]:
        """The DAGs Airflow parsed whose id starts with ``prefix`` (stale ones, whose file is
        gone, are left out)."""
        found: dict[str, AirflowDag] = {}
        offset = 0
        query: dict[str, Any] = {"limit": PAGE, "order_by": "dag_id"}
        if prefix:
            query["dag_id_pattern"] = prefix.replace("%", r"\%").replace("_", r"\_") + "%"
        while True:
            page = self.api("GET", "/api/v2/dags", {**query, "offset": offset}) or {}
            for dag in page.get("dags", []):
                if prefix and not dag["dag_id"].startswith(prefix):
                    continue
                found[dag["dag_id"]] = AirflowDag(dag["dag_id"], dag.get("relative_fileloc") or
                                                  "", bool(dag.get("is_paused")),
                                                  dag.get("last_parsed_time"))
            offset += PAGE
            if offset >= int(page.get("total_entries", 0)) or not page.get("dags"):
                return found

    def dag(self, dag_id: str) -> AirflowDag | None:
        try:
            dag = self.api("GET", f"/api/v2/dags/{urllib.parse.quote(dag_id)}")
        except AwsError as exc:
            if exc.status == 404:
                return None
            raise
        return AirflowDag(dag["dag_id"], dag.get("relative_fileloc") or "",
                          bool(dag.get("is_paused")), dag.get("last_parsed_time"))

    def import_errors(self) -> dict[str, ImportProblem]:
        """File (relative to the DAG folder) -> the error Airflow met importing it."""
        found: dict[str, ImportProblem] = {}
        offset = 0
        while True:
            page = self.api("GET", "/api/v2/importErrors",
                            {"limit": PAGE, "offset": offset}) or {}
            for error in page.get("import_errors", []):
                found[error.get("filename") or ""] = ImportProblem(
                    error.get("stack_trace") or "", error.get("timestamp") or "")
            offset += PAGE
            if offset >= int(page.get("total_entries", 0)) or not page.get("import_errors"):
                return found

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.api("PATCH", f"/api/v2/dags/{urllib.parse.quote(dag_id)}",
                 {"update_mask": "is_paused"}, {"is_paused": paused})


def read_folder(folder: DagFolder, airflow: Airflow, prefix: str, index: str) -> LiveFolder:
    """The DAG files of the folder whose names start with ``prefix`` (the environment's
    ``name_prefix``), each with its tags: from the index at ``index`` where it knows the
    file with the ETag it has now, else read with HeadObject (a file changed or written by
    someone else, an index lost). A pass in which nothing changed reads the listing, the
    index and Airflow's API: no DAG file and no file's metadata."""
    listed = folder.list()
    known = folder.read_index(index)
    parsed = {d.file: d for d in airflow.dags(prefix).values()}
    errors = airflow.import_errors()
    dags, unindexed = [], set()
    for path, etag in sorted(listed.items()):
        if "/" in path or not path.endswith(".py") or not path.startswith(prefix):
            continue
        entry = known.get(path)
        if entry and entry.get("etag") == etag and isinstance(entry.get("tags"), dict):
            tags: dict[str, str] | None = dict(entry["tags"])
        else:
            tags = folder.tags(path)
            unindexed.add(path)
        if tags is None:
            continue  # removed since the listing
        dags.append(LiveDag(path, etag, tags, parsed.get(path), errors.get(path)))
    return LiveFolder(tuple(dags), frozenset(listed), frozenset(unindexed))
