"""What the embedded service's endpoint accepts, checked before anything runs.

AWS answers a request it cannot take with a JSON error of a known shape (``__type`` and
``message``) and status 400, never an HTML page or a 500. This module gives the server those
answers: a body size that is negative, not a number or too big is refused before the body is
read; a Data Pipeline request must name an operation of the service's model (botocore's
``service-2.json``), carry a JSON object, and match the operation's input shape (botocore's
own parameter validator); a request for a service the emulator does not serve is refused.

The control API (``/_reconciler/...``) is checked the same way, against a JSON Schema per
action: types, ranges and unknown keys are refused whole, so nothing it accepts can break a
later call (a clock moved past the year 9999, a retry count that is a string).
"""

from __future__ import annotations

import io
import json
import re
from functools import cache
from typing import Any

import botocore.session
from botocore.validate import ParamValidator
from jsonschema import Draft202012Validator

from ..errors import ReconcilerError

MAX_BODY_BYTES = 64 * 1024 * 1024
SERVED = frozenset({"datapipeline", "s3", "sns", "iam", "sts"})
JSON_ERROR = "application/x-amz-json-1.1"
IMPLEMENTED = frozenset({
    "CreatePipeline", "ListPipelines", "DescribePipelines", "DeletePipeline",
    "PutPipelineDefinition", "ValidatePipelineDefinition", "GetPipelineDefinition",
    "ActivatePipeline", "DeactivatePipeline", "AddTags", "RemoveTags", "QueryObjects",
    "DescribeObjects", "SetStatus"})
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")
Refusal = tuple[int, Any, str]


class ControlError(ReconcilerError):
    """A control API request that is refused; the message says why."""


def _aws_error(code: str, message: str, status: int = 400) -> Refusal:
    return status, {"__type": code, "message": message}, JSON_ERROR


@cache
def _model() -> Any:
    return botocore.session.get_session().get_service_model("datapipeline")


def check_request(environ: dict[str, Any]) -> Refusal | None:
    """None when the request may go on; otherwise (status, body, content type) to answer.
    A body that is read is put back for whoever handles the request next."""
    length_text = environ.get("CONTENT_LENGTH") or "0"
    try:
        length = int(length_text)
    except ValueError:
        return _aws_error("SerializationException", f"Content-Length '{length_text}' is not a "
                          "number")
    if length < 0:
        return _aws_error("SerializationException", f"Content-Length {length} is negative")
    if length > MAX_BODY_BYTES:
        return _aws_error("RequestEntityTooLarge", f"the body is {length:,} bytes; the "
                          f"embedded service takes at most {MAX_BODY_BYTES:,}", 413)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return _check_json_request(environ, target, length)
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if scope and scope.group(1) not in SERVED:
        return _aws_error("UnknownOperationException", f"the embedded service serves "
                          f"{', '.join(sorted(SERVED))}, not {scope.group(1)}")
    return None


def _check_json_request(environ: dict[str, Any], target: str, length: int) -> Refusal | None:
    prefix, _, operation = target.partition(".")
    if prefix != "DataPipeline":
        return _aws_error("UnknownOperationException", f"the embedded service serves AWS Data "
                          f"Pipeline's JSON API, not {prefix}")
    model = _model()
    if operation not in model.operation_names:
        return _aws_error("UnknownOperationException", f"DataPipeline has no operation "
                          f"'{operation}'")
    if operation not in IMPLEMENTED:
        return _aws_error("UnknownOperationException", f"{operation} is not implemented by "
                          "the embedded service")
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    environ["CONTENT_LENGTH"] = str(len(raw))
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        return _aws_error("SerializationException", f"the body is not JSON: {exc}")
    if not isinstance(body, dict):
        return _aws_error("SerializationException", "the body must be a JSON object")
    report = ParamValidator().validate(body, model.operation_model(operation).input_shape)
    if report.has_errors():
        return _aws_error("ValidationException", report.generate_report())
    return None


_COUNT = {"type": "integer", "minimum": 0, "maximum": 1000}
_RATE = {"type": "number", "minimum": 0, "maximum": 1}
CONTROL_SCHEMAS: dict[str, dict[str, Any]] = {
    "clock": {"type": "object", "additionalProperties": False, "properties": {
        "set": {"type": "string", "pattern": r"^(19[7-9]\d|2\d{3})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"
                                            r"(Z|[+-]\d{2}:\d{2})?$"},
        "advance_seconds": {"type": "number", "minimum": 0, "maximum": 10 * 365 * 86400},
        "speed": {"type": "number", "minimum": 1, "maximum": 100_000}}},
    "outcomes": {"type": "object", "additionalProperties": False, "required": ["object_id"],
                 "properties": {
                     "object_id": {"type": "string", "minLength": 1, "maxLength": 256},
                     "pipeline_id": {"type": "string", "minLength": 1, "maxLength": 256},
                     "fail_times": _COUNT, "always_fail": {"type": "boolean"},
                     "duration_seconds": {"type": "integer", "minimum": 0,
                                          "maximum": 30 * 86400},
                     "error_message": {"type": "string", "maxLength": 2048}}},
    "throttling": {"type": "object", "additionalProperties": False,
                   "properties": {"enabled": {"type": "boolean"}}},
    "faults": {"type": "object", "additionalProperties": False, "properties": {
        "operation": {"type": "string", "minLength": 1, "maxLength": 64},
        "throttle": _RATE, "5xx": _RATE, "drop": _RATE}},
    "calls": {"type": "object", "additionalProperties": False},
    "reset": {"type": "object", "additionalProperties": False},
}


def check_control(action: str, body: Any) -> None:
    """Refuse a control request whose action or body is not what the control API takes."""
    schema = CONTROL_SCHEMAS.get(action)
    if schema is None:
        raise ControlError(f"unknown control action '{action}'; use "
                           f"{', '.join(CONTROL_SCHEMAS)}")
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=lambda e: e.path)
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "the body"
        raise ControlError(f"{action}: {where}: {errors[0].message}")
    if action == "clock" and "set" in body:
        from .backend import utc

        try:
            utc(body["set"])
        except ValueError as exc:
            raise ControlError(f"clock: set: {exc}") from None
    if action == "faults":
        total = sum(body.get(k, 0) for k in ("throttle", "5xx", "drop"))
        if total > 1:
            raise ControlError(f"faults: the rates add up to {total}, more than 1")
        operation = body.get("operation", "*")
        if operation != "*" and operation not in _model().operation_names:
            raise ControlError(f"faults: DataPipeline has no operation '{operation}'")
