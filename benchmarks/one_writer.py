"""One writer per environment under load: two `reconciler run` processes on one embedded
service (its quotas enforced, so a commit changing every pipeline takes a while to apply),
a short lease, the holder killed with SIGKILL in the middle of an apply, then started again.

    python benchmarks/one_writer.py [--pipelines 100] [--lease 15]

Measured in one run and printed: how long after the kill the other controller took the
leases (their holder, read from the lease objects), applied its first write (after planning,
which reads every definition at the service's quota) and the whole commit, and the writes of
both processes (from their logs: every applied action's start and end); the check is that
writes of the two never overlap in time. Targets: the takeover within one lease period plus
a pass's wait, no overlap, no duplicate.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "coursera-reinvent"  # the example repository's artifacts bucket (its config)
SECRETS = {"MAESTRO_PASSWORD": "m", "REDSHIFT_PASSWORD": "r", "POSTGRES_PASSWORD": "p",
           "RECONCILER_SECRETS_KEY": "k"}
MANIFEST = """\
name: table_{i:04d}
frequency: daily
load_time: "02:{m:02d}"
steps:
- step_type: extract-s3
  directory_uri: s3://landing/table_{i:04d}/
- step_type: load-redshift
  schema: {schema}
  table: table_{i:04d}
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def write_pipelines(repo: Path, count: int, schema: str) -> str:
    for i in range(count):
        (repo / "pipelines" / f"table_{i:04d}.yaml").write_text(
            MANIFEST.format(i=i, m=i % 60, schema=schema))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"schema {schema}")
    return git(repo, "rev-parse", "HEAD")


def build_repo(repo: Path, count: int) -> str:
    shutil.copytree(ROOT / "manifests", repo, ignore=shutil.ignore_patterns(".reconciler"))
    for path in (repo / "pipelines").glob("*.yaml"):
        path.unlink()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@example.com")
    git(repo, "config", "user.name", "bench")
    return write_pipelines(repo, count, "raw")


def start_emulator(workdir: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "emulator", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=workdir)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "export AWS_ENDPOINT_URL=" in line:
            return proc, line.split("=", 1)[1].strip()
    raise SystemExit("the emulator did not start")


def control(endpoint: str, action: str, body: dict) -> None:
    request = urllib.request.Request(f"{endpoint}/_reconciler/{action}",
                                     data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(request, timeout=10).read()


def start_controller(repo: Path, endpoint: str, cache: Path, log: Path, lease: float
                     ) -> subprocess.Popen:
    environ = {**os.environ, **SECRETS, "AWS_ENDPOINT_URL": endpoint,
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "RECONCILER_LOG_FORMAT": "json", "RECONCILER_INTERVAL": "2",
               "RECONCILER_LEASE_SECONDS": str(lease)}
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-m", "reconciler", "run", "--repo", str(repo),
                                 "--cache-dir", str(cache), "--listen", "127.0.0.1:0"],
                                stdout=out, stderr=subprocess.STDOUT, env=environ)


