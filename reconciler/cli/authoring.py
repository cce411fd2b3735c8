"""The commands for writing manifests: validate, render, graph, and one step's SQL shown
(sql) or run on local databases (run-step, qa)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from ..desired.definition import CompiledPipeline, to_json
from ..desired.graph import pipeline_graph
from ..desired.project import ProjectResult
from ..errors import Problem
from .common import (
    EXIT_INVALID,
    EXIT_OK,
    CliError,
    compile_repository,
    display_path,
    main,
    manifest_of,
    print_problems,
    start_date_option,
)
from .migrating import (
    Options,
    best_effort_option,
    render_airflow,
    sql_dialect_option,
    target_option,
    translation_problems,
)

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
scheduled_time_option = click.option(
    "--scheduled-time", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    default=None, help="The run's @scheduledStartTime, UTC (default: now): the Data Pipeline "
                       "expressions of the SQL are evaluated for it.")


def _compiled(file: str, environment: str | None, start_date: datetime | None = None,
              *, missing: str | None = "") -> CompiledPipeline:
    """The pipeline of the manifest ``file`` compiled for ``environment`` (None: the first);
    its problems printed. Exits 1 when it does not compile, saying so (with ``missing``
    added; None: silently) when the manifest is not deployed there."""
    return _compiled_in(file, environment, start_date, missing=missing)[2]


def _compiled_in(file: str, environment: str | None, start_date: datetime | None = None,
                 *, missing: str | None = "") -> tuple[Path, ProjectResult, CompiledPipeline]:
    """:func:`_compiled`, with the repository's root and the whole compile result."""
    root, manifest = manifest_of(file)
    base, result = compile_repository(str(root), start_date.date() if start_date else None,
                                      [environment] if environment else None, [manifest])
    print_problems(base, result.all_problems())
    compiled = result.compiled(environment)
    if not compiled:
        if missing is not None and not result.errors:
            raise CliError(f"{manifest} is not deployed to {environment}{missing}")
        sys.exit(EXIT_INVALID)
    return base, result, compiled[0]


@main.command()
@click.argument("target", default=".", type=click.Path(exists=True))
@click.option("--env", "environments", multiple=True,
              help="Only this environment (repeatable; default: all).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]),
              default="text", show_default=True, help="json lists problems for machines.")
@target_option("translate_to")
@start_date_option
def validate(target: str, environments: tuple[str, ...], output_format: str,
             translate_to: str, start_date: datetime | None) -> None:
    """Check the manifests repository at TARGET (a directory), or one manifest (a file).

    Loads each file safely, checks it against the JSON Schemas, resolves steps, inputs and
    dependencies, compiles it for every environment and checks the result against the AWS
    Data Pipeline object model and limits. Every problem is listed as file:line:column with
    what to do.

    \b
    Examples:
      reconciler validate manifests/
      reconciler validate manifests/pipelines/users.yaml --env prod
      reconciler validate . --format json     # for CI annotations

    With --target airflow, each build is also translated to an Airflow DAG, and what would
    not translate is an error at its file:line.

    Exit status: 0 when everything is valid, 1 otherwise.
    """
    manifests = None
    if Path(target).is_file():
        root, manifest = manifest_of(target)
        target, manifests = str(root), [manifest]
    base, result = compile_repository(target, start_date.date() if start_date else None,
                                      environments or None, manifests)
    problems = result.all_problems()
    refused: set[tuple[str, str]] = set()
    if translate_to == "airflow":
        untranslatable, refused = translation_problems(result, Options())
        problems = sorted([*problems, *untranslatable], key=Problem.sort_key)
    errors = [p for p in problems if p.severity == "error"]
    if output_format == "json":
        click.echo(json.dumps({
            "valid": not errors,
            "pipelines": [{"manifest": r.manifest, "environment": r.environment,
                           "name": r.name,
                           "valid": r.ok and (r.manifest, r.environment) not in refused,
                           "digest": r.compiled.digest if r.compiled else None}
                          for r in result.pipelines],
            "problems": [p.to_json(display_path(base, p.location.file)) for p in problems],
        }, indent=2))
    else:
        print_problems(base, problems)
        ok = sum(1 for r in result.pipelines
                 if r.ok and (r.manifest, r.environment) not in refused)
        count = len({r.manifest for r in result.pipelines})
        summary = (f"{count} manifest(s), {ok} of {len(result.pipelines)} pipeline "
                   f"build(s) valid, {len(errors)} error(s)")
        click.secho(summary, fg="red" if errors else "green", err=bool(errors))
    sys.exit(EXIT_INVALID if errors else EXIT_OK)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--env", "environment", required=True, help="Environment to compile for.")
@click.option("--format", "output_format", type=click.Choice(["api", "definition"]),
              default="api", show_default=True,
              help="api: PutPipelineDefinition's pipelineObjects/parameterObjects/"
                   "parameterValues; definition: the console's JSON file.")
@target_option()
@sql_dialect_option
@best_effort_option
@start_date_option
def render(file: str, environment: str, output_format: str, target: str, sql_dialect: str,
           best_effort: bool, start_date: datetime | None) -> None:
    """Print the compiled definition of the pipeline in FILE as JSON (--target airflow:
    its Airflow DAG file; `export` writes it with the files its tasks need).

    The repository root is found by walking up from FILE to reconciler.yaml. Secrets are
    listed by where they come from, never by value; "artifacts" lists the repository
    files to upload and their content-addressed S3 keys.

    Exit status: 0 on success, 1 when the pipeline does not compile.
    """
    base, result, compiled = _compiled_in(file, environment, start_date,
                                          missing=" (see its environments key)")
    if target == "airflow":
        click.echo(render_airflow(result, compiled, base, Options(sql_dialect, best_effort)),
                   nl=False)
        return
    click.echo(to_json(compiled.render(output_format)), nl=False)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--env", "environment", default=None,
              help="Environment to compile for (default: the first in reconciler.yaml).")
