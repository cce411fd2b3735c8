"""Repository settings (``reconciler.yaml``) and the shared config of each environment.

The shared config takes Dataduct's sections and keys as they are (``etl``, ``ec2``, ``emr``,
``mysql``, ``redshift``, ``postgres``, ``database``, ``bootstrap``). An environment's file is
deep-merged over ``config/defaults.yaml``: nested mappings merge key by key, everything else
(lists included) is replaced.

Secrets are never values in the repository. A ``PASSWORD`` is a reference,
``{from_env: NAME}`` or ``{from_file: PATH}``, resolved by the apply stage; a password written
as a plain value is refused without being echoed anywhere.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ..errors import Location, Problem
from ..snapshot import Snapshot
from .schemas import validate_document, validator
from .yamldoc import YamlDocument, load_yaml

SETTINGS_FILE = "reconciler.yaml"
SECRET_KEYS = ("PASSWORD",)


@dataclass(frozen=True)
class Policy:
    """What the controller may do in an environment (enforced by the plan stage)."""

    prune: bool = False
    allow_replace: bool = False
    allow_empty: bool = False
    max_delete_percent: float = 30.0
    promote_from: str | None = None
    drift_checks_per_pass: int = 0


@dataclass(frozen=True)
class Environment:
    name: str
    config_path: str
    region: str | None = None
    role_arn: str | None = None
    endpoint_url: str | None = None
    name_prefix: str = ""
    policy: Policy = field(default_factory=Policy)


@dataclass(frozen=True)
class Settings:
    """The parsed ``reconciler.yaml``."""

    environments: dict[str, Environment]
    defaults_path: str = "config/defaults.yaml"
    pipelines_dir: str = "pipelines"
    templates_dir: str = "steps"
    max_objects: int = 100
    installation: str = "default"
    document: YamlDocument | None = None


def load_document(snapshot: Snapshot, path: str, problems: list[Problem]) -> YamlDocument | None:
    """Load one YAML file of the snapshot; record a located problem instead of raising."""
    from ..errors import InvalidInputError

    if path in snapshot.rejected:
        problems.append(Problem(Location(path), snapshot.rejected[path], code="file"))
        return None
    if path not in snapshot.files:
        problems.append(Problem(Location(path), "file not found",
                                hint="create it or fix the path that names it", code="file"))
        return None
    try:
        return load_yaml(snapshot.files[path], path)
    except InvalidInputError as exc:
        problems.extend(exc.problems)
        return None


def load_settings(snapshot: Snapshot, problems: list[Problem]) -> Settings | None:
    doc = load_document(snapshot, SETTINGS_FILE, problems)
    if doc is None:
        return None
    found = validate_document(validator("reconciler"), doc)
    problems.extend(found)
    if found:
        return None
    data = doc.data
    environments = {}
    for name, env in data["environments"].items():
        policy = env.get("policy", {})
        environments[name] = Environment(
            name=name,
            config_path=env["config"],
            region=env.get("region"),
            role_arn=env.get("role_arn"),
            endpoint_url=env.get("endpoint_url"),
            name_prefix=env.get("name_prefix", ""),
            policy=Policy(
                prune=policy.get("prune", False),
                allow_replace=policy.get("allow_replace", name == "staging"),
                allow_empty=policy.get("allow_empty", False),
                max_delete_percent=float(policy.get("max_delete_percent", 30)),
                promote_from=policy.get("promote_from"),
                drift_checks_per_pass=policy.get("drift_checks_per_pass", 0),
            ),
        )
        if env.get("policy", {}).get("promote_from") not in (None, *data["environments"]):
            problems.append(Problem(doc.locate(("environments", name, "policy", "promote_from")),
                                    f"promote_from names unknown environment "
                                    f"'{policy['promote_from']}'", code="reference"))
    return Settings(
        environments=environments,
        defaults_path=data.get("defaults", "config/defaults.yaml"),
        pipelines_dir=data.get("pipelines", "pipelines").rstrip("/"),
        templates_dir=data.get("step_templates", "steps").rstrip("/"),
        max_objects=data.get("limits", {}).get("max_objects_per_pipeline", 100),
        installation=data.get("installation", "default"),
        document=doc,
    )


@dataclass(frozen=True)
class EnvConfig:
    """The merged config of one environment, and where each value came from."""

    environment: str
    data: dict[str, Any]
    documents: tuple[YamlDocument, ...]  # most specific first

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name)
        return value if isinstance(value, dict) else {}

    def get(self, section: str, key: str, default: Any = None) -> Any:
        value = self.section(section).get(key)
        return default if value is None else value

    def locate(self, *path: str | int) -> Location:
        for doc in self.documents:
            node: Any = doc.data
            for part in path:
                if isinstance(node, dict) and part in node:
                    node = node[part]
                else:
                    break
            else:
                return doc.locate(path)
        return self.documents[-1].locate(()) if self.documents else Location("config")


def deep_merge(base: Any, override: Any) -> Any:
    """Mappings merge key by key; any other value in ``override`` replaces the base value."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base.get(key), value) if key in base else value
        return merged
    return override


