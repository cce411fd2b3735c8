"""SQL as people write it: Data Pipeline expressions masked, parsed, errors located.

AWS Data Pipeline evaluates ``#{...}`` expressions in a field before the SQL runs, quoted or
not (``'#{format(@scheduledStartTime, 'YYYY-MM-dd')}'`` is the guide's own example, its inner
quotes included). So the text is parsed with every expression replaced by a placeholder that
is both a valid identifier and a valid string body, and generated text gets the expressions
back. An error says the line and column in the text as written, so the caller can point at
the user's own file (or the YAML line the SQL sits on).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.tokens import Token, TokenType

from ...errors import ReconcilerError
from ...service.expressions import expression_end
from .dialect import DIALECT

EXPRESSION_PLACEHOLDER = "__dataduct_expr_{}__"
_PLACEHOLDER = re.compile(r"__dataduct_expr_(\d+)__")
# Redshift statements sqlglot reads only as opaque commands. They are legal in a script a
# person writes (sql-command); anywhere else (a query, a table definition) they are refused.
REDSHIFT_COMMANDS = frozenset({"VACUUM", "UNLOAD", "COPY", "CALL", "LOCK", "REFRESH", "RESET",
                               "SET", "DECLARE", "FETCH", "CLOSE", "CANCEL", "ABORT"})

# sqlglot logs a warning for each statement it can only read as an opaque command; this
# package reports those itself, located, so the warning would only be noise on stderr.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


class SqlError(ReconcilerError, ValueError):
    """SQL that cannot be used, with the line and column (1-based) in the text as written."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.line = line
        self.column = column
        self.hint = hint


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def mask_expressions(text: str) -> tuple[str, tuple[str, ...]]:
    """``text`` with each ``#{...}`` replaced by a placeholder, and the expressions in order.

    An expression ends at the brace that closes it; quoted strings inside it (``'YYYY'``) are
    skipped over, so braces or quotes in them do not end it early. Newlines inside an expression
    stay after its placeholder, so line numbers do not move."""
    if "#{" not in text:
        return text, ()
    out: list[str] = []
    found: list[str] = []
    i = 0
    while True:
        start = text.find("#{", i)
        if start < 0:
            out.append(text[i:])
            break
        out.append(text[i:start])
        j = expression_end(text, start)
        if j is None:
            line, column = _line_col(text, start)
            raise SqlError("a Data Pipeline expression '#{' is never closed", line, column,
                           hint="close it with '}'")
        expression = text[start:j]
        out.append(EXPRESSION_PLACEHOLDER.format(len(found)) + "\n" * expression.count("\n"))
        found.append(expression)
        i = j
    return "".join(out), tuple(found)


def restore_expressions(text: str, expressions: tuple[str, ...]) -> str:
    """Generated text with the masked expressions put back (inverse of the mask)."""
    if not expressions:
        return text
    return _PLACEHOLDER.sub(lambda m: expressions[int(m.group(1))], text)


def _unterminated(text: str) -> tuple[int, str] | None:
    """Where an unterminated string, quoted name or comment starts (the tokenizer of sqlglot
    says only that tokenizing failed)."""
    i, n = 0, len(text)
    while i < n:
        two = text[i:i + 2]
        if two == "--":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif two == "/*":
            end = text.find("*/", i + 2)
            if end < 0:
                return i, "a /* comment is never closed"
            i = end + 2
        elif text[i] in "'\"":
            quote, j = text[i], i + 1
            while True:
                j = text.find(quote, j)
                if j < 0:
                    what = "string" if quote == "'" else "quoted name"
                    return i, f"a {what} starting with {quote} is never closed"
                if text[j + 1:j + 2] == quote:  # '' inside a string
                    j += 2
                    continue
                break
            i = j + 1
        else:
            i += 1
    return None


@dataclass(frozen=True, eq=False)
class ParsedSql:
    """SQL text and its statements, parsed with the Data Pipeline expressions masked. Equal
    (and hashed) by identity: ``parse_sql`` hands out one instance per text."""

    text: str
    masked: str
    expressions: tuple[str, ...]
    statements: tuple[exp.Expr, ...]

    def restore(self, generated: str) -> str:
        return restore_expressions(generated, self.expressions)


@lru_cache(maxsize=16384)
def parse_sql(text: str, dialect: type = DIALECT, *, commands: frozenset[str] = frozenset()
              ) -> ParsedSql:
    """Parse SQL (any number of statements); raise :class:`SqlError` with a place on errors.
    ``commands`` names the statements sqlglot reads only as opaque text that are allowed
    (``REDSHIFT_COMMANDS`` for scripts people write).

    Cached by text: many steps and environments share the same SQL (the parsed statements
    are shared: callers must not change them)."""
    masked, expressions = mask_expressions(text)
    try:
        # a comment after the last ';' comes back as a Semicolon pseudo-statement
        statements = tuple(s for s in sqlglot.parse(masked, read=dialect)
                           if s is not None and not isinstance(s, exp.Semicolon))
    except ParseError as error:
        first = error.errors[0] if error.errors else {}
        raise SqlError(f"SQL does not parse: {first.get('description', 'syntax error')}",
                       first.get("line"), first.get("col")) from None
    except SqlglotError:
        found = _unterminated(masked)
        if found is None:
            raise SqlError("SQL cannot be read (tokenizing failed)") from None
        index, message = found
        line, column = _line_col(masked, index)
        raise SqlError(message, line, column, hint="close it") from None
    for statement in statements:
        if isinstance(statement, exp.Command) and str(statement.this).upper() not in commands:
            raise SqlError(f"SQL is not understood: {statement.sql(dialect=dialect)[:80]}",
                           hint="check the statement's syntax (sqlglot reads it only as "
                                "opaque text)")
    if not statements:
        raise SqlError("the SQL is empty", 1, 1, hint="write a statement")
    return ParsedSql(text, masked, expressions, statements)


