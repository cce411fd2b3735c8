"""The Data Pipeline backend of the embedded service: moto's, with the service's rules.

:class:`EmbeddedDataPipelineBackend` subclasses moto's backend and keeps its own pipeline
model: idempotent creation on (name, uniqueId), tags with the 10-tag limit, "latest" and
"active" definitions with parameters, validation with the project's object-model check
(``reconciler.service.model``), the edits an activated pipeline refuses, the
pipeline states, deletion tombstones (PipelineDeletedException), and runs on the simulated
clock (``runs.py``). Every rule cites its source in docs/emulator.md.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.datapipeline.models import DataPipelineBackend
from moto.moto_api._internal import mock_random

from ..service.expressions import ExpressionError, substitute
from ..service.model import (
    DEFAULT_MAX_OBJECTS,
    check_definition,
    edits_refused_after_activation,
    enum_value,
    fields_of,
    parameter_is_optional,
    period_seconds,
)
from .clock import CONTROLS, format_time, parse_time
from .runs import TERMINAL, RunState, Schedule

MAX_TAGS = 10
MAX_IDS_PER_DESCRIBE = 25
LIST_PAGE_SIZE = 50
BACKFILL_LIMIT = timedelta(days=1)
MASK = "********"


class PipelineNotFound(JsonRESTError):
    def __init__(self, pipeline_id: str):
        super().__init__("PipelineNotFoundException",
                         f"Pipeline with id: {pipeline_id} does not exist.")


class PipelineDeleted(JsonRESTError):
    def __init__(self, pipeline_id: str):
        super().__init__("PipelineDeletedException",
                         f"Pipeline with id: {pipeline_id} was deleted.")


class InvalidRequest(JsonRESTError):
    def __init__(self, message: str):
        super().__init__("InvalidRequestException", message)


@dataclass
class Definition:
    objects: list[dict[str, Any]]
    parameters: list[dict[str, Any]] = field(default_factory=list)
    values: list[dict[str, Any]] = field(default_factory=list)
    errored: bool = False

    def to_json(self) -> dict[str, Any]:
        """For the state file: values of encrypted (``*``) parameters are not kept, so no
        secret is ever written to disk; put the definition again to activate after a
        restart."""
        return {"objects": self.objects, "parameters": self.parameters,
                "values": [v for v in self.values if not str(v.get("id", "")).startswith("*")],
                "errored": self.errored}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Definition:
        return cls(data["objects"], data["parameters"], data["values"], data["errored"])


@dataclass
class EmbeddedPipeline:
    pipeline_id: str
    name: str
    unique_id: str
    description: str
    tags: list[dict[str, str]]
    created: datetime
    sequence: int
    latest: Definition | None = None
    active: Definition | None = None
    state: str = "PENDING"
    deleted: bool = False
    activated_at: datetime | None = None
    runs: RunState | None = None
    deactivating: bool = False

    # -- description ----------------------------------------------------------------------------

    def describe(self, account_id: str) -> dict[str, Any]:
        fields = [("@pipelineState", self.state), ("name", self.name),
                  ("@creationTime", format_time(self.created)), ("@id", self.pipeline_id),
                  ("@sphere", "PIPELINE"), ("@userId", account_id),
                  ("@accountId", account_id), ("uniqueId", self.unique_id)]
        if self.description:
            fields.append(("description", self.description))
        if self.activated_at:
            fields.append(("@lastActivationTime", format_time(self.activated_at)))
        if self.runs is not None:
            health = self.runs.health()
            if health:
                fields.append(("@healthStatus", health))
            latest, upcoming = self.runs.latest_run(), self.runs.next_run()
            if latest:
                fields.append(("@latestRunTime", format_time(latest)))
            if upcoming and self.state == "SCHEDULED":
                fields.append(("@nextRunTime", format_time(upcoming)))
        out: dict[str, Any] = {
            "pipelineId": self.pipeline_id, "name": self.name,
            "fields": [{"key": k, "stringValue": v} for k, v in fields],
            "tags": self.tags,
        }
        if self.description:
            out["description"] = self.description
        return out

    # -- time -----------------------------------------------------------------------------------

    def sync(self, now: datetime) -> None:
        """Bring the runs and the state up to ``now``."""
        if self.runs is None:
            return
        if self.state in ("SCHEDULED", "DEACTIVATING"):
            if self.state == "SCHEDULED":
                self.runs.advance(now)
            if self.state == "DEACTIVATING":
                self.runs.advance(now)
                if not self.runs.busy():
                    self.runs.cancelled = True
                    self.state = "INACTIVE"
            elif self.runs.done() and not self.is_ondemand():
                self.state = "FINISHED"

    def is_ondemand(self, definition: Definition | None = None) -> bool:
        definition = definition or self.active or self.latest
        if definition is None:
            return False
        return any(f.get("key") == "scheduleType"
                   and enum_value(f.get("stringValue")) == "ondemand"
                   for o in definition.objects if o.get("id") == "Default"
                   for f in o.get("fields", []))


class EmbeddedDataPipelineBackend(DataPipelineBackend):
    """moto's Data Pipeline backend with the documented behaviour of the service."""

    def __init__(self, region_name: str, account_id: str):
        super().__init__(region_name, account_id)
        self.store: OrderedDict[str, EmbeddedPipeline] = OrderedDict()
        self.by_token: dict[tuple[str, str], str] = {}
        self.sequence = itertools.count()
        self.max_objects = DEFAULT_MAX_OBJECTS

    # -- lookups --------------------------------------------------------------------------------

    def lookup(self, pipeline_id: str, *, allow_deleted: bool = False) -> EmbeddedPipeline:
        pipeline = self.store.get(pipeline_id)
        if pipeline is None:
            raise PipelineNotFound(pipeline_id)
        if pipeline.deleted and not allow_deleted:
            raise PipelineDeleted(pipeline_id)
        pipeline.sync(CONTROLS.now())
        return pipeline

    # -- pipelines ------------------------------------------------------------------------------

    def create(self, name: str, unique_id: str, description: str = "",
               tags: list[dict[str, str]] | None = None) -> EmbeddedPipeline:
        if not name or not unique_id:
            raise InvalidRequest("name and uniqueId are required")
        tags = _check_tags(tags or [])
        existing = self.by_token.get((name, unique_id))
        if existing and not self.store[existing].deleted:
            return self.store[existing]
        pipeline_id = "df-" + mock_random.get_random_hex(length=19).upper()
        pipeline = EmbeddedPipeline(pipeline_id, name, unique_id, description, tags,
                                    CONTROLS.now(), next(self.sequence))
        self.store[pipeline_id] = pipeline
        self.by_token[(name, unique_id)] = pipeline_id
        return pipeline

    def list_page(self, marker: str | None) -> tuple[list[EmbeddedPipeline], str | None]:
        live = [p for p in self.store.values() if not p.deleted]
        start = 0
        if marker:
            if not marker.isdigit():
                raise InvalidRequest(f"invalid marker: {marker}")
            start = int(marker)
        page = live[start:start + LIST_PAGE_SIZE]
        more = start + LIST_PAGE_SIZE < len(live)
        return page, (str(start + LIST_PAGE_SIZE) if more else None)

    def describe_many(self, pipeline_ids: list[str]) -> list[EmbeddedPipeline]:
        if not pipeline_ids:
            raise InvalidRequest("pipelineIds must not be empty")
        if len(pipeline_ids) > MAX_IDS_PER_DESCRIBE:
            raise InvalidRequest(f"at most {MAX_IDS_PER_DESCRIBE} pipeline ids per "
                                 f"DescribePipelines call, got {len(pipeline_ids)}")
        return [self.lookup(pid) for pid in pipeline_ids]

    def delete(self, pipeline_id: str) -> None:
        pipeline = self.store.get(pipeline_id)
        if pipeline is None or pipeline.deleted:
            raise PipelineNotFound(pipeline_id)
        pipeline.deleted = True
        pipeline.latest = pipeline.active = pipeline.runs = None
        pipeline.tags = []

    def add_tags(self, pipeline_id: str, tags: list[dict[str, str]]) -> None:
        pipeline = self.lookup(pipeline_id)
        merged = {t["key"]: t["value"] for t in pipeline.tags}
        merged.update({t["key"]: t["value"] for t in _check_tags(tags)})
        pipeline.tags = _check_tags([{"key": k, "value": v} for k, v in merged.items()])

    def remove_tags(self, pipeline_id: str, keys: list[str]) -> None:
        pipeline = self.lookup(pipeline_id)
        pipeline.tags = [t for t in pipeline.tags if t["key"] not in set(keys)]

    # -- definitions ----------------------------------------------------------------------------

    def validate(self, pipeline: EmbeddedPipeline, objects, parameters, values
                 ) -> tuple[list[dict], list[dict], bool]:
        """The service's verdict: (validationErrors, validationWarnings, errored); raises
        InvalidRequestException for the errors that keep a definition from being saved."""
        _hard_errors(objects, self.max_objects, pipeline)
        errors: dict[str, list[str]] = {}
        warnings: dict[str, list[str]] = {}
        for finding in check_definition(objects, parameters, values,
                                        max_objects=self.max_objects):
            target = errors if finding.severity == "error" else warnings
            message = f"{finding.field}: {finding.message}" if finding.field else finding.message
            target.setdefault(finding.object_id or "Pipeline", []).append(message)
        if pipeline.active is not None:
            for oid, message in edits_refused_after_activation(pipeline.active.objects, objects):
                errors.setdefault(oid, []).append(message)

        def shaped(found):
            return [{"id": oid, "errors": msgs} for oid, msgs in found.items()]

        warning_list = [{"id": oid, "warnings": msgs} for oid, msgs in warnings.items()]
        return shaped(errors), warning_list, bool(errors)

    def put(self, pipeline_id: str, objects, parameters, values) -> dict[str, Any]:
        pipeline = self.lookup(pipeline_id)
        errors, warnings, errored = self.validate(pipeline, objects, parameters, values)
        pipeline.latest = Definition(objects, parameters or [], values or [], errored)
        return {"validationErrors": errors, "validationWarnings": warnings, "errored": errored}

    def definition(self, pipeline_id: str, version: str | None) -> Definition:
        pipeline = self.lookup(pipeline_id)
        if version not in (None, "latest", "active"):
            raise InvalidRequest(f"version must be latest or active, not {version}")
        found = pipeline.active if version == "active" else pipeline.latest
        return found or Definition([])

    # -- activation -----------------------------------------------------------------------------

    def activate(self, pipeline_id: str, parameter_values, start: datetime | None) -> None:
        pipeline = self.lookup(pipeline_id)
        latest = pipeline.latest
        if latest is None or not latest.objects:
            raise InvalidRequest(f"Pipeline {pipeline_id} has no definition to activate")
        if latest.errored:
            raise InvalidRequest(f"Pipeline {pipeline_id} has validation errors; fix the "
                                 "definition before activating it")
        now = CONTROLS.now()
        values = list(latest.values)
        if parameter_values:
            given = {v["id"]: v for v in parameter_values}
            values = [v for v in values if v["id"] not in given] + list(parameter_values)
        # a value for an id with no parameter object declares it (dp-custom-templates.md)
        missing = [p["id"] for p in latest.parameters if p["id"] not in {v["id"] for v in values}
                   and not parameter_is_optional(p)]
        if missing:
            raise InvalidRequest(f"no value for parameters: {', '.join(sorted(missing))}")
        ondemand = pipeline.is_ondemand(latest)
        schedule = _schedule(latest.objects, start or now, ondemand, values)
        first_activation = pipeline.runs is None
        if not ondemand and (start is not None or first_activation):
            scheduled_start = start or schedule.start
            if scheduled_start < now - BACKFILL_LIMIT:
                raise InvalidRequest(
                    f"the pipeline's scheduled start {format_time(scheduled_start)} is more "
                    "than one day in the past; activate it with a later startTimestamp")
        pipeline.active = Definition(latest.objects, latest.parameters, values)
        pipeline.activated_at = now
        pipeline.state = "SCHEDULED"
        pipeline.deactivating = False
        if ondemand or first_activation or start is not None:
            previous = pipeline.runs
            pipeline.runs = RunState(pipeline.pipeline_id, latest.objects, schedule, now)
            if previous is not None:  # keep history: instances of earlier runs stay queryable
                pipeline.runs.instances = {**previous.instances}
                pipeline.runs.attempts = {**previous.attempts}
        else:  # resume: same schedule, new definition for the periods to come
            previous = pipeline.runs
            assert previous is not None  # not the first activation
            pipeline.runs = RunState(pipeline.pipeline_id, latest.objects, previous.schedule,
                                     now)
            pipeline.runs.periods_created = previous.periods_created
            pipeline.runs.instances, pipeline.runs.attempts = previous.instances, previous.attempts
        pipeline.sync(now)

    def deactivate(self, pipeline_id: str, cancel_active: bool) -> None:
        pipeline = self.lookup(pipeline_id)
        if pipeline.state in ("PENDING", "INACTIVE") or pipeline.runs is None:
            pipeline.state = "INACTIVE" if pipeline.runs is not None else pipeline.state
            return
        now = CONTROLS.now()
        if cancel_active:
            pipeline.runs.cancel_active(now)
            pipeline.runs.cancelled = True
            pipeline.state = "INACTIVE"
        else:
            pipeline.state = "DEACTIVATING"
            pipeline.runs.draining = True
            pipeline.sync(now)

    def set_status(self, pipeline_id: str, object_ids: list[str], status: str) -> None:
        """SetStatus on instances: RERUN a finished, failed or canceled one, MARK_FINISHED,
        TRY_CANCEL one not done yet. Pausing components (PAUSE, RESUME) is not served."""
        pipeline = self.lookup(pipeline_id)
        if status in ("PAUSE", "RESUME"):
            raise InvalidRequest(f"status {status} (of components) is not served by the "
                                 "embedded service")
        if status not in ("RERUN", "MARK_FINISHED", "TRY_CANCEL"):
            raise InvalidRequest(f"status must be RERUN, MARK_FINISHED or TRY_CANCEL for "
                                 f"instances, not {status}")
        if not object_ids:
            raise InvalidRequest("objectIds is required")
        now = CONTROLS.now()
        runs = pipeline.runs
        if runs is not None:
            pipeline.sync(now)
        for object_id in object_ids:
            instance = runs.instances.get(object_id) if runs is not None else None
            if instance is None:
                raise InvalidRequest(f"{object_id} is not an instance of {pipeline_id}")
            done = instance.status in TERMINAL
            if status == "RERUN" and not done:
                raise InvalidRequest(f"{object_id} is {instance.status}: only a finished, "
                                     "failed or canceled instance is rerun")
            if status == "TRY_CANCEL" and done:
                raise InvalidRequest(f"{object_id} is {instance.status} already")
        assert runs is not None
        for object_id in object_ids:
            if status == "RERUN":
                runs.rerun(object_id, now)
            elif status == "MARK_FINISHED":
                runs.mark_finished(object_id, now)
            else:
                instance = runs.instances[object_id]
                instance.status, instance.ended = "CANCELED", now
        pipeline.sync(now)

    # -- objects --------------------------------------------------------------------------------

    def component_objects(self, pipeline: EmbeddedPipeline) -> list[dict[str, Any]]:
        definition = pipeline.active or pipeline.latest
        return definition.objects if definition else []

    def sphere_objects(self, pipeline: EmbeddedPipeline, sphere: str) -> list[dict[str, Any]]:
        """Objects of a sphere as the API returns them: id, name, fields."""
        if sphere == "COMPONENT":
            return [masked_object(o) for o in self.component_objects(pipeline)]
        runs = pipeline.runs
        if runs is None:
            return []
        if sphere == "INSTANCE":
            return [{"id": i.id, "name": i.name, "fields": i.fields()}
                    for i in sorted(runs.instances.values(),
                                    key=lambda i: (i.scheduled_start, i.id))]
        if sphere == "ATTEMPT":
            return [{"id": a.id, "name": a.id,
                     "fields": a.fields(runs.instances[a.instance].component)}
                    for a in sorted(runs.attempts.values(), key=lambda a: (a.started, a.id))]
        raise InvalidRequest(f"sphere must be COMPONENT, INSTANCE or ATTEMPT, not {sphere}")

    def query(self, pipeline_id: str, sphere: str, query: dict | None, limit: int | None,
              marker: str | None) -> tuple[list[str], str | None]:
        pipeline = self.lookup(pipeline_id)
        selectors = (query or {}).get("selectors") or []
        if len(selectors) > 10:
            raise InvalidRequest("a query has at most 10 selectors")
        matched = [o["id"] for o in self.sphere_objects(pipeline, sphere)
                   if all(_selects(o, s) for s in selectors)]
        limit = 100 if limit is None else limit
        if limit < 1:
            raise InvalidRequest("limit must be at least 1")
        start = int(marker) if marker and marker.isdigit() else 0
        page = matched[start:start + limit]
        more = start + limit < len(matched)
        return page, (str(start + limit) if more else None)

    def describe_objects_of(self, pipeline_id: str, object_ids: list[str]) -> list[dict]:
        if not object_ids:
            raise InvalidRequest("objectIds must not be empty")
        if len(object_ids) > MAX_IDS_PER_DESCRIBE:
            raise InvalidRequest(f"at most {MAX_IDS_PER_DESCRIBE} object ids per "
                                 f"DescribeObjects call, got {len(object_ids)}")
        pipeline = self.lookup(pipeline_id)
        found: dict[str, dict[str, Any]] = {}
        for sphere in ("COMPONENT", "INSTANCE", "ATTEMPT"):
            for obj in self.sphere_objects(pipeline, sphere):
                if obj["id"] in object_ids:
                    found.setdefault(obj["id"], obj)
        return [found[i] for i in object_ids if i in found]

    # -- state file -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"pipelines": [_pipeline_json(p) for p in self.store.values()]}

    def load_json(self, data: dict[str, Any]) -> None:
        self.store.clear()
        self.by_token.clear()
        for item in data.get("pipelines", []):
            pipeline = _pipeline_from_json(item)
            self.store[pipeline.pipeline_id] = pipeline
            if not pipeline.deleted:
                self.by_token[(pipeline.name, pipeline.unique_id)] = pipeline.pipeline_id
        self.sequence = itertools.count(len(self.store))