@click.option("--format", "output_format", type=click.Choice(["dot", "mermaid", "svg"]),
              default="dot", show_default=True)
@click.option("--activities-only", is_flag=True, help="Hide data nodes; keep activity order.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of standard output.")
def graph(file: str, environment: str | None, output_format: str, activities_only: bool,
          output: str | None) -> None:
    """Draw the pipeline in FILE: activities, data nodes, data edges (solid) and
    dependencies (dashed), with implied dependencies removed.

    svg needs Graphviz's dot program (Debian/Ubuntu: apt-get install graphviz).
    """
    dag = pipeline_graph(_compiled(file, environment, missing=None),
                         activities_only=activities_only)
    data: str | bytes
    if output_format == "mermaid":
        data = dag.to_mermaid()
    elif output_format == "dot":
        data = dag.to_graphviz().source
    else:
        import graphviz

        try:
            data = dag.to_graphviz().pipe(format="svg")
        except graphviz.ExecutableNotFound:
            raise CliError("--format svg needs Graphviz's 'dot' program, which is not "
                           "installed; install it (apt-get install graphviz, brew install "
                           "graphviz) or use --format dot or mermaid") from None
    if output:
        Path(output).write_bytes(data.encode() if isinstance(data, str) else data)
    elif isinstance(data, bytes):
        sys.stdout.buffer.write(data)
    else:
        click.echo(data, nl=False)


# -- one step, locally --------------------------------------------------------------------------

@main.command("sql")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("step")
@click.option("--env", "environment", required=True, help="Environment to compile for.")
@click.option("--dialect", type=click.Choice(["redshift", "postgres"]), default="redshift",
              show_default=True, help="postgres: as `run-step` runs it (expressions evaluated, "
                                      "Redshift-only clauses dropped).")
@scheduled_time_option
def sql(file: str, step: str, environment: str, dialect: str,
        scheduled_time: datetime | None) -> None:
    """Print the SQL that STEP of the pipeline in FILE runs, for review in a pull request.

    SQL activities print their whole script; QA activities print the queries they give the
    QA runner. STEP is the step's name (its `name:`, or the one derived from its type).

    \b
    Examples:
      reconciler sql manifests/pipelines/users.yaml upsert_users --env prod
      reconciler sql manifests/pipelines/users.yaml upsert_users --env prod \\
          --dialect postgres --scheduled-time 2026-11-27T12:00:00
    """
    from ..local import step_sql

    compiled = _compiled(file, environment)
    for text in step_sql(compiled, step, dialect, scheduled_time or datetime.now(UTC)):
        click.echo(text)


@main.command("run-step")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("step")
@click.option("--env", "environment", required=True, help="Environment to compile for.")
@click.option("--dsn", default=DEFAULT_DSN, show_default=True,
              help="PostgreSQL standing in for Redshift. No password in it: libpq reads "
                   "PGPASSWORD and ~/.pgpass.")
@click.option("--source-dsn", default=None,
              help="MySQL standing in for the RDS source of count and column checks, e.g. "
                   "mysql://root@127.0.0.1:3306/test (password: DATADUCT_QA_SOURCE_PASSWORD).")
@scheduled_time_option
@click.option("--echo", is_flag=True, help="Print each statement before it runs.")
def run_step(file: str, step: str, environment: str, dsn: str, source_dsn: str | None,
             scheduled_time: datetime | None, echo: bool) -> None:
    """Run STEP of the pipeline in FILE against databases you point at.

    SQL activities run on PostgreSQL: expressions such as
    #{format(@scheduledStartTime,'YYYY-MM-dd')} are evaluated for --scheduled-time, the
    Redshift SQL is transpiled (DISTKEY, SORTKEY, DISTSTYLE and ENCODE are dropped) and run
    statement by statement, its transactions kept. QA activities (primary-key, count, column
    checks) run the QA runner on --dsn and --source-dsn. Steps that copy from S3 or run
    programs are not run locally.

    \b
    Examples:
      reconciler run-step manifests/pipelines/users.yaml upsert_users --env prod \\
          --dsn postgresql://postgres@127.0.0.1:5432/test --scheduled-time 2026-11-27
      reconciler run-step manifests/pipelines/users.yaml count_users --env prod \\
          --dsn postgresql://postgres@127.0.0.1:5432/test \\
          --source-dsn mysql://root@127.0.0.1:3306/test

    Exit status: 0 when every activity succeeded, 1 when one failed (the first failure
    stops the step), 2 when a QA check could not run.
    """
    from ..local import run_step as run_locally

    def report(line: str) -> None:
        if line.startswith("=="):
            click.secho(line, bold=True, err=True)
        else:
            click.secho(line, fg="green", err=True)

    code = run_locally(_compiled(file, environment), step, dsn=dsn,
                       source_dsn=source_dsn, scheduled=scheduled_time or datetime.now(UTC),
                       report=report,
                       echo=(lambda s: click.echo(s + ";", err=True)) if echo
                       else (lambda _: None))
    sys.exit(code)


@main.command("qa", add_help_option=False,
              context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def qa(arguments: tuple[str, ...]) -> None:
    """Run one QA check (what compiled QA steps run): reconciler qa CHECK --help.

    Checks: primary-key, count, column, dependencies. Same as python -m reconciler.qa.
    """
    from ..qa.cli import main as qa_main

    sys.exit(qa_main(list(arguments)))
