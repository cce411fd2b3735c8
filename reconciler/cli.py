"""The ``reconciler`` command line: validate, render and graph a manifests repository.

A thin shell over the stages: it reads the repository (``source``), compiles it
(``desired``) and prints. It is the only place that reads the clock (the schedule's start
date defaults to today, UTC) and the terminal.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import click

from . import __version__
from .desired.compiler import CompileOptions
from .desired.definition import to_json
from .desired.graph import pipeline_graph
from .desired.project import ProjectResult, compile_project
from .errors import InvalidInputError, Problem, ReconcilerError
from .plugins import installed_step_plugins
from .qa.bundle import qa_runner
from .source import find_root, read_snapshot

EXIT_OK, EXIT_INVALID = 0, 1


def _today() -> date:
    return datetime.now(UTC).date()


def _display_path(root: Path, file: str) -> str:
    # normpath, not resolve: a link in the repository is shown as the link, not its target
    absolute = Path(os.path.normpath(root / file)) if not os.path.isabs(file) else Path(file)
    try:
        return os.path.relpath(absolute, Path.cwd())
    except ValueError:  # another drive on Windows
        return str(absolute)


def _print_problems(root: Path, problems: list[Problem]) -> None:
    for problem in problems:
        location = problem.location
        shown = replace(problem, location=replace(location, file=_display_path(root,
                                                                                location.file)))
        colour = "red" if problem.severity == "error" else "yellow"
        click.secho(shown.format(), fg=colour, err=True)


def _compile(path: str, start_date: date | None, environments=None, manifests=None
             ) -> tuple[Path, ProjectResult]:
    root = find_root(path)
    snapshot = read_snapshot(root)
    options = CompileOptions(start_date=start_date or _today(), qa_runner=qa_runner())
    result = compile_project(snapshot, options, plugins=installed_step_plugins(),
                             environments=environments, manifests=manifests)
    return root, result


def _manifest_of(file: str) -> tuple[Path, str]:
    path = Path(file).resolve()
    if not path.is_file():
        raise click.BadParameter(f"{file}: no such file", param_hint="FILE")
    root = find_root(path.parent)
    return root, path.relative_to(root).as_posix()


start_date_option = click.option(
    "--start-date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
    help="Date of the schedule's first run (default: today, UTC). load_time gives the hour.")


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ReconcilerError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(EXIT_INVALID)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
def main() -> None:
    """GitOps for AWS Data Pipeline: Dataduct YAML manifests in git, pipelines in AWS.

    \b
    A manifests repository has reconciler.yaml at its root, config/ (shared config,
    per-environment overrides), pipelines/ (one Dataduct pipeline per file), tables/ and
    the files steps reference. Start with:
      reconciler validate manifests/
      reconciler render manifests/pipelines/users.yaml --env staging
      reconciler graph manifests/pipelines/users.yaml --format mermaid
    """


@main.command()
@click.argument("target", default=".", type=click.Path(exists=True))
@click.option("--env", "environments", multiple=True,
              help="Only this environment (repeatable; default: all).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]),
              default="text", show_default=True, help="json lists problems for machines.")
@start_date_option
def validate(target: str, environments: tuple[str, ...], output_format: str,
             start_date: datetime | None) -> None:
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

    Exit status: 0 when everything is valid, 1 otherwise.
    """
    manifests = None
    if Path(target).is_file():
        root, manifest = _manifest_of(target)
        target, manifests = str(root), [manifest]
    base, result = _compile(target, start_date.date() if start_date else None,
                            environments or None, manifests)
    problems = result.all_problems()
    errors = [p for p in problems if p.severity == "error"]
    if output_format == "json":
        click.echo(json.dumps({
            "valid": not errors,
            "pipelines": [{"manifest": r.manifest, "environment": r.environment,
                           "name": r.name, "valid": r.ok,
                           "digest": r.compiled.digest if r.compiled else None}
                          for r in result.pipelines],
            "problems": [{"file": _display_path(base, p.location.file), "line": p.location.line,
                          "column": p.location.column, "severity": p.severity,
                          "message": p.message, "hint": p.hint, "code": p.code}
                         for p in problems],
        }, indent=2))
    else:
        _print_problems(base, problems)
        ok = sum(1 for r in result.pipelines if r.ok)
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
@start_date_option
def render(file: str, environment: str, output_format: str, start_date: datetime | None
           ) -> None:
    """Print the compiled definition of the pipeline in FILE as JSON.

    The repository root is found by walking up from FILE to reconciler.yaml. Secrets are
    listed by where they come from, never by value; "artifacts" lists the repository
    files to upload and their content-addressed S3 keys.

    Exit status: 0 on success, 1 when the pipeline does not compile.
    """
    root, manifest = _manifest_of(file)
    base, result = _compile(str(root), start_date.date() if start_date else None,
                            [environment], [manifest])
    _print_problems(base, result.all_problems())
    compiled = result.compiled(environment)
    if not compiled:
        if not result.errors:
            click.secho(f"{manifest} is not deployed to {environment} (see its environments "
                        "key)", fg="red", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(to_json(compiled[0].render(output_format)), nl=False)


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
    root, manifest = _manifest_of(file)
    snapshot_root, result = _compile(str(root), None,
                                     [environment] if environment else None, [manifest])
    _print_problems(snapshot_root, result.all_problems())
    compiled = result.compiled(environment)
    if not compiled:
        sys.exit(EXIT_INVALID)
    dag = pipeline_graph(compiled[0], activities_only=activities_only)
    if output_format == "mermaid":
        data: str | bytes = dag.to_mermaid()
    else:
        dot = _graphviz_dot(dag)
        if output_format == "dot":
            data = dot.source
        else:
            import graphviz

            try:
                data = dot.pipe(format="svg")
            except graphviz.ExecutableNotFound:
                click.secho("error: --format svg needs Graphviz's 'dot' program, which is not "
                            "installed; install it (apt-get install graphviz, brew install "
                            "graphviz) or use --format dot or mermaid", fg="red", err=True)
                sys.exit(EXIT_INVALID)
    if output:
        Path(output).write_bytes(data.encode() if isinstance(data, str) else data)
    elif isinstance(data, bytes):
        sys.stdout.buffer.write(data)
    else:
        click.echo(data, nl=False)


# -- one step, locally --------------------------------------------------------------------------

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
scheduled_time_option = click.option(
    "--scheduled-time", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    default=None, help="The run's @scheduledStartTime, UTC (default: now): the Data Pipeline "
                       "expressions of the SQL are evaluated for it.")


def _compiled_step(file: str, step: str, environment: str):
    from .local import step_activities

    root, manifest = _manifest_of(file)
    base, result = _compile(str(root), None, [environment], [manifest])
    _print_problems(base, result.all_problems())
    compiled = result.compiled(environment)
    if not compiled:
        if not result.errors:
            click.secho(f"{manifest} is not deployed to {environment}", fg="red", err=True)
        sys.exit(EXIT_INVALID)
    return compiled[0], step_activities(compiled[0], step)


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
    from .local import evaluation
    from .local.steps import postgres_statements

    compiled, activities = _compiled_step(file, step, environment)
    moment = scheduled_time or datetime.now(UTC)
    for activity in activities:
        obj = activity.object
        click.echo(f"-- {obj.id} ({obj.type})")
        if activity.kind == "sql":
            if dialect == "postgres":
                statements = postgres_statements(obj, evaluation(compiled, obj, moment))
                click.echo("\n".join(s + ";" for s in statements))
            else:
                click.echo(obj.get("script") or f"-- script at {obj.get('scriptUri')}")
        elif activity.kind == "qa":
            for argument in obj.get_all("scriptArgument"):
                name, _, value = argument.partition("=")
                if name.endswith("_sql"):
                    click.echo(f"-- {name.lstrip('-')}:\n{value.rstrip(';')};")
        else:
            click.echo("-- (runs no SQL)")
        click.echo()


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
    from .local import LocalRunError, evaluation, qa_invocation, run_sql
    from .local.steps import postgres_statements
    from .qa.cli import main as qa_main

    compiled, activities = _compiled_step(file, step, environment)
    unsupported = [a.id for a in activities if a.kind == "other"]
    if unsupported:
        click.secho(f"error: {step} has activities that do not run locally (they copy from S3 "
                    f"or run programs): {', '.join(unsupported)}", fg="red", err=True)
        sys.exit(EXIT_INVALID)
    moment = scheduled_time or datetime.now(UTC)
    for activity in activities:
        obj = activity.object
        evaluate = evaluation(compiled, obj, moment)
        click.secho(f"== {obj.id} ({obj.type})", bold=True, err=True)
        if activity.kind == "qa":
            code = qa_main(qa_invocation(obj, evaluate, dsn, source_dsn))
            if code:
                sys.exit(code)
            continue
        statements = postgres_statements(obj, evaluate)
        with _postgres(dsn) as connection:
            try:
                run_sql(connection, statements, obj.id,
                        echo=(lambda s: click.echo(s + ";", err=True)) if echo
                        else (lambda _: None))
            except LocalRunError as exc:
                click.secho(f"error: {exc}", fg="red", err=True)
                sys.exit(EXIT_INVALID)
        click.secho(f"   {len(statements)} statement(s) ran", fg="green", err=True)


def _postgres(dsn: str):
    from .qa.databases import POSTGRES, QaError, login_from_url

    try:
        login = login_from_url(dsn, "destination")
        if login.kind != POSTGRES:
            raise QaError("--dsn must be a postgresql:// URL")
        import psycopg
    except QaError as exc:
        raise click.BadParameter(str(exc).replace("--destination_dsn", "--dsn"),
                                 param_hint="--dsn") from None
    except ImportError:
        click.secho("error: run-step needs psycopg: pip install 'dataduct-reconciler[qa]'",
                    fg="red", err=True)
        sys.exit(EXIT_INVALID)
    try:
        return psycopg.connect(host=login.host, port=login.port, dbname=login.database,
                               user=login.user or None, autocommit=True,
                               application_name="reconciler-run-step")
    except psycopg.Error as exc:
        click.secho(f"error: cannot connect to {login.describe()}: {exc}", fg="red", err=True)
        sys.exit(EXIT_INVALID)


@main.command("qa", add_help_option=False,
              context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def qa(arguments: tuple[str, ...]) -> None:
    """Run one QA check (what compiled QA steps run): reconciler qa CHECK --help.

    Checks: primary-key, count, column, dependencies. Same as python -m reconciler.qa.
    """
    from .qa.cli import main as qa_main

    sys.exit(qa_main(list(arguments)))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; keep the loopback address unless you mean to share it.")
@click.option("--port", default=4566, show_default=True, type=int)
@click.option("--state", "state_file", type=click.Path(dir_okay=False), default=None,
              help="Keep pipelines in this file across restarts.")
def emulator(host: str, port: int, state_file: str | None) -> None:
    """Serve the embedded AWS (Data Pipeline, S3, SNS, IAM, STS) on one local endpoint.

    \b
    Point the AWS CLI, boto3 or the reconciler at it:
      export AWS_ENDPOINT_URL=http://127.0.0.1:4566
      export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
      export AWS_DEFAULT_REGION=us-east-1
    The control API under /_reconciler/ moves the simulated clock, sets activity outcomes,
    turns throttling on and injects faults (docs/emulator.md). Ctrl-C stops it.
    """
    try:
        from .emulator.server import DUMMY_CREDENTIALS, EmulatorServer
    except ImportError as exc:
        click.secho("error: the embedded AWS needs the embedded extra (moto): pip install "
                    f"'dataduct-reconciler[embedded]' ({exc})", fg="red", err=True)
        sys.exit(EXIT_INVALID)

    server = EmulatorServer(host, port, state_file)
    try:
        server._prepare()
    except ReconcilerError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(EXIT_INVALID)
    endpoint = server.endpoint
    click.echo(f"Embedded AWS (Data Pipeline, S3, SNS, IAM, STS) on {endpoint}")
    click.echo(f"  export AWS_ENDPOINT_URL={endpoint}")
    click.echo("  export " + " ".join(f"{k}={v}" for k, v in DUMMY_CREDENTIALS.items()))
    click.echo(f"Control API: {endpoint}/_reconciler/ (clock, outcomes, throttling, faults, "
               "calls, reset)")
    if state_file:
        click.echo(f"State: {state_file}")
    click.echo("Ctrl-C stops it.", nl=True)
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.save()


root_argument = click.argument("root", default=".",
                               type=click.Path(exists=True, file_okay=False))
env_option = click.option("--env", "environments", multiple=True,
                          help="Only this environment (repeatable; default: all).")
pipeline_option = click.option("--pipeline", "pipelines", multiple=True, metavar="NAME",
                               help="Only this pipeline (repeatable; default: all). Other "
                                    "pipelines are neither planned nor touched.")
EXIT_CHANGES = 2  # plan: git and AWS differ
EXIT_BLOCKED = 3  # apply, sync: everything applied, but a policy held something back


def _configure_logging(level: int) -> None:
    """JSON lines on stderr (stdout stays for plans and results)."""
    import structlog

    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.JSONRenderer(sort_keys=True)],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False)


