"""The controller's HTTP server: ``/`` and ``/pipelines/ENV/NAME`` (the web pages,
:mod:`.page`), ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz`` (the kubelet's probes),
``/status`` (JSON, for ``reconciler status``), ``POST /webhook`` (GitHub push events, and
``reconciler refresh``, start a pass at once) and ``POST /refresh`` (the page's button, off
unless ``--page-refresh``).

The pages are served with a Content-Security-Policy that allows nothing but their own inline
style, images and form: whatever a manifest or AWS put in a page could not run there even if
it escaped the templates' escaping.

A webhook must carry ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>`` made with the
shared secret; it is compared in constant time, and a missing or wrong signature gets 401 and
changes nothing. Without a configured secret the webhook is refused (403): an unsigned hook
would let anyone who can reach the port start passes. A signed delivery is accepted once: its
``X-GitHub-Delivery`` id is remembered for a day, so a replayed one starts nothing.

The server is waitress: connections are read by one event loop (an idle or slow client holds
no thread; one that sends nothing for ``CHANNEL_TIMEOUT`` seconds is closed), a request is
handed to a small pool of threads only once it has arrived whole, a body over
``MAX_BODY_BYTES`` is refused with 413 from its Content-Length before it is read, and the
listen backlog absorbs bursts. A probe therefore answers while hundreds of connections idle.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import waitress
from prometheus_client import CONTENT_TYPE_LATEST

from ..engine import RerunRequest
from ..errors import ReconcilerError
from ..live.operations import Operation
from .loop import Controller
from .page import graph_svg, overview, parse_query, pipeline_page

MAX_BODY_BYTES = 1 << 20  # GitHub caps payloads at 25 MB; a push event is far smaller
MAX_HEADER_BYTES = 64 << 10
CHANNEL_TIMEOUT = 15  # seconds a connection may send nothing before it is closed
THREADS = 8  # requests served at once (each is answered in milliseconds)
CONNECTION_LIMIT = 2000  # open connections; more wait in the listen backlog
BACKLOG = 1024
DELIVERY_MEMORY = 86400.0  # seconds a webhook delivery id is remembered
DELIVERIES_KEPT = 10000

HTML = "text/html; charset=utf-8"
PAGE_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PAGE_REFRESH_SECONDS = 10.0  # one pass per this many seconds from the page's button

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is GitHub's ``sha256=<hex>`` HMAC of ``body`` with ``secret``."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


class ListenError(ReconcilerError, OSError):
    """The address cannot be listened on (in use, not this host's, not allowed)."""


class Deliveries:
    """Webhook delivery ids seen recently (GitHub's ``X-GitHub-Delivery``), bounded."""

    def __init__(self, seconds: float = DELIVERY_MEMORY, kept: int = DELIVERIES_KEPT,
                 clock: Callable[[], float] = time.monotonic):
        self.seconds, self.kept, self.clock = seconds, kept, clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery: str) -> bool:
        """Remember ``delivery``; False when it was seen within the memory."""
        now = self.clock()
        with self._lock:
            while self._seen and (len(self._seen) >= self.kept or
                                  next(iter(self._seen.values())) < now - self.seconds):
                self._seen.popitem(last=False)
            if delivery in self._seen:
                return False
            self._seen[delivery] = now
            return True