def _check_secrets(doc: YamlDocument, problems: list[Problem]) -> None:
    """Refuse passwords written as values; replace them so nothing downstream echoes them."""

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, dict):
            for key, value in list(node.items()):
                if key in SECRET_KEYS and not isinstance(value, dict):
                    problems.append(Problem(
                        doc.locate((*path, key)),
                        f"{key} is written in the repository",
                        (*path, key),
                        hint=f"remove it from git history and write {key}: {{from_env: NAME}} "
                             f"or {key}: {{from_file: /path/in/the/container}}",
                        code="secret",
                    ))
                    node[key] = {"from_env": "REDACTED"}
                else:
                    walk(value, (*path, key))

    walk(doc.data, ())


def _check_code_hooks(doc: YamlDocument, problems: list[Problem]) -> None:
    """Dataduct's config can point at Python to import; the controller never runs it."""
    if "custom_steps" in doc.data:
        problems.append(Problem(
            doc.locate(("custom_steps",)),
            "custom_steps would run Python from the repository, which the controller never does",
            ("custom_steps",),
            hint="declare each custom step as a template in steps/<step-type>.yaml (see "
                 "docs/language.md) or install it as a step plugin", code="security"))
    etl = doc.data.get("etl") if isinstance(doc.data.get("etl"), dict) else {}
    for key in ("CUSTOM_STEPS_PATH", "HOOKS_BASE_PATH", "RESOURCE_BASE_PATH"):
        if key in etl:
            problems.append(Problem(doc.locate(("etl", key)), f"etl.{key} is ignored",
                                    ("etl", key), severity="warning", code="config",
                                    hint="paths are relative to the repository root; custom "
                                         "steps are templates or plugins, hooks are not run"))


def load_env_config(
    snapshot: Snapshot, settings: Settings, env: Environment, problems: list[Problem],
    cache: dict[str, YamlDocument | None] | None = None,
) -> EnvConfig | None:
    """Defaults deep-merged with the environment's file, both schema-checked."""
    cache = {} if cache is None else cache
    docs: list[YamlDocument] = []
    ok = True
    for path in (env.config_path, settings.defaults_path):
        if path not in cache:
            local: list[Problem] = []
            doc = load_document(snapshot, path, local)
            if doc is not None:
                _check_secrets(doc, local)
                local.extend(validate_document(validator("config"), doc))
                if not isinstance(doc.data, dict):
                    doc.data = {}
                _check_code_hooks(doc, local)
            cache[path] = doc
            problems.extend(local)
            if any(p.severity == "error" for p in local):
                cache[path] = None
        doc = cache[path]
        if doc is None:
            ok = False
        else:
            docs.append(doc)
    if not ok:
        return None
    merged: dict[str, Any] = {}
    for doc in reversed(docs):
        merged = deep_merge(merged, copy.deepcopy(doc.data or {}))
    return EnvConfig(environment=env.name, data=merged, documents=tuple(docs))
