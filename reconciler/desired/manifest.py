"""A pipeline manifest: Dataduct's YAML language, loaded and checked.

Loading goes: safe YAML (``yamldoc``) → the pipeline schema → each step against its step
type's schema (built-in, template or plugin) → the semantic checks below. The result is a
:class:`Manifest` of :class:`StepSpec` values with every name resolved, or the problems found.

Wiring rules (documented in docs/language.md):

* A step reads the output of the step before it, unless it is an extract step or a check step,
  or it names its input with ``input_node`` (``[]`` means no input).
* A step depends on the step before it, unless it is an extract step or it names its
  dependencies with ``depends_on``; steps it reads from are always dependencies.
* ``input_node`` names a step (its output), an output of an earlier step (``output_node``
  entries), or a path ``a/b/name`` whose last segment is such an output name and whose leading
  segments, when they name a step, pick that step's output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import Location, Problem, did_you_mean
from .config import deep_merge
from .schemas import validate_document, validator
from .yamldoc import YamlDocument

COMMON_STEP_KEYS = ("step_type", "name", "input_node", "depends_on", "max_retries")
EXTRACT_STEPS = frozenset({"extract-s3", "extract-local", "extract-rds", "extract-redshift",
                           "extract-postgres"})
CHECK_STEPS = frozenset({"primary-key-check", "count-check", "column-check"})
# The parameter whose value names an unnamed step, per step type (see default_step_name).
NAME_HINT_KEYS = ("table_definition", "destination", "production_table_definition", "path",
                  "table", "script", "mapper", "file_uri", "directory_uri", "job_name",
                  "cql_schema_definition", "source_table_name", "schema")


@dataclass(frozen=True)
class InputRef:
    """One input of a step: the producing step, which of its outputs, and an optional
    sub-directory name (``input_node`` given as a mapping)."""

    step: str
    output: str | None = None
    subdirectory: str | None = None


@dataclass
class StepSpec:
    """One step of a manifest, with its wiring resolved."""

    index: int
    phase: str  # "bootstrap-ec2", "bootstrap-emr", "main" or "teardown"
    step_type: str
    name: str
    params: dict[str, Any]
    key_path: tuple
    location: Location
    inputs: list[InputRef] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    max_retries: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    document: YamlDocument | None = None  # where the step is written (manifest or config)

    def locate(self, *keys: str) -> Location:
        assert self.document is not None
        return self.document.locate((*self.key_path, *keys))



@dataclass
class Manifest:
    path: str
    document: YamlDocument
    data: dict[str, Any]
    name: str
    steps: list[StepSpec]


def raw_load_time(doc: YamlDocument, path: tuple) -> str | None:
    """``load_time`` as written: YAML 1.1 reads ``12:00`` as the sexagesimal number 720."""
    raw = doc.raw(path)
    value = doc.data
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return None
    if isinstance(value, int) and raw and ":" in raw:
        return raw
    return str(value)


def default_step_name(step: dict[str, Any]) -> str:
    """A stable name for an unnamed step: its type plus the stem of its main parameter."""
    base = step["step_type"].replace("-", "_")
    for key in NAME_HINT_KEYS:
        value = step.get(key)
        if isinstance(value, str) and value.strip():
            stem = value.rstrip("/").split("/")[-1]
            for suffix in (".sql", ".py", ".tsv", ".csv", ".txt", ".cql", ".sh", ".json"):
                if stem.endswith(suffix):
                    stem = stem[: -len(suffix)]
            stem = "".join(c if c.isalnum() else "_" for c in stem).strip("_")
            if stem:
                return f"{base}_{stem}"[:100]
    return base


StepSchemaLookup = Callable[[str], Any]
# Steps the config gives every pipeline that has none of its own, by phase ("bootstrap-ec2",
# "bootstrap-emr", "teardown"): the document they are written in and the steps.
ConfigSteps = Mapping[str, tuple[YamlDocument, Any]]


def parse_manifest(
    doc: YamlDocument,
    environment: str,
    step_schemas: StepSchemaLookup,
    known_step_types: list[str],
    problems: list[Problem],
    config_steps: ConfigSteps | None = None,
) -> Manifest | None:
    """Check and parse one manifest for one environment; None when it has errors.

    ``step_schemas(step_type)`` returns a jsonschema validator for the step type, or None
    when the type is unknown. ``config_steps`` are the config's bootstrap and teardown steps,
    used when the manifest has none.
    """
    before = len(problems)
    if not isinstance(doc.data, dict):
        problems.append(Problem(doc.locate(()), "a pipeline manifest is a mapping with name and "
                                "steps", hint="see docs/language.md", code="schema"))
        return None
    problems.extend(validate_document(validator("pipeline"), doc))
    if len(problems) > before:
        return None
    data = _for_environment(doc, environment, problems)
    specs: list[StepSpec] = []
    for source, phase, base_path, items, single in _step_lists(doc, data, config_steps or {}):
        for i, raw in enumerate(items):
            key_path = base_path if single else (*base_path, i)
            spec = _parse_step(source, raw, key_path, phase, len(specs), step_schemas,
                               known_step_types, problems)
            if spec is not None:
                specs.append(spec)
    if len(problems) > before:
        return None
    _name_steps(specs, problems)
    if len(problems) > before:
        return None
    _wire(specs, problems)
    if len(problems) > before:
        return None
    return Manifest(path=doc.file, document=doc, data=data, name=data["name"], steps=specs)


def _for_environment(doc: YamlDocument, environment: str, problems: list[Problem]
                     ) -> dict[str, Any]:
    """The manifest's keys with its ``overrides`` for the environment merged in."""
    data = dict(doc.data)  # top-level keys are replaced below; nested values are shared
    if "load_time" in data:
        data["load_time"] = raw_load_time(doc, ("load_time",))
    overrides = data.pop("overrides", {}) or {}
    for env_name in overrides:
        if not isinstance(overrides[env_name], dict):
            continue
        if "steps" in overrides[env_name] or "name" in overrides[env_name]:
            problems.append(Problem(doc.locate(("overrides", env_name)),
                                    "overrides cannot change name or steps", code="schema"))
    if environment in overrides:
        data = deep_merge(data, overrides[environment])
        where = doc.locate(("overrides", environment))
        for problem in validate_document(validator("pipeline"), doc, data):
            problems.append(Problem(where, f"{problem.message} after overrides.{environment} "
                                    "is applied", problem.key_path, hint=problem.hint,
                                    code="schema"))
    data.pop("environments", None)
    return data


