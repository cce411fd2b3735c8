"""The controller's latency and its pace under the service's quotas, measured in one run.

    python benchmarks/latency.py [--small 10] [--large 1000] [--quota-pipelines 10000]
                                 [--repeats 20] [--skip-quotas]

1. Commit -> applied through the webhook: a real git repository, the controller following it
   (GitSource), its HTTP server and a signed GitHub push webhook; the time from the POST to
   the pipeline's revision tag being the commit, in both environments. Median and p90 of
   ``--repeats`` commits, with ``--small`` and with ``--large`` pipelines per environment.
2. A no-change pass over ``--quota-pipelines`` pipelines (one environment) with the embedded
   service's documented quotas on (1 call/s, burst 100 per operation): wall time and
   throttled retries, without client-side pacing (every call as fast as botocore sends it,
   throttles retried by its adaptive mode) and with it. The floor is set by the quotas:
   ListPipelines pages of 50 and DescribePipelines batches of 25 beyond their bursts.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import boto3
import structlog
import yaml

from reconciler import emulator
from reconciler.controller import Controller, ControllerConfig, ControllerServer, GitSource
from reconciler.emulator.server import EmulatorServer, control
from reconciler.engine import Events, PassContext, PassOptions, run_pass
from reconciler.live.lease import Leases
from reconciler.live.pacing import Pacer, is_throttle
from reconciler.source import read_checkout

ROOT = Path(__file__).resolve().parent.parent
SECRET = b"benchmark-webhook-secret"
SECRETS = {"MAESTRO_PASSWORD": "m", "REDSHIFT_PASSWORD": "r", "POSTGRES_PASSWORD": "p",
           "RECONCILER_SECRETS_KEY": "k"}
MANIFEST = """\
name: table_{i:05d}
frequency: daily
load_time: "02:{m:02d}"
steps:
- step_type: extract-s3
  directory_uri: s3://landing/table_{i:05d}/
- step_type: load-redshift
  schema: raw
  table: table_{i:05d}
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def build_repo(root: Path, count: int, environments: tuple[str, ...]) -> None:
    shutil.copytree(ROOT / "manifests", root, ignore=shutil.ignore_patterns(".reconciler"))
    for path in (root / "pipelines").glob("*.yaml"):
        path.unlink()
    for i in range(count):
        (root / "pipelines" / f"table_{i:05d}.yaml").write_text(MANIFEST.format(i=i, m=i % 60))
    settings = yaml.safe_load((root / "reconciler.yaml").read_text())
    settings["environments"] = {k: v for k, v in settings["environments"].items()
                                if k in environments}
    (root / "reconciler.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-q", "-m", "i")