def _run(root: str, options, *, confirm=None, lease_wait: float = 0.0,
         lease_seconds: float = 300.0):
    import logging

    from .engine import Events, PassContext, run

    _configure_logging(logging.INFO if options.apply else logging.WARNING)
    base = find_root(root)
    context = PassContext(events=Events(), lease_wait=lease_wait,
                          lease_seconds=lease_seconds, wall_clock=lambda: datetime.now(UTC))
    result = run(base, options, now=datetime.now(UTC), confirm=confirm, context=context)
    _print_problems(base, result.problems)
    if result.embedded_state is not None:
        where = _display_path(Path.cwd(), str(result.embedded_state))
        click.secho(f"embedded AWS: state kept in {where} (delete it to start afresh)",
                    fg="cyan", err=True)
    if result.git.dirty:
        click.secho(f"the checkout has uncommitted changes: revision {result.revision}",
                    fg="yellow", err=True)
    if result.error:
        click.secho(f"error: {result.error}", fg="red", err=True)
    return result


def _plans(result):
    plans = [e.plan for e in result.wanted if e.plan is not None]
    errors = {e.environment: e.error for e in result.wanted if e.error}
    return plans, errors


def _echo_plan_text(result) -> None:
    from .plan.render import as_text

    plans, errors = _plans(result)
    for line in as_text(plans, errors, result.revision).splitlines():
        colour = {"+": "green", "~": "yellow", "-": "red", "!": "magenta", "?": "cyan"}.get(
            line.strip()[:1]) if line.startswith("  ") else None
        click.secho(line, fg=colour if sys.stdout.isatty() else None)