def _step_lists(doc: YamlDocument, data: dict[str, Any], config_steps: ConfigSteps):
    """(document, phase, key path, steps, single) for bootstrap, main and teardown steps."""
    bootstrap = data.get("bootstrap")
    for resource in ("ec2", "emr"):
        phase = f"bootstrap-{resource}"
        if bootstrap is not None:
            if bootstrap.get(resource):
                yield doc, phase, ("bootstrap", resource), bootstrap[resource], False
        elif phase in config_steps:
            config_doc, steps = config_steps[phase]
            yield config_doc, phase, ("bootstrap", resource), steps, False
    yield doc, "main", ("steps",), data["steps"], False
    teardown, source = data.get("teardown"), doc
    if teardown is None and "teardown" in config_steps:
        source, teardown = config_steps["teardown"]
    if teardown:
        single = isinstance(teardown, dict)
        yield source, "teardown", ("teardown",), [teardown] if single else teardown, single


def _parse_step(doc, raw, key_path, phase, index, step_schemas, known, problems):
    step_type = raw.get("step_type")
    check = step_schemas(step_type)
    if check is None:
        hint = did_you_mean(step_type, known) or "see docs/language.md for the step types"
        problems.append(Problem(doc.locate((*key_path, "step_type")),
                                f"unknown step type '{step_type}'", (*key_path, "step_type"),
                                hint=hint, code="schema"))
        return None
    found = validate_document(check, doc, raw, key_path)
    if found:
        problems.extend(found)
        return None
    params = {k: v for k, v in raw.items() if k not in COMMON_STEP_KEYS}
    return StepSpec(
        index=index, phase=phase, step_type=step_type, name=raw.get("name") or "",
        params=params, key_path=key_path, location=doc.locate(key_path),
        max_retries=raw.get("max_retries"), raw=raw, document=doc,
    )


