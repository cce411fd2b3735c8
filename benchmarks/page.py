"""How long the controller's web page takes to render at 1,000 pipelines x 2 environments
(the goal: under 200 ms of server time), beside serialising the same status as JSON
(``/status``). The status document is made up, shaped as ``Status.to_json()``; the page
shown is the first (200 rows), and a filtered one (one environment, one status).

    python benchmarks/page.py [--pipelines 1000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from reconciler.controller.page import overview, parse_query


def status(pipelines: int) -> dict:
    return {"source": {"location": "git@example.com:etl/manifests.git", "revision": "a" * 40,
                       "stale": False, "error": None},
            "error": None, "last_pass_started": "2026-12-07T10:00:00+00:00",
            "environments": {env: {"error": None, "waiting": None, "last_pass": None,
                                   "progress": None, "pipelines": [
                {"pipeline": f"pipeline_{n:05d}",
                 "sync_status": "Synced" if n % 10 else "OutOfSync",
                 "health_status": "Healthy" if n % 25 else "Degraded",
                 "reason": "in sync" if n % 10 else "definition changed (3 change(s))",
                 "last_applied_revision": "a" * 40, "failures": 0, "next_retry": None,
                 "last_error": None if n % 25 else "Load: ERROR: relation does not exist"}
                for n in range(pipelines)]} for env in ("prod", "staging")}}


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
    doc = status(args.pipelines)
    filtered = parse_query("env=prod&status=Degraded")
    overview(doc, {})  # the template compiled once, as in a running controller
    page = timed(lambda: overview(doc, {}), args.repeat)
    some = timed(lambda: overview(doc, filtered), args.repeat)
    as_json = timed(lambda: json.dumps(doc).encode(), args.repeat)
    total = 2 * args.pipelines
    print(f"page of {total} pipelines (first 200 rows): min {page[0] * 1000:.1f} ms, "
          f"median {page[1] * 1000:.1f} ms (goal < 200 ms: {page[1] * 1000 / 200:.2f}x)")
    print(f"filtered page: min {some[0] * 1000:.1f} ms, median {some[1] * 1000:.1f} ms")
    print(f"/status JSON of the same: median {as_json[1] * 1000:.1f} ms; "
          f"page / JSON {page[1] / as_json[1]:.1f}x")
    return 0 if page[1] < 0.2 else 1


if __name__ == "__main__":
    sys.exit(main())