# -- rules ----------------------------------------------------------------------------------------


def _check_tags(tags: list[dict[str, str]]) -> list[dict[str, str]]:
    for tag in tags:
        if not tag.get("key"):
            raise InvalidRequest("a tag needs a key")
    keys = [t["key"] for t in tags]
    if len(set(keys)) > MAX_TAGS:
        raise InvalidRequest(f"a pipeline can have at most {MAX_TAGS} tags, got "
                             f"{len(set(keys))}")
    return [{"key": t["key"], "value": t.get("value", "")} for t in tags]


def _hard_errors(objects, max_objects: int, pipeline: EmbeddedPipeline) -> None:
    """The errors that keep a definition from being saved (PutPipelineDefinition's docs)."""
    if pipeline.state == "FINISHED":
        raise InvalidRequest(f"Pipeline {pipeline.pipeline_id} is in a FINISHED state")
    if len(objects) > max_objects:
        raise InvalidRequest(f"the definition has {len(objects)} objects; at most "
                             f"{max_objects} are allowed")
    for obj in objects:
        if not obj.get("id") or not obj.get("name"):
            raise InvalidRequest(f"object {obj.get('id') or '(no id)'} is missing a name or "
                                 "identifier field")
        for f in obj.get("fields", []):
            value = f.get("stringValue", f.get("refValue"))
            if not f.get("key") or value is None or value == "":
                raise InvalidRequest(f"object {obj['id']} has an empty string or reference "
                                     f"field{' ' + f['key'] if f.get('key') else ''}")