def _echo_results(result) -> None:
    for env in result.wanted:
        for item in env.results:
            colour = "red" if item.failed else "green"
            detail = "; ".join(item.messages)
            click.secho(f"{env.environment}: {item.action.value} {item.pipeline}: "
                        f"{item.outcome} in {item.seconds:.1f}s ({detail})",
                        fg=colour if sys.stdout.isatty() else None)


def _apply_exit(result) -> int:
    """0 every environment converged; 3 a policy held something back; 1 anything failed."""
    if result.failed:
        return EXIT_INVALID
    blocked = result.blocked
    if blocked:
        click.secho(f"{len(blocked)} change(s) held back by a policy:", fg="magenta", err=True)
        for line in blocked:
            click.secho(f"  {line}", fg="magenta", err=True)
        return EXIT_BLOCKED
    return EXIT_OK


def _options(environments, pipelines, *, apply: bool, allow_replace=(), allow_rollback=False,
             allow_dirty=False, overrides=None):
    from .engine import PassOptions

    return PassOptions(environments=tuple(environments), pipelines=frozenset(pipelines),
                       apply=apply, allow_replace=frozenset(allow_replace),
                       allow_rollback=allow_rollback, allow_dirty=allow_dirty,
                       overrides=_load_overrides(overrides))


def _load_overrides(path: str | None):
    """The --overrides file, checked before anything runs (exit 1 naming file:line)."""
    if not path:
        return None
    from .desired.overrides import parse_overrides

    try:
        return parse_overrides(Path(path).read_bytes(), path)
    except OSError as exc:
        click.secho(f"{path}: cannot read the overrides: {exc.strerror}", fg="red", err=True)
    except InvalidInputError as exc:
        for problem in exc.problems:
            click.secho(problem.format(), fg="red", err=True)
    sys.exit(EXIT_INVALID)


