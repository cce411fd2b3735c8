"""Checks a pipeline definition against AWS Data Pipeline's object model and limits.

The model (object types, their fields, required fields, one-of groups, reference fields) is
``service_model.json``, generated from the Developer Guide's object reference by
``tools/generate_service_model.py``. The limits are those of ``dp-limits.md``. The check works on
the API form (``pipelineObjects`` / ``parameterObjects`` / ``parameterValues``) so that the
compiler and the embedded service judge a definition the same way.

Findings name the object and the field. Errors are what the service refuses; warnings are what
it accepts but reports (for example a field its model does not know on an abstract object).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

MAX_FIELDS_PER_OBJECT = 50
MAX_ID_BYTES = 256
MAX_FIELD_BYTES = 10_240
MAX_OBJECT_BYTES = 15_360
DEFAULT_MAX_OBJECTS = 100
MAX_RETRIES = 5
MIN_RETRY_DELAY_SECONDS = 120
MIN_SCHEDULE_PERIOD_SECONDS = 15 * 60
MAX_ONDEMAND_ACTIVE_INSTANCES = 5
MAX_PARAMETERS = 50

PARAMETER_TYPES = ("String", "Integer", "Double", "AWS::S3::ObjectKey")
ENUMERATIONS = {
    "scheduleType": ("cron", "ondemand", "timeseries"),
    "failureAndRerunMode": ("cascade", "none", "CASCADE", "NONE"),
    "actionOnTaskFailure": ("continue", "terminate"),
    "actionOnResourceFailure": ("retryall", "retrynone"),
}
INSERT_MODES = ("KEEP_EXISTING", "OVERWRITE_EXISTING", "TRUNCATE", "APPEND")

_PERIOD = re.compile(
    r"^\s*(\d+)\s+(minute|minutes|hour|hours|day|days|week|weeks|month|months)\s*$",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800, "month": 2592000}
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
_PARAM_REF = re.compile(r"#\{\s*(\*?my[A-Za-z0-9_]*)\s*\}")


@dataclass(frozen=True)
class Finding:
    """One verdict of the check, about an object (and field) or about the whole definition."""

    message: str
    object_id: str | None = None
    field: str | None = None
    severity: Literal["error", "warning"] = "error"

    def format(self) -> str:
        where = ""
        if self.object_id is not None:
            where = f"object '{self.object_id}'"
            if self.field:
                where += f", field '{self.field}'"
            where += ": "
        return f"{where}{self.message}"


@cache
def object_types() -> Mapping[str, Any]:
    """The object model read from ``service_model.json``."""
    text = resources.files(__package__).joinpath("service_model.json").read_text("utf-8")
    return json.loads(text)


def period_seconds(text: str) -> int | None:
    """``"15 minutes"`` -> 900; None when the text is not a Data Pipeline period."""
    match = _PERIOD.match(text)
    if not match:
        return None
    unit = match.group(2).lower().rstrip("s")
    return int(match.group(1)) * _UNIT_SECONDS[unit]


def check_definition(
    pipeline_objects: Iterable[Mapping[str, Any]],
    parameter_objects: Iterable[Mapping[str, Any]] = (),
    parameter_values: Iterable[Mapping[str, Any]] = (),
    *,
    max_objects: int = DEFAULT_MAX_OBJECTS,
) -> list[Finding]:
    """Every finding about a definition in the API form; an empty list means it is valid."""
    objects = list(pipeline_objects)
    findings: list[Finding] = []
    add = findings.append
    model = object_types()

    if not objects:
        add(Finding("the definition has no objects"))
        return findings
    if len(objects) > max_objects:
        add(Finding(f"{len(objects)} objects, over the limit of {max_objects} objects per "
                    "pipeline (the limit can be raised with AWS support; set "
                    "limits.max_objects_per_pipeline to match)"))

    by_id: dict[str, Mapping[str, Any]] = {}
    for obj in objects:
        oid = str(obj.get("id", ""))
        if not oid:
            add(Finding("an object has no id"))
            continue
        if oid in by_id:
            add(Finding("duplicate object id", oid))
        by_id[oid] = obj

    fields_of_id = {oid: fields_of(obj) for oid, obj in by_id.items()}
    default = fields_of_id.get("Default", {})

    def inherited(oid: str, key: str, seen: frozenset = frozenset()) -> list[tuple[str, bool]]:
        own = fields_of_id.get(oid, {}).get(key)
        if own:
            return own
        for parent, is_ref in fields_of_id.get(oid, {}).get("parent", []):
            if is_ref and parent in fields_of_id and parent not in seen:
                found = inherited(parent, key, seen | {oid})
                if found:
                    return found
        if oid != "Default":
            return default.get(key, [])
        return []

    parent_ids = {v for f in fields_of_id.values() for v, r in f.get("parent", []) if r}
    schedule_types = set()
    for oid, obj in by_id.items():
        fields = fields_of_id[oid]
        obj_bytes = 0
        count = 0
        if len(oid.encode()) > MAX_ID_BYTES:
            add(Finding(f"id is {len(oid.encode())} bytes, over the {MAX_ID_BYTES}-byte limit",
                        oid))
        if not obj.get("name"):
            add(Finding("object has no name", oid))
        type_name = _single(fields.get("type"))
        spec = model.get(type_name) if type_name else None
        if type_name and spec is None:
            add(Finding(f"unknown object type '{type_name}'", oid, "type"))
        if type_name is None and oid != "Default" and oid not in parent_ids:
            add(Finding("object has no type and is neither Default nor a parent of another "
                        "object", oid, "type"))
        for key, values in fields.items():
            for value, _is_ref in values:
                count += 1
                size = len(value.encode())
                obj_bytes += size + len(key.encode())
                if size > MAX_FIELD_BYTES:
                    add(Finding(f"value is {size:,} bytes, over the {MAX_FIELD_BYTES:,}-byte "
                                "limit per field", oid, key))
            if len(key.encode()) > MAX_ID_BYTES:
                add(Finding(f"field name over {MAX_ID_BYTES} bytes", oid, key))
            if key.startswith("@"):
                add(Finding("runtime fields (starting with '@') are set by the service and "
                            "cannot be written", oid, key))
                continue
            if key == "type":
                continue
            _check_field(add, oid, key, values, spec, model, by_id)
        if count > MAX_FIELDS_PER_OBJECT:
            add(Finding(f"{count} fields, over the limit of {MAX_FIELDS_PER_OBJECT} per object",
                        oid))
        if obj_bytes > MAX_OBJECT_BYTES:
            add(Finding(f"{obj_bytes:,} bytes, over the limit of {MAX_OBJECT_BYTES:,} bytes per "
                        "object (field names included)", oid))
        if spec is not None:
            for required in spec["required"]:
                if not inherited(oid, required):
                    add(Finding(f"{type_name} requires field '{required}'", oid, required))
            for group in spec["one_of"]:
                present = [k for k in group if inherited(oid, k)]
                if not present:
                    add(Finding(f"{type_name} requires one of {', '.join(group)}", oid))
        schedule_type = _single(fields.get("scheduleType"))
        if schedule_type:
            schedule_types.add((oid, schedule_type))
        _check_values(add, oid, type_name, fields)

    _check_schedules(add, by_id, fields_of_id, schedule_types, default)
    _check_parameters(add, objects, list(parameter_objects), list(parameter_values))
    return findings


def _single(values: list[tuple[str, bool]] | None) -> str | None:
    return values[0][0] if values else None


def _check_field(add, oid, key, values, spec, model, by_id) -> None:
    known = None
    if spec is not None:
        known = spec["fields"].get(key)
    else:  # Default and parent objects may carry any field of any type
        for other in model.values():
            if key in other["fields"]:
                known = other["fields"][key]
                break
    if known is None:
        if key.startswith("my") or key.startswith("*my"):
            return  # user-defined fields
        add(Finding("unknown field for this object type (user-defined fields must start "
                    "with 'my')", oid, key, "error" if spec is not None else "warning"))
        return
    if known.get("runtime"):
        add(Finding("runtime field cannot be written", oid, key))
        return
    for value, is_ref in values:
        if known["ref"] and not is_ref:
            add(Finding("must be a reference ({\"ref\": \"id\"}), not a string", oid, key))
        elif not known["ref"] and is_ref:
            add(Finding("must be a string value, not a reference", oid, key))
        elif is_ref and value not in by_id:
            add(Finding(f"references '{value}', which is not an object of this pipeline",
                        oid, key))
        elif not is_ref:
            _check_slot(add, oid, key, value, known["slot"])


def _check_slot(add, oid, key, value, slot) -> None:
    if "#{" in value:
        return  # expressions are evaluated by the service at run time
    if slot == "Period" and period_seconds(value) is None:
        add(Finding(f"'{value}' is not a period such as '15 minutes' or '1 days'", oid, key))
    elif slot == "Integer" and not re.fullmatch(r"-?\d+", value):
        add(Finding(f"'{value}' is not an integer", oid, key))
    elif slot == "Double" and not re.fullmatch(r"-?\d+(\.\d+)?", value):
        add(Finding(f"'{value}' is not a number", oid, key))
    elif slot == "Boolean" and value.lower() not in ("true", "false"):
        add(Finding(f"'{value}' is not true or false", oid, key))
    elif slot == "DateTime" and not _DATETIME.match(value):
        add(Finding(f"'{value}' is not a date-time such as 2015-04-07T16:05:58", oid, key))
    elif key in ENUMERATIONS and value not in ENUMERATIONS[key]:
        add(Finding(f"'{value}' is not one of {', '.join(ENUMERATIONS[key])}", oid, key))


def _check_values(add, oid, type_name, fields) -> None:
    retries = _single(fields.get("maximumRetries"))
    if retries and re.fullmatch(r"\d+", retries) and int(retries) > MAX_RETRIES:
        add(Finding(f"maximumRetries is {retries}; the service allows at most {MAX_RETRIES}",
                    oid, "maximumRetries"))
    delay = _single(fields.get("retryDelay"))
    seconds = period_seconds(delay) if delay else None
    if seconds is not None and seconds < MIN_RETRY_DELAY_SECONDS:
        add(Finding(f"retryDelay '{delay}' is under the 2-minute minimum", oid, "retryDelay"))
    if type_name == "Schedule":
        period = _single(fields.get("period"))
        seconds = period_seconds(period) if period else None
        if seconds is not None and seconds < MIN_SCHEDULE_PERIOD_SECONDS:
            add(Finding(f"period '{period}' is under the 15-minute minimum scheduling interval",
                        oid, "period"))
        start = _single(fields.get("startAt"))
        if start and start != "FIRST_ACTIVATION_DATE_TIME":
            add(Finding("startAt must be FIRST_ACTIVATION_DATE_TIME", oid, "startAt"))
        if fields.get("startAt") and fields.get("startDateTime"):
            add(Finding("give startAt or startDateTime, not both", oid))
    if type_name == "RedshiftCopyActivity":
        mode = _single(fields.get("insertMode"))
        if mode and mode not in INSERT_MODES:
            add(Finding(f"insertMode '{mode}' is not one of {', '.join(INSERT_MODES)}",
                        oid, "insertMode"))


def _check_schedules(add, by_id, fields_of_id, schedule_types, default) -> None:
    ondemand = [oid for oid, st in schedule_types if st == "ondemand"]
    if not ondemand:
        return
    if ondemand != ["Default"] or len(schedule_types) > 1:
        add(Finding("an on-demand pipeline sets scheduleType 'ondemand' on the Default object "
                    "only, and no other object sets a scheduleType",
                    next(o for o in ondemand if o != "Default") if ondemand != ["Default"]
                    else next(o for o, _ in schedule_types if o != "Default"), "scheduleType"))
    for oid, fields in fields_of_id.items():
        if _single(fields.get("type")) == "Schedule":
            add(Finding("on-demand pipelines must not have a Schedule object", oid))
        if "schedule" in fields:
            add(Finding("on-demand pipelines must not reference a schedule", oid, "schedule"))
    active = _single(default.get("maxActiveInstances"))
    if active and active.isdigit() and int(active) > MAX_ONDEMAND_ACTIVE_INSTANCES:
        add(Finding(f"maxActiveInstances of an on-demand pipeline is at most "
                    f"{MAX_ONDEMAND_ACTIVE_INSTANCES}", "Default", "maxActiveInstances"))


def _check_parameters(add, objects, parameter_objects, parameter_values) -> None:
    declared: dict[str, Mapping[str, Any]] = {}
    if len(parameter_objects) > MAX_PARAMETERS:
        add(Finding(f"{len(parameter_objects)} parameters, over the limit of {MAX_PARAMETERS}"))
    for param in parameter_objects:
        pid = str(param.get("id", ""))
        if not re.fullmatch(r"\*?my[A-Za-z0-9_]*", pid):
            add(Finding(f"parameter id '{pid}' must start with 'my' (or '*my' when encrypted) "
                        "and contain only letters, digits and '_'"))
        declared[pid] = param
        attrs = {a.get("key"): a.get("stringValue") for a in param.get("attributes", [])}
        if attrs.get("type", "String") not in PARAMETER_TYPES:
            add(Finding(f"parameter '{pid}' has type '{attrs.get('type')}', not one of "
                        f"{', '.join(PARAMETER_TYPES)}"))
    for value in parameter_values:
        if value.get("id") not in declared:
            add(Finding(f"a value is given for parameter '{value.get('id')}', which is not "
                        "declared in parameterObjects"))
    for obj in objects:
        for f in obj.get("fields", []):
            for name in _PARAM_REF.findall(str(f.get("stringValue", ""))):
                if name not in declared:
                    add(Finding(f"uses parameter '#{{{name}}}', which is not declared",
                                str(obj.get("id")), f.get("key")))


def fields_of(obj: Mapping[str, Any]) -> dict[str, list[tuple[str, bool]]]:
    out: dict[str, list[tuple[str, bool]]] = {}
    for f in obj.get("fields", []):
        if "refValue" in f:
            out.setdefault(f["key"], []).append((f["refValue"], True))
        else:
            out.setdefault(f["key"], []).append((f.get("stringValue", ""), False))
    return out


def edits_refused_after_activation(active: Iterable[Mapping[str, Any]],
                                   new: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(object id, message) for each change an activated pipeline refuses
    (dp-manage-pipeline-modify-console.md, Limitations): removing an object, changing a
    schedule's period or start, adding, changing or removing a reference field, and a new
    object writing to an existing one. Other changes are accepted and apply on the next
    activation."""
    found = []
    old_by_id = {o["id"]: fields_of(o) for o in active}
    new_by_id = {o["id"]: fields_of(o) for o in new}
    for oid in old_by_id:
        if oid not in new_by_id:
            found.append((oid, "cannot remove an object from an activated pipeline"))
    for oid, fields in new_by_id.items():
        old = old_by_id.get(oid)
        if old is None:
            for value, is_ref in fields.get("output", []):
                if is_ref and value in old_by_id:
                    found.append((oid, f"output: a new object cannot reference the existing "
                                       f"object {value} in an output field"))
            continue
        keys = {k for k, v in (*old.items(), *fields.items()) if any(r for _, r in v)}
        for key in sorted(keys):
            before = sorted(v for v, r in old.get(key, []) if r)
            after = sorted(v for v, r in fields.get(key, []) if r)
            if before != after:
                found.append((oid, f"{key}: cannot add, change or remove a reference field of "
                                   "an object of an activated pipeline"))
        kind = (fields.get("type") or [("", False)])[0][0]
        if kind == "Schedule":
            for key, label in (("period", "the schedule period"),
                               ("startDateTime", "the scheduled start"),
                               ("startAt", "the scheduled start")):
                if old.get(key) != fields.get(key):
                    found.append((oid, f"{key}: cannot change {label} of an activated pipeline "
                                       "(activate it with a startTimestamp instead)"
                                  if key != "period" else
                                  f"{key}: cannot change {label} of an activated pipeline"))
    return found
