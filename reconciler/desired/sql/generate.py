"""The SQL that steps generate: the upsert family, type-2 history, QA queries, grants.

Every statement is built with sqlglot's expression builders from a :class:`TableDefinition`
with explicit column lists (rows are matched by column name, never by position) and every
identifier quoted. A query a person wrote is embedded as written, on lines of its own, and
never re-generated. A :class:`Script` knows the statements it means to produce and parses its
own text back before handing it out: if the text holds one statement more or less, or one of
another kind, it refuses (that is how a source query could never add a statement).

Generation is deterministic, so the public functions are cached by their (immutable) inputs
and hand out a frozen :class:`Generated`: a repository where many pipelines share a table
builds and checks its SQL once. The upsert and the reload, whose statements depend on a table's
names only through where they stand, are printed once per table shape and get each table's
names put in (:mod:`.template`): a repository of a thousand tables of a few shapes prints a few
scripts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from sqlglot import exp

from .dialect import DIALECT
from .tables import TableDefinition
from .template import Shape, Template
from .text import (
    REDSHIFT_COMMANDS,
    ParsedSql,
    SqlError,
    end_with_semicolon,
    parse_sql,
    restore_expressions,
)

# Where a person's query goes in a generated statement; replaced after generation.
_QUERY_MARKER = "__dataduct_source_query__"
_FILTER_MARKER = "__dataduct_source_filter__"
STAGING_SUFFIX = "_dataduct_staging"
ROW_NUMBER = "dataduct_row_number"


@dataclass(frozen=True)
class HistoryColumns:
    """How a type-2 history table marks validity."""

    start: str
    end: str
    open_end: str  # the end timestamp of the current version
    expire_offset: str | None = None  # subtracted from now when a version is expired


# Dataduct's names first (what its history tables use), then the project's own.
HISTORY_CONVENTIONS = (
    HistoryColumns("effective_ts", "expiration_ts", "9999-12-31 23:59:59.999999",
                   "0.000001 seconds"),
    HistoryColumns("effective_start", "effective_end", "9999-12-31 00:00:00"),
)


def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.Column(this=ident(name), table=ident(table) if table else None)


def _table_ref(name: str, alias: str | None = None) -> exp.Table:
    table = exp.Table(this=ident(name))
    if alias:
        table.set("alias", exp.TableAlias(this=ident(alias)))
    return table


def _and(conditions: Sequence[exp.Expression]) -> exp.Expression:
    result = conditions[0]
    for condition in conditions[1:]:
        result = exp.And(this=result, expression=condition)
    return result


def _keys_match(keys: Sequence[str], left: exp.Table | str, right: exp.Table | str
                ) -> exp.Expression:
    lname = left if isinstance(left, str) else left.name
    rname = right if isinstance(right, str) else right.name
    return _and([exp.EQ(this=_qualified(k, left if not isinstance(left, str) else None, lname),
                        expression=_qualified(k, right if not isinstance(right, str) else None,
                                              rname))
                 for k in keys])


def _same(left: exp.Expression, right: exp.Expression) -> exp.Expression:
    """``left = right``, NULL equal to NULL (Redshift has no IS NOT DISTINCT FROM)."""
    both_null = exp.And(this=exp.Is(this=left.copy(), expression=exp.Null()),
                        expression=exp.Is(this=right.copy(), expression=exp.Null()))
    return exp.Paren(this=exp.Or(this=exp.EQ(this=left, expression=right),
                                 expression=exp.Paren(this=both_null)))


def _qualified(column: str, table: exp.Table | None, name: str) -> exp.Column:
    """``"schema"."table"."column"`` for a table, ``"alias"."column"`` for an alias."""
    if table is not None and table.db:
        return exp.Column(this=ident(column), table=ident(table.name), db=ident(table.db))
    return col(column, name)


@dataclass
class Script:
    """Statements in order, each with the kind it must parse back as. A person's text (a
    source query, a filter) is put in as written, on lines of its own, where the generator
    left a marker.

    What sqlglot's builders made is safe by construction (every identifier quoted by the
    generator; the tests parse each kind of script back); a script holding a person's text
    is parsed back when frozen, to prove the text did not change its structure."""

    statements: list[str] = field(default_factory=list)
    kinds: list[type[exp.Expression]] = field(default_factory=list)
    holds_text: bool = False  # a person's text was put in: parse it back when frozen

    def add(self, statement: exp.Expression, source: Source | None = None) -> Script:
        # copy=False: the statement is built for this script alone, and dropped after it
        text = statement.sql(dialect=DIALECT, identify=True, copy=False)
        for marker, parsed in ((_QUERY_MARKER, source.query if source else None),
                               (_FILTER_MARKER, source.filter if source else None)):
            if parsed is None:
                continue
            if text.count(f'"{marker}"') != 1:
                raise AssertionError(f"the marker {marker} must appear exactly once")
            body = parsed.text.strip().rstrip(";")
            text = text.replace(f'"{marker}"', f"(\n{body}\n)")
            self.holds_text = True
        self.statements.append(text + ";")
        self.kinds.append(type(statement))
        return self

    def add_text(self, text: str, kind: type[exp.Expression]) -> Script:
        """A statement generated elsewhere (a table definition's CREATE TABLE)."""
        self.statements.append(text if text.rstrip().endswith(";") else text + ";")
        self.kinds.append(kind)
        return self

    def extend(self, other: Script) -> Script:
        self.statements += other.statements
        self.kinds += other.kinds
        self.holds_text = self.holds_text or other.holds_text
        return self

    def text(self) -> str:
        """The script, after checking that it parses back as exactly its statements."""
        return self.freeze().text()

    def freeze(self) -> Generated:
        text = "\n".join(self.statements)
        if self.holds_text:
            _verify(text, tuple(self.kinds))
        return Generated(text, tuple(self.kinds))


@dataclass(frozen=True)
class Generated:
    """A generated script that parsed back as exactly the statements it was built from."""

    sql: str
    kinds: tuple[type[exp.Expr], ...]

    def text(self) -> str:
        return self.sql


@lru_cache(maxsize=8192)
def _verify(text: str, kinds: tuple[type[exp.Expr], ...]) -> None:
    """Parse a generated script back; its statements must be exactly ``kinds``."""
    try:
        found = tuple(type(s) for s in parse_sql(text).statements)
    except SqlError as error:
        raise SqlError(f"the generated SQL does not parse back ({error}); the query "
                       "embedded in it is probably incomplete") from None
    if found != kinds:
        raise SqlError(
            f"the generated SQL parses back as {len(found)} statement(s) "
            f"({', '.join(k.__name__ for k in found)}), not the {len(kinds)} it was "
            f"built from ({', '.join(k.__name__ for k in kinds)}); the query "
            "embedded in it changes the script's structure",
            hint="write the query as one SELECT statement")


@dataclass(frozen=True)
class Source:
    """Where rows come from: a table (by its definition) or one query a person wrote."""

    table: TableDefinition | None = None
    query: ParsedSql | None = None
    filter: ParsedSql | None = None  # a condition on the source's rows (filter_clause)

    def relation(self, alias: str) -> exp.Table:
        if self.table is not None:
            return self.table.table(alias)
        return _table_ref(_QUERY_MARKER, alias)


def source_select(columns: Sequence[str], source: Source,
                  dedupe_on: Sequence[str] = ()) -> exp.Select:
    """SELECT ``columns`` by name from the source (its rows where the filter holds),
    optionally one row per key."""
    picked = [col(c, "source") for c in columns]
    where = exp.Column(this=ident(_FILTER_MARKER)) if source.filter is not None else None
    if not dedupe_on:
        select = exp.select(*picked).from_(source.relation("source"))
        return select.where(where) if where is not None else select
    order = [col(k, "source") for k in dedupe_on]
    window = exp.Window(this=exp.RowNumber(), partition_by=order,
                        order=exp.Order(expressions=[exp.Ordered(this=o.copy()) for o in order]))
    inner = exp.select(*picked, exp.alias_(window, ident(ROW_NUMBER))).from_(
        source.relation("source"))
    if where is not None:
        inner = inner.where(where)
    return (exp.select(*[col(c) for c in columns])
            .from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=ident("ranked"))))
            .where(exp.EQ(this=col(ROW_NUMBER), expression=exp.Literal.number(1))))