overrides_option = click.option(
    "--overrides", metavar="FILE", envvar="RECONCILER_OVERRIDES",
    type=click.Path(dir_okay=False),
    help="The installation's values over reconciler.yaml: per environment region, role_arn, "
         "endpoint_url and policy (schemas/overrides.schema.json).")


allow_replace_option = click.option(
    "--allow-replace", "allow_replace", multiple=True, metavar="NAME",
    help="Approve a replace of this pipeline for this run, where the environment's policy "
         "forbids it (repeatable).")
allow_rollback_option = click.option(
    "--allow-rollback", is_flag=True,
    help="Apply even where git's revision is older than (or unrelated to) the one a pipeline "
         "runs: a deliberate rollback.")
allow_dirty_option = click.option(
    "--allow-dirty", is_flag=True,
    help="Apply a checkout with uncommitted changes; the pipelines are tagged <commit>-dirty.")
def lease_options(command):
    command = click.option(
        "--lease-wait", type=click.FloatRange(min=0), default=60.0, show_default=True,
        metavar="SECONDS", envvar="RECONCILER_LEASE_WAIT",
        help="How long to wait for another writer's lease on an environment (a controller, "
             "another apply) before giving up on it.")(command)
    return click.option(
        "--lease-seconds", type=click.FloatRange(min=1), default=300.0, show_default=True,
        metavar="SECONDS", envvar="RECONCILER_LEASE_SECONDS",
        help="How long this writer's lease lasts unless renewed (it is renewed while it "
             "applies); a writer that crashed holds it that long.")(command)


