"""What the commands share: the ``reconciler`` group, the errors and exit codes, the options
several commands take (each defined once), and printing problems and paths."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import click

from .. import __version__
from ..desired.compiler import CompileOptions
from ..desired.project import ProjectResult, compile_project
from ..errors import InvalidInputError, Problem, ReconcilerError
from ..plugins import installed_step_plugins
from ..processes import forked_map
from ..qa.bundle import qa_runner
from ..source import find_root, read_snapshot

EXIT_OK = 0
EXIT_INVALID = 1  # invalid input, or anything failed
EXIT_CHANGES = 2  # plan: git and AWS differ
EXIT_BLOCKED = 3  # apply, sync: everything applied, but a policy held something back


class CliError(ReconcilerError, click.ClickException):
    """An error the command reports on one line (``error: ...``) before it exits with
    ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_INVALID):
        super().__init__(message)
        vars(self)["exit_code"] = exit_code  # click's is a class attribute; this one's own

    def show(self, file: IO[Any] | None = None) -> None:
        click.secho(f"error: {self.message}", fg="red", err=True)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException:
            raise
        except ReconcilerError as exc:
            raise CliError(str(exc)) from None


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
    limit_malloc_arenas()


# glibc's M_ARENA_MAX: how many malloc arenas threads may spread over.
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """Keep glibc's malloc to ``MALLOC_ARENAS`` arenas (unless $MALLOC_ARENA_MAX says
    otherwise). By default every thread that allocates may get an arena of its own, up to 8
    per core, and freed memory fragments across them: a plan of 10,000 pipelines x 2 read by a
    few threads peaked at 1,076 MiB resident with 264 MiB of live objects, and at 383 MiB with
    one arena. Elsewhere than glibc this does nothing."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


# -- the options several commands share ------------------------------------------------------

root_argument = click.argument("root", default=".",
                               type=click.Path(exists=True, file_okay=False))
env_option = click.option("--env", "environments", multiple=True,
                          help="Only this environment (repeatable; default: all).")
pipeline_option = click.option("--pipeline", "pipelines", multiple=True, metavar="NAME",
                               help="Only this pipeline (repeatable; default: all). Other "
                                    "pipelines are neither planned nor touched.")
start_date_option = click.option(
    "--start-date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
    help="Date of the schedule's first run (default: today, UTC). load_time gives the hour.")
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
    "--allow-rollback", is_flag=True, envvar="RECONCILER_ALLOW_ROLLBACK",
    help="Apply even where git's revision is older than (or unrelated to) the one a pipeline "
         "runs: a deliberate rollback, or the branch after a force-push.")
allow_dirty_option = click.option(
    "--allow-dirty", is_flag=True,
    help="Apply a checkout with uncommitted changes; the pipelines are tagged <commit>-dirty.")
lease_seconds_option = click.option(
    "--lease-seconds", type=click.FloatRange(min=2), default=300.0, show_default=True,
    metavar="SECONDS", envvar="RECONCILER_LEASE_SECONDS",
    help="How long this writer's lease on an environment lasts unless renewed (it is renewed "
         "in the background every third of it while it applies); a writer that crashed holds "
         "it that long, so a successor waits at most this long.")
lease_wait_option = click.option(
    "--lease-wait", type=click.FloatRange(min=0), default=60.0, show_default=True,
    metavar="SECONDS", envvar="RECONCILER_LEASE_WAIT",
    help="How long to wait for another writer's lease on an environment (a controller, "
         "another apply) before giving up on it.")


def writer_options(command: Any) -> Any:
    """The options of every command that writes to AWS (apply, sync): which environments and
    pipelines, the approvals, the dirty-tree rule, the lease and the overrides."""
    for option in reversed([env_option, pipeline_option, allow_rollback_option,
                            allow_dirty_option, lease_seconds_option, lease_wait_option,
                            overrides_option]):
        command = option(command)
    return command


def check_environments(base: Path, environments: Iterable[str]) -> None:
    """Each ``--env`` names an environment of reconciler.yaml, or a usage error says which
    does not, with the closest name (a reconciler.yaml that does not load is left to the
    command to report at its line)."""
    import difflib

    from ..desired.config import load_settings

    if not environments:
        return
    settings = load_settings(read_snapshot(base), [])
    if settings is None:
        return
    known = list(settings.environments)
    for env in environments:
        if env in known:
            continue
        close = [k for k in known if env.startswith(k) or k.startswith(env)] or \
            difflib.get_close_matches(env, known, n=1, cutoff=0.5)
        raise click.BadParameter(
            f"no environment {env!r} in reconciler.yaml"
            + (f"; did you mean {close[0]!r}?" if close else "")
            + f" (it has {', '.join(known) or 'none'})", param_hint="--env")


def approval_hint(action: Any) -> str | None:
    """How to approve a blocked :class:`~reconciler.plan.planner.PlannedAction` from the
    command line: the planner's reasons say what is blocked, the CLI names its flags."""
    from ..plan.planner import Approval

    if action.approval is Approval.REPLACE:
        return f"reconciler apply --allow-replace {action.pipeline}"
    if action.approval is Approval.ROLLBACK:
        return ("reconciler apply --allow-rollback, or the controller's --allow-rollback / "
                "RECONCILER_ALLOW_ROLLBACK=true")
    return None


