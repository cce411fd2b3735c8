"""The on-call's day in a real browser: Debian's Chromium, headless, on the page of `reconciler
run` following the example repository on the embedded default. A run of users fails in prod
and the page says so with the service's error; `reconciler rerun --failed` brings it back and
the page shows that too, with the rerun in the pipeline's history; a commit the controller
may not apply (a replace in prod, which needs approval) shows its pending diff. No page logs
anything to the browser's console; screenshots of both pages are written under build/."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from .conftest import require_tool, run_cli
from .test_controller import SECRETS, Remote, http, managed, sample, wait_until
from .test_page import cells

BUILD = Path(__file__).resolve().parent.parent / "build"
CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\] (.*)")
ERROR = 'ERROR: relation "prod.users" does not exist'


class Browser:
    """Headless Chromium, one page load per call: the DOM after scripts, and every line the
    page wrote to the console (script errors, refused CSP loads, console.* calls)."""

    def __init__(self, executable: str, profile: Path):
        self.executable, self.profile = executable, profile

    def _run(self, url: str, *mode: str) -> tuple[str, list[str]]:
        done = subprocess.run(
            [self.executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--hide-scrollbars", f"--user-data-dir={self.profile}", "--enable-logging=stderr",
             "--v=0", *mode, url], capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout, [m[1] for line in done.stderr.splitlines()
                             if (m := CONSOLE.search(line))]

    def dom(self, url: str) -> tuple[str, list[str]]:
        return self._run(url, "--dump-dom")

    def screenshot(self, url: str, path: Path) -> list[str]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        _, console = self._run(url, f"--screenshot={path}", "--window-size=1400,900")
        assert path.stat().st_size > 10_000  # a page was drawn, not a blank
        return console


@pytest.fixture
def browser(tmp_path):
    return Browser(require_tool("chromium"), tmp_path / "profile")


def control(endpoint: str, action: str, body: dict) -> dict:
    request = urllib.request.Request(f"{endpoint}/_reconciler/{action}",
                                     data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_the_detector_sees_what_a_page_writes_to_the_console(browser, tmp_path):
    """Proof the console check below can fail: a page that logs and breaks its CSP."""
    page = tmp_path / "noisy.html"
    page.write_text("<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'\">"
                    "<img src='http://127.0.0.1:9/x.png'>")
    _, console = browser.dom(page.as_uri())
    assert any("violates the following Content Security Policy" in m for m in console)


def test_an_on_calls_day_on_the_page(browser, tmp_path):
    remote = Remote(tmp_path / "remote")
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("AWS_", "RECONCILER_"))}
    environment.update({**SECRETS, "RECONCILER_LOG_FORMAT": "json",
                        "RECONCILER_WEBHOOK_SECRET": "on-call-webhook-secret"})
    log = tmp_path / "run.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", "--repo", str(remote.path),
             "--cache-dir", str(tmp_path / "cache"), "--listen", "127.0.0.1:0",
             "--interval", "1", "--page-refresh"],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=environment)
    consoles: list[str] = []
    try:
        assert wait_until(lambda: "the page: http" in log.read_text(), 60), log.read_text()
        page = re.search(r"the page: (http://[0-9.:]+)/ ", log.read_text())[1]

        def status() -> dict:
            code, body = http(page + "/status")
            return json.loads(body) if code == 200 else {}

        def pipelines() -> dict[tuple[str, str], dict]:
            return {(env, p["pipeline"]): p for env, e in status().get(
                "environments", {}).items() for p in e["pipelines"]}

        assert wait_until(lambda: len(pipelines()) == 4 and all(
            p["sync_status"] == "Synced" for p in pipelines().values()), 60), log.read_text()
        endpoint = status()["environments"]["prod"]["local_endpoint"]
        assert endpoint and f'"endpoint": "{endpoint}"' in log.read_text()  # told, once

        dom, console = browser.dom(page + "/")
        consoles += console
        rows = {(r[0], r[1]): r for r in cells(dom.encode())}
        assert sorted(rows) == [("prod", "discussion_votes"), ("prod", "users"),
                                ("staging", "discussion_votes"), ("staging", "users")]
        assert all(r[2] == "Synced" for r in rows.values())

        # 03:00: a run of users fails in prod
        [prod_users] = managed(endpoint)[("prod", "users")]
        control(endpoint, "outcomes", {"object_id": "upsert_users",
                                       "pipeline_id": prod_users["id"], "always_fail": True,
                                       "error_message": ERROR})
        control(endpoint, "clock", {"advance_seconds": 2 * 86400})
        assert wait_until(lambda: pipelines()[("prod", "users")]["health_status"]
                          == "Degraded", 60), pipelines()
        dom, console = browser.dom(page + "/")
        consoles += console
        row = {(r[0], r[1]): r for r in cells(dom.encode())}[("prod", "users")]
        assert row[3] == "Degraded" and f"upsert_users: {ERROR}" in row[8], row
        assert {(r[0], r[1]): r for r in cells(dom.encode())}[("staging", "users")][3] == \
            "Healthy"
        consoles += browser.screenshot(page + "/", BUILD / "page-overview.png")

        # the pipeline's page: which step, what it said, the graph
        dom, console = browser.dom(page + "/pipelines/prod/users")
        consoles += console
        failed = [r for r in cells(dom.encode()) if len(r) == 7 and r[2] == "FAILED"]
        assert failed and failed[0][1] == "upsert_users" and failed[0][6] == ERROR, failed
        assert 'src="/pipelines/prod/users/graph.svg"' in dom
        code, svg = http(page + "/pipelines/prod/users/graph.svg")
        assert code == 200 and b">upsert_users</text>" in svg

        # fixed; rerun the failed runs from a laptop, as the on-call would: the controller
        # holds the lease, so the command asks it (signed with the webhook's secret)
        control(endpoint, "outcomes", {"object_id": "upsert_users",
                                       "pipeline_id": prod_users["id"], "always_fail": False})
        laptop = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                  "AWS_SECRET_ACCESS_KEY": "testing", **SECRETS}
        unsigned = run_cli("rerun", "users", str(remote.path), "--env", "prod", "--failed",
                           "--yes", "--url", page, env=laptop)
        assert unsigned.code == 1 and "holds the lease" in unsigned.stderr
        assert "give --url and its webhook secret" in unsigned.stderr
        wrong = run_cli("rerun", "users", str(remote.path), "--env", "prod", "--failed",
                        "--yes", "--url", page,
                        env={**laptop, "RECONCILER_WEBHOOK_SECRET": "guessed"})
        assert wrong.code == 1 and "refused the rerun (401)" in wrong.stderr
        done = run_cli("rerun", "users", str(remote.path), "--env", "prod", "--failed",
                       "--yes", "--url", page,
                       env={**laptop, "RECONCILER_WEBHOOK_SECRET": "on-call-webhook-secret"})
        assert done.code == 0, done.stdout + done.stderr
        # two days of a daily schedule: 2 or 3 failed runs, by the time of day it starts at
        listed = re.search(r"prod: users \(df-\w+\): (\d+) run\(s\) to rerun", done.stdout)
        assert listed and int(listed[1]) >= 2, done.stdout
        assert f"prod: users: {listed[1]} run(s) set to RERUN" in done.stdout, done.stdout
        control(endpoint, "clock", {"advance_seconds": 3600})
        assert wait_until(lambda: pipelines()[("prod", "users")]["health_status"]
                          == "Healthy", 60), pipelines()[("prod", "users")]
        dom, console = browser.dom(page + "/pipelines/prod/users")
        consoles += console
        history = [r for r in cells(dom.encode()) if len(r) == 6 and r[2] == "rerun"]
        assert history and history[0][3].startswith("by ") and "set to RERUN" in history[0][5]
        code, metrics = http(page + "/metrics")
        assert sample(metrics.decode(), "dataduct_operations_total", operation="rerun",
                      env="prod") == 1

        # the page's button asks for a pass, and says so
        code, body = http(page + "/refresh", b"", {"Origin": page})
        assert code == 200 and b"<h1>Dataduct reconciler</h1>" in body  # 303 to /, followed
        code, _ = http(page + "/refresh", b"", {"Origin": "http://evil.example"})
        assert code == 403
        assert any(o["operation"] == "refresh" and o["by"] == "the page"
                   for o in status()["operations"])

        # a commit that needs approval in prod: its pending diff is on the page
        remote.edit("pipelines/users.yaml", "frequency: daily", "frequency: hourly")
        assert wait_until(lambda: pipelines()[("prod", "users")]["sync_status"]
                          == "OutOfSync", 60), pipelines()
        dom, console = browser.dom(page + "/pipelines/prod/users")
        consoles += console
        assert "blocked: needs replace" in dom and "replace is not allowed in prod" in dom
        diff = re.search(r'<pre class="diff">(.*?)</pre>', dom, re.S)
        assert diff and "DefaultSchedule.period: 1 days -&gt; 1 hours" in diff[1], dom
        consoles += browser.screenshot(page + "/pipelines/prod/users",
                                       BUILD / "page-pipeline.png")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert consoles == []
    assert "Traceback" not in log.read_text()
    assert not any(v in log.read_text() for v in SECRETS.values())
