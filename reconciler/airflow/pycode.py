"""Python source text for the generated DAG files, already in ``ruff format``'s layout.

Values are built as small trees (:class:`Call`, :class:`Name`, lists, dicts, strings,
numbers) and written out the way ruff's formatter (Black's style) would leave them: a call or
collection that fits on its line stays on it; one that does not, or that is marked
``explode``, gets one item per line and a trailing comma, which ruff keeps as it is. Strings
take double quotes unless single quotes need fewer escapes; a multi-line text that can be
written as a triple-quoted string is, so SQL and shell scripts read as they were written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LINE_LENGTH = 88
INDENT = "    "


@dataclass(frozen=True)
class Name:
    """Code written as it is: a name (``datetime.UTC``) or an expression (``a >> b``)."""

    text: str


@dataclass(frozen=True)
class Call:
    """``function(*args, **kwargs)``; ``explode`` forces one argument per line."""

    function: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    explode: bool = False


@dataclass(frozen=True)
class Dict:
    """A dict literal whose keys are strings, in the given order."""

    items: tuple[tuple[str, Any], ...]
    explode: bool = False


@dataclass(frozen=True)
class List:
    items: tuple[Any, ...]
    explode: bool = False


def call(function: str, *args: Any, explode: bool = False, **kwargs: Any) -> Call:
    """A call; keyword arguments whose value is None are left out."""
    return Call(function, tuple(args),
                tuple((k, v) for k, v in kwargs.items() if v is not None), explode)


def string(text: str) -> str:
    """A string literal as ruff formats it."""
    if "\n" in text.rstrip("\n") and _triple_quotable(text):
        return '"""' + text.replace("\\", "\\\\") + '"""'
    quote = "'" if text.count('"') > text.count("'") else '"'
    body = text.replace("\\", "\\\\").replace(quote, "\\" + quote)
    if not _PLAIN.fullmatch(body):
        body = body.translate(_ESCAPES)
    return quote + body + quote


# characters written as escapes in a one-line string literal
_ESCAPES = {**{c: f"\\x{c:02x}" for c in (*range(32), 127)},
            ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"}
_PLAIN = re.compile(r"[^\x00-\x1f\x7f]*")


def _triple_quotable(text: str) -> bool:
    return ('"""' not in text and not text.endswith(('"', "\\"))
            and not any(ord(c) < 32 and c != "\n" for c in text) and "\r" not in text)


def _flat(value: Any) -> str | None:
    """The value on one line, or None when it cannot be (a triple-quoted string, an
    exploded call)."""
    if isinstance(value, str):
        text = string(value)
        return None if "\n" in text else text
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Name):
        return value.text
    if isinstance(value, Call):
        if value.explode:
            return None
        parts = [_flat(a) for a in value.args] + [
            None if (v := _flat(val)) is None else f"{k}={v}" for k, val in value.kwargs]
        return None if None in parts else f"{value.function}({', '.join(parts)})"  # type: ignore[arg-type]
    if isinstance(value, List):
        if value.explode:
            return None
        parts = [_flat(a) for a in value.items]
        return None if None in parts else "[" + ", ".join(parts) + "]"  # type: ignore[arg-type]
    if isinstance(value, Dict):
        if value.explode:
            return None
        parts = [None if (v := _flat(val)) is None else f"{string(k)}: {v}"
                 for k, val in value.items]
        return None if None in parts else "{" + ", ".join(parts) + "}"  # type: ignore[arg-type]
    raise TypeError(f"cannot write {type(value).__name__} as code")


