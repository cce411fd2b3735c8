"""Data Pipeline expressions (``#{...}``) as Jinja on an Airflow run's data interval.

The service evaluates ``#{...}`` in a field for each scheduled instance; Airflow renders Jinja
in an operator's templated fields for each DAG run. A field's text is cut into its plain parts
and its expressions; each expression is parsed as the service parses it
(:mod:`reconciler.service.expressions`) and written as Jinja over the run's context:
``@scheduledStartTime`` is the start of the run's period, ``@scheduledEndTime`` its end (see
:class:`RunTimes`), ``format(d, 'YYYY-MM-dd')`` is ``d.strftime('%Y-%m-%d')``, ``plusDays(d, 1)``
is ``d.add(days=1)`` (the context's dates are pendulum DateTimes). What depends on nothing of
the run (literals, parameter values, arithmetic on them) is evaluated here, exactly as the
service would, and written as plain text. An expression with no faithful Jinja form is an
:class:`UntranslatableExpression` naming it; nothing is guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import ReconcilerError
from ..service import expressions as dp


class UntranslatableExpression(ReconcilerError):
    """An expression that has no faithful Jinja form; the message names it and why."""


@dataclass(frozen=True)
class RunTimes:
    """The Jinja of the run's scheduled start and end.

    A cron-style schedule runs at the start of its period, which is the run's
    ``logical_date`` in Airflow's trigger timetables; a time-series one runs at the end of its
    period, which is Airflow's data interval (``data_interval_start`` / ``_end``)."""

    start: str
    end: str

    @classmethod
    def for_schedule(cls, timeseries: bool, period_seconds: int | None) -> RunTimes:
        if timeseries:
            return cls("data_interval_start", "data_interval_end")
        if period_seconds:
            return cls("logical_date", f"logical_date.add(seconds={period_seconds})")
        return cls("logical_date", "logical_date")


# A value being translated: a constant (evaluated as the service would) or Jinja code.
@dataclass(frozen=True)
class _Const:
    value: Any


@dataclass(frozen=True)
class _Code:
    code: str
    kind: str  # "datetime", "number" or "string"


_Value = _Const | _Code
# A field's raw text by name (``myParam``, ``input.directoryPath``), or None: the caller's
# view of the object the field belongs to.
FieldLookup = Callable[[str], str | None]

_JODA = re.compile(r"'[^']*'|Y+|y+|M+|d+|H+|h+|m+|s+|S+|a|E+|D+")
_STRFTIME = {"YYYY": "%Y", "yyyy": "%Y", "YY": "%y", "yy": "%y", "MM": "%m", "MMM": "%b",
             "MMMM": "%B", "dd": "%d", "d": "%-d", "HH": "%H", "H": "%-H", "hh": "%I",
             "h": "%-I", "mm": "%M", "m": "%-M", "ss": "%S", "s": "%-S", "a": "%p",
             "EEE": "%a", "E": "%a", "EEEE": "%A", "DDD": "%j", "M": "%-m"}
_DATETIME_TEXT = "%Y-%m-%dT%H:%M:%S"
_UNITS = {"Minutes": "minutes", "Hours": "hours", "Days": "days", "Weeks": "weeks",
          "Months": "months", "Years": "years"}
_PARTS = {"day": "day", "hour": "hour", "minute": "minute", "month": "month", "year": "year",
          "dayOfYear": "day_of_year"}


def strftime_pattern(joda: str) -> str:
    """A Joda-Time pattern as a strftime one (``YYYY-MM-dd`` -> ``%Y-%m-%d``)."""

    def token(match: re.Match[str]) -> str:
        text = match.group(0)
        if text[0] == "'":
            return (text[1:-1] or "'").replace("%", "%%")
        if text not in _STRFTIME:
            raise UntranslatableExpression(
                f"the date pattern '{joda}' uses '{text}', which strftime has no form for")
        return _STRFTIME[text]

    out, i = [], 0
    for match in _JODA.finditer(joda):
        out.append(joda[i:match.start()].replace("%", "%%"))
        out.append(token(match))
        i = match.end()
    out.append(joda[i:].replace("%", "%%"))
    return "".join(out)


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


