"""Installs the embedded Data Pipeline into moto: the backend in place of moto's, and the
operations moto lacks added to its response class. Works under ``mock_aws`` and through a
moto server alike; S3, SNS, IAM and STS stay stock moto.

Every call first passes the control state (``clock.CONTROLS``): throttling at the documented
quotas and injected faults answer before the operation runs.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import moto.backends
import moto.datapipeline.models as moto_models
import moto.datapipeline.responses as moto_responses
from botocore.exceptions import ConnectionClosedError
from moto.core.base_backend import BackendDict
from moto.core.exceptions import JsonRESTError
from moto.core.responses import BaseResponse
from moto.datapipeline.responses import DataPipelineResponse
from moto.s3.responses import S3Response

from .backend import (
    EmbeddedDataPipelineBackend,
    InvalidRequest,
    masked_object,
    masked_values,
    utc,
)
from .clock import CONTROLS

backends = BackendDict(EmbeddedDataPipelineBackend, "datapipeline")
_installed = False


JSON_HEADERS = {"content-type": "application/x-amz-json-1.1"}


def install() -> None:
    """Put the embedded backend and operations in place of moto's (idempotent)."""
    global _installed
    if _installed:
        return
    moto_models.datapipeline_backends = backends  # type: ignore[assignment]
    moto_responses.datapipeline_backends = backends  # type: ignore[assignment]
    for name, function in _OPERATIONS.items():
        setattr(DataPipelineResponse, name, function)
    DataPipelineResponse.datapipeline_backend = property(  # type: ignore[assignment]
        lambda self: backends[self.current_account][self.region])
    DataPipelineResponse.call_action = _call_action  # type: ignore[method-assign,assignment]
    S3Response.put_object = _atomic(S3Response.put_object)  # type: ignore[method-assign]
    cache = getattr(moto.backends, "_import_backend", None)
    if cache is not None and hasattr(cache, "cache_clear"):
        cache.cache_clear()
    _installed = True


_S3_WRITES = threading.Lock()


def _atomic(put_object: Any) -> Any:
    """moto checks If-Match and If-None-Match, then writes, with nothing in between to stop
    a second request doing the same: two writers racing for a lease could both win. S3 makes
    a conditional write atomic; so does the embedded service, one PutObject at a time."""
    def put_object_atomically(self: Any) -> Any:
        with _S3_WRITES:
            return put_object(self)

    return put_object_atomically


def all_backends() -> list[EmbeddedDataPipelineBackend]:
    return [backend for account in backends.values() for backend in account.values()]


ADMISSION = threading.local()  # set by the server, which admits calls before moto sees them


def fault_response(fault: str) -> tuple[int, dict[str, str], str] | None:
    """The answer for a throttled or failed call, shaped as AWS's JSON errors."""
    if fault == "throttle":
        return 400, dict(JSON_HEADERS), JsonRESTError("ThrottlingException",
                                                      "Rate exceeded").description
    if fault == "5xx":
        return 500, dict(JSON_HEADERS), JsonRESTError("InternalServiceError",
                                                      "simulated internal error").description
    return None


def _call_action(self: DataPipelineResponse):
    operation = self._get_action()
    if getattr(ADMISSION, "admitted", False):
        ADMISSION.admitted = False
        fault = None
    else:
        fault = CONTROLS.admit(operation)
    if fault == "drop":
        raise ConnectionClosedError(endpoint_url=f"https://datapipeline.{self.region}"
                                                 ".amazonaws.com/")
    answer = fault_response(fault) if fault else None
    if answer is not None:
        return answer
    with CONTROLS.lock:
        return BaseResponse.call_action(self)




def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload)


def create_pipeline(self) -> str:
    pipeline = self.datapipeline_backend.create(
        self._get_param("name"), self._get_param("uniqueId"),
        self._get_param("description", "") or "", self._get_param("tags", []))
    return _json({"pipelineId": pipeline.pipeline_id})


