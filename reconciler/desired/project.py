"""The desired state of a whole manifests repository: every pipeline for every environment.

``compile_project`` is the entry point of the ``desired`` stage. One broken manifest never
stops the others: its problems are reported and its pipeline is marked as not compiled, which
the plan stage treats as "unknown" (never deleted, never touched).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from jsonschema.exceptions import ValidationError

from .. import __version__
from ..errors import CompileError, Location, Problem
from ..snapshot import Snapshot
from .builder import CompileOptions, load_table, too_big_to_parse
from .cache import CompileCache, digest, file_hash, snapshot_digest
from .compiler import compile_manifest
from .config import (
    EnvConfig,
    Settings,
    load_document,
    load_env_config,
    load_settings,
    mode_blocks,
)
from .definition import CompiledPipeline
from .manifest import parse_manifest
from .sql import TableDefinition, TableDefinitionError, creation_order
from .steps.base import StepType
from .steps.builtin import builtin_steps
from .steps.templates import TemplateStep, load_template
from .yamldoc import YamlDocument

MANIFEST_SUFFIXES = (".yaml", ".yml")
ROOT_SETTINGS = "reconciler.yaml"


@dataclass
class PipelineResult:
    """One manifest compiled for one environment, or the reason it was not."""

    manifest: str
    environment: str
    name: str | None
    compiled: CompiledPipeline | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.compiled is not None


@dataclass
class ProjectResult:
    settings: Settings | None
    pipelines: list[PipelineResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # not tied to one pipeline
    configs: dict[str, EnvConfig | None] = field(default_factory=dict)  # per environment

    def all_problems(self) -> list[Problem]:
        """Every problem once, in file and line order; a problem found while compiling for
        some environments only says which."""
        merged: dict[tuple, Problem] = {}
        for problem in [*self.problems, *(p for r in self.pipelines for p in r.problems)]:
            key = (problem.location, problem.message, problem.severity, problem.key_path)
            known = merged.get(key)
            if known is None:
                merged[key] = problem
            elif problem.environments:
                envs = tuple(dict.fromkeys((*known.environments, *problem.environments)))
                merged[key] = replace(known, environments=envs)
        everywhere = tuple(self.settings.environments) if self.settings else ()
        out = [replace(p, environments=()) if set(p.environments) == set(everywhere) else p
               for p in merged.values()]
        return sorted(out, key=Problem.sort_key)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.all_problems() if p.severity == "error"]

    def compiled(self, environment: str | None = None) -> list[CompiledPipeline]:
        return [r.compiled for r in self.pipelines if r.compiled is not None
                and (environment is None or r.environment == environment)]


class StepRegistry:
    """Step types by name: built-in, then installed plugins, then the repository's templates."""

    def __init__(self, plugins: Mapping[str, StepType] | None = None):
        self.types: dict[str, StepType] = dict(builtin_steps())
        for name, step in (plugins or {}).items():
            self.types.setdefault(name, step)
        self._validators: dict[str, Any] = {}

    def add_templates(self, templates: Iterable[TemplateStep]) -> None:
        for template in templates:
            self.types[template.step_type] = template

    def get(self, step_type: str) -> StepType | None:
        return self.types.get(step_type)

    def validator(self, step_type: str) -> Any:
        """The step type's jsonschema validator; None for an unknown type. A step type whose
        validator() fails accepts nothing: its steps are reported, never compiled blind."""
        if step_type not in self.types:
            return None
        if step_type not in self._validators:
            try:
                self._validators[step_type] = self.types[step_type].validator()
            except Exception as exc:  # a plugin's bug, reported at every step that uses it
                self._validators[step_type] = _BrokenValidator(step_type, exc)
        return self._validators[step_type]

    def names(self) -> list[str]:
        return sorted(self.types)


class _BrokenValidator:
    """Stands in for the validator of a step type whose validator() raised."""

    def __init__(self, step_type: str, error: Exception):
        self.message = (f"step type '{step_type}' cannot check its steps: validator() raised "
                        f"{type(error).__name__}: {error}")

    def iter_errors(self, instance: Any) -> Iterator[ValidationError]:
        yield ValidationError(self.message, validator="plugin", path=(), instance=instance)


