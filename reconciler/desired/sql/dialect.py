"""Redshift as Dataduct's table definitions write it: sqlglot's Redshift dialect, extended.

sqlglot's Redshift dialect (pinned in pyproject.toml) parses most of Dataduct's tables;
:class:`DataductRedshift` teaches it the clauses it misses: column-level ``DISTKEY`` and
``SORTKEY`` and table-level ``INTERLEAVED SORTKEY(...)``. Everything else in this package parses
and generates SQL through this one dialect.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.dialects.redshift import Redshift
from sqlglot.expressions.core import ColumnConstraintKind, Expression
from sqlglot.expressions.properties import Property


class DistKeyColumnConstraint(Expression, ColumnConstraintKind):
    """``id INTEGER DISTKEY``"""

    arg_types: ClassVar[dict[str, Any]] = {}


class SortKeyColumnConstraint(Expression, ColumnConstraintKind):
    """``id INTEGER SORTKEY``"""

    arg_types: ClassVar[dict[str, Any]] = {}


class InterleavedSortKeyProperty(Property):
    """``INTERLEAVED SORTKEY(a, b)``"""

    arg_types = {"this": True}


class DataductRedshift(Redshift):
    """Redshift as Dataduct's table definitions write it."""

    class Parser(Redshift.Parser):  # type: ignore[valid-type,misc]
        CONSTRAINT_PARSERS = {
            **Redshift.Parser.CONSTRAINT_PARSERS,
            "DISTKEY": lambda self: self.expression(DistKeyColumnConstraint()),
            "SORTKEY": lambda self: self.expression(SortKeyColumnConstraint()),
        }
        PROPERTY_PARSERS = {
            **Redshift.Parser.PROPERTY_PARSERS,
            "INTERLEAVED": lambda self: self._parse_interleaved_sortkey(),
        }

        def _parse_interleaved_sortkey(self):
            if not self._match_text_seq("SORTKEY"):
                self.raise_error("expected SORTKEY after INTERLEAVED")
            return self.expression(
                InterleavedSortKeyProperty(this=self._parse_wrapped_id_vars())
            )

    class Generator(Redshift.Generator):  # type: ignore[valid-type,misc]
        TRANSFORMS = {
            **Redshift.Generator.TRANSFORMS,
            DistKeyColumnConstraint: lambda self, e: "DISTKEY",
            SortKeyColumnConstraint: lambda self, e: "SORTKEY",
            InterleavedSortKeyProperty: lambda self, e: (
                f"INTERLEAVED SORTKEY({self.expressions(e, key='this', flat=True)})"
            ),
        }
        PROPERTIES_LOCATION = {
            **Redshift.Generator.PROPERTIES_LOCATION,
            InterleavedSortKeyProperty: exp.Properties.Location.POST_SCHEMA,
        }


DIALECT = DataductRedshift
