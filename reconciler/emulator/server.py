"""The embedded service on a loopback endpoint: Data Pipeline (embedded), S3, SNS, IAM and STS
(stock moto) behind one URL, plus the control API under ``/_reconciler/``.

Used by ``reconciler emulator`` and by ``endpoint_url: embedded``. It binds 127.0.0.1 unless
told otherwise. With a state file, pipelines survive a restart: the file is written after
every call that changes a pipeline and when the server stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
from datetime import timedelta
from html import escape
from pathlib import Path
from typing import Any

from moto.backends import get_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ..errors import ReconcilerError
from .backend import utc
from .clock import CONTROLS, Outcome, format_time
from .requests import JSON_ERROR, ControlError, check_control, check_request
from .service import ADMISSION, all_backends, backends, fault_response, install

CONTROL_PREFIX = "/_reconciler/"
DEFAULT_REGION = "us-east-1"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_DEFAULT_REGION": DEFAULT_REGION}
MUTATING = {"CreatePipeline", "DeletePipeline", "PutPipelineDefinition", "ActivatePipeline",
            "DeactivatePipeline", "AddTags", "RemoveTags"}


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: one line per AWS call drowns everything else."""

    def log_request(self, *args, **kwargs) -> None:
        pass


STATE_KIND = "dataduct-reconciler/embedded-state"


class StateFileError(ReconcilerError):
    """A --state file that is not the embedded service's state: it is neither read nor
    overwritten."""


class EmulatorServer:
    """A threaded WSGI server around moto's app, with the control API and fault injection."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, state_file: str | None = None):
        install()
        self.host, self.port = host, port
        self.state_file = Path(state_file) if state_file else None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._save_lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def start(self) -> str:
        """Serve in a background thread; return the endpoint URL."""
        self._prepare()
        assert self._server is not None
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.save()

    def _prepare(self) -> None:
        """Load the state file and bind the socket (serving is started separately)."""
        if self.state_file and self.state_file.exists():
            try:
                self.load(self.state_file)
            except StateFileError:
                self.state_file = None  # never overwrite a file that is not ours
                raise
        self._server = make_server(self.host, self.port, self._app, threaded=True,
                                   request_handler=_QuietHandler)

    def serve_forever(self) -> None:
        assert self._server is not None, "call _prepare() first"
        self._server.serve_forever()

    # -- WSGI -----------------------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response):
        refusal = check_request(environ)
        if refusal is not None:
            return _answer(start_response, *refusal)
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        operation = target.split(".", 1)[1] if target.startswith("DataPipeline.") else None
        if operation is not None:
            fault = CONTROLS.admit(operation)
            if fault == "drop":
                return self._drop(environ, start_response)
            answer = fault_response(fault) if fault else None
            if answer is not None:
                status, headers, body = answer
                start_response(f"{status} {'Bad Request' if status == 400 else 'Error'}",
                               list(headers.items()))
                return [body.encode()]
            ADMISSION.admitted = True
        try:
            result = self._served(environ, start_response, operation)
        finally:
            ADMISSION.admitted = False
        if operation in MUTATING:
            self.save()
        return result

    def _served(self, environ, start_response, operation: str | None):
        """moto's answer; a request moto fails on (its HTML 500 page) is answered in AWS's
        form instead: a request it cannot serve is the client's error, as AWS says."""
        answered: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None):
            answered.update(status=status, headers=headers)
            return lambda data: None

        try:
            body = b"".join(self._moto(environ, capture))
        except Exception:  # moto's own bug on a request it does not expect
            answered = {"status": "500 Internal Server Error",
                        "headers": [("content-type", "text/html")]}
            body = b""
        kind = {k.lower(): v for k, v in answered.get("headers", [])}
        if not (answered.get("status", "").startswith("500")
                and kind.get("content-type", "").startswith("text/html")):
            start_response(answered["status"], answered["headers"])
            return [body]
        what = f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO', '')}"
        if operation is not None:
            return _answer(start_response, 500, {"__type": "InternalServiceError", "message":
                           f"the embedded service failed on {operation}"}, JSON_ERROR)
        message = escape(f"the embedded service cannot serve {what[:200]}")
        return _answer(start_response, 400, (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidRequest</Code>'
            f"<Message>{message}</Message></Error>").encode(), "application/xml")

    @staticmethod
    def _drop(environ, start_response):
        sock = environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        start_response("500 Connection dropped", [])
        return [b""]

    def _control(self, environ, start_response):
        action = environ["PATH_INFO"][len(CONTROL_PREFIX):].strip("/")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)  # checked by check_request
            raw = environ["wsgi.input"].read(length) if length else b""
            body = json.loads(raw) if raw.strip() else {}
            status, payload = 200, control(action, body)
        except ControlError as exc:
            status, payload = 400, {"error": str(exc)}
        except ValueError as exc:
            status, payload = 400, {"error": f"the body is not JSON: {exc}"}
        return _answer(start_response, status, payload, "application/json")

    # -- state file -----------------------------------------------------------------------------

    def save(self) -> None:
        if self.state_file is None:
            return
        with self._save_lock, CONTROLS.lock:
            data = snapshot_state()
            fd, tmp = tempfile.mkstemp(dir=self.state_file.parent or Path("."),
                                       prefix=".state-")  # created 0600: only the owner reads
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(data, out)
            os.replace(tmp, self.state_file)

    @staticmethod
    def load(path: Path) -> None:
        """Restore ``path``; :class:`StateFileError` (and nothing changed, the file kept) when
        it is not a state file this service wrote."""
        fix = (f"pass --state another file (or set {STATE_VARIABLE}), or delete {path} to "
               "start afresh")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise StateFileError(f"{path}: cannot be read ({exc}); {fix}") from exc
        except ValueError as exc:
            raise StateFileError(f"{path}:{getattr(exc, 'lineno', 1)}: not JSON ({exc}); "
                                 f"{fix}") from exc
        if not isinstance(data, dict) or set(data) - {"kind", "clock", "accounts"} or \
                data.get("kind", STATE_KIND) != STATE_KIND or \
                not isinstance(data.get("clock", {}), dict) or \
                not isinstance(data.get("accounts", {}), dict):
            raise StateFileError(f"{path}:1: not the embedded service's state (a JSON object "
                                 f'with "kind": "{STATE_KIND}", "clock" and "accounts"); '
                                 f"{fix}")
        try:
            restore_state(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateFileError(f"{path}: a part of it cannot be restored ({exc!r}); "
                                 f"{fix}") from exc


def _answer(start_response, status: int, payload: Any, content_type: str) -> list[bytes]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 413: "Payload Too Large"}.get(status, "Error")
    start_response(f"{status} {reason}", [("content-type", content_type),
                                          ("content-length", str(len(data)))])
    return [data]


