"""The desired state of a whole manifests repository: every pipeline for every environment.

``compile_project`` is the entry point of the ``desired`` stage. One broken manifest never
stops the others: its problems are reported and its pipeline is marked as not compiled, which
the plan stage treats as "unknown" (never deleted, never touched).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from ..errors import Location, Problem
from ..snapshot import Snapshot
from .compiler import CompileOptions, compile_manifest
from .config import EnvConfig, Settings, load_document, load_env_config, load_settings
from .definition import CompiledPipeline
from .manifest import parse_manifest
from .steps.base import StepType
from .steps.builtin import builtin_steps
from .steps.templates import TemplateStep, load_template

MANIFEST_SUFFIXES = (".yaml", ".yml")


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
        self._validators: dict[str, object] = {}

    def add_templates(self, templates: Iterable[TemplateStep]) -> None:
        for template in templates:
            self.types[template.step_type] = template

    def get(self, step_type: str) -> StepType | None:
        return self.types.get(step_type)

    def validator(self, step_type: str):
        if step_type not in self.types:
            return None
        if step_type not in self._validators:
            self._validators[step_type] = self.types[step_type].validator()
        return self._validators[step_type]

    def names(self) -> list[str]:
        return sorted(self.types)


def manifest_paths(snapshot: Snapshot, settings: Settings) -> list[str]:
    return [p for p in snapshot.under(settings.pipelines_dir) if p.endswith(MANIFEST_SUFFIXES)]


def compile_project(
    snapshot: Snapshot,
    options: CompileOptions,
    *,
    plugins: Mapping[str, StepType] | None = None,
    environments: Iterable[str] | None = None,
    manifests: Iterable[str] | None = None,
) -> ProjectResult:
    """Load, check and compile the repository (optionally only some environments or files)."""
    problems: list[Problem] = []
    settings = load_settings(snapshot, problems)
    result = ProjectResult(settings=settings, problems=problems)
    if settings is None:
        return result
    options = CompileOptions(options.start_date, max_objects=settings.max_objects)
    wanted_envs = list(settings.environments) if environments is None else list(environments)
    for env in wanted_envs:
        if env not in settings.environments:
            problems.append(Problem(Location("reconciler.yaml"), f"unknown environment '{env}'",
                                    hint=f"environments: {', '.join(settings.environments)}",
                                    code="reference"))
    wanted_envs = [e for e in wanted_envs if e in settings.environments]

    registry = StepRegistry(plugins)
    templates = []
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
    registry.add_templates(templates)

    config_cache: dict = {}
    configs: dict[str, EnvConfig | None] = {}
    for env in wanted_envs:
        configs[env] = load_env_config(snapshot, settings, settings.environments[env], problems,
                                       config_cache)
    for path in snapshot.rejected:
        if path.startswith(settings.pipelines_dir + "/"):
            problems.append(Problem(Location(path), snapshot.rejected[path], code="file"))

    if manifests is None:
        paths = manifest_paths(snapshot, settings)
    else:
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
    names: dict[str, str] = {}
    for path in paths:
        local: list[Problem] = []
        doc = load_document(snapshot, path, local)
        if doc is None:
            result.pipelines.extend(PipelineResult(path, env, None, None, list(local))
                                    for env in wanted_envs)
            continue
        name = doc.data.get("name") if isinstance(doc.data, dict) else None
        if isinstance(name, str):
            if name in names:
                local.append(Problem(doc.locate(("name",)), f"pipeline name '{name}' is also "
                                     f"used by {names[name]}", ("name",),
                                     hint="pipeline names are unique in a repository",
                                     code="reference"))
            names.setdefault(name, path)
        targets = doc.data.get("environments") if isinstance(doc.data, dict) else None
        for env in wanted_envs:
            env_problems = list(local)
            if isinstance(targets, list) and env not in targets:
                continue
            compiled = None
            config = configs.get(env)
            manifest = parse_manifest(doc, env, registry.validator, registry.names(),
                                      env_problems, _config_bootstrap(config))
            if manifest is not None and config is not None and not local:
                compile_problems: list[Problem] = []
                compiled = compile_manifest(manifest, config, snapshot, registry.get, options,
                                            compile_problems)
                env_problems.extend(replace(p, environments=(env,)) for p in compile_problems)
            elif config is None:
                env_problems.append(Problem(doc.locate(()), f"not compiled for {env}: its "
                                            "config has errors", severity="warning",
                                            code="config"))
            result.pipelines.append(PipelineResult(
                path, env, name if isinstance(name, str) else None, compiled, env_problems))
        if isinstance(targets, list):
            for env in targets:
                if env not in settings.environments:
                    problems.append(Problem(doc.locate(("environments",)),
                                            f"unknown environment '{env}'", ("environments",),
                                            hint=f"environments of reconciler.yaml: "
                                                 f"{', '.join(settings.environments)}",
                                            code="reference"))
    return result


def _config_bootstrap(config: EnvConfig | None) -> dict:
    """The config's bootstrap steps per resource, with the document that defines them."""
    found = {}
    for resource in ("ec2", "emr"):
        for doc in config.documents if config else ():
            section = doc.data.get("bootstrap") if isinstance(doc.data, dict) else None
            if isinstance(section, dict) and section.get(resource):
                found[resource] = (doc, section[resource])
                break
    return found