def today() -> date:
    return datetime.now(UTC).date()


def display_path(root: Path, file: str) -> str:
    """``file`` of the repository at ``root`` as the user should see it: relative to the
    current directory."""
    # normpath, not resolve: a link in the repository is shown as the link, not its target
    absolute = Path(os.path.normpath(root / file)) if not os.path.isabs(file) else Path(file)
    try:
        return os.path.relpath(absolute, Path.cwd())
    except ValueError:  # another drive on Windows
        return str(absolute)


def print_problems(root: Path, problems: list[Problem]) -> None:
    for problem in problems:
        location = problem.location
        shown = replace(problem, location=replace(location, file=display_path(root,
                                                                               location.file)))
        colour = "red" if problem.severity == "error" else "yellow"
        click.secho(shown.format(), fg=colour, err=True)


def compile_repository(path: str, start_date: date | None, environments: Any = None,
                       manifests: Any = None) -> tuple[Path, ProjectResult]:
    root = find_root(path)
    check_environments(root, environments or ())
    snapshot = read_snapshot(root)
    options = CompileOptions(start_date=start_date or today(), qa_runner=qa_runner())
    result = compile_project(snapshot, options, plugins=installed_step_plugins(),
                             environments=environments, manifests=manifests,
                             mapper=forked_map)
    return root, result


def manifest_of(file: str) -> tuple[Path, str]:
    """The repository holding the manifest ``file``, and its path in it."""
    path = Path(file).resolve()
    if not path.is_file():
        raise click.BadParameter(f"{file}: no such file", param_hint="FILE")
    root = find_root(path.parent)
    return root, path.relative_to(root).as_posix()


def load_overrides(path: str | None) -> Any:
    """The --overrides file, checked before anything runs (exit 1 naming file:line)."""
    if not path:
        return None
    from ..desired.overrides import parse_overrides

    try:
        return parse_overrides(Path(path).read_bytes(), path)
    except OSError as exc:
        raise CliError(f"{path}: cannot read the overrides: {exc.strerror}") from None
    except InvalidInputError as exc:
        raise CliError("\n".join(p.format() for p in exc.problems)) from None


def configure_logging(level: int) -> None:
    """A command's logs, on stderr (stdout stays for plans and results): JSON lines for CI
    and scripts; on a terminal, where the command's own report says what happened, only
    warnings and errors, written for a person, so the two do not interleave."""
    import logging

    import structlog

    terminal = sys.stderr.isatty()
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=False) if terminal
                     else structlog.processors.JSONRenderer(sort_keys=True))
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            max(level, logging.WARNING) if terminal else level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False)


def interrupt(*_args: Any) -> None:
    """A SIGTERM handler: stop as Ctrl-C does."""
    raise KeyboardInterrupt