def list_pipelines(self) -> str:
    page, marker = self.datapipeline_backend.list_page(self._get_param("marker"))
    out: dict[str, Any] = {"pipelineIdList": [{"id": p.pipeline_id, "name": p.name}
                                              for p in page],
                           "hasMoreResults": marker is not None}
    if marker is not None:
        out["marker"] = marker
    return _json(out)


def describe_pipelines(self) -> str:
    backend = self.datapipeline_backend
    found = backend.describe_many(self._get_param("pipelineIds") or [])
    return _json({"pipelineDescriptionList": [p.describe(backend.account_id) for p in found]})


def delete_pipeline(self) -> str:
    self.datapipeline_backend.delete(self._get_param("pipelineId"))
    return _json({})


def _definition_params(self):
    return (self._get_param("pipelineObjects") or [], self._get_param("parameterObjects") or [],
            self._get_param("parameterValues") or [])


def put_pipeline_definition(self) -> str:
    objects, parameters, values = _definition_params(self)
    return _json(self.datapipeline_backend.put(self._get_param("pipelineId"), objects,
                                               parameters, values))


def validate_pipeline_definition(self) -> str:
    backend = self.datapipeline_backend
    pipeline = backend.lookup(self._get_param("pipelineId"))
    errors, warnings, errored = backend.validate(pipeline, *_definition_params(self))
    return _json({"validationErrors": errors, "validationWarnings": warnings,
                  "errored": errored})


def get_pipeline_definition(self) -> str:
    definition = self.datapipeline_backend.definition(self._get_param("pipelineId"),
                                                      self._get_param("version"))
    return _json({"pipelineObjects": [masked_object(o) for o in definition.objects],
                  "parameterObjects": definition.parameters,
                  "parameterValues": masked_values(definition.values)})


def activate_pipeline(self) -> str:
    start = self._get_param("startTimestamp")
    self.datapipeline_backend.activate(self._get_param("pipelineId"),
                                       self._get_param("parameterValues"),
                                       utc(start) if start is not None else None)
    return _json({})


def deactivate_pipeline(self) -> str:
    cancel = self._get_param("cancelActive")
    self.datapipeline_backend.deactivate(self._get_param("pipelineId"),
                                         True if cancel is None else bool(cancel))
    return _json({})


def add_tags(self) -> str:
    self.datapipeline_backend.add_tags(self._get_param("pipelineId"),
                                       self._get_param("tags") or [])
    return _json({})


def remove_tags(self) -> str:
    self.datapipeline_backend.remove_tags(self._get_param("pipelineId"),
                                          self._get_param("tagKeys") or [])
    return _json({})


def query_objects(self) -> str:
    sphere = self._get_param("sphere")
    if not sphere:
        raise InvalidRequest("sphere is required")
    ids, marker = self.datapipeline_backend.query(
        self._get_param("pipelineId"), sphere, self._get_param("query"),
        self._get_param("limit"), self._get_param("marker"))
    out: dict[str, Any] = {"ids": ids, "hasMoreResults": marker is not None}
    if marker is not None:
        out["marker"] = marker
    return _json(out)


def set_status(self) -> str:
    self.datapipeline_backend.set_status(self._get_param("pipelineId"),
                                         self._get_param("objectIds") or [],
                                         self._get_param("status") or "")
    return _json({})


def describe_objects(self) -> str:
    objects = self.datapipeline_backend.describe_objects_of(
        self._get_param("pipelineId"), self._get_param("objectIds") or [])
    return _json({"pipelineObjects": objects, "hasMoreResults": False})


_OPERATIONS = {f.__name__: f for f in (
    set_status, create_pipeline, list_pipelines, describe_pipelines, delete_pipeline,
    put_pipeline_definition, validate_pipeline_definition, get_pipeline_definition,
    activate_pipeline, deactivate_pipeline, add_tags, remove_tags, query_objects,
    describe_objects)}
