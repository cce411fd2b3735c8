"""`reconciler status` against a controller's /status over real HTTP on 127.0.0.1: one line
per pipeline with its reason, long and multi-line errors cut, the full text in JSON."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .conftest import run_cli

HTML_ERROR = ("<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n"
              + "<center><h1>502 Bad Gateway</h1></center>\n" * 5 + "</body>\n</html>\n")
STATUS = {
    "source": {"location": "git@example.com:etl/manifests.git", "revision": "abc123",
               "stale": False},
    "environments": {"staging": {"pipelines": [
        {"pipeline": "users", "sync_status": "OutOfSync", "health_status": "Healthy",
         "reason": "changed outside git (2 change(s)); set policy.self_heal: true to revert",
         "last_applied_revision": "abc123def4567890", "next_retry": None,
         "last_error": None},
        {"pipeline": "votes", "sync_status": "Unknown", "health_status": "Degraded",
         "reason": "definition changed", "last_applied_revision": None,
         "next_retry": "2026-12-07T10:00:00Z", "last_error": HTML_ERROR},
    ]}},
}


def test_status_shows_one_line_per_pipeline_with_its_reason():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(STATUS).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        table = run_cli("status", "--url", url)
        as_json = run_cli("status", "--url", url, "--format", "json")
    finally:
        server.shutdown()
    assert table.code == 2, table.stderr
    lines = table.stdout.splitlines()
    assert lines[1].split()[:7] == ["ENV", "PIPELINE", "SYNC", "HEALTH", "REVISION",
                                    "NEXT", "RETRY"]
    users = next(line for line in lines if line.startswith("staging  users"))
    assert "changed outside git (2 change(s)); set policy.self_heal: true to revert" in users
    votes = [line for line in lines if line.startswith("staging  votes")]
    assert len(votes) == 1 and "<html> <head><title>502 Bad Gateway</title></head>" in votes[0]
    assert votes[0].endswith("…")
    assert len(lines) == 5  # source, header, two pipelines, the note
    assert lines[-1] == "(long errors are cut: --format json has them in full)"
    assert json.loads(as_json.stdout)["environments"]["staging"]["pipelines"][1][
        "last_error"] == HTML_ERROR