def _schedule(objects: list[dict], now: datetime, ondemand: bool,
              values: list[dict[str, Any]] | None = None) -> Schedule:
    """The schedule the pipeline runs on, its fields' expressions evaluated against the
    parameter values and the schedule's own fields; an expression that cannot be evaluated
    is the service's InvalidRequestException, never a crash."""
    if ondemand:
        return Schedule(start=now, period=None, occurrences=1, end=None)
    by_id = {o["id"]: fields_of(o) for o in objects}
    default = by_id.get("Default", {})
    ref = next((v for v, r in default.get("schedule", []) if r), None)
    if ref is None:
        ref = next((oid for oid, f in by_id.items()
                    if (f.get("type") or [("", False)])[0][0] == "Schedule"), None)
    fields = by_id.get(ref or "", {})
    given = {v["id"]: v.get("stringValue") for v in values or []}

    def lookup(name: str) -> Any:
        own = fields.get(name) or default.get(name)
        return own[0][0] if own else given.get(name)

    def field(key: str) -> str | None:
        values = fields.get(key)
        if not values:
            return None
        raw = values[0][0]
        try:
            return substitute(raw, lookup)
        except ExpressionError as exc:
            raise InvalidRequest(f"{ref}.{key}: {exc}") from None

    def time_field(key: str) -> datetime | None:
        text = field(key)
        if text is None:
            return None
        try:
            return parse_time(text)
        except ValueError:
            raise InvalidRequest(f"{ref}.{key}: '{text}' is not a date-time such as "
                                 "2015-04-07T16:05:58") from None

    seconds = period_seconds(field("period") or "1 days")
    if seconds is None:
        raise InvalidRequest(f"{ref}.period: '{field('period')}' is not a period")
    occurrences = field("occurrences")
    if occurrences is not None and not occurrences.isdigit():
        raise InvalidRequest(f"{ref}.occurrences: '{occurrences}' is not a number")
    start_at = field("startAt")
    start = now if start_at and start_at.upper() == "FIRST_ACTIVATION_DATE_TIME" else (
        time_field("startDateTime") or now)
    timeseries = enum_value((default.get("scheduleType") or [("cron", False)])[0][0]) == \
        "timeseries"
    return Schedule(start=start, period=timedelta(seconds=seconds),
                    occurrences=int(occurrences) if occurrences else None,
                    end=time_field("endDateTime"), timeseries=timeseries)


