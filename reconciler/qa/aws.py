"""What the QA runner asks of AWS, through the AWS CLI of the resource: the runs of other
pipelines (Data Pipeline), the result log (S3) and the failure notice (SNS).

The resource's AMI has the AWS CLI and an instance profile; using it keeps the runner free of
an AWS SDK (the runner is installed with its database drivers only). The CLI reads its region,
credentials and endpoint (``AWS_ENDPOINT_URL``) from the environment as usual.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from typing import Any

from .checks import PipelineRuns
from .databases import QaError

DESCRIBE_BATCH = 25  # object ids per DescribeObjects call (the service's limit)


class AwsCli:
    def __init__(self, command: str | None = None, timeout: float = 300.0):
        found = command or os.environ.get("DATADUCT_QA_AWS_CLI") or shutil.which("aws")
        if not found:
            raise QaError("the AWS CLI ('aws') is not on PATH; the dependencies check, "
                          "--log_to_s3 and --sns_topic_arn use it")
        self.command = found
        self.timeout = timeout
        self._ids: dict[str, str] | None = None
        self._duplicated: set[str] = set()

    def run(self, *args: str, stdin: str | None = None, output: bool = True) -> Any:
        words = [self.command, *args] + (["--output", "json"] if output else [])
        try:
            done = subprocess.run(words, input=stdin, capture_output=True, text=True,
                                  timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise QaError(f"aws {args[0]} {args[1]} did not run: {exc}") from None
        if done.returncode != 0:
            message = done.stderr.strip().splitlines()
            raise QaError(f"aws {args[0]} {args[1]} failed: "
                          f"{message[-1] if message else f'exit {done.returncode}'}")
        if not output or not done.stdout.strip():
            return None
        return json.loads(done.stdout)

    # -- Data Pipeline ---------------------------------------------------------------------

    def pipeline_id(self, name: str) -> str:
        if self._ids is None:
            listed = self.run("datapipeline", "list-pipelines") or {}
            self._ids = {}
            counts: dict[str, int] = {}
            for entry in listed.get("pipelineIdList", []):
                counts[entry["name"]] = counts.get(entry["name"], 0) + 1
                self._ids[entry["name"]] = entry["id"]
            self._duplicated = {n for n, c in counts.items() if c > 1}
        if name in self._duplicated:
            raise QaError(f"more than one pipeline is named {name}; the check cannot tell "
                          "which one to wait for")
        if name not in self._ids:
            raise QaError(f"no pipeline is named {name} in this account and region")
        return self._ids[name]

    def runs(self, name: str, day: dt.date) -> PipelineRuns:
        """The states of ``name``'s instances scheduled on ``day`` (UTC)."""
        pipeline = self.pipeline_id(name)
        start = f"{day.isoformat()}T00:00:00"
        end = f"{day.isoformat()}T23:59:59"
        query = {"selectors": [{"fieldName": "@scheduledStartTime",
                                "operator": {"type": "BETWEEN", "values": [start, end]}}]}
        found = self.run("datapipeline", "query-objects", "--pipeline-id", pipeline,
                         "--sphere", "INSTANCE", "--objects-query", json.dumps(query)) or {}
        ids = list(found.get("ids", []))
        states = []
        for first in range(0, len(ids), DESCRIBE_BATCH):
            described = self.run("datapipeline", "describe-objects", "--pipeline-id", pipeline,
                                 "--object-ids", *ids[first:first + DESCRIBE_BATCH]) or {}
            for obj in described.get("pipelineObjects", []):
                status = next((f.get("stringValue") for f in obj.get("fields", [])
                               if f.get("key") == "@status"), None)
                states.append(str(status or "UNKNOWN").upper())
        return PipelineRuns(name, tuple(sorted(states)))

    # -- results ---------------------------------------------------------------------------

    def put_text(self, s3_uri: str, text: str) -> None:
        self.run("s3", "cp", "-", s3_uri, "--content-type", "application/json", stdin=text,
                 output=False)

    def notify(self, topic_arn: str, subject: str, message: str) -> None:
        self.run("sns", "publish", "--topic-arn", topic_arn, "--subject", subject[:100],
                 "--message", message)