def _name_steps(specs: list[StepSpec], problems: list[Problem]) -> None:
    """Give unnamed steps a stable name; refuse duplicate names."""
    explicit: dict[str, StepSpec] = {}
    for spec in specs:
        if not spec.name:
            continue
        if spec.name in explicit:
            first = explicit[spec.name]
            problems.append(Problem(spec.locate("name"),
                                    f"duplicate step name '{spec.name}' (first used at line "
                                    f"{first.location.line})", (*spec.key_path, "name"),
                                    hint="give each step a unique name", code="reference"))
        explicit.setdefault(spec.name, spec)
    taken = set(explicit)
    # the pipeline's own steps are named first: a bootstrap or teardown step from the config
    # never takes a name that would rename one of them
    for spec in sorted(specs, key=lambda s: s.phase != "main"):
        if spec.name:
            continue
        base = default_step_name(spec.raw)
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        spec.name = name
        taken.add(name)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _wire(specs: list[StepSpec], problems: list[Problem]) -> None:
    """Resolve input_node and depends_on (see the module docstring) and refuse cycles."""
    by_name = {s.name: s for s in specs}
    outputs: dict[str, list[str]] = {}  # output name -> steps declaring it
    for spec in specs:
        for out in _as_list(spec.params.get("output_node")):
            outputs.setdefault(out, []).append(spec.name)
    previous_by_phase: dict[str, StepSpec] = {}

    for spec in specs:
        previous = previous_by_phase.get(spec.phase)
        earlier = {s.name for s in specs[: spec.index]}
        raw_input = spec.raw.get("input_node")
        path = (*spec.key_path, "input_node")
        if "input_node" in spec.raw:
            if isinstance(raw_input, dict):
                entries = [(k, v) for k, v in raw_input.items()]
            else:
                entries = [(k, None) for k in _as_list(raw_input)]
            for ref, subdir in entries:
                resolved = _resolve_input(ref, spec, by_name, outputs, earlier)
                if isinstance(resolved, str):
                    problems.append(Problem(spec.locate("input_node"), resolved, path,
                                            hint=did_you_mean(ref, [*earlier, *outputs]),
                                            code="reference"))
                    continue
                spec.inputs.append(InputRef(resolved.step, resolved.output, subdir))
        elif (previous is not None and spec.step_type not in EXTRACT_STEPS
              and spec.step_type not in CHECK_STEPS):
            spec.inputs.append(InputRef(previous.name))
        deps_path = (*spec.key_path, "depends_on")
        if "depends_on" in spec.raw:
            for dep in _as_list(spec.raw["depends_on"]):
                if dep == spec.name:
                    problems.append(Problem(spec.locate("depends_on"), f"step '{dep}' depends on "
                                            "itself", deps_path, code="reference"))
                elif dep not in by_name:
                    problems.append(Problem(spec.locate("depends_on"), f"depends_on names unknown "
                                            f"step '{dep}'", deps_path,
                                            hint=did_you_mean(dep, by_name), code="reference"))
                elif dep not in earlier:
                    cycle = _cycle_through(spec.name, dep, by_name)
                    message = (f"dependency cycle: {' -> '.join(cycle)}" if cycle else
                               f"depends_on names step '{dep}', which comes later")
                    problems.append(Problem(spec.locate("depends_on"), message, deps_path,
                                            hint="a step can only depend on steps before it",
                                            code="reference"))
                else:
                    spec.depends_on.append(dep)
        elif previous is not None and spec.step_type not in EXTRACT_STEPS:
            spec.depends_on.append(previous.name)
        for ref in spec.inputs:
            if ref.step not in spec.depends_on:
                spec.depends_on.append(ref.step)
        previous_by_phase[spec.phase] = spec


def _resolve_input(ref: str, spec: StepSpec, by_name, outputs, earlier) -> InputRef | str:
    if ref == spec.name:
        return f"step '{ref}' reads its own output"
    if ref in by_name:
        if ref not in earlier:
            cycle = _cycle_through(spec.name, ref, by_name)
            if cycle:
                return f"dependency cycle: {' -> '.join(cycle)}"
            return f"input_node names step '{ref}', which comes later"
        return InputRef(ref)
    segments = [s for s in ref.split("/") if s]
    if not segments:
        return f"input_node '{ref}' is empty"
    name = segments[-1]
    producers = [p for p in outputs.get(name, []) if p in earlier]
    prefix_steps = [s for s in segments[:-1] if s in by_name]
    if prefix_steps:
        producers = [p for p in producers if p in prefix_steps]
    if len(producers) > 1:
        declared = [d for d in spec.raw.get("depends_on", []) or []] if isinstance(
            spec.raw.get("depends_on"), list) else _as_list(spec.raw.get("depends_on"))
        preferred = [p for p in producers if p in declared]
        if len(preferred) == 1:
            producers = preferred
        else:
            return (f"input_node '{ref}' is ambiguous: outputs named '{name}' come from "
                    f"{', '.join(producers)}; write 'step/{name}' with the step's name")
    if not producers:
        return f"input_node '{ref}' names no earlier step or output"
    return InputRef(producers[0], name)


def _declared_refs(spec: StepSpec) -> list[str]:
    """Step names a step refers to in its YAML (depends_on and input_node), unresolved."""
    refs = _as_list(spec.raw.get("depends_on"))
    raw_input = spec.raw.get("input_node")
    refs += list(raw_input) if isinstance(raw_input, dict) else _as_list(raw_input)
    return refs


def _cycle_through(start: str, first: str, by_name: dict[str, StepSpec]) -> list[str] | None:
    """The declared path ``start -> first -> ... -> start``, if there is one."""
    stack = [(first, [start, first])]
    seen = set()
    while stack:
        node, trail = stack.pop()
        if node in seen or node not in by_name:
            continue
        seen.add(node)
        for ref in _declared_refs(by_name[node]):
            if ref == start:
                return [*trail, start]
            stack.append((ref, [*trail, ref]))
    return None