def manifest_paths(snapshot: Snapshot, settings: Settings) -> list[str]:
    return [p for p in snapshot.under(settings.pipelines_dir) if p.endswith(MANIFEST_SUFFIXES)]


def compile_project(
    snapshot: Snapshot,
    options: CompileOptions,
    *,
    plugins: Mapping[str, StepType] | None = None,
    environments: Iterable[str] | None = None,
    manifests: Iterable[str] | None = None,
    cache: CompileCache | None = None,
    mapper: Mapper | None = None,
) -> ProjectResult:
    """Load, check and compile the repository (optionally only some environments or files).
    With a ``cache`` (the controller's), an unchanged repository is not compiled again and a
    changed one recompiles only the pipelines whose inputs changed (``desired.cache``).
    Without one, a ``mapper`` compiles a big repository's manifests in chunks through it
    (``reconciler.processes.forked_map``: across processes)."""
    if cache is not None:
        cache.start_pass()
        whole = digest(__version__, snapshot_digest(snapshot), repr(options),
                       repr(sorted(plugins or {})), repr(None if environments is None
                                                         else list(environments)),
                       repr(None if manifests is None else list(manifests)))
        if cache.project is not None and cache.project[0] == whole:
            result: ProjectResult = cache.project[1]
            cache.hits = len(result.pipelines)
            return result
        result = _compile_project(snapshot, options, plugins, environments, manifests, cache,
                                  None)
        cache.project = (whole, result)
        return result
    return _compile_project(snapshot, options, plugins, environments, manifests, None,
                            mapper)


def _compile_project(snapshot: Snapshot, options: CompileOptions,
                     plugins: Mapping[str, StepType] | None,
                     environments: Iterable[str] | None, manifests: Iterable[str] | None,
                     cache: CompileCache | None, mapper: Mapper | None) -> ProjectResult:
    problems: list[Problem] = []
    settings = load_settings(snapshot, problems)
    result = ProjectResult(settings=settings, problems=problems)
    if settings is None:
        return result
    options = CompileOptions(options.start_date, max_objects=settings.max_objects,
                             max_sql_bytes=settings.max_sql_bytes, qa_runner=options.qa_runner)
    wanted_envs = _wanted_environments(settings, environments, problems)
    registry = StepRegistry(plugins)
    registry.add_templates(_templates(snapshot, settings, registry, problems))
    config_cache: dict[str, YamlDocument | None] = {}
    configs = {env: load_env_config(snapshot, settings, settings.environments[env], problems,
                                    config_cache) for env in wanted_envs}
    result.configs = configs
    _check_modes(settings, config_cache, problems)
    for path in snapshot.rejected:  # a step template refused is as wrong as a manifest
        if any(path.startswith(folder + "/") for folder in (settings.pipelines_dir,
                                                            settings.templates_dir)):
            problems.append(Problem(Location(path), snapshot.rejected[path], code="file"))
    if manifests is None:
        _check_tables(snapshot, settings, options, problems)
    documents = {path: _load(snapshot, path) for path in manifest_paths(snapshot, settings)}
    names = _pipeline_names(documents)
    options = replace(options, pipeline_names=_names_in_aws(documents, names, settings,
                                                            configs))
    builds = _Builds(cache, snapshot, settings, registry, options) if cache is not None else None
    paths = _manifest_selection(snapshot, settings, manifests, problems)
    files = _Files(documents, settings, wanted_envs, configs, registry, options, names,
                   snapshot, builds)
    if mapper is not None and builds is None and len(paths) >= PARALLEL_FROM:
        pipelines, found = _compile_mapped(files, paths, mapper)
        result.pipelines.extend(pipelines)
        problems.extend(found)
    else:
        result.pipelines.extend(files.compile(paths, problems))
    if builds is not None and manifests is None:
        builds.forget_the_rest()
    return result