def staging_table(destination: TableDefinition) -> str:
    return destination.name + STAGING_SUFFIX


def _insert(table: exp.Table, columns: Sequence[str], select: exp.Query) -> exp.Insert:
    return exp.Insert(this=exp.Schema(this=table, expressions=[ident(c) for c in columns]),
                      expression=select)


Grants = tuple[tuple[str, str, bool], ...]  # (permission, principal, is_group) each


def columns_check(table: TableDefinition) -> exp.Select:
    """A statement that fails (a cast error naming a column) when the table exists with
    columns other than its definition's, so rows are never loaded into a table that drifted.

    Two probes over the catalog: one row per unexpected column, and one row naming the first
    missing column (a flat CASE, so its size grows linearly with the columns). Only functions
    Redshift's leader node runs on catalog tables (COUNT, MAX, CASE)."""
    info = exp.Table(this=ident("columns"), db=ident("information_schema"))
    schema: exp.Expression = (exp.Literal.string(table.schema) if table.schema
                              else exp.CurrentSchema())
    in_table = exp.and_(exp.EQ(this=col("table_schema"), expression=schema),
                        exp.EQ(this=col("table_name"), expression=exp.Literal.string(table.name)))
    expected = [exp.Literal.string(c) for c in table.column_names]
    unexpected = exp.select(exp.alias_(exp.DPipe(this=exp.Literal.string("unexpected column "),
                                                 expression=col("column_name")),
                                       ident("problem"))).from_(info.copy()).where(
        exp.and_(in_table.copy(), exp.Not(this=exp.In(this=col("column_name"),
                                                      expressions=expected))))

    def seen(name: exp.Literal) -> exp.Expression:
        return exp.Max(this=exp.Case(ifs=[exp.If(
            this=exp.EQ(this=col("column_name"), expression=name.copy()),
            true=exp.Literal.number(1))]))

    first_missing = exp.Case(
        ifs=[exp.If(this=exp.EQ(this=exp.Count(this=exp.Star()),
                                expression=exp.Literal.number(0)), true=exp.Null()),
             *[exp.If(this=exp.Is(this=seen(name), expression=exp.Null()),
                      true=exp.Literal.string(f"missing column {name.this}"))
               for name in expected]])
    missing = exp.select(exp.alias_(first_missing, ident("problem"))).from_(info.copy()).where(
        in_table.copy())
    probes = exp.union(unexpected, missing, distinct=False)
    label = (f"columns of {table.full_name} differ from its definition "
             f"({', '.join(table.column_names)}): ")
    failure = exp.Cast(this=exp.DPipe(this=exp.Literal.string(label),
                                      expression=col("problem", "drift")),
                       to=exp.DataType.build("INTEGER"))
    return (exp.select(failure)
            .from_(exp.Subquery(this=probes, alias=exp.TableAlias(this=ident("drift"))))
            .where(exp.Not(this=exp.Is(this=col("problem", "drift"), expression=exp.Null()))))


