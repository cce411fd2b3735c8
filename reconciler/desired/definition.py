"""Compiled pipelines as plain frozen data, and their two serialised forms.

A :class:`CompiledPipeline` is what the compiler produces for one manifest in one environment:
Data Pipeline objects, parameters, the secret parameters to fill in at apply time, and the files
to upload. It renders to the API form (``pipelineObjects`` / ``parameterObjects`` /
``parameterValues``, as PutPipelineDefinition takes them) and to the console's JSON file form.
Everything is sorted so that the same input always gives byte-identical output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..errors import Location, ReconcilerError
from ..service.model import period_seconds

DAY = 86400


@dataclass(frozen=True)
class Field:
    """One field of a pipeline object: a string value or a reference to another object."""

    key: str
    value: str
    is_ref: bool = False

    def api(self) -> dict[str, str]:
        return {"key": self.key, ("refValue" if self.is_ref else "stringValue"): self.value}


@dataclass(frozen=True)
class PipelineObject:
    """A Data Pipeline object. Repeated keys (``scriptArgument``...) keep their order."""

    id: str
    name: str
    fields: tuple[Field, ...]
    origin: Location | None = field(default=None, compare=False)

    @property
    def type(self) -> str | None:
        return self.get("type")

    def get(self, key: str) -> str | None:
        for f in self.fields:
            if f.key == key:
                return f.value
        return None

    def get_all(self, key: str) -> list[str]:
        return [f.value for f in self.fields if f.key == key]

    def api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "fields": [f.api() for f in self.fields]}

    def file_form(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        for f in self.fields:
            value: Any = {"ref": f.value} if f.is_ref else f.value
            if f.key in out:
                if not isinstance(out[f.key], list):
                    out[f.key] = [out[f.key]]
                out[f.key].append(value)
            else:
                out[f.key] = value
        return out


def make_object(
    id: str, name: str | None = None, *, origin: Location | None = None, **fields: Any
) -> PipelineObject:
    """Build an object from keyword fields.

    ``Ref("x")`` values become references, lists become repeated keys, None values are left
    out, booleans become ``"true"``/``"false"`` and numbers their decimal text. Keys are sorted
    (stably, so repeated keys keep their order) for a deterministic definition.
    """
    built: list[Field] = []
    for key in sorted(fields):
        value = fields[key]
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is None:
                continue
            if isinstance(item, Ref):
                built.append(Field(key, item.id, True))
            else:
                built.append(Field(key, field_text(item)))
    return PipelineObject(id=id, name=name or id, fields=tuple(built), origin=origin)


@dataclass(frozen=True)
class Ref:
    """A reference to another object, by id."""

    id: str


def field_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Parameter:
    """A parameter object (``myName`` or ``*myName`` for an encrypted one)."""

    id: str
    type: str = "String"
    description: str | None = None

    def api(self) -> dict[str, Any]:
        attributes = [{"key": "type", "stringValue": self.type}]
        if self.description:
            attributes.append({"key": "description", "stringValue": self.description})
        return {"id": self.id, "attributes": attributes}

    def file_form(self) -> dict[str, Any]:
        out = {"id": self.id, "type": self.type}
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class SecretRef:
    """Where the value of an encrypted parameter comes from at apply time; never the value."""

    parameter_id: str
    source: str  # "env" or "file"
    name: str  # the environment variable's name or the mounted file's path

    def describe(self) -> str:
        return f"{self.source}:{self.name}"


@dataclass(frozen=True)
class Artifact:
    """A repository file a step references, uploaded under a content-addressed S3 key."""

    path: str
    s3_uri: str
    sha256: str
    size: int


# Where an artifact that is not a repository file lives: the QA runner's wheel.
QA_RUNNER_PATH = "<qa-runner>/"


@dataclass(frozen=True)
class QaRunner:
    """The QA runner the compiled QA steps install and run: this package's wheel at the
    version that compiles them (``reconciler.qa.bundle``)."""

    version: str
    wheel_name: str
    sha256: str
    size: int
    requirements: tuple[str, ...]  # what pip installs, this package pinned first

    @property
    def artifact_path(self) -> str:
        return QA_RUNNER_PATH + self.wheel_name


@dataclass(frozen=True)
class CompiledPipeline:
    """One pipeline manifest compiled for one environment."""

    name: str
    environment: str
    manifest: str
    description: str | None
    objects: tuple[PipelineObject, ...]
    parameters: tuple[Parameter, ...] = ()
    parameter_values: tuple[tuple[str, str], ...] = ()
    secrets: tuple[SecretRef, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    aws_name: str = ""  # the pipeline's name in AWS before the environment's prefix
    tags: tuple[tuple[str, str], ...] = ()  # the config's etl.TAGS for this pipeline
    suspend: bool = False  # suspend: true: deactivated and left alone
    replace_allowed: bool = False  # replace: allowed, whatever the environment's policy
    previous_names: tuple[str, ...] = ()  # names a live pipeline may have, to adopt it
    # the S3 prefix of the QA runner's driver wheels, when a step runs the runner
    qa_wheelhouse: str | None = None
    # each step's activities, in the order they run (``reconciler sql``, ``run-step``)
    step_activities: tuple[tuple[str, tuple[str, ...]], ...] = ()
    def __post_init__(self) -> None:
        if not self.aws_name:
            object.__setattr__(self, "aws_name", self.name)

    def api_form(self) -> dict[str, Any]:
        """The arguments of PutPipelineDefinition (secrets are listed, never valued)."""
        return {
            "pipelineObjects": [o.api() for o in self.objects],
            "parameterObjects": [p.api() for p in self.parameters],
            "parameterValues": [{"id": k, "stringValue": v} for k, v in self.parameter_values],
        }

    def definition_form(self) -> dict[str, Any]:
        """The console's pipeline definition file (``aws datapipeline put-pipeline-definition
        --pipeline-definition file://...``)."""
        out: dict[str, Any] = {"objects": [o.file_form() for o in self.objects]}
        if self.parameters:
            out["parameters"] = [p.file_form() for p in self.parameters]
        if self.parameter_values:
            out["values"] = dict(self.parameter_values)
        return out

    def render(self, form: str = "api") -> dict[str, Any]:
        body = self.api_form() if form == "api" else self.definition_form()
        return {
            "name": self.name,
            "environment": self.environment,
            "manifest": self.manifest,
            "digest": self.digest,
            **({"aws_name": self.aws_name} if self.aws_name != self.name else {}),
            **({"tags": dict(self.tags)} if self.tags else {}),
            **body,
            "secrets": [{"id": s.parameter_id, "from": s.describe()} for s in self.secrets],
            "artifacts": [
                {"path": a.path, "s3": a.s3_uri, "sha256": a.sha256, "size": a.size}
                for a in self.artifacts
            ],
        }

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the API form without the date its schedules start on.

        The start date is where the compiler was told to anchor the schedule (today, for a
        new pipeline); a live pipeline keeps the date it was activated with. So the digest
        changes exactly when the definition does, load_time included, and not from one day
        to the next."""
        api = self.api_form()
        payload = json.dumps(without_start_dates(api["pipelineObjects"]),
                             sort_keys=True, separators=(",", ":"))
        payload += json.dumps([api["parameterObjects"], api["parameterValues"]], sort_keys=True)
        if self.tags:
            payload += json.dumps(sorted(self.tags))
        return hashlib.sha256(payload.encode()).hexdigest()

    def object(self, object_id: str) -> PipelineObject | None:
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        return None


def start_phase(start: str, period: str | None) -> str:
    """What of a schedule's ``startDateTime`` decides when it runs, given its ``period``.

    The date never does (the compiler anchors a new pipeline on today; a live one keeps the
    day it was activated on). For a period that divides a day (``1 hours``, ``15 minutes``)
    the time of day modulo the period is what counts: ``T01:00`` and ``T15:00`` every
    ``2 hours`` are the same schedule, which is what a replacement moved to its next run
    has. For other periods it is the time of day."""
    _date, separator, time = start.partition("T")
    if not separator:
        return start
    seconds = period_seconds(period) if period else None
    parts = time.split(":")
    if not seconds or seconds >= DAY or DAY % seconds or len(parts) != 3 or not all(
            p.isdigit() for p in parts):
        return time
    phase = (int(parts[0]) * 3600 + int(parts[1]) * 60 + int(parts[2])) % seconds
    return f"{phase // 3600:02d}:{phase // 60 % 60:02d}:{phase % 60:02d}"


def field_value(obj: Mapping[str, Any], key: str) -> str | None:
    """The first string value of an API-form object's field."""
    return next((f.get("stringValue") for f in obj.get("fields", []) if f.get("key") == key),
                None)


