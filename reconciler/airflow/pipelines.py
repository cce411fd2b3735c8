"""The DAG of a pipeline compiled from a manifest: its id in its environment and its file,
with the environment's Airflow settings. What ``export`` writes and what an Airflow
environment is reconciled to are the same translation."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from ..desired.config import AirflowSettings, Settings
from ..desired.definition import CompiledPipeline
from .translate import DagFile, source_of, translate


def dag_id(settings: Settings | None, compiled: CompiledPipeline) -> str:
    """The DAG's id: the pipeline's name in its environment (``staging-users``)."""
    env = settings.environments.get(compiled.environment) if settings else None
    return f"{env.name_prefix if env else ''}{compiled.aws_name}"


def airflow_settings(settings: Settings | None, environment: str | None) -> AirflowSettings:
    env = settings.environments.get(environment or "") if settings else None
    return env.airflow if env else AirflowSettings()


def translate_pipeline(settings: Settings | None, compiled: CompiledPipeline, *,
                       sql_dialect: str = "redshift", best_effort: bool = False,
                       start: datetime | None = None) -> DagFile:
    """The DAG file of a compiled pipeline (starting at ``start``, where given, instead of
    its schedule's start); raises TranslationError."""
    source = source_of(compiled, dag_id(settings, compiled))
    if start is not None:
        source = dataclasses.replace(source, start=start)
    return translate(source,
                     airflow_settings(settings, compiled.environment),
                     sql_dialect=sql_dialect, best_effort=best_effort)
