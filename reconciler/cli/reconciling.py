"""The commands that compare git with AWS and change AWS: plan, apply, sync. Each is one
pass of the engine; they differ in what they print and whether they apply."""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ..source import find_root
from .common import (
    EXIT_BLOCKED,
    EXIT_CHANGES,
    EXIT_INVALID,
    EXIT_OK,
    CliError,
    allow_replace_option,
    allow_rollback_option,
    approval_hint,
    check_environments,
    configure_logging,
    display_path,
    env_option,
    load_overrides,
    main,
    overrides_option,
    pipeline_option,
    print_problems,
    root_argument,
    writer_options,
)


def show_progress() -> bool:
    """A progress bar on stderr: on a terminal, and not in CI."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def one_pass(root: str, options: Any, *, confirm: Any = None, lease_wait: float = 0.0,
             lease_seconds: float = 300.0, now: datetime | None = None) -> Any:
    """One pass of the engine over the repository at ``root``, its problems and errors
    printed; the engine's :class:`Run`."""
    from ..engine import PassContext, run
    from ..live.lease import Leases
    from .progress import CommandEvents

    configure_logging(logging.INFO if options.apply else logging.WARNING)
    base = find_root(root)
    check_environments(base, options.environments)
    events = CommandEvents(bar=show_progress())
    context = PassContext(events=events, leases=Leases(
        seconds=lease_seconds, wait=lease_wait, clock=lambda: datetime.now(UTC)))
    try:
        result = run(base, options, now=now or datetime.now(UTC), confirm=confirm,
                     context=context)
    finally:
        events.finish()
    print_problems(base, result.problems)
    if result.embedded_state is not None:
        where = display_path(Path.cwd(), str(result.embedded_state))
        click.secho(f"embedded AWS: state kept in {where} (delete it to start afresh)",
                    fg="cyan", err=True)
    if result.git.dirty:
        click.secho(f"the checkout has uncommitted changes: revision {result.revision}",
                    fg="yellow", err=True)
    if result.error:
        click.secho(f"error: {result.error}", fg="red", err=True)
    return result


def _plans(result: Any) -> tuple[list[Any], dict[str, str]]:
    plans = [e.plan for e in result.wanted if e.plan is not None]
    errors = {e.environment: e.error for e in result.wanted if e.error}
    return plans, errors


def echo_plan_text(result: Any) -> None:
    from ..plan.render import as_text

    plans, errors = _plans(result)
    for line in as_text(plans, errors, result.revision, approval_hint).splitlines():
        colour = {"+": "green", "~": "yellow", "-": "red", "!": "magenta", "?": "cyan"}.get(
            line.strip()[:1]) if line.startswith("  ") else None
        click.secho(line, fg=colour if sys.stdout.isatty() else None)


def echo_results(result: Any) -> None:
    for env in result.wanted:
        for item in env.results:
            colour = "red" if item.failed else "green"
            detail = "; ".join(item.messages)
            click.secho(f"{env.environment}: {item.action.value} {item.pipeline}: "
                        f"{item.outcome} in {item.seconds:.1f}s ({detail})",
                        fg=colour if sys.stdout.isatty() else None)


def apply_exit(result: Any) -> int:
    """0 every environment converged; 3 a policy held something back; 1 anything failed."""
    if result.failed:
        return EXIT_INVALID
    blocked = result.blocked
    if blocked:
        click.secho(f"{len(blocked)} change(s) held back by a policy:", fg="magenta", err=True)
        for action in blocked:
            click.secho(f"  {action.environment}: {action.pipeline}: "
                        f"{action.explained(approval_hint)}", fg="magenta", err=True)
        return EXIT_BLOCKED
    return EXIT_OK


