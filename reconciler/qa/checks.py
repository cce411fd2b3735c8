"""The four checks. Each takes open connections (or an AWS reader) and returns a
:class:`Result`; none prints, none exits.

Rates are percentages, as Dataduct's ``tolerance`` is: a check passes when its error rate is
at most its tolerance. Results carry counts and keys, never row values: the record goes to
logs and S3, and a row can hold personal data.
"""

from __future__ import annotations

import datetime as dt
import decimal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .databases import Database, QaError, quote_identifier, quote_identifiers

# psycopg's type code of CHAR(n) (bpchar): its values come back padded, MySQL's do not.
BPCHAR_OID = 1042
EXAMPLES = 10  # keys of mismatched rows kept in a result


@dataclass
class Result:
    check: str
    passed: bool
    error_rate: float
    tolerance: float
    table: str | None = None
    test_name: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"check": self.check, "test_name": self.test_name, "table": self.table,
                "passed": self.passed, "error_rate": round(self.error_rate, 6),
                "tolerance": self.tolerance, **self.details}

    def text(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        subject = f" {self.table}" if self.table else ""
        facts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.details.items()
                          if not isinstance(v, (list, dict)))
        return (f"{verdict}: {self.check} check{subject}: error rate {self.error_rate:.4g}% "
                f"(tolerance {self.tolerance:g}%); {facts}")


def rate(errors: int, total: int) -> float:
    if total == 0:
        return 0.0 if errors == 0 else 100.0
    return 100.0 * errors / total


def primary_key(destination: Database, table: str, keys: Sequence[str]) -> Result:
    """Keys that appear on more than one row of ``table``."""
    if not keys:
        raise QaError("--primary_key names no column")
    key_list = quote_identifiers(keys)
    sql = (f"SELECT COUNT(*), COALESCE(SUM(copies), 0) FROM (SELECT COUNT(*) AS copies "
           f"FROM {quote_identifier(table)} GROUP BY {key_list} HAVING COUNT(*) > 1) AS d")
    rows, _ = destination.rows(sql)
    duplicated_keys, rows_involved = int(rows[0][0]), int(rows[0][1])
    total = int(destination.scalar(f"SELECT COUNT(*) FROM {quote_identifier(table)}"))
    return Result("primary-key", duplicated_keys == 0, rate(rows_involved, total), 0.0,
                  table=table, details={"rows": total, "duplicated_keys": duplicated_keys,
                                        "rows_with_duplicated_keys": rows_involved})


def count(source: Database, destination: Database, source_sql: str, destination_sql: str,
          tolerance: float, table: str | None = None) -> Result:
    """The difference between two row counts, in % of the source's."""
    source_rows = _count_value(source, source_sql)
    destination_rows = _count_value(destination, destination_sql)
    error = rate(abs(source_rows - destination_rows), source_rows)
    return Result("count", error <= tolerance, error, tolerance, table=table,
                  details={"source_rows": source_rows, "destination_rows": destination_rows})


def _count_value(database: Database, sql: str) -> int:
    value = database.scalar(sql)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise QaError(f"the count query on {database.login.describe()} returned "
                      f"{type(value).__name__}, not a number") from None