def expression(value: Any, indent: int = 0, prefix: str = "", suffix: str = "") -> str:
    """``value`` written at ``indent`` levels, after ``prefix`` (``name = ``, ``key=``) and
    before ``suffix`` (a comma): on one line when it fits, else exploded."""
    pad = INDENT * indent
    flat = _flat(value)
    if flat is not None and len(pad) + len(prefix) + len(flat) + len(suffix) <= LINE_LENGTH:
        return f"{pad}{prefix}{flat}{suffix}"
    if isinstance(value, str):  # a triple-quoted string or a long one: as it is
        return f"{pad}{prefix}{string(value)}{suffix}"
    if isinstance(value, (Call, List, Dict)):
        if isinstance(value, Call):
            opening, closing = f"{value.function}(", ")"
            items = [expression(a, indent + 1, suffix=",") for a in value.args] + [
                expression(v, indent + 1, prefix=f"{k}=", suffix=",") for k, v in value.kwargs]
        elif isinstance(value, List):
            opening, closing = "[", "]"
            items = [expression(a, indent + 1, suffix=",") for a in value.items]
        else:
            opening, closing = "{", "}"
            items = [expression(v, indent + 1, prefix=f"{string(k)}: ", suffix=",")
                     for k, v in value.items]
        if not items:
            return f"{pad}{prefix}{opening}{closing}{suffix}"
        return "\n".join([f"{pad}{prefix}{opening}", *items, f"{pad}{closing}{suffix}"])
    return f"{pad}{prefix}{flat}{suffix}"


def as_value(data: Any, explode: bool = False) -> Any:
    """Plain data (dicts, lists, strings, numbers) as code values."""
    if isinstance(data, Mapping):
        return Dict(tuple((str(k), as_value(v)) for k, v in data.items()), explode)
    if isinstance(data, (list, tuple)) and not isinstance(data, str):
        return List(tuple(as_value(v) for v in data), explode)
    return data


@dataclass
class Module:
    """A Python module being written: its docstring, imports and body lines."""

    docstring: str
    imports: set[str] = field(default_factory=set)
    body: list[str] = field(default_factory=list)

    def use(self, module: str, name: str | None = None) -> None:
        self.imports.add(f"import {module}" if name is None else f"from {module} import {name}")

    def text(self) -> str:
        plain = sorted(i for i in self.imports if i.startswith("import "))
        froms: dict[str, set[str]] = {}
        for line in self.imports:
            if line.startswith("from "):
                module, _, name = line[5:].partition(" import ")
                froms.setdefault(module, set()).add(name)
        stdlib = [i for i in plain if i.split()[1].split(".")[0] in _STDLIB] + [
            _from_line(m, froms[m]) for m in sorted(froms) if m.split(".")[0] in _STDLIB]
        third = [i for i in plain if i.split()[1].split(".")[0] not in _STDLIB] + [
            _from_line(m, froms[m]) for m in sorted(froms) if m.split(".")[0] not in _STDLIB]
        groups = [["from __future__ import annotations"], sorted(stdlib, key=_isort_key),
                  sorted(third, key=_isort_key)]
        header = "\n\n".join("\n".join(g) for g in groups if g)
        gap = "\n\n\n" if self.body and self.body[0].startswith(("def ", "class ")) else "\n\n"
        return f"{string_docstring(self.docstring)}\n\n{header}{gap}" + "\n".join(self.body) + "\n"


_STDLIB = {"datetime", "csv", "io", "pathlib"}


def _from_line(module: str, names: set[str]) -> str:
    line = f"from {module} import {', '.join(sorted(names, key=_member_key))}"
    if len(line) <= LINE_LENGTH:
        return line
    inner = "\n".join(f"{INDENT}{n}," for n in sorted(names, key=_member_key))
    return f"from {module} import (\n{inner}\n)"


def _isort_key(line: str) -> tuple[int, str]:
    # isort (ruff's I rules, force-sort-within-sections off): plain imports first, then froms
    return (0 if line.startswith("import ") else 1, line.split()[1])


def string_docstring(text: str) -> str:
    body = text.strip("\n").replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'"""{body}\n"""' if "\n" in body else f'"""{body}"""'


def _member_key(name: str) -> tuple[int, str]:
    """isort's order of the names of one import (ruff's default ``order-by-type``):
    CONSTANTS, then Classes, then functions."""
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name