def masked_object(obj: dict[str, Any]) -> dict[str, Any]:
    """Encrypted fields (``*key``) come back masked unless they only name a parameter."""
    fields = []
    for f in obj.get("fields", []):
        value = f.get("stringValue")
        if f.get("key", "").startswith("*") and value is not None and not (
                value.startswith("#{") and value.endswith("}")):
            f = {"key": f["key"], "stringValue": MASK}
        fields.append(f)
    return {"id": obj["id"], "name": obj.get("name", obj["id"]), "fields": fields}


def masked_values(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": v["id"], "stringValue": MASK} if v["id"].startswith("*") else v
            for v in values]


def _selects(obj: dict[str, Any], selector: dict[str, Any]) -> bool:
    name = selector.get("fieldName")
    operator = selector.get("operator") or {}
    kind, wanted = operator.get("type"), operator.get("values") or []
    if name in ("name", "@id", "id"):
        actual = [obj["name"] if name == "name" else obj["id"]]
        refs: list[str] = []
    else:
        actual = [f["stringValue"] for f in obj["fields"]
                  if f["key"] == name and "stringValue" in f]
        refs = [f["refValue"] for f in obj["fields"] if f["key"] == name and "refValue" in f]
    if kind == "EQ":
        return any(a in wanted for a in actual)
    if kind == "REF_EQ":
        return any(r in wanted for r in refs)
    if kind == "LE":
        return bool(wanted) and any(a <= wanted[0] for a in actual)
    if kind == "GE":
        return bool(wanted) and any(a >= wanted[0] for a in actual)
    if kind == "BETWEEN":
        return len(wanted) >= 2 and any(wanted[0] <= a <= wanted[1] for a in actual)
    raise InvalidRequest(f"unknown operator {kind}; use EQ, REF_EQ, LE, GE or BETWEEN")