def _options(environments: tuple[str, ...], pipelines: tuple[str, ...], *, apply: bool,
             allow_replace: tuple[str, ...] = (), allow_rollback: bool = False,
             allow_dirty: bool = False, overrides: str | None = None, saved: Any = None
             ) -> Any:
    from ..engine import PassOptions

    return PassOptions(environments=tuple(environments), pipelines=frozenset(pipelines),
                       apply=apply, allow_replace=frozenset(allow_replace),
                       allow_rollback=allow_rollback, allow_dirty=allow_dirty,
                       overrides=load_overrides(overrides), saved=saved)


def _save_plan(result: Any, out: str, options: Any, planned_at: datetime) -> None:
    """Write the plan of ``result`` to ``out`` for ``apply FILE``; never a plan with errors."""
    from ..plan.saved import SavedPlan, saved_environment

    if result.failed:
        raise CliError(f"{out}: not written: the plan has errors (above); fix them and plan "
                       "again")
    target = Path(out)
    root = os.path.relpath(result.root.resolve(), target.resolve().parent)
    saved = SavedPlan(
        revision=result.revision, planned_at=planned_at,
        environments=options.environments, pipelines=tuple(sorted(options.pipelines)),
        allow_replace=tuple(sorted(options.allow_replace)),
        allow_rollback=options.allow_rollback, root=Path(root).as_posix(),
        plans=tuple(saved_environment(e.plan, e.live) for e in result.wanted
                    if e.plan is not None and e.live is not None))
    try:
        target.write_text(saved.to_json())
    except OSError as exc:
        raise CliError(f"{out}: cannot write the plan: {exc.strerror}") from None
    click.secho(f"plan saved to {out}: reconciler apply {out} applies exactly it",
                fg="cyan", err=True)


def _load_plan(path: Path) -> Any:
    from ..plan.saved import SavedPlan

    try:
        return SavedPlan.from_json(path.read_text(), str(path))
    except UnicodeDecodeError:
        raise CliError(f"{path}: not a plan file (not text); a repository is a folder "
                       "holding reconciler.yaml") from None


@main.command()
@root_argument
@env_option
@pipeline_option
@click.option("--format", "output_format", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True,
              help="text for terminals, json for machines, markdown for a PR comment.")
@click.option("--out", metavar="FILE", type=click.Path(dir_okay=False),
              help="Also save the plan to FILE; reconciler apply FILE then applies exactly "
                   "it, or refuses if git or AWS moved since.")
@allow_replace_option
@allow_rollback_option
@overrides_option
def plan(root: str, environments: tuple[str, ...], pipelines: tuple[str, ...],
         output_format: str, out: str | None, allow_replace: tuple[str, ...],
         allow_rollback: bool, overrides: str | None) -> None:
    """Show what apply would change in each environment, and why.

    Compiles the repository at ROOT, reads the live pipelines of each environment (by their
    tags; definitions only where the digest differs) and lists one action per pipeline:
    create, update (in place, then re-activate), replace (AWS refuses the change on an
    activated pipeline), delete, activate, deactivate (suspend: true), adopt (a rename with
    previous_names), blocked (a policy forbids it; the reason says how to allow it) or
    unknown (its manifest does not compile: never touched). Changed scripts and SQL are
    shown as unified diffs. Works on a checkout with uncommitted changes, and says so.

    With --out FILE the plan is saved too (with the approvals given here), for a reviewer to
    approve and reconciler apply FILE to carry out; a plan with errors is not saved.

    \b
    Exit status (as terraform plan -detailed-exitcode):
      0  in sync
      2  changes, or blocked actions (git and AWS differ)
      1  errors, including manifests that do not compile
    """
    from ..plan.render import as_json, as_markdown

    planned_at = datetime.now(UTC).replace(microsecond=0)
    options = _options(environments, pipelines, apply=False, allow_replace=allow_replace,
                       allow_rollback=allow_rollback, overrides=overrides)
    result = one_pass(root, options, now=planned_at)
    plans, errors = _plans(result)
    if output_format == "json":
        click.echo(as_json(plans, errors, result.revision,
                           [p.to_json() for p in result.problems], approval_hint), nl=False)
    elif output_format == "markdown":
        click.echo(as_markdown(plans, errors, result.revision, approval_hint), nl=False)
    else:
        echo_plan_text(result)
    if out:
        _save_plan(result, out, options, planned_at)
    if result.failed:
        sys.exit(EXIT_INVALID)
    sys.exit(EXIT_CHANGES if result.has_changes else EXIT_OK)


