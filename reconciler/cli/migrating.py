"""The way off AWS Data Pipeline: ``export --target airflow`` writes each pipeline as an
Apache Airflow DAG file (with the files its tasks need beside it), from the manifests, from
a definition file or from a live pipeline. ``render --target airflow`` and ``validate
--target airflow`` (in ``authoring``) use the same translation."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from ..airflow import DagFile, Source, TranslationError, translate
from ..airflow.pipelines import airflow_settings, translate_pipeline
from ..desired.definition import (
    QA_RUNNER_PATH,
    CompiledPipeline,
    objects_from_document,
)
from ..desired.project import ProjectResult
from ..errors import Location, Problem
from .common import (
    EXIT_INVALID,
    EXIT_OK,
    CliError,
    compile_repository,
    display_path,
    main,
    print_problems,
    start_date_option,
)

F = TypeVar("F", bound=Callable[..., Any])


def target_option(name: str = "target") -> Callable[[F], F]:
    """``--target``: the service a pipeline is written for (``name``: the parameter)."""
    return click.option(
        "--target", name, type=click.Choice(["datapipeline", "airflow"]),
        default="datapipeline", show_default=True,
        help="airflow: translate to an Apache Airflow 3 DAG (docs/airflow.md).")


sql_dialect_option = click.option(
    "--sql-dialect", type=click.Choice(["redshift", "postgres"]), default="redshift",
    show_default=True, help="postgres: SQL transpiled for a PostgreSQL standing in for "
                            "Redshift, to try a DAG locally (as run-step does).")
best_effort_option = click.option(
    "--best-effort", is_flag=True,
    help="Write what cannot be translated as tasks that fail when run, listed in the "
         "summary and the DAG's docstring, instead of refusing the pipeline.")


@dataclass(frozen=True)
class Options:
    sql_dialect: str = "redshift"
    best_effort: bool = False


def refusal_problems(compiled: CompiledPipeline, error: TranslationError) -> list[Problem]:
    """The refusals as problems at the manifest's file:line, for printing with the rest."""
    return [Problem(r.location or Location(compiled.manifest),
                    f"{r.object_id}{'.' + r.field if r.field else ''} does not translate to "
                    f"Airflow: {r.message}", hint="see docs/airflow.md, or use --best-effort",
                    environments=(compiled.environment,))
            for r in error.refusals]


def translate_compiled(result: ProjectResult, compiled: CompiledPipeline, options: Options
                       ) -> DagFile:
    return translate_pipeline(result.settings, compiled, sql_dialect=options.sql_dialect,
                              best_effort=options.best_effort)


def translation_problems(result: ProjectResult, options: Options
                         ) -> tuple[list[Problem], set[tuple[str, str]]]:
    """What would not translate, for ``validate --target airflow``: the problems (one per
    place and message, naming the environments it holds in when not all), and the builds
    (manifest, environment) that were refused."""
    merged: dict[tuple[Any, str], Problem] = {}
    refused: set[tuple[str, str]] = set()
    for compiled in result.compiled():
        try:
            translate_compiled(result, compiled, options)
        except TranslationError as error:
            refused.add((compiled.manifest, compiled.environment))
            for problem in refusal_problems(compiled, error):
                key = (problem.location, problem.message)
                known = merged.get(key)
                merged[key] = problem if known is None else replace(
                    known, environments=(*known.environments, *problem.environments))
    everywhere = set(result.settings.environments) if result.settings else set()
    problems = [replace(p, environments=()) if set(p.environments) == everywhere else p
                for p in merged.values()]
    return problems, refused


def write_dag(out: Path, dag: DagFile, files: Mapping[str, bytes]) -> None:
    """The DAG file and the files beside it; the .airflowignore keeps Airflow from
    parsing those files as DAGs."""
    (out / dag.filename).write_text(dag.text, encoding="utf-8")
    for copy in dag.files:
        if copy.source not in files:
            raise CliError(f"{dag.dag_id} needs {copy.source}, which is not in the "
                           "repository")
        target = out / copy.target
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[copy.source])
    ignore = out / ".airflowignore"
    lines = ignore.read_text().splitlines() if ignore.exists() else []
    folder = f"{dag.dag_id}/"
    if dag.files and folder not in lines:
        ignore.write_text("\n".join(sorted([*lines, folder])) + "\n")


def repository_files(root: Path, result: ProjectResult) -> dict[str, bytes]:
    """The repository's files the translated tasks may need, and the QA runner's wheel."""
    from ..qa.bundle import qa_runner, runner_wheel

    needed = {a.path for c in result.compiled() for a in c.artifacts}
    files = {path: (root / path).read_bytes() for path in needed
             if not path.startswith(QA_RUNNER_PATH)}
    if any(p.startswith(QA_RUNNER_PATH) for p in needed):
        files[qa_runner().artifact_path] = runner_wheel().content
    return files


def _definition_source(path: str, dag: str | None) -> Source:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        objects, values = objects_from_document(doc)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise CliError(f"{path}: not a pipeline definition: {detail}") from None
    name = dag or (doc.get("name") if isinstance(doc.get("name"), str) else None) or \
        Path(path).stem
    return Source(name, objects, values, doc.get("description"), path)


def _live_source(root: Path, result: ProjectResult, pipeline_id: str, environment: str,
                 dag: str | None) -> Source:
    import os

    from ..engine import connect_environment

    settings = result.settings
    if settings is None or environment not in settings.environments:
        raise CliError(f"--env {environment}: no such environment in reconciler.yaml")
    aws = connect_environment(settings.environments[environment], settings.installation,
                              os.environ)
    live = aws.read_definition(pipeline_id)
    if live is None:
        raise CliError(f"{pipeline_id} is not a pipeline in {environment}")
    objects, values = objects_from_document({
        "pipelineObjects": list(live.objects), "parameterObjects": list(live.parameters),
        "parameterValues": list(live.values)})
    return Source(dag or pipeline_id, objects, values, None, f"{pipeline_id} ({environment})")


