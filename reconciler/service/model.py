"""Checks a pipeline definition against AWS Data Pipeline's object model and limits.

The model (object types, their fields, required fields, one-of groups, exclusive groups,
reference fields) is ``service_model.json``, generated from the Developer Guide's object
reference and its examples by ``tools/generate_service_model.py``. The limits are those of
``dp-limits.md``. The check works on the API form (``pipelineObjects`` / ``parameterObjects``
/ ``parameterValues``) so that the compiler and the embedded service judge a definition the
same way.

Where the guide's field tables and its examples disagree, the examples win (they ran on AWS):
enumerations are case-insensitive (``CRON``, ``ONDEMAND``), a field the examples use is
accepted, and a field neither knows is a warning, not an error. A value holding an expression
(``#{...}``) is evaluated by the service at run time, so its format is not checked here.

Findings name the object and the field. Errors are what the service refuses; warnings are what
it accepts but would report.
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
MAX_SCHEDULE_PERIOD_SECONDS = 3 * 365 * 86400
MAX_ONDEMAND_ACTIVE_INSTANCES = 5
MAX_PARAMETERS = 50

PARAMETER_TYPES = ("String", "Integer", "Double", "AWS::S3::ObjectKey")
# Enumerations, compared case-insensitively (the guide's examples write CRON and ONDEMAND).
ENUMERATIONS = {
    "scheduleType": ("cron", "ondemand", "timeseries"),
    "failureAndRerunMode": ("cascade", "none"),
    "actionOnTaskFailure": ("continue", "terminate"),
    "actionOnResourceFailure": ("retryall", "retrynone"),
    "insertMode": ("keep_existing", "overwrite_existing", "truncate", "append"),
}

# What a reference field may point at (dp-object-*.md: "runsOn: the computational resource",
# "schedule: a Schedule object", "input: the input data source"...).
ACTIVITIES = ("CopyActivity", "EmrActivity", "HadoopActivity", "HiveActivity",
              "HiveCopyActivity", "PigActivity", "RedshiftCopyActivity",
              "ShellCommandActivity", "SqlActivity")
DATA_NODES = ("S3DataNode", "SqlDataNode", "RedshiftDataNode", "DynamoDBDataNode",
              "MySqlDataNode")
RESOURCES = ("Ec2Resource", "EmrCluster")
DATABASES = ("JdbcDatabase", "RdsDatabase", "RedshiftDatabase")
DATA_FORMATS = ("CSV", "TSV", "Custom", "RegEx", "DynamoDBDataFormat",
                "DynamoDBExportDataFormat")
PRECONDITIONS = ("Exists", "S3KeyExists", "S3PrefixNotEmpty", "ShellCommandPrecondition",
                 "DynamoDBDataExists", "DynamoDBTableExists")
ACTIONS = ("SnsAlarm", "Terminate")
REFERENCE_TARGETS: dict[str, tuple[str, ...]] = {
    "runsOn": RESOURCES, "schedule": ("Schedule",), "input": DATA_NODES,
    "output": DATA_NODES, "database": DATABASES, "dataFormat": DATA_FORMATS,
    "precondition": PRECONDITIONS, "onFail": ACTIONS, "onSuccess": ACTIONS,
    "onLateAction": ACTIONS, "dependsOn": (*ACTIVITIES, *DATA_NODES), "httpProxy": ("HttpProxy",),
    "preActivityTaskConfig": ("ShellScriptConfig",),
    "postActivityTaskConfig": ("ShellScriptConfig",),
}

_PERIOD = re.compile(
    r"^\s*(\d+)\s+(minute|minutes|hour|hours|day|days|week|weeks|month|months|year|years)\s*$",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800, "month": 2592000,
                 "year": 31536000}
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
_MY_REF = re.compile(r"#\{\s*(\*?my[A-Za-z0-9_]*)\s*\}")
USER_FIELD = re.compile(r"^\*?my[A-Z_][A-Za-z0-9_]*$")
PARAMETER_ID = re.compile(r"^\*?my[A-Za-z0-9_]+$")

Fields = dict[str, list[tuple[str, bool]]]


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


def enum_value(value: str | None) -> str | None:
    """An enumeration value as the service compares it (case-insensitively)."""
    return value.lower() if value is not None else None


def has_expression(value: str) -> bool:
    return "#{" in value


def fields_of(obj: Mapping[str, Any]) -> Fields:
    out: Fields = {}
    for f in obj.get("fields", []):
        if "refValue" in f:
            out.setdefault(f["key"], []).append((f["refValue"], True))
        else:
            out.setdefault(f["key"], []).append((f.get("stringValue", ""), False))
    return out


def _single(values: list[tuple[str, bool]] | None) -> str | None:
    return values[0][0] if values else None


def check_definition(
    pipeline_objects: Iterable[Mapping[str, Any]],
    parameter_objects: Iterable[Mapping[str, Any]] = (),
    parameter_values: Iterable[Mapping[str, Any]] = (),
    *,
    max_objects: int = DEFAULT_MAX_OBJECTS,
) -> list[Finding]:
    """Every finding about a definition in the API form; an empty list means it is valid."""
    return _Check(list(pipeline_objects), list(parameter_objects), list(parameter_values),
                  max_objects).run()


class _Check:
    """One run of the check over one definition."""

    def __init__(self, objects: list[Mapping[str, Any]], parameters: list[Mapping[str, Any]],
                 values: list[Mapping[str, Any]], max_objects: int):
        self.objects, self.parameters, self.values = objects, parameters, values
        self.max_objects = max_objects
        self.findings: list[Finding] = []
        self.model = object_types()
        self.by_id: dict[str, Mapping[str, Any]] = {}
        self.fields: dict[str, Fields] = {}

    def add(self, message: str, object_id: str | None = None, field: str | None = None,
            severity: Literal["error", "warning"] = "error") -> None:
        self.findings.append(Finding(message, object_id, field, severity))

    def run(self) -> list[Finding]:
        if not self.objects:
            self.add("the definition has no objects")
            return self.findings
        if len(self.objects) > self.max_objects:
            self.add(f"{len(self.objects)} objects, over the limit of {self.max_objects} objects "
                     "per pipeline (the limit can be raised with AWS support; set "
                     "limits.max_objects_per_pipeline to match)")
        for obj in self.objects:
            oid = str(obj.get("id", ""))
            if not oid:
                self.add("an object has no id")
                continue
            if oid in self.by_id:
                self.add("duplicate object id", oid)
            self.by_id[oid] = obj
            self.fields[oid] = fields_of(obj)
        self.parent_ids = {v for f in self.fields.values() for v, r in f.get("parent", []) if r}
        for oid in self.by_id:
            self._check_object(oid)
        self._check_schedules()
        self._check_parameters()
        return self.findings

    # -- inheritance ---------------------------------------------------------------------------

    def inherited(self, oid: str, key: str, seen: frozenset[str] = frozenset()
                  ) -> list[tuple[str, bool]]:
        """A field's values on the object, else on its parents, else on Default."""
        own = self.fields.get(oid, {}).get(key)
        if own:
            return own
        for parent, is_ref in self.fields.get(oid, {}).get("parent", []):
            if is_ref and parent in self.fields and parent not in seen:
                found = self.inherited(parent, key, seen | {oid})
                if found:
                    return found
        if oid != "Default":
            return self.fields.get("Default", {}).get(key, [])
        return []

    def type_of(self, oid: str) -> str | None:
        return _single(self.inherited(oid, "type")) if oid != "Default" else None

    # -- one object ----------------------------------------------------------------------------

    def _check_object(self, oid: str) -> None:
        obj, fields = self.by_id[oid], self.fields[oid]
        if len(oid.encode()) > MAX_ID_BYTES:
            self.add(f"id is {len(oid.encode())} bytes, over the {MAX_ID_BYTES}-byte limit", oid)
        if not obj.get("name"):
            self.add("object has no name", oid)
        type_name = _single(fields.get("type"))
        if type_name == "Default" and oid == "Default":
            type_name = None
        spec = self.model.get(type_name) if type_name else None
        if type_name and spec is None:
            self.add(f"unknown object type '{type_name}'", oid, "type")
        if type_name is None and oid != "Default" and oid not in self.parent_ids:
            self.add("object has no type and is neither Default nor a parent of another "
                     "object", oid, "type")
        self._check_sizes(oid, fields)
        for key, values in fields.items():
            if key.startswith("@"):
                self.add("runtime fields (starting with '@') are set by the service and "
                         "cannot be written", oid, key)
            elif key != "type":
                self._check_field(oid, key, values, spec)
        if spec is not None:
            self._check_required(oid, type_name or "", spec)
        self._check_values(oid, type_name, fields)

    def _check_sizes(self, oid: str, fields: Fields) -> None:
        count, total = 0, 0
        for key, values in fields.items():
            if len(key.encode()) > MAX_ID_BYTES:
                self.add(f"field name over {MAX_ID_BYTES} bytes", oid, key)
            for value, _is_ref in values:
                count += 1
                size = len(value.encode())
                total += size + len(key.encode())
                if size > MAX_FIELD_BYTES:
                    self.add(f"value is {size:,} bytes, over the {MAX_FIELD_BYTES:,}-byte "
                             "limit per field", oid, key)
        if count > MAX_FIELDS_PER_OBJECT:
            self.add(f"{count} fields, over the limit of {MAX_FIELDS_PER_OBJECT} per object", oid)
        if total > MAX_OBJECT_BYTES:
            self.add(f"{total:,} bytes, over the limit of {MAX_OBJECT_BYTES:,} bytes per "
                     "object (field names included)", oid)

    def _check_required(self, oid: str, type_name: str, spec: Mapping[str, Any]) -> None:
        for required in spec["required"]:
            if not self.inherited(oid, required):
                self.add(f"{type_name} requires field '{required}'", oid, required)
        for group in spec["one_of"]:
            if not [k for k in group if self.inherited(oid, k)]:
                self.add(f"{type_name} requires one of {', '.join(group)}", oid)
        for group in spec.get("exclusive", []):
            present = [k for k in group if self.fields[oid].get(k)]
            if len(present) > 1:
                self.add(f"{type_name} takes only one of {', '.join(group)} (found "
                         f"{', '.join(present)})", oid, present[-1])
        if type_name == "ShellCommandActivity" and self.fields[oid].get("scriptUri") and \
                self.fields[oid].get("scriptArgument"):
            # the guide says this is an error; AWS runs it (awslabs/data-pipeline-samples:
            # the Kinesis-to-S3 and Hadoop TeraSort pipelines pass arguments to a scriptUri)
            self.add("the guide says scriptArgument is for command, not scriptUri; AWS runs "
                     "the script with the arguments all the same", oid, "scriptArgument",
                     severity="warning")

    def _known_field(self, key: str, spec: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        if spec is not None:
            return spec["fields"].get(key)
        for other in self.model.values():  # Default and parents may carry any type's field
            if key in other["fields"]:
                return other["fields"][key]
        return None

    def _check_field(self, oid: str, key: str, values: list[tuple[str, bool]],
                     spec: Mapping[str, Any] | None) -> None:
        if key.startswith(("my", "*my")):
            self._check_user_field(oid, key, values)
            return
        known = self._known_field(key, spec)
        if known is None:
            self.add("field not in the object reference of the guide (user-defined fields "
                     "start with 'my' and a capital letter)", oid, key, "warning")
            return
        if known.get("runtime"):
            self.add("runtime field cannot be written", oid, key)
            return
        for value, is_ref in values:
            if known["ref"] and not is_ref:
                if not has_expression(value):
                    self.add("must be a reference ({\"ref\": \"id\"}), not a string", oid, key)
            elif not known["ref"] and is_ref:
                self.add("must be a string value, not a reference", oid, key)
            elif is_ref:
                self._check_reference(oid, key, value)
            else:
                self._check_slot(oid, key, value, known["slot"])

    def _check_user_field(self, oid: str, key: str, values: list[tuple[str, bool]]) -> None:
        if not USER_FIELD.match(key):
            self.add("a user-defined field is 'my' followed by a capital letter or '_' "
                     f"(e.g. 'my{key.lstrip('*')[2:3].upper()}{key.lstrip('*')[3:]}')",
                     oid, key)
        for value, is_ref in values:
            if is_ref and value not in self.by_id:
                self.add(f"references '{value}', which is not an object of this pipeline",
                         oid, key)

    def _check_reference(self, oid: str, key: str, target: str) -> None:
        if target not in self.by_id:
            self.add(f"references '{target}', which is not an object of this pipeline",
                     oid, key)
            return
        allowed = REFERENCE_TARGETS.get(key)
        kind = self.type_of(target)
        if allowed and kind and kind in self.model and kind not in allowed:
            takes = " or ".join(allowed) if len(allowed) < 4 else "one of " + ", ".join(allowed)
            self.add(f"references '{target}', a {kind}; {key} takes {takes}", oid, key)

    def _check_slot(self, oid: str, key: str, value: str, slot: str) -> None:
        if has_expression(value):
            return  # evaluated by the service at run time
        if slot == "Period" and period_seconds(value) is None:
            self.add(f"'{value}' is not a period such as '15 minutes' or '1 days'", oid, key)
        elif slot == "Integer" and not re.fullmatch(r"-?\d+", value):
            self.add(f"'{value}' is not an integer", oid, key)
        elif slot == "Double" and not re.fullmatch(r"-?\d+(\.\d+)?", value):
            self.add(f"'{value}' is not a number", oid, key)
        elif slot == "Boolean" and value.lower() not in ("true", "false"):
            self.add(f"'{value}' is not true or false", oid, key)
        elif slot == "DateTime" and not _DATETIME.match(value):
            self.add(f"'{value}' is not a date-time such as 2015-04-07T16:05:58", oid, key)
        elif key in ENUMERATIONS and enum_value(value) not in ENUMERATIONS[key]:
            self.add(f"'{value}' is not one of {', '.join(ENUMERATIONS[key])}", oid, key)

    def _check_values(self, oid: str, type_name: str | None, fields: Fields) -> None:
        kind = type_name or ""
        retries = _single(self.inherited(oid, "maximumRetries"))
        if kind in ACTIVITIES and retries and re.fullmatch(r"\d+", retries) and \
                int(retries) > MAX_RETRIES:
            self.add(f"maximumRetries is {retries}; the service allows at most {MAX_RETRIES} "
                     "per activity", oid, "maximumRetries")
        delay = _single(fields.get("retryDelay"))
        seconds = period_seconds(delay) if delay else None
        if seconds is not None and seconds < MIN_RETRY_DELAY_SECONDS:
            self.add(f"retryDelay '{delay}' is under the 2-minute minimum", oid, "retryDelay")
        if kind == "Schedule":
            self._check_schedule_object(oid, fields)

    def _check_schedule_object(self, oid: str, fields: Fields) -> None:
        period = _single(fields.get("period"))
        seconds = period_seconds(period) if period else None
        if seconds is not None and seconds < MIN_SCHEDULE_PERIOD_SECONDS:
            self.add(f"period '{period}' is under the 15-minute minimum scheduling interval",
                     oid, "period")
        if seconds is not None and seconds > MAX_SCHEDULE_PERIOD_SECONDS:
            self.add(f"period '{period}' is over the maximum of 3 years", oid, "period")
        start = _single(fields.get("startAt"))
        if start and not has_expression(start) and start.upper() != "FIRST_ACTIVATION_DATE_TIME":
            self.add("startAt must be FIRST_ACTIVATION_DATE_TIME", oid, "startAt")

    # -- the whole definition ------------------------------------------------------------------

    def _check_schedules(self) -> None:
        types = {oid: enum_value(_single(f.get("scheduleType")))
                 for oid, f in self.fields.items() if f.get("scheduleType")}
        ondemand = [oid for oid, st in types.items() if st == "ondemand"]
        if not ondemand:
            return
        if ondemand != ["Default"] or len(types) > 1:
            culprit = next((o for o in ondemand if o != "Default"), None) or \
                next(o for o in types if o != "Default")
            self.add("an on-demand pipeline sets scheduleType 'ondemand' on the Default object "
                     "only, and no other object sets a scheduleType", culprit, "scheduleType")
        for oid, fields in self.fields.items():
            if _single(fields.get("type")) == "Schedule":
                self.add("on-demand pipelines must not have a Schedule object", oid)
            if "schedule" in fields:
                self.add("on-demand pipelines must not reference a schedule", oid, "schedule")
        active = _single(self.fields.get("Default", {}).get("maxActiveInstances"))
        if active and active.isdigit() and int(active) > MAX_ONDEMAND_ACTIVE_INSTANCES:
            self.add(f"maxActiveInstances of an on-demand pipeline is at most "
                     f"{MAX_ONDEMAND_ACTIVE_INSTANCES}", "Default", "maxActiveInstances")

    def _check_parameters(self) -> None:
        declared = self._declared_parameters()
        for value in self.values:
            pid = str(value.get("id"))
            spec = declared.get(pid)
            if spec is not None:
                self._check_parameter_value(pid, str(value.get("stringValue", "")), spec)
        given = {str(v.get("id")) for v in self.values}
        for oid, obj in self.by_id.items():
            for f in obj.get("fields", []):
                for name in _MY_REF.findall(str(f.get("stringValue", ""))):
                    if name in declared or name in given or self.inherited(oid, name):
                        continue
                    self.add(f"uses '#{{{name}}}', which is neither a parameter nor a field "
                             "of this object, its parents or Default", oid, f.get("key"))

    def _declared_parameters(self) -> dict[str, dict[str, list[str]]]:
        if len(self.parameters) > MAX_PARAMETERS:
            self.add(f"{len(self.parameters)} parameters, over the limit of {MAX_PARAMETERS}")
        declared: dict[str, dict[str, list[str]]] = {}
        for param in self.parameters:
            pid = str(param.get("id", ""))
            if not PARAMETER_ID.match(pid):
                self.add(f"parameter id '{pid}' must start with 'my' (or '*my' when encrypted) "
                         "and contain only letters, digits and '_'")
            attrs: dict[str, list[str]] = {}
            for a in param.get("attributes", []):
                attrs.setdefault(str(a.get("key")), []).append(str(a.get("stringValue", "")))
            kind = (attrs.get("type") or ["String"])[0]
            if kind not in PARAMETER_TYPES:
                self.add(f"parameter '{pid}' has type '{kind}', not one of "
                         f"{', '.join(PARAMETER_TYPES)}")
            declared[pid] = attrs
        return declared

    def _check_parameter_value(self, pid: str, value: str, attrs: dict[str, list[str]]) -> None:
        kind = (attrs.get("type") or ["String"])[0]
        if kind == "Integer" and not re.fullmatch(r"-?\d+", value):
            self.add(f"parameter '{pid}' is an Integer; '{value}' is not")
        elif kind == "Double" and not re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", value):
            self.add(f"parameter '{pid}' is a Double; '{value}' is not")
        allowed = attrs.get("allowedValues")
        if allowed and value not in allowed:
            self.add(f"parameter '{pid}' allows {', '.join(allowed)}; '{value}' is not one "
                     "of them")


def parameter_is_optional(param: Mapping[str, Any]) -> bool:
    """An optional parameter, or one with a default, needs no value at activation."""
    for attribute in param.get("attributes", []):
        if attribute.get("key") == "default":
            return True
        if attribute.get("key") == "optional" and \
                str(attribute.get("stringValue", "")).lower() == "true":
            return True
    return False


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
        found += _refused_changes(oid, old, fields)
    return found


def _refused_changes(oid: str, old: Fields, new: Fields) -> list[tuple[str, str]]:
    found = []
    keys = {k for k, v in (*old.items(), *new.items()) if any(r for _, r in v)}
    for key in sorted(keys):
        before = sorted(v for v, r in old.get(key, []) if r)
        after = sorted(v for v, r in new.get(key, []) if r)
        if before != after:
            found.append((oid, f"{key}: cannot add, change or remove a reference field of "
                               "an object of an activated pipeline"))
    if (new.get("type") or [("", False)])[0][0] == "Schedule":
        for key, label in (("period", "the schedule period"),
                           ("startDateTime", "the scheduled start"),
                           ("startAt", "the scheduled start")):
            if old.get(key) != new.get(key):
                suffix = "" if key == "period" else \
                    " (activate it with a startTimestamp instead)"
                found.append((oid, f"{key}: cannot change {label} of an activated pipeline"
                                   f"{suffix}"))
    return found