def _swap_in(destination: TableDefinition, select: exp.Select, source: Source,
             delete: exp.Delete, grants: Grants, analyze: bool) -> Generated:
    """Load the rows into a temporary staging table, delete what they replace and insert
    them, in one transaction."""
    staging = staging_table(destination)
    columns = destination.column_names
    like = exp.Create(kind="TABLE", this=exp.Schema(this=_table_ref(staging), expressions=[
        exp.LikeProperty(this=destination.table())]),
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]))
    script = Script().add(exp.Transaction())
    script.add_text(destination.create_if_not_exists(), exp.Create)
    script.add(columns_check(destination))
    script.add(like)
    script.add(_insert(_table_ref(staging), columns, select), source)
    script.add(delete)
    script.add(_insert(destination.table(), columns,
                       exp.select(*[col(c) for c in columns]).from_(_table_ref(staging))))
    script.extend(_grants_script(destination, grants))
    script.add(exp.Commit())
    if analyze:
        script.add(exp.Analyze(tables=[destination.table()]))
    return script.freeze()


@lru_cache(maxsize=4096)
def upsert_sql(destination: TableDefinition, source: Source, *, dedupe: bool = True,
               analyze: bool = True, grants: Grants = ()) -> Generated:
    """Update rows whose primary key exists, insert the others (Dataduct's upsert)."""
    if not destination.primary_key:
        raise SqlError(f"{destination.full_name} has no primary key; upsert matches rows by "
                       "primary key", hint="add PRIMARY KEY to the table definition")
    return _by_shape(_upsert, destination, source, (dedupe, analyze, grants))


