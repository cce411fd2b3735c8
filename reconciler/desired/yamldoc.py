"""The one YAML loader of the project: safe, bounded and line-aware.

It gives ``yaml.safe_load`` semantics (YAML 1.1 scalars, merge keys, the C parser when it is
installed) and additionally:

* records where every key and item starts, so problems can name ``file:line:column``;
* keeps the source text of every scalar, so ``load_time: 01:00`` (which YAML 1.1 reads as the
  sexagesimal number 60) can be read as written;
* refuses duplicate keys instead of silently keeping the last one;
* rejects hostile input quickly: files over ``max_bytes``, nesting deeper than ``max_depth``,
  and alias expansion past ``max_nodes`` (the "billion laughs" document).

Timestamps stay strings (as JSON would have them), so a loaded document is always
JSON-compatible and a JSON Schema can describe it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import events

from ..errors import InvalidInputError, Location, Problem, ReconcilerError

try:  # libyaml's parser is several times faster; fall back to pure Python without it
    from yaml.cyaml import CParser as _Parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml.composer import Composer as _Composer
    from yaml.parser import Parser as _PyParser
    from yaml.reader import Reader as _Reader
    from yaml.scanner import Scanner as _Scanner

    class _Parser(_Reader, _Scanner, _PyParser, _Composer):  # type: ignore[no-redef]
        def __init__(self, stream):
            _Reader.__init__(self, stream)
            _Scanner.__init__(self)
            _PyParser.__init__(self)


MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000
MAX_INT_DIGITS = 100  # far below Python's 4,300-digit limit on int("...")

KeyPath = tuple[str | int, ...]

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"

_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class ScalarStart:
    """Where a scalar value's text starts, and its style (``|``, ``>``, ``'``, ``"`` or plain)."""

    mark: Mark
    style: str | None


@dataclass
class YamlDocument:
    """A loaded document: plain data plus where each part of it came from."""

    file: str
    data: Any
    marks: dict[KeyPath, Mark] = field(default_factory=dict)
    raw_scalars: dict[KeyPath, str] = field(default_factory=dict)
    scalar_starts: dict[KeyPath, ScalarStart] = field(default_factory=dict)

    def locate(self, path: KeyPath = ()) -> Location:
        """The location of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while True:
            mark = self.marks.get(path)
            if mark is not None:
                return Location(self.file, mark.line, mark.column)
            if not path:
                return Location(self.file, 1, 1)
            path = path[:-1]

    def raw(self, path: KeyPath) -> str | None:
        """The scalar at ``path`` exactly as written in the file."""
        return self.raw_scalars.get(tuple(path))

    def locate_in_scalar(self, path: KeyPath, line: int | None, column: int | None
                         ) -> Location:
        """The place in this file of ``line``:``column`` of the text of the scalar at
        ``path`` (a SQL error inside ``sql: |`` points at the YAML line it is on). Block
        scalars keep their lines; quoted and plain scalars fold lines, so past their first
        line the place is the scalar's start."""
        start = self.scalar_starts.get(tuple(path))
        if start is None or line is None:
            return self.locate(path)
        mark = start.mark
        if start.style in ("|", ">"):
            return Location(self.file, mark.line + line)
        if line == 1 and column is not None:
            quote = 1 if start.style in ("'", '"') else 0
            return Location(self.file, mark.line, mark.column + quote + column - 1)
        return Location(self.file, mark.line, mark.column)


class _Budget:
    __slots__ = ("max_nodes", "used")

    def __init__(self, max_nodes: int):
        self.max_nodes = max_nodes
        self.used = 0