def snapshot_state() -> dict[str, Any]:
    return {
        "kind": STATE_KIND,
        "clock": {"frozen_at": format_time(CONTROLS.frozen_at) if CONTROLS.frozen_at else None,
                  "offset_seconds": CONTROLS.offset.total_seconds()},
        "accounts": {account: {region: backend.to_json()
                               for region, backend in regions.items() if backend.store}
                     for account, regions in backends.items()},
    }


def restore_state(data: dict[str, Any]) -> None:
    clock = data.get("clock") or {}
    if clock.get("frozen_at"):
        CONTROLS.set_time(utc(clock["frozen_at"]))
    CONTROLS.offset = timedelta(seconds=clock.get("offset_seconds", 0))
    for account, regions in (data.get("accounts") or {}).items():
        for region, state in regions.items():
            backends[account][region].load_json(state)


def control(action: str, body: Any) -> dict[str, Any]:
    """The control API: one function for HTTP and for tests in the same process. A body is
    checked whole before anything changes, so nothing it accepts can break later calls."""
    check_control(action, body)
    if action == "clock":
        if "set" in body:
            CONTROLS.set_time(utc(body["set"]))
        if "advance_seconds" in body:
            CONTROLS.advance(float(body["advance_seconds"]))
        if "speed" in body:
            CONTROLS.set_speed(float(body["speed"]))
        return {"now": format_time(CONTROLS.now())}
    if action == "outcomes":
        outcome = Outcome(**{k: body[k] for k in ("fail_times", "always_fail",
                                                  "duration_seconds", "error_message")
                             if k in body})
        CONTROLS.outcomes[(body.get("pipeline_id", "*"), body["object_id"])] = outcome
        return {"outcome": outcome.to_json()}
    if action == "throttling":
        CONTROLS.throttling = bool(body.get("enabled", True))
        CONTROLS.buckets.clear()
        return {"throttling": CONTROLS.throttling}
    if action == "faults":
        rates: dict[str, float] = {k: float(body[k]) for k in ("throttle", "5xx", "drop")
                                   if k in body}
        CONTROLS.faults[body.get("operation", "*")] = rates
        return {"faults": {op: r for op, r in CONTROLS.faults.items()}}
    if action == "calls":
        return {"calls": dict(CONTROLS.calls)}
    if action == "reset":
        CONTROLS.reset()
        for backend in all_backends():
            backend.store.clear()
            backend.by_token.clear()
        for service in ("s3", "sns"):  # the buckets and topics too
            get_backend(service).reset()
        return {"reset": True}
    raise ControlError(f"unknown control action '{action}'")  # check_control refused it


_embedded: EmulatorServer | None = None
_embedded_lock = threading.Lock()


STATE_VARIABLE = "RECONCILER_EMBEDDED_STATE"
# simulated seconds per real second of the embedded service's clock (make run: runs finish
# in minutes instead of days)
SPEED_VARIABLE = "RECONCILER_EMBEDDED_SPEED"


def embedded_endpoint(state_file: str | None = None) -> str:
    """The endpoint of this process's embedded service, started on first use (loopback, a
    free port): what ``endpoint_url: embedded`` in reconciler.yaml means. Its pipelines live
    in memory, or in ``state_file`` (default $RECONCILER_EMBEDDED_STATE), which lets one run
    of the command line see what the previous one did."""
    global _embedded
    with _embedded_lock:
        if _embedded is None:
            state_file = state_file or os.environ.get(STATE_VARIABLE) or None
            server = EmulatorServer(port=0, state_file=state_file)
            server.start()
            speed = os.environ.get(SPEED_VARIABLE)
            if speed:
                control("clock", {"speed": float(speed)})
            _embedded = server
        return _embedded.endpoint
