"""Memory and the quota floor at scale, measured in one run.

    python benchmarks/scale.py [--pipelines 1000 10000] [--first-pass 250] [--repeat 3]

1. Peak RSS of ``reconciler plan`` (a process of its own, as a user or CI runs it) on a
   repository of N pipelines in two environments that are in sync with the embedded service:
   the pipelines are created first in this process (quotas off), the service's state is saved
   and served by ``reconciler emulator --state`` in a process of its own, so the plan's
   figure holds the plan alone. Target: <= 250 MiB at 10,000 x 2.
2. A first pass creating ``--first-pass`` pipelines with the embedded service's documented
   quotas on and the client's pacing (the default), against the floor the quotas set: every
   operation a create needs (CreatePipeline, PutPipelineDefinition, ActivatePipeline...) at
   its rate beyond its burst. Target: within 5% of the floor, 0 throttles.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import structlog
from moto import mock_aws

from reconciler import emulator
from reconciler.emulator.server import EmulatorServer, control, snapshot_state
from reconciler.engine import Events, PassContext, PassOptions, run, run_pass
from reconciler.live.lease import Leases
from reconciler.live.pacing import Pacer, is_throttle
from reconciler.service.quotas import API_QUOTAS
from reconciler.source import read_checkout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from steady_state import SECRETS, build_repo, connect

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def seed(repo: Path, state: Path) -> float:
    """Create every pipeline of the repository in this process's embedded service and save
    its state; the seconds it took."""
    control("reset", {})
    started = time.perf_counter()
    with mock_aws():
        result = run(repo, PassOptions(apply=True, allow_dirty=True), now=datetime.now(UTC),
                     environ=SECRETS, connect=connect,
                     context=PassContext(leases=Leases(enabled=False)))
        if result.failed or result.project.errors:
            raise SystemExit("the benchmark repository did not apply cleanly")
        state.write_text(json.dumps(snapshot_state()))
    return time.perf_counter() - started


def serve(state: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "reconciler", "emulator", "--port",
                               str(port), "--state", str(state)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{endpoint}/_reconciler/calls", timeout=1).read()
            return server, endpoint
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the embedded service did not start")


def plan_rss(repo: Path, endpoint: str, processes: str) -> tuple[float, float, int]:
    """Peak RSS (MiB, the largest of the process and the compile's workers), wall time and
    exit status of ``reconciler plan`` in a process of its own."""
    env = {**os.environ, **SECRETS, "RECONCILER_COMPILE_PROCESSES": processes,
           "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing"}
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "reconciler", "plan", str(repo),
                              "--format", "json"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    took = time.perf_counter() - started
    if child.returncode not in (0, 2):
        raise SystemExit(f"reconciler plan failed ({child.returncode}): "
                         f"{errors.decode()[-2000:]}")
    return usage.ru_maxrss * 1024 / MIB, took, child.returncode


def memory(counts: list[int], repeat: int, work: Path, processes: list[str]) -> None:
    for count in counts:
        repo, state = work / f"repo-{count}", work / f"state-{count}.json"
        if not state.exists():  # a --work directory keeps what an earlier run created
            shutil.rmtree(repo, ignore_errors=True)
            build_repo(repo, count)
            subprocess.run(["git", "init", "-q", str(repo)], check=True)
            subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
            subprocess.run(["git", "-C", str(repo), "-c", "user.name=b", "-c",
                            "user.email=b@b", "commit", "-qm", "benchmark"], check=True)
            took = seed(repo, state)
            print(f"{count} x 2 pipelines created in {took:.0f} s (in process, quotas off); "
                  f"state {state.stat().st_size / MIB:.0f} MiB")
        for workers in processes:
            server, endpoint = serve(state)
            try:
                samples = [plan_rss(repo, endpoint, workers) for _ in range(repeat)]
            finally:
                server.terminate()
                server.wait()
            report(count, workers, samples)


def report(count: int, workers: str, samples: list[tuple[float, float, int]]) -> None:
    rss = sorted(s[0] for s in samples)
    wall = sorted(s[1] for s in samples)
    exits = {s[2] for s in samples}
    print(f"  plan, {count} x 2 in sync, compile processes {workers or 'auto'} (exit "
          f"{', '.join(map(str, sorted(exits)))}): peak RSS min {rss[0]:.0f} MiB, median "
          f"{statistics.median(rss):.0f} MiB; wall min {wall[0]:.1f} s, median "
          f"{statistics.median(wall):.1f} s")
    if count >= 10000:
        print(f"  target <= 250 MiB: {'met' if statistics.median(rss) <= 250 else 'NOT met'}"
              f" ({statistics.median(rss) / 250:.2f}x the budget)")


class Throttles(Events):
    def __init__(self) -> None:
        super().__init__()
        self.throttles = 0
        self.calls: Counter[str] = Counter()

    def aws_request(self, env: str, operation: str, code: str) -> None:
        self.calls[operation] += 1
        if is_throttle(code):
            self.throttles += 1


def quota_floor(calls: Counter[str]) -> float:
    """Seconds the documented quotas need for these calls, each operation's bucket full at
    the start: the slowest operation's calls beyond its burst at its rate (operations have
    buckets of their own, so they overlap)."""
    floor = 0.0
    for operation, count in calls.items():
        if operation in API_QUOTAS:
            rate, burst = API_QUOTAS[operation]
            floor = max(floor, max(0, count - burst) / rate)
    return floor


def first_pass(count: int, repeat: int, work: Path) -> None:
    from latency import build_repo as latency_repo
    from latency import environ
    server = EmulatorServer(port=0)
    server.start()
    try:
        repo = work / f"repo-first-{count}"
        latency_repo(repo, count, ("staging",))
        source = read_checkout(repo)
        samples = []
        for _ in range(repeat):
            control("reset", {})
            control("throttling", {"enabled": True})  # fresh buckets: full bursts
            events = Throttles()
            started = time.perf_counter()
            result = run_pass(source, PassOptions(apply=True), now=datetime.now(UTC),
                              environ=environ(server.endpoint),
                              context=PassContext(events=events, leases=Leases(enabled=False),
                                                  pacer=Pacer()))
            took = time.perf_counter() - started
            control("throttling", {"enabled": False})
            if result.failed:
                raise SystemExit("the first pass failed")
            floor = quota_floor(events.calls)
            samples.append((took, floor, events.throttles))
            print(f"  {count} creates with pacing: {took:.1f} s, {events.throttles} "
                  f"throttled; floor {floor:.1f} s "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(events.calls.items()))})")
        took = sorted(s[0] for s in samples)
        floor = samples[0][1]
        median = statistics.median(took)
        print(f"  first pass of {count}: min {took[0]:.1f} s, median {median:.1f} s; floor "
              f"{floor:.1f} s: {median / floor:.3f}x the floor (target <= 1.05x: "
              f"{'met' if median <= 1.05 * floor else 'NOT met'}); throttles "
              f"{max(s[2] for s in samples)}")
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, nargs="*", default=[1000, 10000],
                        help="repository sizes to measure plan at (none: skip)")
    parser.add_argument("--first-pass", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--processes", nargs="+", default=["1", ""],
                        help="RECONCILER_COMPILE_PROCESSES of each plan ('' = automatic)")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the repositories and the service's state here, and reuse "
                             "them next time (seeding 10,000 x 2 takes minutes)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("botocore").setLevel(logging.ERROR)
    emulator.install()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.pipelines:
            print("peak RSS of reconciler plan:")
            memory(args.pipelines, args.repeat, work, args.processes)
        if args.first_pass:
            print("first pass, documented quotas on:")
            first_pass(args.first_pass, args.repeat, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