class _Translator:
    def __init__(self, text: str, times: RunTimes, lookup: FieldLookup, depth: int,
                 names: Mapping[str, tuple[str, str]]):
        self.text, self.times, self.lookup, self.depth = text, times, lookup, depth
        self.names = names
        self.tokens = dp.tokens(text)
        self.i = 0

    def fail(self, why: str) -> UntranslatableExpression:
        return UntranslatableExpression(f"#{{{self.text}}}: {why}")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise self.fail(f"expected {value or 'a value'}")
        self.i += 1
        return token

    def parse(self) -> _Value:
        value = self.binary(1)
        if self.peek() is not None:
            raise self.fail(f"unexpected '{self.peek()[1]}'")  # type: ignore[index]
        return value

    def binary(self, minimum: int) -> _Value:
        left = self.unary()
        while True:
            token = self.peek()
            if token is None or token[0] != "op" or token[1] not in dp.PRECEDENCE:
                return left
            op = token[1]
            if dp.PRECEDENCE[op] < minimum:
                return left
            self.take()
            right = self.binary(dp.PRECEDENCE[op] + (0 if op == "^" else 1))
            left = self.arithmetic(op, left, right)

    def arithmetic(self, op: str, left: _Value, right: _Value) -> _Value:
        if isinstance(left, _Const) and isinstance(right, _Const):
            return _Const(dp.arithmetic(op, left.value, right.value, self.text))
        kinds = {v.kind if isinstance(v, _Code) else
                 ("string" if isinstance(v.value, str) else
                  "datetime" if isinstance(v.value, datetime) else "number")
                 for v in (left, right)}
        if op == "+" and "string" in kinds:
            return _Code(f"({self.text_code(left)} ~ {self.text_code(right)})", "string")
        if kinds == {"number"} and op in "+-*":
            return _Code(f"({self.code(left)} {op} {self.code(right)})", "number")
        raise self.fail(f"'{op}' on values of the run is not translated")

    def unary(self) -> _Value:
        if self.peek() == ("op", "-"):
            self.take()
            value = self.unary()
            if isinstance(value, _Const) and isinstance(value.value, (int, float)):
                return _Const(-value.value)
            if isinstance(value, _Code) and value.kind == "number":
                return _Code(f"(-{value.code})", "number")
            raise self.fail("cannot negate a value that is not a number")
        return self.atom()

    def atom(self) -> _Value:
        kind, value = self.take()
        if kind == "number":
            return _Const(float(value) if "." in value else int(value))
        if kind == "string":
            body = value[1:-1]
            return _Const(re.sub(r"\\(.)", r"\1", body) if value[0] == '"' else body)
        if kind == "op" and value == "(":
            inner = self.binary(1)
            self.take(")")
            return inner
        if kind == "name":
            if self.peek() == ("op", "("):
                self.take("(")
                args = []
                if self.peek() != ("op", ")"):
                    args.append(self.binary(1))
                    while self.peek() == ("op", ","):
                        self.take(",")
                        args.append(self.binary(1))
                self.take(")")
                return self.call(value, args)
            return self.name(value)
        raise self.fail(f"unexpected '{value}'")

    def name(self, name: str) -> _Value:
        if name in self.names:
            code, kind = self.names[name]
            return _Const(code) if kind == "constant" else _Code(code, kind)
        if name == "@scheduledStartTime":
            return _Code(self.times.start, "datetime")
        if name == "@scheduledEndTime":
            return _Code(self.times.end, "datetime")
        if name == "@actualStartTime":
            return _Code("ti.start_date", "datetime")
        if name.startswith("*") or ".*" in name:
            raise self.fail(f"{name} is an encrypted parameter; give it to the task through "
                            "an Airflow connection or Variable")
        raw = self.lookup(name)
        if raw is None:
            raise self.fail(f"'{name}' has no value here")
        if self.depth > 8:
            raise self.fail(f"'{name}' refers to itself")
        parts = [(False, raw)] if "#{" not in raw else dp.split_expressions(raw)
        if all(not is_expression for is_expression, _ in parts):
            found: Any = raw
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", raw):
                found = dp.parse_datetime(raw)
            return _Const(found)
        return _Code(translate_text(raw, self.times, self.lookup, self.depth + 1,
                                    as_code=True, names=self.names), "string")

    def call(self, name: str, args: list[_Value]) -> _Value:
        if all(isinstance(a, _Const) for a in args):
            return _Const(dp.call(name, [a.value for a in args], self.text))  # type: ignore[union-attr]
        shift = re.fullmatch(r"(plus|minus)(Minutes|Hours|Days|Weeks|Months|Years)", name)
        if shift:
            if len(args) != 2 or not isinstance(args[1], _Const) or not isinstance(
                    args[1].value, int):
                raise self.fail(f"{name}(DateTime, int) with a constant count is translated")
            verb = "add" if shift.group(1) == "plus" else "subtract"
            return _Code(f"{self.datetime_code(args[0], name)}.{verb}("
                         f"{_UNITS[shift.group(2)]}={args[1].value})", "datetime")
        if name == "format":
            if len(args) != 2 or not isinstance(args[1], _Const) or not isinstance(
                    args[1].value, str):
                raise self.fail("format(DateTime, String) with a constant pattern is "
                                "translated")
            try:
                pattern = strftime_pattern(args[1].value)
            except UntranslatableExpression as exc:
                raise self.fail(str(exc)) from None
            return _Code(f"{self.datetime_code(args[0], name)}.strftime({_literal(pattern)})",
                         "string")
        if len(args) == 1 and name in _PARTS:
            return _Code(f"{self.datetime_code(args[0], name)}.{_PARTS[name]}", "number")
        if len(args) == 1 and name in ("midnight", "firstOfMonth", "yesterday", "sunday"):
            moment = self.datetime_code(args[0], name)
            return _Code({
                "midnight": f"{moment}.start_of('day')",
                "firstOfMonth": f"{moment}.start_of('month')",
                "yesterday": f"{moment}.subtract(days=1)",
                "sunday": f"{moment}.start_of('day').subtract(days=({moment}.weekday() + 1) % 7)",
            }[name], "datetime")
        raise self.fail(f"{name}() of a value of the run is not translated")

    def datetime_code(self, value: _Value, function: str) -> str:
        if isinstance(value, _Code) and value.kind == "datetime":
            return value.code
        if isinstance(value, _Const) and isinstance(value.value, datetime):
            moment = value.value
            return (f"macros.datetime({moment.year}, {moment.month}, {moment.day}, "
                    f"{moment.hour}, {moment.minute}, {moment.second})")
        raise self.fail(f"{function}() needs a DateTime")

    def code(self, value: _Value) -> str:
        if isinstance(value, _Code):
            return value.code
        if isinstance(value.value, datetime):
            return self.datetime_code(value, "a date")
        return _literal(value.value)

    def text_code(self, value: _Value) -> str:
        """Jinja code of the value as the service writes it into a field."""
        if isinstance(value, _Const):
            return _literal(dp.to_text(value.value))
        if value.kind == "datetime":
            return f"{value.code}.strftime({_literal(_DATETIME_TEXT)})"
        return value.code