@dataclass
class _Files:
    """What compiling manifests needs, once per pass."""

    documents: dict[str, Any]  # path -> _load()'s (document, problems)
    settings: Settings
    environments: list[str]
    configs: dict[str, EnvConfig | None]
    registry: StepRegistry
    options: CompileOptions
    names: Any
    snapshot: Snapshot
    builds: _Builds | None

    def compile(self, paths: Iterable[str], problems: list[Problem]) -> list[PipelineResult]:
        results: list[PipelineResult] = []
        for path in paths:
            try:
                results.extend(_compile_file(self.documents[path], self.settings, path,
                                             self.environments, self.configs, self.registry,
                                             self.options, self.names, self.snapshot,
                                             problems, self.builds))
            except Exception as exc:  # a bug must cost one manifest, never the whole pass
                problem = Problem(Location(path), f"{path} could not be compiled: "
                                  f"{type(exc).__name__}: {exc}", code="internal",
                                  hint="this is a bug in the reconciler; the other pipelines "
                                       "are not affected")
                results.extend(PipelineResult(path, env, None, None, [problem])
                               for env in self.environments)
        return results


# Below this many manifests a second process costs more than it saves (forking, and sending
# the compiled definitions back).
PARALLEL_FROM = 300
CHUNKS = 16  # the manifests are cut into this many chunks, for an even finish
ChunkResult = tuple[list[PipelineResult], list[Problem]]
# map(function, chunks) in order, possibly in forked processes (reconciler.processes): a
# forked worker finds what it compiles with in _FORKED, inherited, not sent
Mapper = Callable[[Callable[[list[str]], ChunkResult], list[list[str]]], list[ChunkResult]]
_FORKED: _Files | None = None


def _compile_chunk(paths: list[str]) -> ChunkResult:
    assert _FORKED is not None
    problems: list[Problem] = []
    return _FORKED.compile(paths, problems), problems


