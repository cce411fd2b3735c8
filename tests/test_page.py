"""The controller's web page (reconciler/controller/page.py): what the on-call sees first,
rendered from the status document, everything from a manifest or AWS shown as text."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from reconciler.controller.page import PAGE_SIZE, overview, parse_query, pipeline_page


def status(pipelines_per_env: int = 2, **extra) -> dict:
    def pipeline(n: int) -> dict:
        return {"pipeline": f"p{n:04d}", "sync_status": "Synced" if n % 2 else "OutOfSync",
                "health_status": "Healthy" if n % 3 else "Degraded",
                "reason": "in sync" if n % 2 else "definition changed",
                "last_applied_revision": "abc123def456" if n % 2 else "0ld0ld0ld0ld",
                "last_error": None, "failures": 0, "next_retry": None,
                "latest_run": None, "next_run": "2026-12-08T00:00:00"}
    return {"source": {"location": "git@example.com:etl/manifests.git",
                       "revision": "abc123def456", "stale": False, "error": None},
            "error": None, "last_pass_started": "2026-12-07T10:00:00+00:00",
            "environments": {env: {"error": None, "waiting": None, "last_pass": None,
                                   "progress": None, "local_endpoint": None,
                                   "pipelines": [pipeline(n) for n in range(pipelines_per_env)]}
                             for env in ("prod", "staging")}, **extra}


class Cells(HTMLParser):
    """The text of each table row's cells."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.in_body = self.in_cell = False

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows.append([])
        elif tag == "td" and self.in_body:
            self.in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag == "td":
            self.in_cell = False
        elif tag == "tbody":
            self.in_body = False

    def handle_data(self, data):
        if self.in_cell:
            self.rows[-1][-1] += data


def cells(page: bytes) -> list[list[str]]:
    parser = Cells()
    parser.feed(page.decode())
    return parser.rows


def test_what_a_manifest_or_aws_says_is_shown_as_text():
    doc = status(1)
    doc["environments"]["prod"]["pipelines"][0].update(
        pipeline="users<script>alert(1)</script>", reason="<img src=x onerror=alert(2)>",
        last_error="<html><body><h1>502 Bad Gateway</h1></body></html>")
    doc["environments"]["staging"]["error"] = "<b>denied</b>"
    page = overview(doc, {})
    assert b"<script>alert(1)" not in page and b"<img src=x" not in page
    assert b"users&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert b"&lt;html&gt;&lt;body&gt;&lt;h1&gt;502" in page
    assert b"error: &lt;b&gt;denied&lt;/b&gt;" in page
    [first, _] = cells(page)
    assert first[1] == "users<script>alert(1)</script>"  # the text, as the browser shows it


def test_filters_counts_and_pages_without_a_script():
    doc = status(1000)
    page = overview(doc, {})
    assert b"<script" not in page and b"http://" not in page.replace(b'action="/"', b"")
    assert len(cells(page)) == PAGE_SIZE
    assert b"Synced: 1000" in page and b"OutOfSync: 1000" in page and b"Degraded: 668" in page
    assert b"200 of 2000 shown" in page
    last = overview(doc, parse_query("page=10"))
    assert len(cells(last)) == 200 and cells(last)[-1][:2] == ["staging", "p0999"]
    only = overview(doc, parse_query("env=staging&status=Degraded&name=p00"))
    rows = cells(only)
    assert {r[0] for r in rows} == {"staging"} and all(r[3] == "Degraded" for r in rows)
    assert [r[1] for r in rows] == [f"p{n:04d}" for n in range(100) if n % 3 == 0]
    assert re.search(rb'<option value="staging" selected>', only)
    behind = next(r for r in cells(overview(status(2), {})) if r[1] == "p0000")
    assert behind[4].strip() == "0ld0ld0ld0ld (behind)"
    nothing = overview(doc, parse_query("name=nope"))
    assert cells(nothing) == [["no pipeline matches"]]
    assert overview(doc, parse_query("page=x")) == page  # a bad page number is the first


