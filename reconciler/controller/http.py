"""The controller's HTTP server: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz`` (the
kubelet's probes), ``/status`` (JSON, for ``reconciler status``) and ``POST /webhook``
(GitHub push events start a pass at once).

A webhook must carry ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>`` made with the
shared secret; it is compared in constant time, and a missing or wrong signature gets 401 and
changes nothing. Without a configured secret the webhook is refused (403): an unsigned hook
would let anyone who can reach the port start passes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from .loop import Controller

MAX_WEBHOOK_BYTES = 1 << 20  # GitHub caps payloads at 25 MB; a push event is far smaller


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is GitHub's ``sha256=<hex>`` HMAC of ``body`` with ``secret``."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


class ControllerServer:
    def __init__(self, controller: Controller, host: str, port: int,
                 webhook_secret: bytes | None = None):
        self.controller, self.webhook_secret = controller, webhook_secret
        self.webhooks_accepted = 0
        handler = _handler(self)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}" if isinstance(host, str) else \
            f"http://{host.decode()}:{port}"

    def start(self) -> None:
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="http",
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: ControllerServer) -> type[BaseHTTPRequestHandler]:
    controller = server.controller

    class Handler(BaseHTTPRequestHandler):
        server_version = "dataduct-reconciler"

        def log_message(self, format: str, *args: Any) -> None:
            """Requests are not logged (probes every few seconds would drown the log)."""

        def _send(self, code: int, body: bytes, content_type: str = "application/json"
                  ) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, value: Any) -> None:
            self._send(code, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, controller.metrics.exposition(), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, why = controller.healthy() if path == "/healthz" else controller.ready()
                self._json(200 if ok else 503, {"ok": ok, "reason": why})
            elif path == "/status":
                self._json(200, controller.status.to_json())
            else:
                self._json(404, {"error": f"no {path} here; try /status, /metrics, /healthz, "
                                          "/readyz or POST /webhook"})

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/webhook":
                self._json(404, {"error": "POST /webhook only"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_WEBHOOK_BYTES:
                self._json(413, {"error": f"a webhook body is at most {MAX_WEBHOOK_BYTES} "
                                          "bytes"})
                return
            body = self.rfile.read(length)
            if server.webhook_secret is None:
                self._json(403, {"error": "no webhook secret is configured "
                                          "(--webhook-secret-file): webhooks are refused"})
                return
            if not signature_ok(server.webhook_secret, body,
                                self.headers.get("X-Hub-Signature-256")):
                self._json(401, {"error": "missing or wrong X-Hub-Signature-256"})
                return
            event = self.headers.get("X-GitHub-Event", "push")
            if event == "ping":
                self._json(200, {"ok": True, "event": "ping"})
                return
            if event != "push":
                self._json(202, {"ok": True, "ignored": event})
                return
            server.webhooks_accepted += 1
            controller.request_pass()
            self._json(202, {"ok": True, "pass": "requested"})

    return Handler