def revisions(endpoint: str) -> dict[tuple[str, str], list[str]]:
    client = boto3.client("datapipeline", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    ids, marker = [], None
    while True:
        page = client.list_pipelines(**({"marker": marker} if marker else {}))
        ids += [p["id"] for p in page["pipelineIdList"]]
        marker = page.get("marker")
        if not page.get("hasMoreResults"):
            break
    found: dict[tuple[str, str], list[str]] = {}
    for start in range(0, len(ids), 25):
        for desc in client.describe_pipelines(pipelineIds=ids[start:start + 25])[
                "pipelineDescriptionList"]:
            fields = {f["key"]: f.get("stringValue") for f in desc["fields"]}
            if fields.get("@pipelineState") == "DELETED":
                continue
            tags = {t["key"]: t["value"] for t in desc["tags"]}
            key = (tags.get("dataduct-reconciler/environment", ""),
                   tags.get("dataduct-reconciler/pipeline", ""))
            found.setdefault(key, []).append(tags.get("dataduct-reconciler/revision", ""))
    return found


def converged(endpoint: str, revision: str, count: int) -> bool:
    try:
        found = revisions(endpoint)
    except Exception:  # the emulator is throttling our own reads too
        return False
    return len(found) == 2 * count and all(v == [revision] for v in found.values())


def lease_holders(endpoint: str) -> set[str]:
    """Who holds the environments' leases (the objects in the artifacts bucket)."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    holders = set()
    for env in ("staging", "prod"):
        try:
            got = s3.get_object(Bucket=BUCKET, Key=f"{env}/.reconciler/lease/default.json")
            holders.add(json.loads(got["Body"].read())["holder"])
        except Exception:  # not there yet, or mid-write
            holders.add("")
    return holders


def writes(log: Path, holder: str) -> list[tuple[float, float, str]]:
    found = []
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("event") == "applied" and event.get("outcome") == "applied":
            end = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
            found.append((end - float(event["seconds"]), end, holder))
    return found


def wait(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=100)
    parser.add_argument("--lease", type=float, default=15.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="one-writer-"))
    emulator, endpoint = start_emulator(work)
    processes: list[subprocess.Popen] = [emulator]
    logs = {"a": work / "a.log", "b": work / "b.log"}
    try:
        repo = work / "manifests"
        first = build_repo(repo, args.pipelines)
        a = start_controller(repo, endpoint, work / "cache-a", logs["a"], args.lease)
        processes.append(a)
        took = wait(lambda: converged(endpoint, first, args.pipelines), 900, "the creates")
        print(f"{2 * args.pipelines} pipelines created by a in {took:.1f} s")
        b = start_controller(repo, endpoint, work / "cache-b", logs["b"], args.lease)
        processes.append(b)
        wait(lambda: '"standby"' in logs["b"].read_text(), 60, "b to stand by")
        control(endpoint, "throttling", {"enabled": True})  # the service's quotas from now on
        second = write_pipelines(repo, args.pipelines, "raw2")  # changes every pipeline
        applied_before = len(writes(logs["a"], "a"))
        wait(lambda: len(writes(logs["a"], "a")) >= applied_before + 5, 300,
             "a to start applying")
        (held_by_a,) = lease_holders(endpoint)
        a.send_signal(signal.SIGKILL)
        a.wait()
        killed = time.monotonic()
        done_by_a = len(writes(logs["a"], "a")) - applied_before
        print(f"a killed with SIGKILL after {done_by_a} of {2 * args.pipelines} updates")
        wait(lambda: held_by_a not in lease_holders(endpoint) and "" not in
             lease_holders(endpoint), 300, "b to take the leases")
        takeover = time.monotonic() - killed
        print(f"b took the leases {takeover:.1f} s after the kill (lease {args.lease:.0f} s)")
        wait(lambda: len(writes(logs["b"], "b")) > 0, 300, "b's first write")
        first_write = time.monotonic() - killed
        print(f"b's first write {first_write:.1f} s after the kill (planning reads every "
              "definition at the quota first)")
        a = start_controller(repo, endpoint, work / "cache-a", logs["a"], args.lease)
        processes.append(a)
        wait(lambda: converged(endpoint, second, args.pipelines), 1800, "the commit applied")
        print(f"the commit fully applied {time.monotonic() - killed:.1f} s after the kill")
        third = write_pipelines(repo, args.pipelines, "raw3")
        wait(lambda: converged(endpoint, third, args.pipelines), 1800, "the next commit")
        print("the next commit applied with the old holder back as a standby")
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
    every = sorted(writes(logs["a"], "a") + writes(logs["b"], "b"))
    overlaps = [(x, y) for x, y in itertools.pairwise(every) if x[2] != y[2] and x[1] > y[0]]
    by = {h: sum(1 for *_, w in every if w == h) for h in ("a", "b")}
    print(f"writes: a {by['a']}, b {by['b']}; overlapping writes of the two: {len(overlaps)}")
    if overlaps:
        print("overlaps:", overlaps[:5])
    ok = not overlaps and takeover <= args.lease + 10
    print("PASS" if ok else "FAIL", f"(logs in {work})")
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