def test_a_real_browser_shows_the_page_and_runs_nothing_from_the_status(tmp_path):
    """Debian's Chromium, headless, on the page served over 127.0.0.1: the table is there,
    and a script an error message holds is text, never run."""
    import subprocess
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from .conftest import require_tool

    chromium = require_tool("chromium")
    doc = status(300)
    doc["environments"]["prod"]["pipelines"][0]["last_error"] = (
        "<script>document.title='owned'; document.body.innerHTML='owned'</script>")
    page = overview(doc, {})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        shown = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
             f"http://127.0.0.1:{server.server_address[1]}/"],
            capture_output=True, text=True, timeout=90)
    finally:
        server.shutdown()
    assert shown.returncode == 0, shown.stderr[-2000:]
    dom = shown.stdout
    assert "<title>Dataduct reconciler: 600 pipeline(s)" in dom and "owned</title>" not in dom
    rows = cells(dom.encode())
    assert len(rows) == PAGE_SIZE and rows[0][:4] == ["prod", "p0000", "OutOfSync", "Degraded"]
    assert rows[0][8] == ("<script>document.title='owned'; "
                          "document.body.innerHTML='owned'</script>")


def test_a_pipelines_page_shows_its_diff_history_and_full_error_as_text():
    detail = {"pipeline": "users", "environment": "prod", "sync_status": "OutOfSync",
              "health_status": "Degraded", "reason": "definition changed",
              "last_applied_revision": "0ld0ld0ld0ld", "last_error": "line one\n<b>two</b>",
              "failures": 2, "next_retry": "2026-12-07T10:00:00+00:00",
              "manifest": "pipelines/users.yaml", "pending": "update",
              "diff": ["~ Load.script:", "-SELECT 1", "+SELECT '<x>'"],
              "latest_run": None, "next_run": None,
              "history": [{"time": "2026-12-07T09:00:00+00:00", "revision": "abc123def4567",
                           "action": "update", "outcome": "failed", "seconds": 1.5,
                           "message": "PutPipelineDefinition: <refused>"}],
              "runs": [{"id": "@upsert_users_2026-12-07T00:00:00", "activity": "upsert_users",
                        "scheduled": "2026-12-07T00:00:00", "status": "FAILED",
                        "started": "2026-12-07T00:01:00", "ended": "2026-12-07T00:04:05",
                        "seconds": 185.0, "attempts": 3,
                        "error": "ERROR: relation \"<users>\" does not exist"}]}
    page = pipeline_page(detail, {"revision": "abc123def456"}).decode()
    assert "<pre>line one\n&lt;b&gt;two&lt;/b&gt;</pre>" in page  # the error in full
    assert "~ Load.script:\n-SELECT 1\n+SELECT &#39;&lt;x&gt;&#39;\n" in page
    assert "PutPipelineDefinition: &lt;refused&gt;" in page and "<refused>" not in page
    assert "(the source is at <code>abc123def456</code>)" in page
    assert "after 2 failure(s)" in page
    [run] = [r for r in cells(page.encode()) if r and r[1] == "upsert_users"]
    assert run == ["2026-12-07 00:00:00Z", "upsert_users", "FAILED", "2026-12-07 00:01:00Z",
                   "3m 5s", "3", 'ERROR: relation "<users>" does not exist']
    assert "not compiled at this revision" in page  # no definition given: no graph


def test_a_pipelines_graph_is_an_svg_image_or_its_mermaid_text_without_graphviz(
        monkeypatch):
    import graphviz

    from reconciler.controller import page as module

    from .conftest import compile_repo, require_tool

    require_tool("dot")
    project = compile_repo(Path(__file__).parent.parent / "manifests", ["prod"])
    [users] = [r.compiled for r in project.pipelines
               if r.name == "users" and r.environment == "prod" and r.compiled]
    detail = {"pipeline": "users", "environment": "prod", "sync_status": "Synced",
              "health_status": "Healthy", "reason": "", "last_applied_revision": None,
              "last_error": None, "failures": 0, "next_retry": None, "manifest": None,
              "pending": "", "diff": [], "history": [], "runs": [], "next_run": None,
              "latest_run": None}
    page = pipeline_page(detail, {}, users).decode()
    assert '<img src="/pipelines/prod/users/graph.svg"' in page
    svg = module.graph_svg(users).decode()
    assert svg.lstrip().startswith("<?xml") and "<script" not in svg
    assert all(f">{o.id}</text>" in svg for o in users.objects
               if (o.type or "").endswith("Activity"))

    def no_dot(*args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])

    module.graph_svg.cache_clear()
    monkeypatch.setattr(graphviz.Digraph, "pipe", no_dot)
    try:
        without = pipeline_page(detail, {}, users).decode()
    finally:
        module.graph_svg.cache_clear()
    assert "graph.svg" not in without and "flowchart TD" in without