def column(source: Database, destination: Database, source_sql: str, destination_sql: str,
           sample_size: int, tolerance: float, table: str | None = None) -> Result:
    """Sampled source rows against the destination's rows of the same key (the first
    column), compared column by column in order."""
    sample, source_columns = source.rows(source_sql, limit=sample_size)
    if not sample:
        return Result("column", True, 0.0, tolerance, table=table,
                      details={"sampled_rows": 0, "mismatched_rows": 0})
    inner = destination_sql.strip().rstrip(";").replace("%", "%%")
    _, destination_columns = destination.rows(
        f"SELECT * FROM (\n{destination_sql.strip().rstrip(';')}\n) AS sampled LIMIT 0")
    if len(destination_columns) != len(source_columns):
        raise QaError(f"the source query has {len(source_columns)} columns and the "
                      f"destination query {len(destination_columns)}; they are compared in "
                      "order, the first being the key")
    key_column = quote_identifier(destination_columns[0][0])
    keys = list(dict.fromkeys(row[0] for row in sample))
    found, _ = destination.rows(
        f"SELECT * FROM (\n{inner}\n) AS sampled WHERE {key_column} = ANY(%s)", [keys])
    padded = [code == BPCHAR_OID for _, code in destination_columns]
    by_key: dict[Any, tuple[Any, ...]] = {}
    for row in found:
        by_key.setdefault(_normal(row[0], padded[0]), row)
    missing, different = [], []
    for row in sample:
        match = by_key.get(_normal(row[0], False))
        if match is None:
            missing.append(_key_text(row[0]))
            continue
        columns = [source_columns[i][0] for i in range(len(row))
                   if _normal(row[i], False) != _normal(match[i], padded[i])]
        if columns:
            different.append({"key": _key_text(row[0]), "columns": columns})
    mismatched = len(missing) + len(different)
    error = rate(mismatched, len(sample))
    return Result("column", error <= tolerance, error, tolerance, table=table,
                  details={"sampled_rows": len(sample), "mismatched_rows": mismatched,
                           "missing_keys": missing[:EXAMPLES],
                           "different_rows": different[:EXAMPLES]})


def _key_text(value: Any) -> str:
    return str(value)


def _normal(value: Any, padded: bool) -> Any:
    """A value in a form both drivers agree on: numbers as exact decimals, times in UTC
    without a zone when they have one, bytes as text, CHAR padding removed."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float, decimal.Decimal)):
        number = decimal.Decimal(str(value)) if isinstance(value, float) else decimal.Decimal(
            value)
        return number.normalize() if number.is_finite() else str(number)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return value.rstrip(" ") if padded else value
    return value


# -- pipeline dependencies ----------------------------------------------------------------------

FAILED_STATES = {"FAILED", "CASCADE_FAILED", "CANCELED", "TIMEDOUT"}


@dataclass(frozen=True)
class PipelineRuns:
    """The states of one pipeline's instances scheduled on the day checked."""

    name: str
    states: tuple[str, ...]

    @property
    def finished(self) -> bool:
        return bool(self.states) and all(s == "FINISHED" for s in self.states)

    @property
    def failed(self) -> bool:
        return any(s in FAILED_STATES for s in self.states)

    def summary(self) -> str:
        if not self.states:
            return "no run yet"
        counts: dict[str, int] = {}
        for state in self.states:
            counts[state] = counts.get(state, 0) + 1
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def dependencies(read: Callable[[str, dt.date], PipelineRuns], names: Sequence[str],
                 day: dt.date, ok_to_fail: Sequence[str], refresh_seconds: float,
                 timeout_seconds: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 progress: Callable[[str], None] = lambda _: None) -> Result:
    """Wait until every pipeline of ``names`` has finished its runs of ``day``; fails as soon
    as one fails (unless it is in ``ok_to_fail``), or at ``timeout_seconds``."""
    if not names:
        raise QaError("--pipelines names no pipeline")
    deadline = clock() + timeout_seconds
    while True:
        runs = {name: read(name, day) for name in names}
        failed = [n for n, r in runs.items() if r.failed and n not in ok_to_fail]
        waiting = [n for n, r in runs.items() if not r.finished
                   and not (r.failed and n in ok_to_fail)]
        states = {n: r.summary() for n, r in runs.items()}
        if failed or not waiting:
            return Result("dependencies", not failed, rate(len(failed), len(names)), 0.0,
                          details={"day": day.isoformat(), "failed": failed,
                                   "pipelines": states})
        progress("waiting for " + "; ".join(f"{n}: {states[n]}" for n in waiting))
        if clock() + refresh_seconds > deadline:
            return Result("dependencies", False, rate(len(waiting), len(names)), 0.0,
                          details={"day": day.isoformat(), "timed_out": True,
                                   "waiting_for": waiting, "pipelines": states})
        sleep(refresh_seconds)
