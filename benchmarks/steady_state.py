"""AWS calls of a reconcile pass with no changes, for 1,000 pipelines per environment on the
embedded service, against a per-pipeline definition refresh as Terraform's provider does it
(DescribePipelines and GetPipelineDefinition for every pipeline it manages). Also the wall
time of `plan` for 1,000 pipelines. Everything is counted and timed in one run.

    python benchmarks/steady_state.py [--pipelines 1000]

Targets: <= 65 calls per environment in the steady state, and no GetPipelineDefinition beyond
the drift checks' budget (policy.drift_checks_per_pass, default 5).
The two environments live in two regions, as staging and prod accounts would be apart.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import structlog
import yaml
from moto import mock_aws

from reconciler import emulator
from reconciler.desired.config import DRIFT_CHECKS_PER_PASS
from reconciler.engine import PassContext, PassOptions, run
from reconciler.live.aws import RETRIES, AwsEnvironment
from reconciler.live.lease import Leases

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"MAESTRO_PASSWORD": "m", "REDSHIFT_PASSWORD": "r", "POSTGRES_PASSWORD": "p"}
MANIFEST = """\
name: table_{i:04d}
frequency: daily
load_time: "02:{m:02d}"
steps:
- step_type: extract-s3
  directory_uri: s3://landing/table_{i:04d}/
- step_type: load-redshift
  schema: raw
  table: table_{i:04d}
"""


def build_repo(root: Path, count: int) -> None:
    shutil.copytree(ROOT / "manifests", root)
    for path in (root / "pipelines").glob("*.yaml"):
        path.unlink()
    for i in range(count):
        (root / "pipelines" / f"table_{i:04d}.yaml").write_text(MANIFEST.format(i=i, m=i % 60))
    settings = yaml.safe_load((root / "reconciler.yaml").read_text())
    settings["environments"]["prod"]["region"] = "us-west-2"
    (root / "reconciler.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))


def connect(env, installation, environ, **_hooks):
    session = boto3.session.Session(region_name=env.region, aws_access_key_id="testing",
                                    aws_secret_access_key="testing")
    return AwsEnvironment(env, installation, session.client("datapipeline", config=RETRIES),
                          session.client("s3", config=RETRIES))


def calls_of(fn) -> tuple[dict[str, int], float]:
    emulator.CONTROLS.calls.clear()
    started = time.perf_counter()
    fn()
    return dict(emulator.CONTROLS.calls), time.perf_counter() - started


def terraform_refresh(region: str) -> None:
    """What a per-resource provider does on every plan: read each managed pipeline and its
    definition, one pipeline at a time."""
    client = boto3.client("datapipeline", region_name=region, aws_access_key_id="testing",
                          aws_secret_access_key="testing", config=RETRIES)
    ids, marker = [], None
    while True:
        page = client.list_pipelines(**({"marker": marker} if marker else {}))
        ids += [p["id"] for p in page["pipelineIdList"]]
        if not page["hasMoreResults"]:
            break
        marker = page["marker"]
    for pipeline_id in ids:
        client.describe_pipelines(pipelineIds=[pipeline_id])
        client.get_pipeline_definition(pipelineId=pipeline_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=1000)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    emulator.install()
    with tempfile.TemporaryDirectory() as tmp, mock_aws():
        repo = Path(tmp) / "repo"
        build_repo(repo, args.pipelines)

        def sync(apply=True, environments=None):
            options = PassOptions(environments=tuple(environments or ()), apply=apply,
                                  allow_dirty=True)
            result = run(repo, options, now=datetime.now(UTC), environ=SECRETS,
                         connect=connect, context=PassContext(leases=Leases(enabled=False)))
            if result.failed or result.project.errors:
                raise SystemExit("the benchmark repository did not apply cleanly")
            return result

        created, seconds = calls_of(sync)
        print(f"first pass: created {2 * args.pipelines} pipelines in {seconds:.1f} s "
              f"({sum(created.values())} calls)")
        print()
        per_env = {}
        for env in ("staging", "prod"):
            steady, _ = calls_of(lambda env=env: sync(environments=[env]))
            per_env[env] = steady
        region = {"staging": "us-east-1", "prod": "us-west-2"}
        for env, steady in per_env.items():
            naive, _ = calls_of(lambda env=env: terraform_refresh(region[env]))
            ours, theirs = sum(steady.values()), sum(naive.values())
            print(f"{env}: steady-state pass {ours} calls "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(steady.items()))}); "
                  f"GetPipelineDefinition {steady.get('GetPipelineDefinition', 0)} (the drift "
                  f"checks' budget: {DRIFT_CHECKS_PER_PASS})")
            print(f"{env}: per-pipeline refresh {theirs} calls "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(naive.items()))})")
            print(f"{env}: ratio {theirs / ours:.1f}x fewer calls "
                  f"(target <= 65 per environment: {'met' if ours <= 65 else 'NOT met'})")
            print()
        started = time.perf_counter()
        result = sync(apply=False, environments=["staging"])
        took = time.perf_counter() - started
        counts = result.environments[0].plan.counts()
        print(f"plan of {args.pipelines} pipelines (staging, no changes): {took:.2f} s "
              f"wall time {counts}")
        # time spent by the AWS calls, for reference: the same reads alone
        _, reads = calls_of(lambda: connect(result.project.settings.environments["staging"],
                                            "default", {}).read_managed())
        print(f"  of which reading the live state: {reads:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