@lru_cache(maxsize=4096)
def reload_sql(destination: TableDefinition, source: Source, *, dedupe: bool = True,
               analyze: bool = True, grants: Grants = ()) -> Generated:
    """Replace the whole content of the destination (Dataduct's reload)."""
    return _by_shape(_reload, destination, source, (dedupe, analyze, grants))


Flags = tuple[bool, bool, Grants]  # dedupe, analyze, grants


def _upsert(destination: TableDefinition, source: Source, flags: Flags) -> Generated:
    dedupe, analyze, grants = flags
    select = source_select(destination.column_names, source,
                           destination.primary_key if dedupe else ())
    staging = _table_ref(staging_table(destination))
    delete = exp.Delete(this=destination.table(), using=[staging],
                        where=exp.Where(this=_keys_match(destination.primary_key,
                                                         destination.table(), staging)))
    return _swap_in(destination, select, source, delete, grants, analyze)


def _reload(destination: TableDefinition, source: Source, flags: Flags) -> Generated:
    dedupe, analyze, grants = flags
    select = source_select(destination.column_names, source,
                           destination.primary_key if dedupe else ())
    return _swap_in(destination, select, source, exp.Delete(this=destination.table()),
                    grants, analyze)


Build = Callable[[TableDefinition, Source, Flags], Generated]


def _by_shape(build: Build, destination: TableDefinition, source: Source,
              flags: Flags) -> Generated:
    """``build``'s script from the template of the tables' shape (see :mod:`.template`). A
    source that is a query a person wrote is built directly: its text is never templated."""
    if source.query is not None or source.filter is not None:
        return build(destination, source, flags)
    shape = Shape()
    placeholders = (shape.table(destination),
                    shape.table(source.table) if source.table is not None else None)
    template, kinds = _template(build, *placeholders, flags)
    return Generated(template.render(shape.values), kinds)


@lru_cache(maxsize=1024)
def _template(build: Build, destination: TableDefinition, source: TableDefinition | None,
              flags: Flags) -> tuple[Template, tuple[type[exp.Expr], ...]]:
    generated = build(destination, Source(table=source), flags)
    return Template.of(generated.sql), generated.kinds


def delta_select(columns: Sequence[str], production: TableDefinition, date_column: str,
                 window_days: int, source: Source, dedupe_on: Sequence[str] = ()) -> exp.Select:
    """Dataduct's delta load: only source rows dated at most ``window_days`` before the newest
    date already in the production table (every row when it is empty)."""
    if date_column not in production.column_names:
        raise SqlError(f"date_column '{date_column}' is not a column of {production.full_name}",
                       hint=f"columns: {', '.join(production.column_names)}")
    inner = source_select(columns, source, dedupe_on)
    newest = exp.select(exp.Max(this=col(date_column))).from_(production.table())
    floor = exp.Sub(this=exp.Coalesce(this=exp.Subquery(this=newest), expressions=[
        exp.Cast(this=exp.Literal.string("2000-01-01"), to=exp.DataType.build("DATE"))]),
        expression=exp.Literal.number(int(window_days)))
    return (exp.select(*[col(c, "delta") for c in columns])
            .from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=ident("delta"))))
            .where(exp.GTE(this=col(date_column, "delta"), expression=floor)))


def stage_delta_sql(staging: TableDefinition, production: TableDefinition, select: exp.Select,
                    source: Source) -> Generated:
    """Refill the staging table with the delta, atomically: DELETE (not TRUNCATE, which
    Redshift commits at once) and INSERT in one transaction."""
    return (Script().add_text(staging.create_if_not_exists(), exp.Create)
            .add(exp.Transaction())
            .add(exp.Delete(this=staging.table()))
            .add(_insert(staging.table(), production.column_names, select), source)
            .add(exp.Commit())).freeze()


def history_columns(history: TableDefinition) -> HistoryColumns | None:
    for convention in HISTORY_CONVENTIONS:
        if {convention.start, convention.end} <= set(history.column_names):
            return convention
    return None


