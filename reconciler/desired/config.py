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
import graphlib
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInputError, Location, Problem
from ..snapshot import Snapshot
from .schemas import validate_document, validator
from .yamldoc import YamlDocument, load_yaml

SETTINGS_FILE = "reconciler.yaml"
DEFAULT_MAX_SQL_BYTES = 64 * 1024
SECRET_KEYS = ("PASSWORD",)
SECTIONS = frozenset({"etl", "ec2", "emr", "mysql", "redshift", "postgres", "database",
                      "bootstrap", "teardown", "custom_steps", "logging"})
# Dataduct keys that have no effect here, and why: reported as warnings, never silently
# ignored. (Keys that do have an effect are read where they are used.)
NO_EFFECT = {
    ("etl", "DP_INSTANCE_LOG_PATH"): "run history is archived under the pipeline's log URI "
                                     "(<pipelineLogUri>/archive/) before a pipeline is deleted",
    ("etl", "DP_QA_TESTS_LOG_PATH"): "QA results go under etl.QA_LOG_PATH (log_to_s3 on a QA "
                                     "step)",
    ("emr", "HADOOP_VERSION"): "the EmrCluster object has no such field; choose versions with "
                               "emr_cluster_config.release_label and applications",
    ("emr", "HIVE_VERSION"): "the EmrCluster object has no such field; add hive to "
                             "emr_cluster_config.applications",
    ("emr", "PIG_VERSION"): "the EmrCluster object has no such field; add pig to "
                            "emr_cluster_config.applications",
}


# definitions of in-sync pipelines read on each full read (the controller's resync, a plan),
# in turn, to notice changes made outside git: on by default, as Argo CD and Flux detect
# drift out of the box; at 1,000 pipelines and a 60 s interval every one is read in 3.3 hours
DRIFT_CHECKS_PER_PASS = 5


@dataclass(frozen=True)
class Policy:
    """What the controller may do in an environment (enforced by the plan stage)."""

    prune: bool = False
    allow_replace: bool = False
    allow_empty: bool = False
    max_delete_percent: float = 30.0
    promote_from: str | None = None
    drift_checks_per_pass: int = DRIFT_CHECKS_PER_PASS
    self_heal: bool = False


@dataclass(frozen=True)
class AirflowSettings:
    """``airflow:`` in ``reconciler.yaml``: how an environment's DAGs reach their databases
    and AWS (Airflow connection ids; a database object without an entry in ``connections``
    uses its id in snake case, ``RedshiftDatabase`` -> ``redshift_database``) and, for
    ``target: airflow``, where its DAG files go and how its Airflow is reached."""

    aws_conn_id: str = "aws_default"
    connections: tuple[tuple[str, str], ...] = ()
    # target: airflow: the DAG folder (s3://BUCKET/PREFIX) and the REST API
    dags: str | None = None
    api_url: str | None = None
    api_token_env: str | None = None
    mwaa: str | None = None  # an MWAA environment's name: the API through InvokeRestApi
    parse_timeout: int = 300

    def conn_id(self, database_id: str) -> str:
        for object_id, conn in self.connections:
            if object_id == database_id:
                return conn
        return snake_case(database_id)