def _size(value: Any) -> int:
    """Number of nodes in an already-built value (for alias expansion accounting)."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        total += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        if total > MAX_NODES:
            break
    return total


def _scalar(event: events.ScalarEvent) -> Any:
    value = event.value
    if event.tag and event.tag != "!":
        tag = event.tag
    elif event.implicit[0]:
        tag = _resolver.resolve(yaml.ScalarNode, value, (True, False))
    else:
        tag = _STR
    if tag in (_STR, _TIMESTAMP):
        return value
    if tag == _MERGE:
        return _MergeKey
    if tag in (_INT, _FLOAT, _BOOL, _NULL):
        if tag == _INT and len(value) > MAX_INT_DIGITS:
            raise _LoadError(event.start_mark, f"a number of {len(value):,} digits is too long "
                             f"(at most {MAX_INT_DIGITS})", "quote it to make it a string")
        node = yaml.ScalarNode(tag, value)
        try:
            return _constructor.yaml_constructors[tag](_constructor, node)
        except ValueError as exc:  # a YAML 1.1 number Python cannot read (huge sexagesimal...)
            raise _LoadError(event.start_mark, f"'{value[:40]}' is not a number Python can read "
                             f"({exc})", "quote it to make it a string") from None
    raise _LoadError(event.start_mark, f"unsupported YAML tag {tag}", "remove the explicit tag")


class _MergeKeyType:
    def __repr__(self) -> str:
        return "<<"


_MergeKey = _MergeKeyType()


class _LoadError(ReconcilerError):
    def __init__(self, mark, message: str, hint: str | None = None):
        self.mark = mark
        self.message = message
        self.hint = hint


def _mark(m) -> Mark:
    return Mark(m.line + 1, m.column + 1)


def load_yaml(
    content: bytes | str,
    file: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
) -> YamlDocument:
    """Load one YAML document; raise :class:`InvalidInputError` with a located problem."""
    size = len(content)
    if size > max_bytes:
        raise InvalidInputError(
            [
                Problem(
                    Location(file),
                    f"file is {size:,} bytes, over the {max_bytes:,}-byte limit for manifests",
                    hint="split it, or keep large data in files that steps reference",
                    code="yaml",
                )
            ]
        )
    if isinstance(content, bytes):
        raw_bytes = content
        try:
            content = raw_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            before = raw_bytes[:exc.start]
            line = before.count(b"\n") + 1
            column = exc.start - (before.rfind(b"\n") + 1) + 1
            raise InvalidInputError(
                [Problem(Location(file, line, column),
                         f"not UTF-8 text: {exc.reason} at byte {exc.start}",
                         hint="save the file as UTF-8", code="yaml")]
            ) from None
    doc = YamlDocument(file, None)
    try:
        doc.data = _build(content, doc, max_depth, _Budget(max_nodes))
    except _LoadError as exc:
        loc = Location(file, exc.mark.line + 1, exc.mark.column + 1) if exc.mark else Location(file)
        raise InvalidInputError([Problem(loc, exc.message, hint=exc.hint, code="yaml")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.context and exc.context_mark and exc.problem:
            start = exc.context_mark
            message += f" {exc.context} that starts at line {start.line + 1}, column " \
                       f"{start.column + 1}"
            if mark is not None and mark.index >= len(content.rstrip()):
                mark = start  # the end of the file is not where the mistake is
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        raise InvalidInputError(
            [Problem(loc, message, hint="check indentation and quoting on this line", code="yaml")]
        ) from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(
            [Problem(Location(file), f"YAML error: {exc}", code="yaml")]
        ) from None
    return doc


def _build(text: str, doc: YamlDocument, max_depth: int, budget: _Budget) -> Any:
    """Build plain data from the parser's event stream with an explicit stack.

    Building from events (rather than composing a node graph first) keeps recursion out of
    the picture, so nesting depth and alias expansion are checked as the document streams in.
    """
    return _Builder(doc, max_depth, budget).build(_Parser(text))


class _Frame:
    """A mapping or sequence being built, and the key waiting for its value."""

    __slots__ = ("anchor", "container", "key", "key_mark", "merges", "path", "start_mark")

    def __init__(self, container: Any, path: KeyPath, anchor: str | None, start_mark: Any):
        self.container, self.path, self.anchor, self.start_mark = (container, path, anchor,
                                                                   start_mark)
        self.key: Any = _NoKey
        self.key_mark: Any = None
        self.merges: list[dict[str, Any]] = []


class _Builder:
    """Turns parser events into plain data, recording marks and raw scalars in ``doc``."""

    def __init__(self, doc: YamlDocument, max_depth: int, budget: _Budget):
        self.doc, self.max_depth, self.budget = doc, max_depth, budget
        self.anchors: dict[str, Any] = {}
        self.stack: list[_Frame] = []
        self.root: Any = None

    def build(self, parser: Any) -> Any:
        documents = 0
        while True:
            event = parser.get_event()
            if event is None or isinstance(event, events.StreamEndEvent):
                return self.root
            if isinstance(event, events.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _LoadError(event.start_mark, "more than one YAML document in the "
                                     "file", "keep one pipeline per file and remove the '---' "
                                             "separator")
            elif isinstance(event, events.ScalarEvent):
                self.attach(_scalar(event), event.start_mark, event.anchor, event.value,
                            event.style)
            elif isinstance(event, events.AliasEvent):
                self.alias(event)
            elif isinstance(event, (events.SequenceStartEvent, events.MappingStartEvent)):
                self.open(event)
            elif isinstance(event, (events.SequenceEndEvent, events.MappingEndEvent)):
                frame = self.stack.pop()
                for source in frame.merges:  # explicit keys win; earlier merges win over later
                    for k, v in source.items():
                        frame.container.setdefault(k, v)
                self.attach(frame.container, frame.start_mark, frame.anchor, None)

    def alias(self, event: Any) -> None:
        if event.anchor not in self.anchors:
            raise _LoadError(event.start_mark, f"unknown alias '*{event.anchor}'",
                             "define the anchor '&name' before using it")
        value = self.anchors[event.anchor]
        self.budget.used += _size(value) - 1
        self.attach(value, event.start_mark, None, None)

    def open(self, event: Any) -> None:
        if len(self.stack) >= self.max_depth:
            raise _LoadError(event.start_mark, f"nesting deeper than {self.max_depth} levels",
                             "flatten the document")
        if event.tag not in (None, "!", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"):
            raise _LoadError(event.start_mark, f"unsupported YAML tag {event.tag}",
                             "remove the explicit tag")
        container: Any = [] if isinstance(event, events.SequenceStartEvent) else {}
        self.stack.append(_Frame(container, self.child_path(), event.anchor, event.start_mark))

    def child_path(self) -> KeyPath:
        if not self.stack:
            return ()
        frame = self.stack[-1]
        if isinstance(frame.container, list):
            return (*frame.path, len(frame.container))
        key = frame.key
        return (*frame.path, key if isinstance(key, str) else _key_text(key))

    def record(self, child: KeyPath, mark: Any, value_mark: Any, raw: str | None,
               style: str | None) -> None:
        self.doc.marks[child] = _mark(mark)
        if raw is not None:
            self.doc.raw_scalars[child] = raw
            self.doc.scalar_starts[child] = ScalarStart(_mark(value_mark), style)

    def attach(self, value: Any, start_mark: Any, anchor: str | None, raw: str | None,
               style: str | None = None) -> None:
        budget = self.budget
        budget.used += 1
        if budget.used > budget.max_nodes:
            raise _LoadError(start_mark, f"document expands to more than {budget.max_nodes:,} "
                             "values (too many aliases or items)",
                             "remove the aliases that repeat large parts of the document")
        if anchor is not None:
            self.anchors[anchor] = value
        if not self.stack:
            self.root = value
            if raw is not None:
                self.doc.raw_scalars[()] = raw
            self.doc.marks[()] = _mark(start_mark)
            return
        frame = self.stack[-1]
        if isinstance(frame.container, list):
            child = (*frame.path, len(frame.container))
            frame.container.append(value)
            self.record(child, start_mark, start_mark, raw, style)
        elif frame.key is _NoKey:
            if isinstance(value, (dict, list)) and value is not _MergeKey:
                raise _LoadError(start_mark, "a mapping key must be a scalar",
                                 "quote the key or restructure the mapping")
            frame.key, frame.key_mark = value, start_mark
        else:
            self.attach_value(frame, value, start_mark, raw, style)

    def attach_value(self, frame: _Frame, value: Any, start_mark: Any, raw: str | None,
                     style: str | None) -> None:
        key, key_mark = frame.key, frame.key_mark
        frame.key = _NoKey
        if key is _MergeKey:
            for source in value if isinstance(value, list) else [value]:
                if not isinstance(source, dict):
                    raise _LoadError(start_mark, "merge key '<<' needs a mapping or a list of "
                                     "mappings", "point '<<' at an anchored mapping")
                frame.merges.append(source)
            return
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise _LoadError(key_mark, "unsupported mapping key", "use a plain string key")
        key = key if isinstance(key, str) else _key_text(key)
        if key in frame.container:
            raise _LoadError(key_mark, f"duplicate key '{key}'",
                             "remove one of the two; YAML keeps only the last silently")
        frame.container[key] = value
        self.record((*frame.path, key), key_mark, start_mark, raw, style)


class _NoKeyType:
    pass


_NoKey = _NoKeyType()


def _key_text(key: Any) -> str:
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)

