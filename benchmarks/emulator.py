"""Per-call cost of the embedded Data Pipeline, in-process (mock_aws) and as a loopback server,
measured in one run, for sizing the larger benchmarks.

    python benchmarks/emulator.py [--calls 300]

Prints microseconds per call for the operations a reconcile pass makes, and the ratio of the
server's cost to the in-process cost.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import boto3
from botocore.config import Config
from moto import mock_aws

from reconciler import emulator
from reconciler.desired.compiler import CompileOptions
from reconciler.desired.project import compile_project
from reconciler.emulator.server import EmulatorServer, control
from reconciler.qa.bundle import qa_runner
from reconciler.source import read_snapshot

ROOT = Path(__file__).resolve().parent.parent
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
               "region_name": "us-east-1", "config": Config(retries={"max_attempts": 1})}


def users_definition() -> dict:
    options = CompileOptions(date.today(), qa_runner=qa_runner())
    result = compile_project(read_snapshot(ROOT / "manifests"), options,
                             environments=["staging"])
    pipeline = next(p for p in result.compiled("staging") if p.name == "users")
    return pipeline.api_form()


def measure(client, calls: int, definition: dict) -> dict[str, float]:
    timings: dict[str, float] = {}

    def timed(name, fn, n=calls):
        started = time.perf_counter()
        out = [fn(i) for i in range(n)]
        timings[name] = (time.perf_counter() - started) / n * 1e6
        return out

    ids = timed("CreatePipeline", lambda i: client.create_pipeline(
        name=f"p{i}", uniqueId=f"u{i}")["pipelineId"])
    timed("PutPipelineDefinition", lambda i: client.put_pipeline_definition(
        pipelineId=ids[i], pipelineObjects=definition["pipelineObjects"],
        parameterObjects=definition["parameterObjects"]))
    timed("DescribePipelines (25 ids)", lambda i: client.describe_pipelines(
        pipelineIds=[ids[(i * 25 + k) % len(ids)] for k in range(25)]))
    timed("ListPipelines (page of 50)", lambda i: client.list_pipelines())
    timed("GetPipelineDefinition", lambda i: client.get_pipeline_definition(
        pipelineId=ids[i]))
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    emulator.install()
    definition = users_definition()

    emulator.CONTROLS.reset()
    with mock_aws():
        in_process = measure(boto3.client("datapipeline", **CREDENTIALS), args.calls,
                             definition)
    control("reset", {})
    server = EmulatorServer(port=0)
    endpoint = server.start()
    try:
        over_http = measure(boto3.client("datapipeline", endpoint_url=endpoint, **CREDENTIALS),
                            args.calls, definition)
    finally:
        server.stop()
        control("reset", {})

    print(f"calls per operation: {args.calls}; users definition: "
          f"{len(definition['pipelineObjects'])} objects, "
          f"{len(json.dumps(definition))} bytes")
    print(f"{'operation':32} {'in-process':>12} {'server':>12} {'ratio':>7}")
    for name in in_process:
        a, b = in_process[name], over_http[name]
        print(f"{name:32} {a:9.0f} us {b:9.0f} us {b / a:6.2f}x")
    total_a, total_b = sum(in_process.values()), sum(over_http.values())
    print(f"{'mean of the operations':32} {total_a / len(in_process):9.0f} us "
          f"{total_b / len(over_http):9.0f} us {total_b / total_a:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