def environ(endpoint: str) -> dict[str, str]:
    return {**SECRETS, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def revision_tag(client, pipeline_id: str) -> str:
    (desc,) = client.describe_pipelines(pipelineIds=[pipeline_id])["pipelineDescriptionList"]
    return {t["key"]: t["value"] for t in desc["tags"]}.get("dataduct-reconciler/revision", "")


def pipeline_ids(client, name: str) -> list[str]:
    found, marker = [], None
    while True:
        page = client.list_pipelines(**({"marker": marker} if marker else {}))
        found += [p["id"] for p in page["pipelineIdList"] if p["name"].endswith(name)]
        if not page.get("hasMoreResults"):
            return found
        marker = page["marker"]


def webhook_latency(count: int, repeats: int, server: EmulatorServer, work: Path) -> list[float]:
    control("reset", {})
    repo = work / f"repo-{count}"
    build_repo(repo, count, ("staging", "prod"))
    endpoint = server.endpoint
    controller = Controller(GitSource(str(repo), "main", work / f"cache-{count}"),
                            ControllerConfig(interval=3600), environ=environ(endpoint),
                            wall=lambda: datetime.now(UTC))
    http = ControllerServer(controller, "127.0.0.1", 0, SECRET)
    http.start()
    # the pipelines are created first without pacing (the quotas would make 2,000 creates
    # take over half an hour); the controller then starts from a repository in sync
    started = time.perf_counter()
    created = run_pass(controller.source.read(), PassOptions(apply=True),
                       now=datetime.now(UTC), environ=environ(endpoint),
                       context=PassContext(leases=Leases(enabled=False)))
    if created.failed:
        raise SystemExit("the benchmark repository did not apply cleanly")
    controller.run_once()
    print(f"  {count} pipelines x 2 environments created in "
          f"{time.perf_counter() - started:.1f} s")
    worker = threading.Thread(target=controller.loop, daemon=True)
    worker.start()
    client = boto3.client("datapipeline", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    ids = pipeline_ids(client, "table_00000")
    samples = []
    try:
        for attempt in range(repeats):
            manifest = repo / "pipelines" / "table_00000.yaml"
            # an in-place update: the load's retries alternate between 1 and 2
            manifest.write_text(MANIFEST.format(i=0, m=0) + f"  max_retries: {1 + attempt % 2}\n")
            git(repo, "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qam",
                f"change {attempt}")
            commit = git(repo, "rev-parse", "HEAD")
            body = json.dumps({"ref": "refs/heads/main", "after": commit}).encode()
            signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
            request = urllib.request.Request(
                f"{http.address}/webhook", data=body, method="POST",
                headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": signature})
            sent = time.perf_counter()
            urllib.request.urlopen(request, timeout=10).read()
            while not all(revision_tag(client, pid) == commit for pid in ids):
                if time.perf_counter() - sent > 120:
                    raise SystemExit(f"commit {commit[:12]} not applied within 120 s")
                time.sleep(0.02)
            samples.append(time.perf_counter() - sent)
    finally:
        controller.stop()
        worker.join(60)
        http.stop()
    return samples


class ThrottleCount(Events):
    def __init__(self) -> None:
        super().__init__()
        self.throttles = 0

    def aws_request(self, env: str, operation: str, code: str) -> None:
        if is_throttle(code):
            self.throttles += 1


def quota_pass(count: int, server: EmulatorServer, work: Path) -> None:
    control("reset", {})
    repo = work / f"repo-quota-{count}"
    build_repo(repo, count, ("staging",))
    env = environ(server.endpoint)
    source = read_checkout(repo)
    started = time.perf_counter()
    created = run_pass(source, PassOptions(apply=True), now=datetime.now(UTC), environ=env,
                       context=PassContext(leases=Leases(enabled=False)))
    if created.failed:
        raise SystemExit("the benchmark repository did not apply cleanly")
    print(f"  {count} pipelines created in {time.perf_counter() - started:.1f} s "
          "(quotas off)")
    results = {}
    for label, pacer in (("without pacing", None), ("with pacing", Pacer())):
        control("throttling", {"enabled": True})  # fresh buckets: full bursts
        events = ThrottleCount()
        context = PassContext(events=events, leases=Leases(enabled=False), pacer=pacer)
        started = time.perf_counter()
        result = run_pass(source, PassOptions(apply=False), now=datetime.now(UTC),
                          environ=env, context=context)
        took = time.perf_counter() - started
        if result.failed:
            raise SystemExit(f"the no-change pass failed ({label}): "
                             f"{[e.error for e in result.environments]}")
        counts = result.environments[0].plan.counts()
        results[label] = (took, events.throttles)
        print(f"  {label}: {took:.1f} s, {events.throttles} throttled retries, plan {counts}")
        control("throttling", {"enabled": False})
    lists, describes = -(-count // 50), -(-count // 25)
    floor = max(0, lists - 100) + max(0, describes - 100)
    print(f"  floor set by the quotas: about {floor} s ({lists} ListPipelines, {describes} "
          "DescribePipelines at 1/s beyond a burst of 100)")
    (slow, throttled), (paced, paced_throttled) = results["without pacing"], results[
        "with pacing"]
    print(f"  ratio: time {paced / slow:.2f}x, throttled retries {paced_throttled} vs "
          f"{throttled}; time over the floor: {paced / max(floor, 1):.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=1000)
    parser.add_argument("--quota-pipelines", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-quotas", action="store_true")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("botocore").setLevel(logging.ERROR)
    emulator.install()
    control("reset", {})
    server = EmulatorServer(port=0)
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for count in (args.small, args.large):
                print(f"commit -> applied through the webhook, {count} pipelines per "
                      "environment:")
                samples = sorted(webhook_latency(count, args.repeats, server, work))
                p90 = samples[min(len(samples) - 1, int(0.9 * len(samples)))]
                print(f"  median {statistics.median(samples):.2f} s, p90 {p90:.2f} s, "
                      f"max {samples[-1]:.2f} s over {len(samples)} commits")
            if not args.skip_quotas:
                print(f"no-change pass over {args.quota_pipelines} pipelines, documented "
                      "quotas on:")
                quota_pass(args.quota_pipelines, server, work)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