def _compile_mapped(files: _Files, paths: list[str], mapper: Mapper) -> ChunkResult:
    """The manifests compiled through ``mapper``, in ``paths`` order."""
    global _FORKED
    size = -(-len(paths) // CHUNKS)
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    _FORKED = files
    try:
        done = mapper(_compile_chunk, chunks)
    finally:
        _FORKED = None
    return ([r for results, _ in done for r in results],
            [p for _, found in done for p in found])


class _Builds:
    """The cache's view for one pass: the key of one manifest's build for one environment."""

    def __init__(self, cache: CompileCache, snapshot: Snapshot, settings: Settings,
                 registry: StepRegistry, options: CompileOptions):
        self.cache, self.snapshot = cache, snapshot
        templates = [file_hash(snapshot, p) for p in snapshot.under(settings.templates_dir)]
        self.shared = digest(__version__, file_hash(snapshot, ROOT_SETTINGS),
                             repr(registry.names()), *templates,
                             repr((options.start_date, options.max_objects,
                                   options.max_sql_bytes, options.qa_runner)))
        self.options = options
        self.settings = settings
        self.used: list[str] = []

    def key(self, path: str, env: str) -> str:
        environment = self.settings.environments[env]
        names = sorted(self.options.pipeline_names.get(env, {}).items())
        key = digest(self.shared, path, env, file_hash(self.snapshot, path),
                     file_hash(self.snapshot, environment.config_path),
                     file_hash(self.snapshot, self.settings.defaults_path), repr(names))
        self.used.append(key)
        return key

    def forget_the_rest(self) -> None:
        self.cache.keep_only(self.used)


def _wanted_environments(settings: Settings, environments: Iterable[str] | None,
                         problems: list[Problem]) -> list[str]:
    wanted = list(settings.environments) if environments is None else list(environments)
    for env in wanted:
        if env not in settings.environments:
            problems.append(Problem(Location("reconciler.yaml"), f"unknown environment '{env}'",
                                    hint=f"environments: {', '.join(settings.environments)}",
                                    code="reference"))
    return [e for e in wanted if e in settings.environments]


def _templates(snapshot: Snapshot, settings: Settings, registry: StepRegistry,
               problems: list[Problem]) -> list[TemplateStep]:
    templates: list[TemplateStep] = []
    for path in snapshot.under(settings.templates_dir):
        if not path.endswith(MANIFEST_SUFFIXES):
            continue
        doc = load_document(snapshot, path, problems)
        if doc is None:
            continue
        template = load_template(doc, {*registry.names(), *(t.step_type for t in templates)},
                                 problems)
        if template is not None:
            templates.append(template)
    return templates


def _check_modes(settings: Settings, docs: Mapping[str, YamlDocument | None],
                 problems: list[Problem]) -> None:
    """A Dataduct mode block that no environment selects would be silently ignored."""
    used = {env.mode for env in settings.environments.values() if env.mode}
    for doc in docs.values():
        if doc is None:
            continue
        for mode in mode_blocks(doc):
            if mode not in used:
                problems.append(Problem(doc.locate((mode,)), f"mode '{mode}' is used by no "
                                        "environment", (mode,), severity="warning",
                                        hint=f"set environments.<name>.mode: {mode} in "
                                             "reconciler.yaml, or remove the block",
                                        code="config"))


def _check_tables(snapshot: Snapshot, settings: Settings, options: CompileOptions,
                  problems: list[Problem]) -> None:
    """Every table definition is checked, whether a step uses it yet or not, and their
    foreign keys must allow an order to create them in."""
    loaded: dict[str, TableDefinition] = {}
    for path in [*snapshot.under(settings.tables_dir),
                 *(p for p in snapshot.rejected if p.startswith(settings.tables_dir + "/"))]:
        if not path.endswith(".sql"):
            continue
        if path in snapshot.rejected:
            problems.append(Problem(Location(path), snapshot.rejected[path], code="file"))
            continue
        if len(snapshot.files[path]) > options.max_sql_bytes:
            problems.append(Problem(Location(path), too_big_to_parse(
                path, len(snapshot.files[path]), options.max_sql_bytes), code="file",
                hint="split it, or raise limits.max_sql_bytes in reconciler.yaml"))
            continue
        try:
            content = snapshot.files[path].decode("utf-8")
            loaded[path] = load_table(path, content)
        except UnicodeDecodeError as exc:
            line = snapshot.files[path].count(b"\n", 0, exc.start) + 1
            problems.append(Problem(Location(path, line), f"not UTF-8 text: {exc.reason} at "
                                    f"byte {exc.start}", hint="save the file as UTF-8",
                                    code="sql"))
        except CompileError as exc:
            problems.append(Problem(exc.location or Location(path), str(exc), hint=exc.hint,
                                    code="sql"))
    try:
        creation_order(loaded.values())
    except TableDefinitionError as exc:
        first = next(p for p, t in loaded.items() if t.full_name in str(exc))
        problems.append(Problem(Location(first), str(exc), hint=exc.hint, code="sql"))


def _manifest_selection(snapshot: Snapshot, settings: Settings, manifests: Iterable[str] | None,
                        problems: list[Problem]) -> list[str]:
    if manifests is None:
        return manifest_paths(snapshot, settings)
    known = set(manifest_paths(snapshot, settings))
    paths = []
    for path in manifests:
        if path in known:
            paths.append(path)
        else:
            problems.append(Problem(Location(path), "not a pipeline manifest",
                                    hint=f"pipelines are the *.yaml files under "
                                         f"{settings.pipelines_dir}/ (see reconciler.yaml)",
                                    code="file"))
    return paths


Loaded = tuple[YamlDocument | None, list[Problem]]


def _load(snapshot: Snapshot, path: str) -> Loaded:
    local: list[Problem] = []
    return load_document(snapshot, path, local), local


def _name_of(doc: YamlDocument | None) -> str | None:
    data = doc.data if doc is not None and isinstance(doc.data, dict) else {}
    return data.get("name") if isinstance(data.get("name"), str) else None


def _targets(doc: YamlDocument) -> list[str] | None:
    """The environments a manifest is deployed to; None: all (or a wrong shape, which the
    schema reports for every environment)."""
    targets = doc.data.get("environments") if isinstance(doc.data, dict) else None
    if isinstance(targets, list) and all(isinstance(t, str) for t in targets):
        return targets
    return None


def _pipeline_names(documents: Mapping[str, Loaded]) -> dict[str, str]:
    """Pipeline name -> the manifest that defines it (the first, for a duplicate name)."""
    names: dict[str, str] = {}
    for path, (doc, _) in documents.items():
        name = _name_of(doc)
        if name is not None:
            names.setdefault(name, path)
    return names


def _names_in_aws(documents: Mapping[str, Loaded], names: Mapping[str, str],
                  settings: Settings, configs: Mapping[str, EnvConfig | None]
                  ) -> dict[str, dict[str, str]]:
    """Per environment, each pipeline deployed there and the name it has in AWS (the
    environment's name_prefix, then Dataduct's etl.NAME_PREFIX), for steps that name other
    pipelines."""
    out: dict[str, dict[str, str]] = {}
    for env, config in configs.items():
        prefix = config.get("etl", "NAME_PREFIX") if config is not None else None
        found: dict[str, str] = {}
        for name, path in names.items():
            doc = documents[path][0]
            targets = _targets(doc) if doc is not None else None
            if targets is None or env in targets:
                found[name] = (settings.environments[env].name_prefix
                               + (f"{prefix}_{name}" if prefix else name))
        out[env] = found
    return out


def _compile_file(loaded: Loaded, settings: Settings, path: str, wanted_envs: list[str],
                  configs: Mapping[str, EnvConfig | None], registry: StepRegistry,
                  options: CompileOptions, names: Mapping[str, str], snapshot: Snapshot,
                  problems: list[Problem], builds: _Builds | None = None
                  ) -> list[PipelineResult]:
    """One manifest for every wanted environment it is deployed to."""
    doc, loaded_problems = loaded
    local = list(loaded_problems)
    if doc is None:
        return [PipelineResult(path, env, None, None, list(local)) for env in wanted_envs]
    name = _name_of(doc)
    if name is not None and names.get(name) != path:
        local.append(Problem(doc.locate(("name",)), f"pipeline name '{name}' is also "
                             f"used by {names[name]}", ("name",),
                             hint="pipeline names are unique in a repository",
                             code="reference"))
    targets = _targets(doc)
    if isinstance(targets, list):
        for env in targets:
            if env not in settings.environments:
                problems.append(Problem(doc.locate(("environments",)),
                                        f"unknown environment '{env}'", ("environments",),
                                        hint=f"environments of reconciler.yaml: "
                                             f"{', '.join(settings.environments)}",
                                        code="reference"))
    out = []
    for env in wanted_envs:
        if isinstance(targets, list) and env not in targets:
            continue
        config = configs.get(env)
        key = builds.key(path, env) if builds is not None and config is not None \
            and not local else None
        if key is not None and builds is not None:
            cached = builds.cache.get(key, snapshot)
            if cached is not None:
                out.append(PipelineResult(path, env, name, cached[0], list(cached[1])))
                continue
        env_problems = list(local)
        compiled = None
        manifest = parse_manifest(doc, env, registry.validator, registry.names(),
                                  env_problems, _config_steps(config))
        if manifest is not None and config is not None and not local:
            compile_problems: list[Problem] = []
            reads: dict[str, str] = {}
            compiled = compile_manifest(manifest, config, snapshot, registry.get, options,
                                        compile_problems, reads)
            env_problems.extend(replace(p, environments=(env,)) for p in compile_problems)
            if key is not None and builds is not None:
                builds.cache.put(key, reads, (compiled, tuple(env_problems)))
        elif config is None:
            env_problems.append(Problem(doc.locate(()), f"not compiled for {env}: its "
                                        "config has errors", severity="warning",
                                        code="config"))
        out.append(PipelineResult(path, env, name, compiled, env_problems))
    return out


def _config_steps(config: EnvConfig | None) -> dict[str, tuple[YamlDocument, Any]]:
    """The config's bootstrap steps per resource and its teardown, with the document that
    defines them."""
    found: dict[str, tuple[YamlDocument, Any]] = {}
    for doc in config.documents if config else ():
        data = doc.data if isinstance(doc.data, dict) else {}
        section = data.get("bootstrap")
        for resource in ("ec2", "emr"):
            phase = f"bootstrap-{resource}"
            if isinstance(section, dict) and section.get(resource) and phase not in found:
                found[phase] = (doc, section[resource])
        if data.get("teardown") and "teardown" not in found:
            found["teardown"] = (doc, data["teardown"])
    return found