def _static(text: str) -> str:
    """Plain text, kept from being read as Jinja."""
    if re.search(r"\{[{%#]", text) and "endraw" not in text:
        return "{% raw %}" + text + "{% endraw %}"
    if re.search(r"\{[{%#]", text):
        raise UntranslatableExpression("the text holds both Jinja markers and 'endraw'")
    return text


def translate_text(text: str, times: RunTimes, lookup: FieldLookup = lambda _: None,
                   depth: int = 0, *, as_code: bool = False,
                   names: Mapping[str, tuple[str, str]] | None = None) -> str:
    """A field's text with its expressions as Jinja (``as_code``: one Jinja expression of
    the whole text, for use inside another). ``names`` gives names of the context their
    Jinja and kind (``node.name`` in an alarm: ``("ti.task_id", "string")``), or a value
    known now (``("Load", "constant")``). Raises
    :class:`UntranslatableExpression`."""
    try:
        parts = dp.split_expressions(text)
    except dp.ExpressionError as exc:
        raise UntranslatableExpression(str(exc)) from None
    pieces: list[tuple[bool, str]] = []  # (is_jinja_code, text)
    for is_expression, part in parts:
        if not is_expression:
            pieces.append((False, part))
            continue
        translator = _Translator(part, times, lookup, depth, names or {})
        try:
            value = translator.parse()
        except dp.ExpressionError as exc:
            raise UntranslatableExpression(f"#{{{part}}}: {exc}") from None
        if isinstance(value, _Const):
            pieces.append((False, dp.to_text(value.value)))
        else:
            pieces.append((True, translator.text_code(value)))
    if as_code:
        return " ~ ".join(piece if is_code else _literal(piece) for is_code, piece in pieces) \
            or "''"
    return "".join("{{ " + piece + " }}" if is_code else _static(piece)
                   for is_code, piece in pieces)
