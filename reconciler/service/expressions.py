"""Data Pipeline expressions (``#{...}``), evaluated the way the service does.

The service evaluates ``#{...}`` in a field before the field is used: references to fields
(``myParam``, ``@scheduledStartTime``, ``node.@actualStartTime``), function calls
(``format(minusDays(@scheduledStartTime, 1), 'YYYY-MM-dd')``), literals and arithmetic
(dp-pipeline-expressions.md, dp-pipeline-reference-functions-*.md). This module parses and
evaluates them against a lookup of names, so a step can be run locally for a given scheduled
time and the embedded service can evaluate schedule fields. Pure: no clock; times are
timezone-aware UTC datetimes given by the caller.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import ReconcilerError

_TOKEN = re.compile(r"""\s*(?:
    (?P<number>\d+(?:\.\d+)?|\.\d+)
  | (?P<string>'[^']*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[@*]?[A-Za-z_][A-Za-z0-9_]*(?:\.[@*]?[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>[-+*/^(),])
)""", re.VERBOSE)
_EXPRESSION = re.compile(r"#\{")
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


class ExpressionError(ReconcilerError, ValueError):
    """An expression that cannot be parsed or evaluated; says which and why."""


Lookup = Callable[[str], Any]


def parse_datetime(text: str) -> datetime:
    """``2026-11-26T02:00:00`` (the service's format, UTC)."""
    return datetime.strptime(text, DATETIME_FORMAT).replace(tzinfo=UTC)


def tokens(text: str) -> list[tuple[str, str]]:
    """The tokens of one expression: ``(kind, text)`` with kind number, string, name or op."""
    out, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ExpressionError(f"cannot read '{text[position:position + 20]}' in #{{{text}}}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        position = match.end()
    return out


# Binary operators by precedence: + - (lowest), * /, ^ (right-associative).
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "^": 3}


class _Parser:
    """Precedence climbing over + - (lowest), * /, ^, unary minus, calls and atoms."""

    PRECEDENCE = PRECEDENCE

    def __init__(self, text: str, lookup: Lookup):
        self.text, self.lookup = text, lookup
        self.tokens = tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise ExpressionError(f"expected {value or 'a value'} in #{{{self.text}}}")
        self.i += 1
        return token

    def parse(self) -> Any:
        value = self.binary(1)
        if self.peek() is not None:
            raise ExpressionError(f"unexpected '{self.peek()[1]}' in #{{{self.text}}}")  # type: ignore[index]
        return value

    def binary(self, minimum: int) -> Any:
        left = self.unary()
        while True:
            token = self.peek()
            if token is None or token[0] != "op" or token[1] not in self.PRECEDENCE:
                return left
            op = token[1]
            if self.PRECEDENCE[op] < minimum:
                return left
            self.take()
            right = self.binary(self.PRECEDENCE[op] + (0 if op == "^" else 1))
            left = arithmetic(op, left, right, self.text)

    def unary(self) -> Any:
        token = self.peek()
        if token == ("op", "-"):
            self.take()
            value = self.unary()
            if not isinstance(value, (int, float)):
                raise ExpressionError(f"cannot negate {value!r} in #{{{self.text}}}")
            return -value
        return self.atom()

    def atom(self) -> Any:
        kind, value = self.take()
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "string":
            body = value[1:-1]
            return re.sub(r"\\(.)", r"\1", body) if value[0] == '"' else body
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
                return call(value, args, self.text)
            return _resolve(self.lookup, value, self.text)
        raise ExpressionError(f"unexpected '{value}' in #{{{self.text}}}")


def _resolve(lookup: Lookup, name: str, text: str) -> Any:
    found = lookup(name)
    if found is None:
        raise ExpressionError(f"'{name}' has no value here (in #{{{text}}})")
    if isinstance(found, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", found):
        return parse_datetime(found)
    return found


def arithmetic(op: str, left: Any, right: Any, text: str) -> Any:
    """``left op right`` as the service computes it (Java's integer division)."""
    if op == "+" and (isinstance(left, str) or isinstance(right, str)):
        return to_text(left) + to_text(right)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
        raise ExpressionError(f"'{op}' needs numbers in #{{{text}}}")
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "^":
        return float(left ** right)
    if right == 0:
        raise ExpressionError(f"division by zero in #{{{text}}}")
    if isinstance(left, int) and isinstance(right, int):
        return int(left / right)  # Java: integer division truncates toward zero
    return left / right


def _months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _datetime(value: Any, name: str, text: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return parse_datetime(value)
        except ValueError:
            pass
    raise ExpressionError(f"{name}() needs a DateTime, not {value!r} (in #{{{text}}})")


def _midnight(d: datetime) -> datetime:
    return d.replace(hour=0, minute=0, second=0, microsecond=0)


_SHIFTS: dict[str, Callable[[datetime, int], datetime]] = {
    "plusMinutes": lambda d, n: d + timedelta(minutes=n),
    "plusHours": lambda d, n: d + timedelta(hours=n),
    "plusDays": lambda d, n: d + timedelta(days=n),
    "plusWeeks": lambda d, n: d + timedelta(weeks=n),
    "plusMonths": _months,
    "plusYears": lambda d, n: _months(d, 12 * n),
}


def _negated(shift: Callable[[datetime, int], datetime]) -> Callable[[datetime, int], datetime]:
    return lambda moment, n: shift(moment, -n)


_SHIFTS.update({"minus" + k[4:]: _negated(f) for k, f in list(_SHIFTS.items())})
_UNARY: dict[str, Callable[[datetime], Any]] = {
    "day": lambda d: d.day, "dayOfYear": lambda d: d.timetuple().tm_yday,
    "hour": lambda d: d.hour, "minute": lambda d: d.minute, "month": lambda d: d.month,
    "year": lambda d: d.year,
    "firstOfMonth": lambda d: _midnight(d).replace(day=1),
    "midnight": _midnight,
    "yesterday": lambda d: d - timedelta(days=1),
    "sunday": lambda d: _midnight(d) - timedelta(days=(d.weekday() + 1) % 7),
}


def call(name: str, args: list[Any], text: str) -> Any:
    """One of the service's functions (dp-pipeline-reference-functions-*.md)."""
    if name in _SHIFTS:
        if len(args) != 2 or not isinstance(args[1], int):
            raise ExpressionError(f"{name}(DateTime, int) in #{{{text}}}")
        return _SHIFTS[name](_datetime(args[0], name, text), args[1])
    if name in _UNARY:
        if len(args) != 1:
            raise ExpressionError(f"{name}(DateTime) takes one argument in #{{{text}}}")
        return _UNARY[name](_datetime(args[0], name, text))
    if name == "format":
        if len(args) != 2 or not isinstance(args[1], str):
            raise ExpressionError(f"format(DateTime, String) in #{{{text}}}")
        return format_joda(_datetime(args[0], name, text), args[1])
    if name in ("makeDate", "makeDateTime"):
        wanted = 3 if name == "makeDate" else 5
        if len(args) != wanted or not all(isinstance(a, int) for a in args):
            raise ExpressionError(f"{name} takes {wanted} integers in #{{{text}}}")
        year, month, day, *rest = args
        hour, minute = rest if rest else (0, 0)
        return datetime(year, month, day, hour, minute, tzinfo=UTC)
    raise ExpressionError(f"unknown function {name}() in #{{{text}}}")


_JODA = re.compile(r"'[^']*'|Y+|y+|M+|d+|H+|h+|m+|s+|S+|a|E+|D+")


def format_joda(moment: datetime, pattern: str) -> str:
    """A DateTime in a Joda-Time pattern (``YYYY-MM-dd HH:mm:ss``), as the service formats."""

    def field(match: re.Match[str]) -> str:
        token = match.group(0)
        letter, width = token[0], len(token)
        if letter == "'":
            return token[1:-1] or "'"
        if letter in "Yy":
            return str(moment.year)[-2:] if width == 2 else str(moment.year).zfill(width)
        if letter == "M":
            return moment.strftime("%B" if width >= 4 else "%b") if width >= 3 else \
                str(moment.month).zfill(width)
        if letter == "E":
            return moment.strftime("%A" if width >= 4 else "%a")
        if letter == "a":
            return "AM" if moment.hour < 12 else "PM"
        value = {"d": moment.day, "H": moment.hour, "h": (moment.hour % 12) or 12,
                 "m": moment.minute, "s": moment.second,
                 "S": moment.microsecond // 1000, "D": moment.timetuple().tm_yday}[letter]
        return str(value).zfill(width)

    return _JODA.sub(field, pattern)


def to_text(value: Any) -> str:
    """A value as the service writes it into a field."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(DATETIME_FORMAT)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return str(value)


def evaluate(expression: str, lookup: Lookup) -> Any:
    """The value of one expression (the text between ``#{`` and ``}``)."""
    return _Parser(expression, lookup).parse()


def split_expressions(text: str) -> list[tuple[bool, str]]:
    """``text`` cut into its plain parts ``(False, text)`` and its expressions ``(True,
    inner text)``, in order; an expression that is never closed is an error."""
    out: list[tuple[bool, str]] = []
    i = 0
    for match in _EXPRESSION.finditer(text):
        if match.start() < i:
            continue
        j = expression_end(text, match.start())
        if j is None:
            raise ExpressionError(f"'#{{' at {match.start()} is never closed")
        if match.start() > i:
            out.append((False, text[i:match.start()]))
        out.append((True, text[match.end():j - 1]))
        i = j
    if i < len(text):
        out.append((False, text[i:]))
    return out


def substitute(text: str, lookup: Lookup) -> str:
    """``text`` with every ``#{...}`` replaced by its value, as the service does to a field
    before using it. Quoted strings inside an expression may hold braces."""
    return "".join(to_text(evaluate(part, lookup)) if is_expression else part
                   for is_expression, part in split_expressions(text))


def expression_end(text: str, start: int) -> int | None:
    """Where the expression whose ``#{`` is at ``start`` ends (just after the brace that
    closes it), or None when it is never closed. Quoted strings inside it (``'YYYY'``) are
    skipped over, so braces or quotes in them do not end it early. The one scanner of
    expressions: evaluation and the SQL parser's masking both use it."""
    j, depth = start + 2, 1
    while j < len(text) and depth:
        char = text[j]
        if char in "'\"":
            close = text.find(char, j + 1)
            j = len(text) if close < 0 else close + 1
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        j += 1
    return None if depth else j


def mapping_lookup(values: Mapping[str, Any]) -> Lookup:
    """A lookup over a mapping of names (``@scheduledStartTime``, ``myParam``...)."""
    return values.get