@main.command()
@root_argument
@env_option
@pipeline_option
@click.option("--format", "output_format", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True,
              help="text for terminals, json for machines, markdown for a PR comment.")
@overrides_option
def plan(root: str, environments: tuple[str, ...], pipelines: tuple[str, ...],
         output_format: str, overrides: str | None) -> None:
    """Show what apply would change in each environment, and why.

    Compiles the repository at ROOT, reads the live pipelines of each environment (by their
    tags; definitions only where the digest differs) and lists one action per pipeline:
    create, update (in place, then re-activate), replace (AWS refuses the change on an
    activated pipeline), delete, activate, deactivate (suspend: true), adopt (a rename with
    previous_names), blocked (a policy forbids it; the reason says how to allow it) or
    unknown (its manifest does not compile: never touched). Changed scripts and SQL are
    shown as unified diffs. Works on a checkout with uncommitted changes, and says so.

    \b
    Exit status (as terraform plan -detailed-exitcode):
      0  in sync
      2  changes, or blocked actions (git and AWS differ)
      1  errors, including manifests that do not compile
    """
    from .plan.render import as_json, as_markdown

    result = _run(root, _options(environments, pipelines, apply=False, overrides=overrides))
    plans, errors = _plans(result)
    if output_format == "json":
        click.echo(as_json(plans, errors, result.revision, [
            {"file": p.location.file, "line": p.location.line, "severity": p.severity,
             "message": p.message} for p in result.problems]), nl=False)
    elif output_format == "markdown":
        click.echo(as_markdown(plans, errors, result.revision), nl=False)
    else:
        _echo_plan_text(result)
    if result.failed:
        sys.exit(EXIT_INVALID)
    sys.exit(EXIT_CHANGES if result.has_changes else EXIT_OK)


@main.command()
@root_argument
@env_option
@pipeline_option
@allow_replace_option
@allow_rollback_option
@allow_dirty_option
@lease_options
@overrides_option
@click.option("--yes", is_flag=True, help="Apply without asking.")
def apply(root: str, environments: tuple[str, ...], pipelines: tuple[str, ...],
          allow_replace: tuple[str, ...], allow_rollback: bool, allow_dirty: bool,
          lease_seconds: float, lease_wait: float, overrides: str | None, yes: bool) -> None:
    """Apply the plan of each environment: show it, ask, apply, print the results.

    Pipelines are applied one by one; one failure is reported and the others go on. Secrets
    are read from where the config says (environment variables, mounted files) at this
    moment and never printed. A checkout with uncommitted changes is refused (--allow-dirty).
    Only one writer applies to an environment at a time: apply takes the environment's lease
    (an object in its artifacts bucket) and waits --lease-wait seconds for a controller or
    another apply that holds it.

    \b
    Exit status:
      0  every environment converged
      3  applied, but a policy held something back (listed)
      1  anything failed, or a manifest does not compile
    """
    from .plan.render import as_text

    def confirm(plan) -> bool:
        click.echo(as_text([plan], {}, "").split("\n", 1)[1], nl=False)
        return yes or click.confirm(f"Apply these changes to {plan.environment}?",
                                    default=False)

    result = _run(root, _options(environments, pipelines, apply=True,
                                 allow_replace=allow_replace, allow_rollback=allow_rollback,
                                 allow_dirty=allow_dirty, overrides=overrides),
                  confirm=confirm,
                  lease_wait=lease_wait, lease_seconds=lease_seconds)
    _echo_results(result)
    for env in result.wanted:
        if env.error:
            click.secho(f"{env.environment}: error: {env.error}", fg="red", err=True)
        elif env.waiting:
            click.secho(f"{env.environment}: not applied: {env.waiting}", fg="red", err=True)
        elif env.plan is not None and not env.plan.has_changes:
            click.echo(f"{env.environment}: no changes")
    sys.exit(_apply_exit(result))


