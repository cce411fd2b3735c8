"""Runs of an activated pipeline on the simulated clock: instances per schedule period,
attempts with retries, dependencies and cascade failures.

The simulation is event-driven and exact: every timestamp is computed from the schedule, the
durations and the retry delays, never from when the state happened to be looked at, so the
same clock always gives the same history. Activities get instances; data nodes, resources and
preconditions do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..service.model import fields_of, period_seconds
from .clock import CONTROLS, format_time

TERMINAL = {"FINISHED", "FAILED", "CASCADE_FAILED", "CANCELED"}
DEFAULT_MAX_RETRIES = 2
DEFAULT_RETRY_DELAY = timedelta(minutes=10)


@dataclass
class Attempt:
    id: str
    instance: str
    number: int
    started: datetime
    ends: datetime
    succeeds: bool
    status: str = "RUNNING"
    error: str | None = None

    def fields(self, component: str) -> list[dict[str, str]]:
        out = [("@status", self.status), ("@actualStartTime", format_time(self.started)),
               ("@sphere", "ATTEMPT"), ("@attemptNumber", str(self.number))]
        if self.status in TERMINAL:
            out.append(("@actualEndTime", format_time(self.ends)))
        if self.error:
            out.append(("errorMessage", self.error))
        fields = [{"key": k, "stringValue": v} for k, v in out]
        fields += [{"key": "@instanceParent", "refValue": self.instance},
                   {"key": "@componentParent", "refValue": component}]
        return fields


@dataclass
class Instance:
    id: str
    component: str
    name: str
    scheduled_start: datetime
    scheduled_end: datetime
    max_tries: int
    retry_delay: timedelta
    depends_on: list[str]
    status: str = "WAITING_ON_DEPENDENCIES"
    attempts: list[Attempt] = field(default_factory=list)
    next_attempt_at: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None
    error: str | None = None
    rerun_at: datetime | None = None  # SetStatus RERUN: no new attempt before it

    def fields(self) -> list[dict[str, str]]:
        out = [("@status", self.status), ("@scheduledStartTime",
                                          format_time(self.scheduled_start)),
               ("@scheduledEndTime", format_time(self.scheduled_end)), ("@sphere", "INSTANCE"),
               ("@attemptCount", str(len(self.attempts))),
               ("@triesLeft", str(self.max_tries - len(self.attempts)))]
        if self.started:
            out.append(("@actualStartTime", format_time(self.started)))
        if self.ended:
            out.append(("@actualEndTime", format_time(self.ended)))
        if self.error:
            out.append(("errorMessage", self.error))
        fields = [{"key": k, "stringValue": v} for k, v in out]
        fields.append({"key": "@componentParent", "refValue": self.component})
        if self.attempts:
            fields.append({"key": "@headAttempt", "refValue": self.attempts[-1].id})
        return fields


@dataclass
class Schedule:
    start: datetime
    period: timedelta | None  # None: one run (on-demand)
    occurrences: int | None
    end: datetime | None
    timeseries: bool = False

    def period_start(self, k: int) -> datetime:
        return self.start + (self.period or timedelta(0)) * k

    def runs_due(self, now: datetime, already: int) -> list[int]:
        """Indexes of the periods whose instances exist at ``now``."""
        due = []
        k = already
        while True:
            if self.occurrences is not None and k >= self.occurrences:
                break
            start = self.period_start(k)
            if self.end is not None and start >= self.end:
                break
            created = start + (self.period or timedelta(0)) if self.timeseries else start
            if created > now:
                break
            due.append(k)
            k += 1
            if self.period is None:
                break
        return due

    def finished(self, created: int) -> bool:
        if self.period is None:
            return created >= 1
        if self.occurrences is not None:
            return created >= self.occurrences
        return self.end is not None and self.period_start(created) >= self.end


class RunState:
    """The instances and attempts of one pipeline."""

    def __init__(self, pipeline_id: str, objects: list[dict[str, Any]], schedule: Schedule,
                 not_before: datetime | None = None):
        self.pipeline_id = pipeline_id
        self.not_before = not_before  # the activation: no work starts before it
        self.schedule = schedule
        self.periods_created = 0
        self.instances: dict[str, Instance] = {}
        self.attempts: dict[str, Attempt] = {}
        self.cancelled = False
        self.draining = False  # deactivating: running attempts end, nothing new starts
        by_id = {o["id"]: o for o in objects}
        default = fields_of(by_id.get("Default", {}))
        self.activities = []
        for obj in objects:
            fields = fields_of(obj)
            if not (_first(fields, {}, "type") or "").endswith("Activity"):
                continue
            retries = _first(fields, default, "maximumRetries")
            delay = _first(fields, default, "retryDelay")
            delay_seconds = period_seconds(delay) if delay else None
            self.activities.append({
                "id": obj["id"], "name": obj.get("name", obj["id"]),
                "max_tries": (int(retries) if retries and retries.isdigit()
                              else DEFAULT_MAX_RETRIES) + 1,
                "retry_delay": (timedelta(seconds=delay_seconds) if delay_seconds
                                else DEFAULT_RETRY_DELAY),
                "depends_on": [value for value, _ in fields.get("dependsOn", [])],
            })

    # -- stepping --------------------------------------------------------------------------------

    def advance(self, now: datetime) -> None:
        """Bring every instance and attempt up to ``now``."""
        if self.cancelled:
            return
        for k in [] if self.draining else self.schedule.runs_due(now, self.periods_created):
            self._create_period(k)
            self.periods_created = k + 1
        changed = True
        while changed:
            changed = False
            for instance in self.instances.values():
                if instance.status not in TERMINAL and self._step(instance, now):
                    changed = True

    def _create_period(self, k: int) -> None:
        start = self.schedule.period_start(k)
        end = start + (self.schedule.period or timedelta(0))
        stamp = format_time(start)
        for activity in self.activities:
            iid = f"@{activity['id']}_{stamp}"
            self.instances[iid] = Instance(
                id=iid, component=activity["id"], name=activity["name"], scheduled_start=start,
                scheduled_end=end, max_tries=activity["max_tries"],
                retry_delay=activity["retry_delay"],
                depends_on=[f"@{d}_{stamp}" for d in activity["depends_on"]],
            )

    def _step(self, instance: Instance, now: datetime) -> bool:
        if self.draining and instance.status != "RUNNING":
            return False
        if instance.status == "WAITING_ON_DEPENDENCIES":
            deps = [self.instances[d] for d in instance.depends_on if d in self.instances]
            failed = [d for d in deps if d.status in ("FAILED", "CASCADE_FAILED", "CANCELED")]
            if failed:
                instance.status = "CASCADE_FAILED"
                instance.ended = max(d.ended or instance.scheduled_start for d in failed)
                instance.error = f"cascade failed: {failed[0].component} {failed[0].status}"
                return True
            if all(d.status == "FINISHED" for d in deps):
                ready = max([instance.scheduled_start, *(d.ended for d in deps if d.ended),
                             *([self.not_before] if self.not_before else []),
                             *([instance.rerun_at] if instance.rerun_at else [])])
                if ready <= now:
                    instance.next_attempt_at = ready
                    instance.status = "WAITING_FOR_RUNNER"
                    return True
            return False
        if instance.status == "WAITING_FOR_RUNNER":
            at = instance.next_attempt_at
            if at is None or at > now:
                return False
            outcome = CONTROLS.outcome(self.pipeline_id, instance.component)
            number = len(instance.attempts) + 1
            succeeds = not outcome.always_fail and number > outcome.fail_times
            attempt = Attempt(id=f"{instance.id}_Attempt={number}", instance=instance.id,
                              number=number, started=at,
                              ends=at + timedelta(seconds=outcome.duration_seconds),
                              succeeds=succeeds)
            instance.attempts.append(attempt)
            self.attempts[attempt.id] = attempt
            instance.started = instance.started or at
            instance.status = "RUNNING"
            instance.next_attempt_at = None
            return True
        if instance.status == "RUNNING":
            attempt = instance.attempts[-1]
            if attempt.ends > now:
                return False
            if attempt.succeeds:
                attempt.status = instance.status = "FINISHED"
                instance.ended = attempt.ends
                instance.error = None
            else:
                attempt.status = "FAILED"
                attempt.error = CONTROLS.outcome(self.pipeline_id,
                                                 instance.component).error_message
                if len(instance.attempts) < instance.max_tries:
                    instance.status = "WAITING_FOR_RUNNER"
                    instance.next_attempt_at = attempt.ends + instance.retry_delay
                else:
                    instance.status = "FAILED"
                    instance.ended = attempt.ends
                    instance.error = attempt.error
            return True
        return False

    def cancel_active(self, now: datetime) -> None:
        """DeactivatePipeline with cancelActive: running work is CANCELED."""
        for instance in self.instances.values():
            if instance.status not in TERMINAL:
                instance.status = "CANCELED"
                instance.ended = now
                for attempt in instance.attempts:
                    if attempt.status == "RUNNING":
                        attempt.status, attempt.ends = "CANCELED", now

    def rerun(self, instance_id: str, now: datetime) -> None:
        """SetStatus RERUN of a finished, failed or canceled instance: it waits on its
        dependencies again with its tries renewed (its attempts stay in its history), and
        so do the instances that cascade-failed because of it."""
        instance = self.instances[instance_id]
        activity = next(a for a in self.activities if a["id"] == instance.component)
        instance.status, instance.ended, instance.error = "WAITING_ON_DEPENDENCIES", None, None
        instance.max_tries = len(instance.attempts) + activity["max_tries"]
        instance.next_attempt_at, instance.rerun_at = None, now
        self.cancelled = False
        for other in self.instances.values():
            if other.status == "CASCADE_FAILED" and instance_id in other.depends_on:
                self.rerun(other.id, now)

    def mark_finished(self, instance_id: str, now: datetime) -> None:
        instance = self.instances[instance_id]
        instance.status, instance.ended, instance.error = "FINISHED", now, None

    def busy(self) -> bool:
        return any(i.status == "RUNNING" for i in self.instances.values())

    def done(self) -> bool:
        return (self.schedule.finished(self.periods_created)
                and all(i.status in TERMINAL for i in self.instances.values()))

    # -- summaries --------------------------------------------------------------------------------

    def health(self) -> str | None:
        ended = [i for i in self.instances.values() if i.status in TERMINAL and i.ended]
        if not ended:
            return None
        latest = max(ended, key=lambda i: (i.ended, i.id))
        return "HEALTHY" if latest.status == "FINISHED" else "ERROR"

    def latest_run(self) -> datetime | None:
        if not self.periods_created:
            return None
        return self.schedule.period_start(self.periods_created - 1)

    def next_run(self) -> datetime | None:
        if self.schedule.finished(self.periods_created):
            return None
        return self.schedule.period_start(self.periods_created)


def _first(fields, default, key, missing=None) -> str | None:
    """A field's first value, inherited from Default when the object has none."""
    value = fields.get(key) or default.get(key)
    return value[0][0] if value else missing