class ControllerServer:
    def __init__(self, controller: Controller, host: str, port: int,
                 webhook_secret: bytes | None = None, page_refresh: bool = False):
        self.controller, self.webhook_secret = controller, webhook_secret
        self.page_refresh = page_refresh  # the page's "reconcile now" button (POST /refresh)
        self.last_page_refresh = -PAGE_REFRESH_SECONDS
        self.webhooks_accepted = 0
        self.deliveries = Deliveries()
        try:
            self.httpd: Any = waitress.create_server(
                self.app, host=host, port=port, threads=THREADS,
                connection_limit=CONNECTION_LIMIT, backlog=BACKLOG,
                channel_timeout=CHANNEL_TIMEOUT, cleanup_interval=5,
                max_request_body_size=MAX_BODY_BYTES,
                max_request_header_size=MAX_HEADER_BYTES, asyncore_use_poll=True,
                ident="dataduct-reconciler", expose_tracebacks=False)
        except OSError as exc:
            why = "the address is in use (another controller, or another program)" \
                if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise ListenError(exc.errno, f"cannot listen on {host}:{port}: {why}") from exc
        # waitress logs every client that hangs up early; probes and scrapers do
        logging.getLogger("waitress").setLevel(logging.ERROR)
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"http://{self.httpd.effective_host}:{self.httpd.effective_port}"

    def start(self) -> None:
        self.thread = threading.Thread(target=self.httpd.run, name="http", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Close every connection and the listening socket; the event loop then ends."""
        server = self.httpd
        while server._map:
            for channel in list(server._map.values()):
                channel.handle_close()
        server.task_dispatcher.shutdown()
        if self.thread is not None:
            self.thread.join(timeout=10)

    # -- the application ------------------------------------------------------------------------

    def app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        if method == "POST":
            code, body, kind = self._post(path, environ)
        elif method in ("GET", "HEAD"):
            code, body, kind = self._get(path, environ.get("QUERY_STRING", ""))
        else:
            code, body, kind = _json(405, {"error": f"{method} is not served here"})
        headers = [("Content-Type", kind), ("Content-Length", str(len(body))),
                   ("X-Content-Type-Options", "nosniff")]
        if kind.startswith(("text/html", "image/svg")):
            # the pages carry their own style and need nothing else; an SVG runs nothing
            headers += [("Content-Security-Policy", PAGE_POLICY),
                        ("X-Frame-Options", "DENY"), ("Referrer-Policy", "same-origin")]
        if code == 303:
            headers.append(("Location", "/"))
        start_response(f"{code} {_REASONS.get(code, 'Error')}", headers)
        return [b"" if method == "HEAD" else body]

    def _get(self, path: str, query: str = "") -> tuple[int, bytes, str]:
        controller = self.controller
        if path == "/":
            status = controller.status
            return 200, overview(status.to_json(), parse_query(query),
                                 status.operations_json(), self.page_refresh), HTML
        if path.startswith("/pipelines/"):
            rest = path.removeprefix("/pipelines/")
            graph = rest.endswith("/graph.svg")
            env, _, name = rest.removesuffix("/graph.svg").partition("/")
            found = controller.status.environments.get(env)
            state = found.pipelines.get(name) if found else None
            if state is None:
                return _json(404, {"error": f"no pipeline {name!r} in environment {env!r}; "
                                            "/ lists them"})
            if graph:
                svg = graph_svg(state.definition) if state.definition else None
                if svg is None:
                    return _json(404, {"error": "no graph: not compiled at this revision, or "
                                                "Graphviz's dot is not installed"})
                return 200, svg, "image/svg+xml"
            source = {"revision": controller.status.source.revision}
            return 200, pipeline_page(state.detail_json(), source, state.definition), HTML
        if path == "/metrics":
            return 200, controller.metrics.exposition(), CONTENT_TYPE_LATEST
        if path in ("/healthz", "/readyz"):
            ok, why = controller.healthy() if path == "/healthz" else controller.ready()
            return _json(200 if ok else 503, {"ok": ok, "reason": why})
        if path == "/status":
            return _json(200, controller.status.to_json())
        return _json(404, {"error": f"no {path} here; try / (the page), /status, /metrics, "
                                    "/healthz, /readyz or POST /webhook"})

    def _post(self, path: str, environ: dict[str, Any]) -> tuple[int, bytes, str]:
        if path == "/refresh":
            return self._page_refresh(environ)
        if path not in ("/webhook", "/rerun"):
            return _json(404, {"error": "POST /webhook (or /rerun, /refresh) only"})
        body = environ["wsgi.input"].read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return _json(413, {"error": f"a webhook body is at most {MAX_BODY_BYTES} bytes"})
        if self.webhook_secret is None:
            return _json(403, {"error": "no webhook secret is configured "
                                        "(--webhook-secret-file): webhooks are refused"})
        if not signature_ok(self.webhook_secret, body,
                            environ.get("HTTP_X_HUB_SIGNATURE_256")):
            return _json(401, {"error": "missing or wrong X-Hub-Signature-256"})
        if path == "/rerun":
            return self._rerun(body)
        delivery = environ.get("HTTP_X_GITHUB_DELIVERY")
        if delivery and not self.deliveries.first_time(delivery):
            return _json(200, {"ok": True, "ignored": f"delivery {delivery} was seen already"})
        event = environ.get("HTTP_X_GITHUB_EVENT", "push")
        if event == "ping":
            return _json(200, {"ok": True, "event": "ping"})
        if event != "push":
            return _json(202, {"ok": True, "ignored": event})
        self.webhooks_accepted += 1
        if not (delivery and delivery.startswith("refresh-")):
            self.controller.request_pass()
            return _json(202, {"ok": True, "pass": "requested"})
        # `reconciler refresh`, signed: a pass that reads the environments asked in full
        try:
            data = json.loads(body)
            by = str(data.get("operator") or "")
            environments = [str(e) for e in data.get("environments") or []]
        except (ValueError, AttributeError, TypeError):
            by, environments = "", []
        self.controller.request_pass(full=True, environments=environments)
        self._refreshed(f"reconciler refresh ({by})" if by else "reconciler refresh",
                        ", ".join(environments) or None)
        return _json(202, {"ok": True, "pass": "requested"})

    def _rerun(self, body: bytes) -> tuple[int, bytes, str]:
        """``reconciler rerun`` through the controller that holds the lease (signed with
        the webhook's secret, as every request that makes the controller act)."""
        try:
            data = json.loads(body)
            request = RerunRequest(
                str(data["env"]), str(data["pipeline"]), data.get("activity") or None,
                bool(data.get("failed")),
                datetime.fromisoformat(data["from"]) if data.get("from") else None,
                datetime.fromisoformat(data["to"]) if data.get("to") else None)
            by = str(data.get("operator") or "reconciler rerun")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return _json(400, {"error": f"not a rerun request: {exc}"})
        try:
            result = self.controller.rerun(request, f"reconciler rerun ({by})")
        except ReconcilerError as exc:
            return _json(409, {"error": str(exc)})
        return _json(200, {"ok": True, "result": result})

    def _page_refresh(self, environ: dict[str, Any]) -> tuple[int, bytes, str]:
        """The page's button: a pass now, when the installation turned it on. A form posted
        from another site is refused (its Origin is not this host), and one press in
        PAGE_REFRESH_SECONDS starts a pass."""
        if not self.page_refresh:
            return _json(403, {"error": "the page's refresh is off (--page-refresh turns it "
                                        "on); `reconciler refresh` asks with the webhook's "
                                        "secret"})
        origin = environ.get("HTTP_ORIGIN")
        if origin and urllib.parse.urlsplit(origin).netloc != environ.get("HTTP_HOST"):
            return _json(403, {"error": f"a refresh from {origin} is refused: only this "
                                        "page's own button asks for one"})
        now = time.monotonic()
        if now - self.last_page_refresh >= PAGE_REFRESH_SECONDS:
            self.last_page_refresh = now
            self.controller.request_pass(full=True)
            self._refreshed("the page")
        return 303, b"", "text/plain"

    def _refreshed(self, by: str, env: str | None = None) -> None:
        now = self.controller.wall().astimezone(UTC).isoformat(timespec="seconds")
        self.controller.record_operation(Operation(
            now, "refresh", env, None, by, "a pass reading every pipeline was requested"))


_REASONS = {200: "OK", 202: "Accepted", 303: "See Other", 400: "Bad Request",
            409: "Conflict", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
            503: "Service Unavailable"}


def _json(code: int, value: Any) -> tuple[int, bytes, str]:
    return code, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode(), \
        "application/json"