@main.command()
@root_argument
@env_option
@pipeline_option
@allow_rollback_option
@allow_dirty_option
@lease_options
@overrides_option
@click.option("--once", is_flag=True, help="One pass over every environment, then exit.")
def sync(root: str, environments: tuple[str, ...], pipelines: tuple[str, ...],
         allow_rollback: bool, allow_dirty: bool, lease_seconds: float, lease_wait: float,
         overrides: str | None, once: bool) -> None:
    """Plan and apply every environment without asking: one pass of the controller.

    \b
    Exit status:
      0  every environment converged
      3  applied, but a policy held something back (listed)
      1  anything failed, or a manifest does not compile
    """
    if not once:
        raise click.UsageError("sync runs one pass: use sync --once (the controller that "
                               "keeps running is reconciler run)")
    result = _run(root, _options(environments, pipelines, apply=True,
                                 allow_rollback=allow_rollback, allow_dirty=allow_dirty,
                                 overrides=overrides),
                  lease_wait=lease_wait, lease_seconds=lease_seconds)
    _echo_plan_text(result)
    _echo_results(result)
    for env in result.wanted:
        if env.waiting:
            click.secho(f"{env.environment}: not applied: {env.waiting}", fg="red", err=True)
    sys.exit(_apply_exit(result))


# -- the controller ------------------------------------------------------------------------------


def _listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise click.BadParameter(f"'{value}' is not HOST:PORT (e.g. 127.0.0.1:9100)",
                                 param_hint="--listen")
    return host or "127.0.0.1", int(port)


def _webhook_secret(path: str | None) -> bytes | None:
    if path:
        try:
            secret = Path(path).read_bytes().strip()
        except OSError as exc:
            raise click.BadParameter(f"{path}: {exc.strerror}",
                                     param_hint="--webhook-secret-file") from None
        if not secret:
            raise click.BadParameter(f"{path} is empty", param_hint="--webhook-secret-file")
        return secret
    value = os.environ.get("RECONCILER_WEBHOOK_SECRET", "").strip()
    return value.encode() if value else None


def _default_cache() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dataduct-reconciler")


@main.command()
@click.argument("root", required=False, type=click.Path(file_okay=False),
                envvar="RECONCILER_ROOT")
@click.option("--repo", metavar="URL_OR_PATH", envvar="RECONCILER_REPO",
              help="Follow this git repository: clone and fetch it into --cache-dir.")
@click.option("--branch", default="main", show_default=True, envvar="RECONCILER_BRANCH",
              help="The branch of --repo to follow.")
@click.option("--checkout", metavar="DIR", envvar="RECONCILER_CHECKOUT",
              type=click.Path(file_okay=False),
              help="A link kept current by the git-sync sidecar (read one revision a pass).")
@click.option("--path", "subdirectory", default=".", show_default=True,
              envvar="RECONCILER_PATH",
              help="Where reconciler.yaml is inside --repo or --checkout.")
@click.option("--cache-dir", default=_default_cache, show_default="~/.cache/dataduct-reconciler",
              envvar="RECONCILER_CACHE_DIR", type=click.Path(file_okay=False),
              help="Where --repo is cloned and its revisions exported (a writable volume).")
@click.option("--interval", type=click.FloatRange(min=1), default=60.0, show_default=True,
              envvar="RECONCILER_INTERVAL", help="Seconds between passes (with 10% jitter).")
@click.option("--listen", default="127.0.0.1:9100", show_default=True,
              envvar="RECONCILER_LISTEN",
              help="HOST:PORT of /metrics, /healthz, /readyz, /status and POST /webhook.")
@click.option("--webhook-secret-file", type=click.Path(dir_okay=False),
              envvar="RECONCILER_WEBHOOK_SECRET_FILE",
              help="The GitHub webhook's secret (else $RECONCILER_WEBHOOK_SECRET; without "
                   "either, webhooks are refused).")
@env_option
@click.option("--allow-rollback", is_flag=True, envvar="RECONCILER_ALLOW_ROLLBACK",
              help="Apply a revision older than (or unrelated to) the one pipelines run, as "
                   "after a force-push.")
@click.option("--backoff-base", type=click.FloatRange(min=1), default=30.0, show_default=True,
              envvar="RECONCILER_BACKOFF_BASE", help="Seconds before a failed pipeline is "
                                                     "retried the first time.")
@click.option("--backoff-factor", type=click.FloatRange(min=1), default=2.0,
              show_default=True, envvar="RECONCILER_BACKOFF_FACTOR",
              help="Each further failure multiplies the wait by this.")
@click.option("--backoff-cap", type=click.FloatRange(min=1), default=1800.0,
              show_default=True, envvar="RECONCILER_BACKOFF_CAP",
              help="The longest wait between retries (a Stalled pipeline's).")
