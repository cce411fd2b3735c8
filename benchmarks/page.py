"""How long the controller's web page takes to render at 1,000 pipelines x 2 environments
(the goal: under 200 ms of server time), beside serialising the same status as JSON
(``/status``), each timed as the server does it: the controller's status (made up: a latest
run per pipeline, one in 25 failed) turned into its document, then rendered. The page shown
is the first (200 rows), and a filtered one (one environment, one status).

    python benchmarks/page.py [--pipelines 1000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime

from reconciler.controller.health import Health, SyncStatus
from reconciler.controller.page import overview, parse_query
from reconciler.controller.status import Backoff, Status
from reconciler.observe import ActivityRun


def status(pipelines: int) -> Status:
    """The controller's status at ``pipelines`` per environment, each with its newest runs."""
    now = datetime(2026, 12, 7, 10, tzinfo=UTC)
    state = Status("git@example.com:etl/manifests.git", Backoff(), lambda: now)
    state.source.revision = "a" * 40
    state.last_pass_started = now
    for env in ("prod", "staging"):
        state.environment(env).last_pass = now
        for n in range(pipelines):
            p = state.pipeline(env, f"pipeline_{n:05d}")
            p.sync_status = SyncStatus.SYNCED if n % 10 else SyncStatus.OUT_OF_SYNC
            p.health_status = Health.HEALTHY if n % 25 else Health.DEGRADED
            p.reason = "in sync" if n % 10 else "definition changed (3 change(s))"
            p.last_applied_revision = "a" * 40
            p.next_run = "2026-12-08T01:00:00"
            p.runs = tuple(ActivityRun(
                f"@load_{day}", "load", f"2026-12-0{day}T01:00:00",
                "FAILED" if n % 25 == 0 and day == 7 else "FINISHED",
                f"2026-12-0{day}T01:00:10", f"2026-12-0{day}T01:04:00", 1,
                "ERROR: relation does not exist" if n % 25 == 0 and day == 7 else None)
                for day in range(7, 2, -1))
    return state


def timed(work, repeat: int) -> tuple[float, float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return min(seconds), statistics.median(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    state = status(args.pipelines)
    filtered = parse_query("env=prod&status=Degraded")
    overview(state.to_json(), {})  # the template compiled once, as in a running controller
    # what GET / does: the status document, then the page
    page = timed(lambda: overview(state.to_json(), {}), args.repeat)
    some = timed(lambda: overview(state.to_json(), filtered), args.repeat)
    as_json = timed(lambda: json.dumps(state.to_json()).encode(), args.repeat)
    total = 2 * args.pipelines
    print(f"page of {total} pipelines (first 200 rows): min {page[0] * 1000:.1f} ms, "
          f"median {page[1] * 1000:.1f} ms (goal < 200 ms: {page[1] * 1000 / 200:.2f}x)")
    print(f"filtered page: min {some[0] * 1000:.1f} ms, median {some[1] * 1000:.1f} ms")
    print(f"/status JSON of the same: median {as_json[1] * 1000:.1f} ms; "
          f"page / JSON {page[1] / as_json[1]:.1f}x")
    return 0 if page[1] < 0.2 else 1


if __name__ == "__main__":
    sys.exit(main())