def without_start_dates(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """API-form objects with each ``startDateTime`` reduced to its :func:`start_phase`."""
    out = []
    for obj in objects:
        period = field_value(obj, "period")
        fields = [{"key": f["key"], "stringValue": start_phase(f["stringValue"], period)}
                  if f["key"] == "startDateTime" and "stringValue" in f else f
                  for f in obj["fields"]]
        out.append({**obj, "fields": fields})
    return out


def to_json(data: Any) -> str:
    """The project's canonical JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class DefinitionFormError(ReconcilerError, ValueError):
    """A document that is not a pipeline definition in the console's or the API's form."""


def objects_from_document(doc: Mapping[str, Any]) -> tuple[tuple[PipelineObject, ...],
                                                         tuple[tuple[str, str], ...]]:
    """The objects and parameter values of a definition in either form: the console's file
    (``objects``, ``parameters``, ``values``; ``{"ref": ...}`` for references, lists for
    repeated keys) or the API's (``pipelineObjects``, ``parameterObjects``,
    ``parameterValues``, as GetPipelineDefinition returns and ``render`` prints). A
    parameter's ``default`` counts as its value when none is given."""
    if not isinstance(doc, Mapping):
        raise DefinitionFormError("a definition is a JSON object")
    objects: list[PipelineObject] = []
    values: dict[str, str] = {}
    if "pipelineObjects" in doc:
        for item in doc["pipelineObjects"]:
            fields = tuple(Field(f["key"], f["refValue"], True) if "refValue" in f else
                           Field(f["key"], str(f.get("stringValue", ""))) for f in
                           item.get("fields", []))
            objects.append(PipelineObject(item["id"], item.get("name", item["id"]), fields))
        for param in doc.get("parameterObjects", []):
            default = next((a.get("stringValue") for a in param.get("attributes", [])
                            if a.get("key") == "default"), None)
            if default is not None:
                values[param["id"]] = default
        for value in doc.get("parameterValues", []):
            values[value["id"]] = value.get("stringValue", "")
    elif "objects" in doc:
        for item in doc["objects"]:
            if not isinstance(item, Mapping) or "id" not in item:
                raise DefinitionFormError("every object needs an id")
            built: list[Field] = []
            for key, value in item.items():
                if key in ("id", "name"):
                    continue
                for one in value if isinstance(value, list) else [value]:
                    if isinstance(one, Mapping) and "ref" in one:
                        built.append(Field(key, str(one["ref"]), True))
                    else:
                        built.append(Field(key, field_text(one)))
            objects.append(PipelineObject(str(item["id"]), str(item.get("name", item["id"])),
                                          tuple(built)))
        for param in doc.get("parameters", []):
            if "default" in param:
                values[param["id"]] = field_text(param["default"])
        for key, value in (doc.get("values") or {}).items():
            values[key] = field_text(value[0] if isinstance(value, list) else value)
    else:
        raise DefinitionFormError("a definition has 'objects' (the console's file) or "
                                  "'pipelineObjects' (the API's form)")
    return tuple(objects), tuple(sorted(values.items()))
