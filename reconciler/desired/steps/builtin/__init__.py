"""Dataduct's 22 built-in step types, compiled to native Data Pipeline objects.

Each class says what its step is made of; the shared wiring (inputs, outputs, dependencies,
resource, retries, alarm) comes from :class:`~reconciler.desired.steps.context.StepContext`.
SQL steps generate their statements with sqlglot's builders from table definitions
(``reconciler.desired.sql``); SQL a person wrote is parsed where the step reads it, its errors
located in their file or YAML line. Every value put into a shell command is quoted, so
``shlex.split`` of a command gives exactly the intended arguments.

The checks that compare two databases (count-check, column-check), primary-key-check with
``log_to_s3``, and pipeline-dependencies run the QA runner (``reconciler.qa``): Data Pipeline
has no native object that compares two databases or waits for another pipeline. The
activity installs the runner on its resource from the artifacts bucket when that version is
not there yet (or runs the config's ``etl.QA_RUNNER`` instead).
"""

from __future__ import annotations

from functools import cache

from .checks import ColumnCheck, CountCheck, PipelineDependencies, PrimaryKeyCheck
from .common import BuiltinStep
from .extract import ExtractLocal, ExtractPostgres, ExtractRds, ExtractRedshift, ExtractS3
from .load import (
    CreateLoadRedshift,
    DeltaLoad,
    LoadPostgres,
    LoadRedshift,
    LoadReloadPk,
    Reload,
    Upsert,
)
from .sql import CreateUpdateSql, SqlCommand
from .transform import EmrStep, EmrStreaming, QaTransform, Transform

BUILTIN_STEPS: tuple[type[BuiltinStep], ...] = (
    ExtractS3, ExtractLocal, ExtractRds, ExtractRedshift, ExtractPostgres, Transform,
    QaTransform, SqlCommand, EmrStreaming, EmrStep, LoadRedshift, LoadPostgres,
    CreateLoadRedshift, LoadReloadPk, Upsert, Reload, DeltaLoad, CreateUpdateSql,
    PrimaryKeyCheck, CountCheck, ColumnCheck, PipelineDependencies,
)


@cache
def builtin_steps() -> dict[str, BuiltinStep]:
    return {cls.step_type: cls() for cls in BUILTIN_STEPS}
