"""Generated scripts as templates, one per table shape.

The upsert family's SQL depends on a table's names only through where they appear, not on what
they are: two tables with the same number of columns, the same primary key positions and
a schema or none get the same statements around different names. So the statements are
built and printed by sqlglot once per shape, with placeholder names, and every table of that
shape gets the printed text with its own names put in. A name is escaped by sqlglot itself,
for where it stands: as a quoted identifier (``"a""b"``) or inside a string literal
(``'a\\'b'``); which of the two is read from sqlglot's tokens of the printed template, never
guessed from the text around it. Raw holes take text generated elsewhere whole (a table
definition's ``CREATE TABLE``). ``tests/test_sql.py`` proves, for names holding quotes,
backslashes, semicolons and line breaks, that a rendered template is exactly what
generating the script for that table directly prints.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from sqlglot import exp, tokens
from sqlglot.dialects.dialect import Dialect

from .dialect import DIALECT
from .tables import Column, TableDefinition

_NAME = re.compile(r"__dd(\d+)__")
_RAW = re.compile(r"__ddraw(\d+)__;?")
_IDENTIFIER, _STRING, _WHOLE = "identifier", "string", "raw"


@lru_cache(maxsize=65536)
def _escaped(value: str, context: str) -> str:
    if context == _IDENTIFIER:
        return exp.to_identifier(value, quoted=True).sql(dialect=DIALECT, identify=True)[1:-1]
    return exp.Literal.string(value).sql(dialect=DIALECT)[1:-1]


@dataclass(frozen=True)
class Template:
    """Printed text cut at its holes: ``parts[0] hole[0] parts[1] ... parts[-1]``."""

    parts: tuple[str, ...]
    holes: tuple[tuple[int, str], ...]  # (which value, the context it is escaped for)

    @classmethod
    def of(cls, text: str) -> Template:
        """Cut printed SQL at its placeholders. A placeholder name must stand inside a quoted
        identifier or a string literal (anything else is a generator bug, and refused)."""
        cuts: list[tuple[int, int, int, str]] = [
            (m.start(), m.end(), int(m.group(1)), _WHOLE) for m in _RAW.finditer(text)]
        masked = _RAW.sub(lambda m: " " * len(m.group()), text)
        for token in Dialect.get_or_raise(DIALECT).tokenize(masked):
            if token.token_type not in (tokens.TokenType.IDENTIFIER, tokens.TokenType.STRING):
                continue
            context = _IDENTIFIER if token.token_type == tokens.TokenType.IDENTIFIER else _STRING
            for m in _NAME.finditer(masked, token.start, token.end + 1):
                cuts.append((m.start(), m.end(), int(m.group(1)), context))
        if len(cuts) != len(_RAW.findall(text)) + len(_NAME.findall(masked)):
            raise AssertionError("a placeholder name stands outside identifiers and strings")
        cuts.sort()
        parts, holes, at = [], [], 0
        for start, end, index, context in cuts:
            parts.append(text[at:start])
            holes.append((index, context))
            at = end
        parts.append(text[at:])
        return cls(tuple(parts), tuple(holes))

    def render(self, values: Sequence[str]) -> str:
        out = [self.parts[0]]
        for (index, context), part in zip(self.holes, self.parts[1:], strict=True):
            value = values[index]
            out.append(value if context == _WHOLE else _escaped(value, context))
            out.append(part)
        return "".join(out)


@dataclass
class Shape:
    """Collects the names of tables as numbered placeholders; ``values`` fills them."""

    values: list[str] = field(default_factory=list)

    def _name(self, value: str) -> str:
        self.values.append(value)
        return f"__dd{len(self.values) - 1}__"

    def _raw(self, text: str) -> str:
        self.values.append(text if text.rstrip().endswith(";") else text + ";")
        return f"__ddraw{len(self.values) - 1}__"

    def table(self, table: TableDefinition) -> TableDefinition:
        """``table`` with every name a placeholder; column types, defaults and constraints
        other than the primary key are left out (the upsert family never prints them)."""
        schema = self._name(table.schema) if table.schema else None
        name = self._name(table.name)
        names = {c.name: self._name(c.name) for c in table.columns}
        columns = tuple(Column(names[c.name], "", primary_key=c.primary_key)
                        for c in table.columns)
        create = self._raw(table.create_if_not_exists())
        return TableDefinition(schema, name, columns,
                               tuple(names[k] for k in table.primary_key), create_sql=create)