@lru_cache(maxsize=4096)
def history_sql(destination: TableDefinition, history: TableDefinition) -> Generated:
    """Keep a type-2 history of the destination: expire changed and deleted rows, open new
    versions. The history table has every destination column plus a validity pair, Dataduct's
    (``effective_ts``, ``expiration_ts``) or the project's (``effective_start``,
    ``effective_end``); the current version of a row has the far-future end."""
    marks = history_columns(history)
    if marks is None:
        names = " or ".join(f"{c.start}/{c.end}" for c in HISTORY_CONVENTIONS)
        raise SqlError(f"history table {history.full_name} has no validity columns ({names})",
                       hint="add the two TIMESTAMP columns to its definition")
    missing = [c for c in destination.column_names if c not in history.column_names]
    if missing:
        raise SqlError(f"history table {history.full_name} lacks columns of "
                       f"{destination.full_name}: {', '.join(missing)}")
    if not destination.primary_key:
        raise SqlError(f"{destination.full_name} has no primary key; history matches rows by "
                       "primary key")
    dest, hist = destination.table(), history.table()
    keys = destination.primary_key
    values = [c for c in destination.column_names if c not in keys]
    now: exp.Expression = exp.CurrentTimestamp(sysdate=True)
    expire_at = now if marks.expire_offset is None else exp.Sub(
        this=now.copy(), expression=exp.Interval(this=exp.Literal.string(marks.expire_offset)))
    open_end = exp.Cast(this=exp.Literal.string(marks.open_end),
                        to=exp.DataType.build("TIMESTAMP"))
    is_open = exp.EQ(this=_qualified(marks.end, hist, hist.name), expression=open_end)
    changed: exp.Expression = exp.false()
    if values:
        changed = exp.Not(this=exp.Paren(this=_and([
            _same(_qualified(c, hist, hist.name), _qualified(c, dest, dest.name))
            for c in values])))
    expire_changed = exp.Update(
        this=hist.copy(), expressions=[exp.EQ(this=col(marks.end), expression=expire_at)],
        from_=exp.From(this=dest.copy()),
        where=exp.Where(this=_and([_keys_match(keys, hist, dest), is_open.copy(), changed])))
    gone = exp.Not(this=exp.Exists(this=exp.select(exp.Literal.number(1)).from_(dest.copy())
                                   .where(_keys_match(keys, dest, hist))))
    expire_deleted = exp.Update(
        this=hist.copy(), expressions=[exp.EQ(this=col(marks.end), expression=expire_at.copy())],
        where=exp.Where(this=_and([is_open.copy(), gone])))
    current = exp.Exists(this=exp.select(exp.Literal.number(1)).from_(hist.copy())
                         .where(_and([_keys_match(keys, hist, dest), is_open.copy()])))
    insert = _insert(hist.copy(), [*destination.column_names, marks.start, marks.end],
                     exp.select(*[_qualified(c, dest, dest.name) for c in
                                  destination.column_names], now.copy(), open_end.copy())
                     .from_(dest.copy()).where(exp.Not(this=current)))
    return (Script().add_text(history.create_if_not_exists(), exp.Create)
            .add(exp.Transaction()).add(expire_changed).add(expire_deleted).add(insert)
            .add(exp.Commit())).freeze()


@lru_cache(maxsize=4096)
def primary_key_check_sql(table: TableDefinition) -> Generated:
    """Fails (a cast error carrying the count) when the primary key has duplicates."""
    if not table.primary_key:
        raise SqlError(f"{table.full_name} has no primary key to check")
    return _by_shape(_primary_key_check, table, Source(), (False, False, ()))


def _primary_key_check(table: TableDefinition, _: Source, __: Flags) -> Generated:
    keys = [col(k) for k in table.primary_key]
    label = (f"primary key ({', '.join(table.primary_key)}) of {table.full_name} has "
             "duplicates: ")
    duplicates = (exp.select(*keys).from_(table.table()).group_by(*[k.copy() for k in keys])
                  .having(exp.GT(this=exp.Count(this=exp.Star()),
                                 expression=exp.Literal.number(1))))
    failure = exp.Cast(this=exp.DPipe(this=exp.Literal.string(label),
                                      expression=exp.Count(this=exp.Star())),
                       to=exp.DataType.build("INTEGER"))
    check = exp.Case(ifs=[exp.If(this=exp.GT(this=exp.Count(this=exp.Star()),
                                             expression=exp.Literal.number(0)),
                                 true=failure)], default=exp.Literal.number(0))
    statement = exp.select(check).from_(
        exp.Subquery(this=duplicates, alias=exp.TableAlias(this=ident("duplicates"))))
    return Script().add(statement).freeze()