@main.command()
@click.argument("target", default=".", metavar="[ROOT | PLANFILE]",
                type=click.Path(exists=True))
@writer_options
@allow_replace_option
@click.option("--yes", is_flag=True, help="Apply without asking.")
def apply(target: str, environments: tuple[str, ...], pipelines: tuple[str, ...],
          allow_replace: tuple[str, ...], allow_rollback: bool, allow_dirty: bool,
          lease_seconds: float, lease_wait: float, overrides: str | None, yes: bool) -> None:
    """Apply the plan of each environment: show it, ask, apply, print the results.

    Given a PLANFILE (reconciler plan --out FILE) instead of a repository, applies exactly
    that plan without asking: its environments, pipelines and approvals, planned again at
    the moment it was made. It refuses, naming what moved and applying nothing there, when
    the repository is at another revision, when a live pipeline appeared, went or was
    changed, when anything would be planned differently, or when a replacement would start
    in the past.

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
    from ..plan.render import as_text

    def confirm(plan: Any) -> bool:
        click.echo(as_text([plan], {}, "", approval_hint).split("\n", 1)[1], nl=False)
        return yes or click.confirm(f"Apply these changes to {plan.environment}?",
                                    default=False)

    if Path(target).is_file():
        if environments or pipelines or allow_replace or allow_rollback:
            raise click.UsageError("a plan file carries its environments, pipelines and "
                                   "approvals: give them to reconciler plan --out, not here")
        saved = _load_plan(Path(target))
        root = Path(target).parent / saved.root
        if not (root / "reconciler.yaml").is_file():
            raise CliError(f"{target}: the plan was made in the repository {saved.root} "
                           "(relative to the plan file), which is not there: apply it beside "
                           "the checkout it was made in")
        options = _options(saved.environments, saved.pipelines, apply=True,
                           allow_replace=saved.allow_replace,
                           allow_rollback=saved.allow_rollback, allow_dirty=allow_dirty,
                           overrides=overrides, saved=saved)
        result = one_pass(str(root), options, lease_wait=lease_wait,
                          lease_seconds=lease_seconds)
    else:
        result = one_pass(target, _options(environments, pipelines, apply=True,
                                           allow_replace=allow_replace,
                                           allow_rollback=allow_rollback,
                                           allow_dirty=allow_dirty, overrides=overrides),
                          confirm=confirm, lease_wait=lease_wait, lease_seconds=lease_seconds)
    echo_results(result)
    for env in result.wanted:
        for error in env.plan.errors if env.plan is not None else []:
            click.secho(f"{env.environment}: error: {error}", fg="red", err=True)
        if env.error:
            click.secho(f"{env.environment}: error: {env.error}", fg="red", err=True)
        elif env.waiting:
            click.secho(f"{env.environment}: not applied: {env.waiting}", fg="red", err=True)
        elif env.plan is not None and not env.plan.has_changes:
            click.echo(f"{env.environment}: no changes")
    sys.exit(apply_exit(result))


@main.command()
@root_argument
@writer_options
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
    result = one_pass(root, _options(environments, pipelines, apply=True,
                                     allow_rollback=allow_rollback, allow_dirty=allow_dirty,
                                     overrides=overrides),
                      lease_wait=lease_wait, lease_seconds=lease_seconds)
    echo_plan_text(result)
    echo_results(result)
    for env in result.wanted:
        if env.waiting:
            click.secho(f"{env.environment}: not applied: {env.waiting}", fg="red", err=True)
    sys.exit(apply_exit(result))