def snake_case(name: str) -> str:
    """``MysqlDatabase_maestro_userDb`` -> ``mysql_database_maestro_user_db``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_")


@dataclass(frozen=True)
class Environment:
    name: str
    config_path: str
    mode: str | None = None
    region: str | None = None
    role_arn: str | None = None
    endpoint_url: str | None = None
    name_prefix: str = ""
    policy: Policy = field(default_factory=Policy)
    airflow: AirflowSettings = field(default_factory=AirflowSettings)
    target: str = "datapipeline"  # or "airflow"


# ``endpoint_url: embedded``: the built-in service, started in the process that needs it
EMBEDDED = "embedded"
# ``target:``: what runs an environment's pipelines
DATAPIPELINE, AIRFLOW = "datapipeline", "airflow"


@dataclass(frozen=True)
class Settings:
    """The parsed ``reconciler.yaml``."""

    environments: dict[str, Environment]
    defaults_path: str = "config/defaults.yaml"
    pipelines_dir: str = "pipelines"
    templates_dir: str = "steps"
    tables_dir: str = "tables"
    max_objects: int = 100
    max_sql_bytes: int = DEFAULT_MAX_SQL_BYTES
    installation: str = "default"
    document: YamlDocument | None = None


def load_document(snapshot: Snapshot, path: str, problems: list[Problem]) -> YamlDocument | None:
    """Load one YAML file of the snapshot; record a located problem instead of raising."""
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
    environments = {name: _environment(name, env) for name, env in data["environments"].items()}
    bad = _promotion_problems(doc, environments) + _target_problems(doc, environments)
    problems.extend(bad)
    if bad:
        return None
    return Settings(
        environments=environments,
        defaults_path=data.get("defaults", "config/defaults.yaml"),
        pipelines_dir=data.get("pipelines", "pipelines").rstrip("/"),
        templates_dir=data.get("step_templates", "steps").rstrip("/"),
        tables_dir=data.get("tables", "tables").rstrip("/"),
        max_objects=data.get("limits", {}).get("max_objects_per_pipeline", 100),
        max_sql_bytes=data.get("limits", {}).get("max_sql_bytes", DEFAULT_MAX_SQL_BYTES),
        installation=data.get("installation", "default"),
        document=doc,
    )


def _environment(name: str, env: dict[str, Any]) -> Environment:
    policy = env.get("policy", {})
    return Environment(
        name=name,
        config_path=env["config"],
        mode=env.get("mode"),
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
            drift_checks_per_pass=policy.get("drift_checks_per_pass", DRIFT_CHECKS_PER_PASS),
            self_heal=policy.get("self_heal", False),
        ),
        airflow=_airflow(env.get("airflow", {})),
        target=env.get("target", DATAPIPELINE),
    )


def _airflow(block: dict[str, Any]) -> AirflowSettings:
    api = block.get("api", {})
    return AirflowSettings(
        aws_conn_id=block.get("aws_conn_id", "aws_default"),
        connections=tuple(sorted(block.get("connections", {}).items())),
        dags=block.get("dags"), api_url=api.get("url"), api_token_env=api.get("token_env"),
        mwaa=api.get("mwaa"), parse_timeout=block.get("parse_timeout", 300))


def _target_problems(doc: YamlDocument, environments: dict[str, Environment]
                     ) -> list[Problem]:
    """An Airflow environment needs its DAG folder and its API."""
    problems = []
    for name, env in environments.items():
        if env.target != AIRFLOW:
            continue
        path = ("environments", name, "target")
        for key, value, example in (("dags", env.airflow.dags, "dags: s3://BUCKET/dags"),
                                    ("api", env.airflow.api_url or env.airflow.mwaa,
                                     "api: {mwaa: NAME} or api: {url: URL, token_env: VAR}")):
            if not value:
                problems.append(Problem(doc.locate(path), f"environment '{name}' has target: "
                                        f"airflow but no airflow.{key}", path,
                                        hint=f"add under airflow: {example}", code="required"))
    return problems


def _promotion_problems(doc: YamlDocument, environments: dict[str, Environment]
                        ) -> list[Problem]:
    """promote_from must name another environment, and promotions must not form a cycle
    (staging waiting for prod waiting for staging would never apply anything)."""
    problems = []
    graph: dict[str, set[str]] = {}
    for name, env in environments.items():
        source = env.policy.promote_from
        if source is None:
            graph[name] = set()
            continue
        path = ("environments", name, "policy", "promote_from")
        if source not in environments:
            problems.append(Problem(doc.locate(path), f"promote_from names unknown environment "
                                    f"'{source}'", path, hint=f"environments: "
                                    f"{', '.join(environments)}", code="reference"))
        elif source == name:
            problems.append(Problem(doc.locate(path), f"environment '{name}' promotes from "
                                    "itself", path, code="reference"))
        graph[name] = {source} & set(environments) - {name}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])
        first = cycle[0]
        path = ("environments", first, "policy", "promote_from")
        problems.append(Problem(doc.locate(path), "promote_from forms a cycle: "
                                + " <- ".join(cycle), path,
                                hint="one environment of the cycle must not promote from "
                                     "another", code="reference"))
    return problems


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
                found = (isinstance(node, dict) and part in node) or (
                    isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))
                if found:
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
    """Defaults deep-merged with the environment's file (then with the environment's Dataduct
    mode, when it names one), all schema-checked."""
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
                _check_no_effect(doc, local)
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
    modes = {k: merged.pop(k) for k in list(merged) if k not in SECTIONS}
    if env.mode is not None:
        if env.mode not in modes:
            where = (settings.document.locate(("environments", env.name, "mode"))
                     if settings.document else Location(SETTINGS_FILE))
            problems.append(Problem(where, f"mode '{env.mode}' is not a block of "
                                    f"{env.config_path} or {settings.defaults_path}",
                                    ("environments", env.name, "mode"),
                                    hint=f"add {env.mode}: {{etl: {{...}}}} to the config, or "
                                         "remove mode", code="config"))
            return None
        merged = deep_merge(merged, modes[env.mode])
    config = EnvConfig(environment=env.name, data=merged, documents=tuple(docs))
    region = config.get("etl", "REGION")
    if region and env.region and region != env.region:
        problems.append(Problem(config.locate("etl", "REGION"), f"etl.REGION is {region}, but "
                                f"{env.name} runs in {env.region} (reconciler.yaml)",
                                ("etl", "REGION"), severity="warning", code="config",
                                hint="the region comes from reconciler.yaml; remove etl.REGION "
                                     "or make them agree"))
    return config


def mode_blocks(doc: YamlDocument) -> list[str]:
    """The Dataduct modes a config file declares (top-level blocks that are not sections)."""
    data = doc.data if isinstance(doc.data, dict) else {}
    return [k for k, v in data.items() if k not in SECTIONS and isinstance(v, dict)]


def _check_no_effect(doc: YamlDocument, problems: list[Problem]) -> None:
    """Warn about Dataduct keys that do nothing here, saying what does the job instead."""
    data = doc.data
    for (section, key), why in NO_EFFECT.items():
        value = data.get(section, {}).get(key) if isinstance(data.get(section), dict) else None
        if value is not None:
            problems.append(Problem(doc.locate((section, key)), f"{section}.{key} has no "
                                    "effect", (section, key), hint=why, severity="warning",
                                    code="config"))
    if "logging" in data:
        problems.append(Problem(doc.locate(("logging",)), "the logging section has no effect",
                                ("logging",), severity="warning", code="config",
                                hint="the controller logs JSON lines to its standard output"))