@click.option("--stall-after", type=click.IntRange(min=1), default=5, show_default=True,
              envvar="RECONCILER_STALL_AFTER",
              help="Consecutive failures before a pipeline is reported Stalled.")
@click.option("--lease-seconds", type=click.FloatRange(min=5), default=300.0,
              show_default=True, envvar="RECONCILER_LEASE_SECONDS",
              help="How long the controller's lease on an environment lasts unless renewed "
                   "(renewed in the background every third of it; a successor waits at most "
                   "this long).")
@click.option("--runs-budget", type=click.IntRange(min=0), default=20, show_default=True,
              envvar="RECONCILER_RUNS_BUDGET",
              help="Pipelines whose runs are read per pass and environment.")
@click.option("--log-format", type=click.Choice(["auto", "json", "console"]), default="auto",
              show_default=True, envvar="RECONCILER_LOG_FORMAT",
              help="auto: console on a terminal, JSON lines otherwise.")
@overrides_option
@click.option("--once", is_flag=True, help="One pass, then exit (for scripts).")
def run(root: str | None, repo: str | None, branch: str, checkout: str | None,
        subdirectory: str, cache_dir: str, interval: float, listen: str,
        webhook_secret_file: str | None, environments: tuple[str, ...], allow_rollback: bool,
        backoff_base: float, backoff_factor: float, backoff_cap: float, stall_after: int,
        lease_seconds: float, runs_budget: int, log_format: str, overrides: str | None,
        once: bool) -> None:
    """Run the controller: keep every environment equal to the manifests repository.

    \b
    The repository comes from one of:
      ROOT                      a directory (a checkout someone else updates)
      --repo URL --branch B     a git remote, fetched into --cache-dir every pass
      --checkout DIR            a git-sync link (the sidecar swaps it atomically)

    Each pass (every --interval seconds, or at once on a signed GitHub push webhook) reads
    the newest revision, plans every environment and applies what differs. A pipeline that
    fails is retried with exponential backoff; one that keeps failing is reported Stalled;
    an error AWS will repeat (a definition it refuses) waits for a new revision. When the
    repository cannot be read, the last good revision is kept, never turned into deletions.
    One controller writes to an environment at a time (a lease in its artifacts bucket).

    \b
    HTTP on --listen:
      /metrics   Prometheus metrics (dataduct_*)
      /healthz   200 while the loop is alive (a pass retrying AWS counts)
      /readyz    200 while it can do its job (revision valid, endpoints answering,
                 leases held); else 503 and why
      /status    JSON: per environment and pipeline, sync and health status
      /webhook   POST, GitHub push events signed with the webhook secret

    Every option can also be given as an environment variable (RECONCILER_INTERVAL...).
    SIGTERM or Ctrl-C stops it cleanly: the action in flight finishes, leases are released.
    """
    import logging
    import threading

    from .controller import (
        Backoff,
        CheckoutSource,
        Controller,
        ControllerConfig,
        ControllerServer,
        DirectorySource,
        GitSource,
        ListenError,
        Redactor,
        configure_logging,
    )
    from .engine import EMBEDDED_STATE

    chosen = [name for name, value in (("ROOT", root), ("--repo", repo),
                                       ("--checkout", checkout)) if value]
    if len(chosen) > 1:
        raise click.UsageError(f"give one of ROOT, --repo and --checkout, not "
                               f"{' and '.join(chosen)}")
    host, port = _listen_address(listen)
    secret = _webhook_secret(webhook_secret_file)
    redactor = Redactor()
    configure_logging(redactor, level=logging.INFO, fmt=log_format)
    source: DirectorySource | GitSource | CheckoutSource
    if repo:
        source = GitSource(repo, branch, cache_dir, subdirectory)
    elif checkout:
        source = CheckoutSource(checkout, subdirectory)
    else:
        source = DirectorySource(find_root(root or "."))
    config = ControllerConfig(
        interval=interval, environments=tuple(environments), allow_rollback=allow_rollback,
        overrides=_load_overrides(overrides),
        backoff=Backoff(backoff_base, backoff_factor, backoff_cap, stall_after),
        lease_seconds=lease_seconds, runs_budget=runs_budget)
    environ = dict(os.environ)
    if (repo or checkout) and not environ.get(EMBEDDED_STATE):
        # the embedded service's state belongs to the installation, never to one revision's
        # tree (old revisions are pruned from the cache)
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        environ[EMBEDDED_STATE] = str(Path(cache_dir) / "embedded-state.json")
    controller = Controller(source, config, environ=environ, wall=lambda: datetime.now(UTC),
                            redactor=redactor)
    if once:
        result = controller.run_once()
        if result is None:
            click.secho(f"error: {controller.status.source.error}", fg="red", err=True)
            sys.exit(EXIT_INVALID)
        controller.context.release_leases()
        _echo_plan_text(result)
        _echo_results(result)
        sys.exit(_apply_exit(result))
    try:
        server = ControllerServer(controller, host, port, secret)
    except ListenError as exc:
        click.secho(f"error: {exc.strerror} (--listen HOST:PORT chooses another)", fg="red",
                    err=True)
        sys.exit(EXIT_INVALID)
    server.start()
    click.secho(f"reconciler run: {source.describe()} -> "
                f"{', '.join(environments) or 'every environment'}; {server.address}/status, "
                "/metrics; Ctrl-C stops", fg="cyan", err=True)
    signal.signal(signal.SIGTERM, lambda *_: controller.stop())
    worker = threading.Thread(target=controller.loop, name="controller")
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
    except KeyboardInterrupt:
        controller.stop()
        worker.join(30)
    finally:
        server.stop()


