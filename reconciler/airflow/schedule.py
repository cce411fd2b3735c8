"""A Data Pipeline schedule as an Airflow 3 timetable, with the same run times.

Data Pipeline creates the instance of period *k* at ``start + k * period`` (``scheduleType:
cron``, the start of the period) or at its end (``timeseries``), from ``startDateTime`` (or
the first activation, ``startAt: FIRST_ACTIVATION_DATE_TIME``) until ``endDateTime`` or
``occurrences`` runs; ``ondemand`` runs when asked. In Airflow the same times come from a
trigger timetable (cron-style: the run's ``logical_date`` is the period's start) or a
data-interval one (time series: the run covers the period that just ended), written as a cron
expression where one says the same thing (``0 12 * * *`` for daily at noon) and as a fixed
delta otherwise. :func:`data_pipeline_run_times` gives the service's times, which the tests
compare with Airflow's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import ReconcilerError
from ..service.expressions import parse_datetime
from ..service.model import period_seconds

DAY, HOUR, MINUTE, WEEK = 86400, 3600, 60, 7 * 86400


class ScheduleError(ReconcilerError, ValueError):
    """A schedule with no faithful Airflow form."""


@dataclass(frozen=True)
class PipelineSchedule:
    """The schedule of a definition, as the service reads it."""

    kind: str  # "cron", "timeseries" or "ondemand"
    start: datetime | None  # None: the first activation
    period: str | None
    seconds: int | None
    occurrences: int | None = None
    end: datetime | None = None

    @property
    def months(self) -> int | None:
        """The period in months when it is counted in months (``1 months``)."""
        if self.period and self.period.split()[-1].lower().rstrip("s") == "month":
            return int(self.period.split()[0])
        return None

    @property
    def last_start(self) -> datetime | None:
        """The start of the last period ``occurrences`` allows."""
        if self.occurrences is None or self.start is None or self.seconds is None:
            return None
        return self.start + timedelta(seconds=self.seconds) * (self.occurrences - 1)


def read_schedule(kind: str, fields: dict[str, str], activated: datetime | None = None
                  ) -> PipelineSchedule:
    """The schedule from ``scheduleType`` and the Schedule object's (evaluated) fields;
    ``activated`` is when ``startAt: FIRST_ACTIVATION_DATE_TIME`` starts (for a DAG: when
    it is first to run)."""
    if kind == "ondemand":
        return PipelineSchedule("ondemand", None, None, None)
    period = fields.get("period") or "1 days"
    seconds = period_seconds(period)
    if seconds is None:
        raise ScheduleError(f"period '{period}' is not a Data Pipeline period")
    start: datetime | None = None
    if fields.get("startAt", "").upper() == "FIRST_ACTIVATION_DATE_TIME":
        start = activated
    elif fields.get("startDateTime"):
        start = parse_datetime(fields["startDateTime"])
    occurrences = fields.get("occurrences")
    if occurrences is not None and not occurrences.isdigit():
        raise ScheduleError(f"occurrences '{occurrences}' is not a number")
    end = parse_datetime(fields["endDateTime"]) if fields.get("endDateTime") else None
    return PipelineSchedule(kind, start, period, seconds,
                            int(occurrences) if occurrences else None, end)


@dataclass(frozen=True)
class Timetable:
    """How the DAG is scheduled: the timetable class, its argument and the DAG's dates."""

    kind: str  # "cron", "delta" or "none"
    argument: str | int | None  # the cron expression, or the delta in seconds
    timeseries: bool
    start: datetime | None
    end: datetime | None

    @property
    def class_name(self) -> str | None:
        if self.kind == "none":
            return None
        if self.kind == "cron":
            return "CronDataIntervalTimetable" if self.timeseries else "CronTriggerTimetable"
        return "DeltaDataIntervalTimetable" if self.timeseries else "DeltaTriggerTimetable"

    @property
    def module(self) -> str:
        return "airflow.timetables.interval" if self.timeseries else \
            "airflow.timetables.trigger"


def _cron(schedule: PipelineSchedule) -> str | None:
    """A cron expression that fires exactly at the schedule's run times, or None."""
    start, seconds = schedule.start, schedule.seconds
    if start is None or seconds is None or start.second or start.microsecond:
        return None
    m, h = start.minute, start.hour
    if schedule.months == 1 and start.day <= 28:
        return f"{m} {h} {start.day} * *"
    if schedule.months:
        return None
    if seconds == DAY:
        return f"{m} {h} * * *"
    if seconds == WEEK:
        return f"{m} {h} * * {(start.weekday() + 1) % 7}"
    if seconds % HOUR == 0 and DAY % seconds == 0:
        step = seconds // HOUR
        return f"{m} {h % step}-23/{step} * * *" if step > 1 else f"{m} * * * *"
    if seconds % MINUTE == 0 and HOUR % seconds == 0:
        step = seconds // MINUTE
        return f"{m % step}-59/{step} * * * *" if step > 1 else "* * * * *"
    return None


def timetable(schedule: PipelineSchedule) -> Timetable:
    """The Airflow timetable with the schedule's run times."""
    if schedule.kind == "ondemand":
        return Timetable("none", None, False, None, None)
    if schedule.start is None:
        raise ScheduleError("startAt: FIRST_ACTIVATION_DATE_TIME needs the moment the DAG "
                            "first runs (export's --start-date), or give startDateTime")
    ends = [e for e in (schedule.end, schedule.last_start) if e is not None]
    end = min(ends) if ends else None
    if end is not None and schedule.kind == "timeseries" and schedule.seconds:
        end = end + timedelta(seconds=schedule.seconds)  # the last interval's end
    cron = _cron(schedule)
    if cron is not None:
        return Timetable("cron", cron, schedule.kind == "timeseries", schedule.start, end)
    if schedule.months:
        raise ScheduleError(f"period '{schedule.period}' from day {schedule.start.day} has "
                            "no fixed length and no cron form")
    return Timetable("delta", schedule.seconds, schedule.kind == "timeseries", schedule.start,
                     end)


def data_pipeline_run_times(schedule: PipelineSchedule, count: int,
                            after: datetime | None = None) -> list[datetime]:
    """When the service runs the next ``count`` instances (at or after ``after``): the start
    of each period (cron) or its end (time series)."""
    if schedule.start is None or schedule.seconds is None:
        return []
    out: list[datetime] = []
    k = 0
    while len(out) < count:
        if schedule.occurrences is not None and k >= schedule.occurrences:
            break
        if schedule.months:
            index = schedule.start.month - 1 + k * schedule.months
            begin = schedule.start.replace(year=schedule.start.year + index // 12,
                                           month=index % 12 + 1)
        else:
            begin = schedule.start + timedelta(seconds=schedule.seconds) * k
        if schedule.end is not None and begin >= schedule.end:
            break
        if schedule.kind == "timeseries":
            moment = begin + timedelta(seconds=schedule.seconds)
            if schedule.months:
                index = begin.month + schedule.months - 1
                moment = begin.replace(year=begin.year + index // 12, month=index % 12 + 1)
        else:
            moment = begin
        if after is None or moment >= after:
            out.append(moment.astimezone(UTC))
        k += 1
    return out