@main.command("export")
@click.argument("root", default=".", type=click.Path(exists=True, file_okay=False))
@click.option("--env", "environment", required=True, help="Environment to translate for.")
@click.option("--target", type=click.Choice(["airflow"]), default="airflow", show_default=True,
              help="What to write: Apache Airflow 3 DAG files (docs/airflow.md).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder to write the DAG files to (a DAG folder, or MWAA's dags/ prefix "
                   "synced from it).")
@click.option("--pipeline", "pipelines", multiple=True,
              help="Only this pipeline (its name; repeatable).")
@click.option("--definition", "definition", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Translate this definition JSON (the console's or the API's "
                                 "form) instead of the manifests.")
@click.option("--pipeline-id", default=None,
              help="Translate this live pipeline of --env (GetPipelineDefinition) instead.")
@click.option("--dag-id", default=None, help="The DAG's id, with --definition or "
                                             "--pipeline-id (default: its name or id).")
@sql_dialect_option
@best_effort_option
@start_date_option
def export(root: str, environment: str, target: str, out: str, pipelines: tuple[str, ...],
           definition: str | None, pipeline_id: str | None, dag_id: str | None,
           sql_dialect: str, best_effort: bool, start_date: datetime | None) -> None:
    """Write every pipeline of ROOT, compiled for --env, as an Airflow DAG file in --out.

    Each DAG is one file named after the pipeline in its environment (staging-users.py),
    with the files its tasks read under a folder of its own (staging-users/SHA/...). The
    databases are Airflow connections named in reconciler.yaml (environments.ENV.airflow);
    the summary lists the connections each DAG needs and what was refused, and why.

    \b
    Examples:
      reconciler export manifests --env staging --target airflow --out dags/
      reconciler export --env prod --target airflow --out dags/ \\
          --definition exported-from-console.json
      reconciler export manifests --env prod --target airflow --out dags/ \\
          --pipeline-id df-0123456789ABC

    Exit status: 0 when every pipeline translated, 1 when one was refused (the others are
    written).
    """
    if definition and pipeline_id:
        raise click.UsageError("give --definition or --pipeline-id, not both")
    options = Options(sql_dialect, best_effort)
    destination = Path(out)
    destination.mkdir(parents=True, exist_ok=True)
    if definition or pipeline_id:
        if definition:
            source, settings = _definition_source(definition, dag_id), None
            try:
                base, result = compile_repository(root, None, [environment], [])
                settings = result.settings
            except CliError:
                pass
        else:
            base, result = compile_repository(root, None, [environment], [])
            source = _live_source(base, result, pipeline_id or "", environment, dag_id)
            settings = result.settings
        moment = start_date or datetime.now(UTC).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
        source = replace(source, activated=moment.replace(tzinfo=UTC))
        try:
            dag = translate(source, airflow_settings(settings, environment),
                            sql_dialect=sql_dialect, best_effort=best_effort)
        except TranslationError as error:
            for refusal in error.refusals:
                click.secho(f"{source.origin}: {refusal.format()}", fg="red", err=True)
            raise CliError(f"{source.origin} does not translate ({len(error.refusals)} "
                           "refusal(s)); see docs/airflow.md, or use --best-effort") from None
        write_dag(destination, dag, {})
        _summary([dag], [], destination)
        return
    base, result = compile_repository(root, start_date.date() if start_date else None,
                                      [environment], None)
    print_problems(base, result.all_problems())
    compiled = [c for c in result.compiled(environment)
                if not pipelines or c.name in pipelines]
    unknown = set(pipelines) - {c.name for c in result.compiled(environment)}
    if unknown:
        raise CliError(f"no pipeline named {', '.join(sorted(unknown))} in {environment}")
    files = repository_files(base, result)
    written, refused = [], []
    for pipeline in compiled:
        try:
            dag = translate_compiled(result, pipeline, options)
        except TranslationError as error:
            refused.append(pipeline)
            print_problems(base, refusal_problems(pipeline, error))
            continue
        write_dag(destination, dag, files)
        written.append(dag)
    _summary(written, [display_path(base, c.manifest) for c in refused], destination)
    failed = [r.manifest for r in result.pipelines if r.environment == environment and
              not r.ok and (not pipelines or r.name in pipelines)]
    sys.exit(EXIT_INVALID if refused or failed else EXIT_OK)


def _summary(written: list[DagFile], refused: list[str], out: Path) -> None:
    for dag in written:
        needs = f" (connections: {', '.join(dag.connections)})" if dag.connections else ""
        todo = f", {len(dag.refusals)} TODO task(s)" if dag.refusals else ""
        click.echo(f"{out / dag.filename}: {len(dag.tasks)} task(s){todo}{needs}")
        for refusal in dag.refusals:
            click.secho(f"  TODO {refusal.format()}", fg="yellow")
    for manifest in refused:
        click.secho(f"{manifest}: refused (see above)", fg="red")
    colour = "red" if refused else "green"
    click.secho(f"{len(written)} DAG(s) written to {out}, {len(refused)} refused",
                fg=colour, err=bool(refused))


def render_airflow(result: ProjectResult, compiled: CompiledPipeline, base: Path,
                   options: Options) -> str:
    """The DAG file of one compiled pipeline (``render --target airflow``)."""
    try:
        return translate_compiled(result, compiled, options).text
    except TranslationError as error:
        print_problems(base, refusal_problems(compiled, error))
        sys.exit(EXIT_INVALID)