@main.command()
@click.option("--url", default="http://127.0.0.1:9100", show_default=True,
              envvar="RECONCILER_URL", help="Where the controller listens.")
@env_option
@click.option("--format", "output_format", type=click.Choice(["table", "json"]),
              default="table", show_default=True)
def status(url: str, environments: tuple[str, ...], output_format: str) -> None:
    """Show a running controller's status: per environment and pipeline, its sync status
    (Synced, OutOfSync, Unknown, Suspended, Stalled), health (Healthy, Progressing,
    Degraded, Missing, Unknown), last applied revision, last error and next retry.

    Exit status: 0 when every pipeline shown is Synced and Healthy (or Suspended), 2 when
    not, 1 when the controller cannot be reached.
    """
    import urllib.error
    import urllib.request

    from .controller.health import settled

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/status", timeout=10) as answer:
            data = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        click.secho(f"error: cannot read {url}/status: {exc}", fg="red", err=True)
        sys.exit(EXIT_INVALID)
    envs = {k: v for k, v in data.get("environments", {}).items()
            if not environments or k in environments}
    if output_format == "json":
        click.echo(json.dumps({**data, "environments": envs}, indent=2))
    else:
        _echo_status(data, envs)
    good = all(settled(p["sync_status"], p["health_status"])
               for env in envs.values() for p in env["pipelines"])
    sys.exit(EXIT_OK if good and not any(e.get("error") for e in envs.values())
             else EXIT_CHANGES)


def _echo_status(data: dict, envs: dict) -> None:
    source = data.get("source", {})
    stale = " (STALE: " + str(source.get("error")) + ")" if source.get("stale") else ""
    click.echo(f"source {source.get('location')} at {source.get('revision')}{stale}")
    if data.get("error"):
        click.secho(f"error: nothing planned: {data['error']}", fg="red")
    rows = [("ENV", "PIPELINE", "SYNC", "HEALTH", "REVISION", "NEXT RETRY", "LAST ERROR")]
    for name, env in envs.items():
        if env.get("error"):
            rows.append((name, "-", "Unknown", "Unknown", "-", "-", env["error"][:80]))
        if env.get("waiting"):
            rows.append((name, "-", "-", "-", "-", "-", env["waiting"][:80]))
        for p in env["pipelines"]:
            rows.append((name, p["pipeline"], p["sync_status"], p["health_status"],
                         (p.get("last_applied_revision") or "-")[:12],
                         (p.get("next_retry") or "-")[:19],
                         (p.get("last_error") or "")[:80]))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True))
                   .rstrip())


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def _graphviz_dot(dag):
    import graphviz

    dot = graphviz.Digraph(dag.name, graph_attr={"rankdir": "TB", "label": dag.name},
                           node_attr={"fontname": "Helvetica", "fontsize": "11"})
    for node in dag.nodes:
        shape = "box" if node.kind == "activity" else "cylinder"
        dot.node(node.id, f"{node.id}\n{node.type}", shape=shape,
                 style="rounded" if node.kind == "activity" else "")
    for edge in dag.edges:
        dot.edge(edge.source, edge.target, style="solid" if edge.kind == "data" else "dashed")
    return dot


if __name__ == "__main__":  # pragma: no cover
    main()