def _pipeline_json(p: EmbeddedPipeline) -> dict[str, Any]:
    return {
        "id": p.pipeline_id, "name": p.name, "uniqueId": p.unique_id,
        "description": p.description, "tags": p.tags, "created": format_time(p.created),
        "sequence": p.sequence, "state": p.state, "deleted": p.deleted,
        "latest": p.latest.to_json() if p.latest else None,
        "active": p.active.to_json() if p.active else None,
        "activatedAt": format_time(p.activated_at) if p.activated_at else None,
        "schedule": {
            "start": format_time(p.runs.schedule.start),
            "periodSeconds": p.runs.schedule.period.total_seconds()
            if p.runs.schedule.period else None,
            "occurrences": p.runs.schedule.occurrences,
            "end": format_time(p.runs.schedule.end) if p.runs.schedule.end else None,
            "timeseries": p.runs.schedule.timeseries,
        } if p.runs else None,
    }


def _pipeline_from_json(d: dict[str, Any]) -> EmbeddedPipeline:
    pipeline = EmbeddedPipeline(
        d["id"], d["name"], d["uniqueId"], d["description"], d["tags"],
        parse_time(d["created"]), d["sequence"],
        latest=Definition.from_json(d["latest"]) if d["latest"] else None,
        active=Definition.from_json(d["active"]) if d["active"] else None,
        state=d["state"], deleted=d["deleted"],
        activated_at=parse_time(d["activatedAt"]) if d["activatedAt"] else None)
    if d.get("schedule") and pipeline.active:
        s = d["schedule"]
        schedule = Schedule(parse_time(s["start"]),
                            timedelta(seconds=s["periodSeconds"]) if s["periodSeconds"] else None,
                            s["occurrences"], parse_time(s["end"]) if s["end"] else None,
                            s["timeseries"])
        # Run history is not kept across restarts; the schedule restarts where it stands.
        pipeline.runs = RunState(pipeline.pipeline_id, pipeline.active.objects, schedule)
        pipeline.runs.periods_created = len(schedule.runs_due(CONTROLS.now(), 0))
    return pipeline


def utc(value: float | str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