def parse_query(text: str, dialect: type = DIALECT, *, what: str = "the query") -> ParsedSql:
    """One SELECT that reads at least one table (an upsert's or a reload's source)."""
    parsed = parse_sql(text, dialect)
    if len(parsed.statements) != 1:
        second = _statement_start(parsed, 1)
        raise SqlError(f"{what} must be one SELECT statement; found "
                       f"{len(parsed.statements)} statements", *second,
                       hint="remove the other statements (run them in a sql-command step)")
    statement = parsed.statements[0]
    if not isinstance(statement, exp.Query):
        raise SqlError(f"{what} must be a SELECT, not {type(statement).__name__.upper()}",
                       1, 1)
    ctes = {cte.alias_or_name for cte in statement.find_all(exp.CTE)}
    tables = [t for t in statement.find_all(exp.Table) if t.name and t.name not in ctes]
    if not tables:
        raise SqlError(f"{what} reads no table", 1, 1,
                       hint="select FROM the table to load from")
    return parsed


_CONDITION_PREFIX = "SELECT 1 WHERE\n"


@lru_cache(maxsize=4096)
def parse_condition(text: str, dialect: type = DIALECT, *, what: str = "the filter"
                    ) -> ParsedSql:
    """One boolean condition (a WHERE clause without WHERE, e.g. ``filter_clause``). Returned
    as the text as written, parsed inside ``SELECT 1 WHERE (...)``; errors point into it."""
    body = text.strip()
    if body.endswith(";"):
        raise SqlError(f"{what} is a condition, not a statement: remove the ';'",
                       body.count("\n") + 1, len(body.rsplit("\n", 1)[-1]))
    try:
        wrapped = parse_sql(_CONDITION_PREFIX + text, dialect)
    except SqlError as error:
        line = error.line - 1 if error.line and error.line > 1 else error.line
        raise SqlError(str(error).replace(_CONDITION_PREFIX.strip(), "").strip(), line,
                       error.column, error.hint) from None
    statement = wrapped.statements[0] if len(wrapped.statements) == 1 else None
    extra = [k for k, v in statement.args.items() if v and k not in ("expressions", "where")
             ] if isinstance(statement, exp.Select) else ["statements"]
    if statement is None or extra:
        raise SqlError(f"{what} must be one condition (what follows WHERE), e.g. "
                       "\"updated_at >= '2026-01-01'\"", 1, 1)
    return ParsedSql(text, wrapped.masked[len(_CONDITION_PREFIX):], wrapped.expressions,
                     wrapped.statements)


def _statement_start(parsed: ParsedSql, index: int) -> tuple[int | None, int | None]:
    """Line and column where statement ``index`` starts (for 'one statement only' errors)."""
    tokens: list[Token] = DIALECT().tokenize(parsed.masked)
    seen = 0
    for position, token in enumerate(tokens):
        if token.token_type == TokenType.SEMICOLON:
            seen += 1
            if seen == index and position + 1 < len(tokens):
                following = tokens[position + 1]
                return _line_col(parsed.masked, following.start)
    return None, None


def end_with_semicolon(parsed: ParsedSql) -> str:
    """The masked text with a ``;`` right after its last token when it has none, so a trailing
    ``-- comment`` can never swallow what is appended after it."""
    tokens: list[Token] = DIALECT().tokenize(parsed.masked)
    last = tokens[-1]
    if last.token_type == TokenType.SEMICOLON:
        return parsed.masked
    return parsed.masked[:last.end + 1] + ";" + parsed.masked[last.end + 1:]


def statement_types(script: str, dialect: type = DIALECT) -> list[type[exp.Expr]]:
    """The type of each statement of a script, for checks that a script is exactly what was
    meant (no statement more, none less)."""
    return [type(s) for s in parse_sql(script, dialect).statements]


def split_statements(text: str) -> list[str]:
    """The statements of a script as written (comments and expressions kept, each without
    its ``;``), cut where sqlglot's tokenizer sees a semicolon: never inside a string, a
    quoted name or a comment. Text that cannot be tokenized (an unterminated string) is a
    :class:`SqlError`."""
    masked, expressions = mask_expressions(text)
    try:
        tokens: list[Token] = DIALECT().tokenize(masked)
    except SqlglotError:
        found = _unterminated(masked)
        line, column = _line_col(masked, found[0]) if found else (None, None)
        raise SqlError(found[1] if found else "SQL cannot be read (tokenizing failed)",
                       line, column) from None
    out, begin, seen = [], 0, False
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            if seen:
                out.append(masked[begin:token.start])
            begin, seen = token.end + 1, False
        else:
            seen = True
    if seen:
        out.append(masked[begin:])
    return [restore_expressions(s, expressions).strip() for s in out]