@lru_cache(maxsize=4096)
def count_sql(source: Source) -> Generated:
    """A statement returning one row count, for the row-count comparison."""
    relation = source.relation("counted")
    return Script().add(exp.select(exp.Count(this=exp.Star())).from_(relation),
                        source).freeze()


def table_name_count_sql(table_name: str) -> Generated:
    """A row count of a table named in a manifest (``schema.table``), quoted part by part."""
    parts = table_name.split(".")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise SqlError(f"'{table_name}' is not a table name (schema.table)")
    table = exp.Table(this=ident(parts[-1]), db=ident(parts[-2]) if len(parts) > 1 else None,
                      catalog=ident(parts[0]) if len(parts) > 2 else None)
    return Script().add(exp.select(exp.Count(this=exp.Star())).from_(table)).freeze()


@lru_cache(maxsize=4096)
def sample_sql(table: TableDefinition) -> Generated:
    """The destination side of the sampled column comparison, columns named explicitly."""
    return Script().add(exp.select(*[col(c) for c in table.column_names]).from_(
        table.table())).freeze()


@lru_cache(maxsize=4096)
def grants_sql(table: TableDefinition, grants: Grants) -> Generated:
    """GRANT statements, one per (permission, principal, is_group)."""
    return _grants_script(table, grants).freeze()


def _grants_script(table: TableDefinition, grants: Grants) -> Script:
    """GRANT statements: (permission, principal, is_group) each. Permissions are words the
    config validates (select, all...); principals are quoted names."""
    script = Script()
    for permission, principal, is_group in grants:
        words = permission.upper().split()
        if not words or not all(w.isalpha() for w in words):
            raise SqlError(f"permission '{permission}' is not a privilege such as SELECT or ALL")
        principal_expr = exp.GrantPrincipal(this=ident(principal), kind="GROUP" if is_group
                                            else None)
        script.add(exp.Grant(privileges=[exp.GrantPrivilege(this=exp.Var(this=" ".join(words)))],
                             kind="TABLE", securable=table.table(),
                             principals=[principal_expr]))
    return script


@lru_cache(maxsize=4096)
def analyze_sql(table: TableDefinition) -> Generated:
    return Script().add(exp.Analyze(tables=[table.table()])).freeze()


def join_scripts(*scripts: str) -> str:
    """Scripts one after the other, each ended with ``;`` after its last statement, checked to
    parse back as exactly the statements of the parts (none merged, none added)."""
    texts, expected, expressions = [], 0, []
    for script in scripts:
        if not script.strip():
            continue
        part = parse_sql(script, commands=REDSHIFT_COMMANDS)
        expected += len(part.statements)
        texts.append(end_with_semicolon(part).strip())
        expressions.append(part.expressions)
    # each part's placeholders restart at 0: restore each part's own before joining
    restored = [restore_expressions(text, exprs) for text, exprs in zip(texts, expressions,
                                                                        strict=True)]
    joined = "\n".join(restored)
    found = len(parse_sql(joined, commands=REDSHIFT_COMMANDS).statements)
    if found != expected:
        raise SqlError(f"the script parses back as {found} statements, not the {expected} of "
                       "its parts", hint="end every statement with ';' and close comments and "
                                         "strings")
    return joined


def wrap_in_transaction(parsed: ParsedSql) -> str:
    """A person's statements between BEGIN and COMMIT. The ``;`` that ends their last
    statement goes right after its last token, so a trailing ``-- comment`` cannot swallow
    it, and the result is parsed back: exactly BEGIN, their statements, COMMIT."""
    body = end_with_semicolon(parsed).strip()
    masked = f"BEGIN;\n{body}\nCOMMIT;"
    found = parse_sql(masked, commands=REDSHIFT_COMMANDS).statements
    if (len(found) != len(parsed.statements) + 2 or not isinstance(found[0], exp.Transaction)
            or not isinstance(found[-1], exp.Commit)):
        raise SqlError("the SQL cannot be wrapped in a transaction: it does not parse back as "
                       "BEGIN, its statements and COMMIT",
                       hint="end every statement with ';' and close comments and strings")
    return restore_expressions(masked, parsed.expressions)
