"""What operators did by hand (``reconciler rerun`` ...): a journal per installation in the
environment's artifacts bucket, beside the lease, so the controller shows every operation in
the pipeline's history on its page and counts it (``dataduct_operations_total``), whichever
machine ran the command.

The journal is one JSON object holding the newest :data:`KEPT` entries. Whoever appends holds
the environment's lease, and writes with ``If-Match`` of the version it read (``If-None-Match:
*`` for the first), so two appends never lose one another. The controller reads it once a
pass with ``If-None-Match`` of the version it saw: an unchanged journal costs one 304.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .aws import AwsEnvironment, AwsError, call, missing
from .lease import CONFLICT

OPERATIONS_KEY = ".reconciler/operations/{installation}.json"
KIND = "dataduct-reconciler/operations"
KEPT = 200
ATTEMPTS = 5  # appends that lose a race read again and retry


@dataclass(frozen=True)
class Operation:
    """One operation: what, on which pipeline of which environment, by whom, with what
    result."""

    time: str  # ISO 8601, UTC
    operation: str  # "rerun", "refresh"
    env: str | None
    pipeline: str | None
    by: str
    result: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "time": self.time,
                "operation": self.operation, "env": self.env, "pipeline": self.pipeline,
                "by": self.by, "result": self.result}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Operation:
        def text(key: str) -> str:
            return str(data.get(key) or "")

        return cls(text("time"), text("operation"), data.get("env") or None,
                   data.get("pipeline") or None, text("by"), text("result"), text("id"))


class OperationsJournal:
    def __init__(self, aws: AwsEnvironment, uri: str):
        self.aws, self.uri = aws, uri
        self.bucket, _, self.key = uri[len("s3://"):].partition("/")
        self.etag: str | None = None  # the version last read

    def _get(self, if_none_match: str | None = None
             ) -> tuple[list[dict[str, Any]], str | None] | None:
        """The entries and the version; None when unchanged since ``if_none_match``."""
        extra = {"IfNoneMatch": if_none_match} if if_none_match else {}
        try:
            got = call(self.aws.s3, "get_object", Bucket=self.bucket, Key=self.key, **extra)
        except AwsError as exc:
            if exc.status == 304 or exc.code in ("304", "NotModified"):
                return None
            if missing(exc) or exc.code == "NoSuchBucket":
                return [], None
            raise
        try:
            data = json.loads(got["Body"].read())
        except ValueError:
            data = None
        entries = data.get("entries") if isinstance(data, dict) and \
            data.get("kind") == KIND else None
        return ([e for e in entries if isinstance(e, dict)] if isinstance(entries, list)
                else []), got.get("ETag")

    def append(self, operation: Operation) -> None:
        """Add one entry (the caller holds the environment's lease)."""
        for _ in range(ATTEMPTS):
            read = self._get()
            entries, etag = read if read is not None else ([], None)
            body = json.dumps({"kind": KIND, "entries": [*entries, operation.to_json()]
                               [-KEPT:]}, sort_keys=True).encode()
            condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:
                call(self.aws.s3, "put_object", Bucket=self.bucket, Key=self.key, Body=body,
                     ContentType="application/json", **condition)
                return
            except AwsError as exc:
                if exc.code not in CONFLICT and not missing(exc):
                    raise
        raise AwsError("PutObject", "ConditionalRequestConflict",
                       f"{self.uri}: {ATTEMPTS} appends in a row lost a race; try again")

    def read_new(self) -> list[Operation] | None:
        """The entries, when the journal changed since the last read (None: unchanged)."""
        read = self._get(self.etag)
        if read is None:
            return None
        entries, self.etag = read
        return [Operation.from_json(e) for e in entries]
