"""The commands that run things: the controller (run), a running controller's status, and
the embedded AWS service (emulator)."""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import signal
import socket
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ..errors import ReconcilerError
from ..source import find_root
from .common import (
    EXIT_BLOCKED,
    EXIT_CHANGES,
    EXIT_OK,
    CliError,
    allow_rollback_option,
    approval_hint,
    check_environments,
    configure_logging,
    env_option,
    interrupt,
    lease_seconds_option,
    load_overrides,
    main,
    overrides_option,
)
from .reconciling import apply_exit, echo_plan_text, echo_results


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


def _source(root: str | None, repo: str | None, branch: str, checkout: str | None,
            subdirectory: str, cache_dir: str) -> Any:
    """Where the controller reads the repository from: exactly one of the three."""
    from ..controller import CheckoutSource, DirectorySource, GitSource

    chosen = [name for name, value in (("ROOT", root), ("--repo", repo),
                                       ("--checkout", checkout)) if value]
    if len(chosen) > 1:
        raise click.UsageError(f"give one of ROOT, --repo and --checkout, not "
                               f"{' and '.join(chosen)}")
    if repo:
        return GitSource(repo, branch, cache_dir, subdirectory)
    if checkout:
        return CheckoutSource(checkout, subdirectory)
    return DirectorySource(find_root(root or "."))


def _controller_environ(cache_dir: str, follows_git: bool) -> dict[str, str]:
    from ..engine import EMBEDDED_STATE

    environ = dict(os.environ)
    if follows_git and not environ.get(EMBEDDED_STATE):
        # the embedded service's state belongs to the installation, never to one revision's
        # tree (old revisions are pruned from the cache)
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        environ[EMBEDDED_STATE] = str(Path(cache_dir) / "embedded-state.json")
    return environ


def _serve(controller: Any, host: str, port: int, secret: bytes | None, shown: str,
           page_refresh: bool = False) -> None:
    """Serve HTTP and run the loop until SIGTERM or Ctrl-C."""
    from ..controller import ControllerServer, ListenError

    try:
        server = ControllerServer(controller, host, port, secret, page_refresh)
    except ListenError as exc:
        raise CliError(f"{exc.strerror} (--listen HOST:PORT chooses another)") from None
    server.start()
    click.secho(f"reconciler run: {shown}; the page: {server.address}/ (JSON: /status, "
                "metrics: /metrics); Ctrl-C stops", fg="cyan", err=True)
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
              help="HOST:PORT of the page (/), /metrics, /healthz, /readyz, /status and POST "
                   "/webhook.")
@click.option("--webhook-secret-file", type=click.Path(dir_okay=False),
              envvar="RECONCILER_WEBHOOK_SECRET_FILE",
              help="The GitHub webhook's secret (else $RECONCILER_WEBHOOK_SECRET; without "
                   "either, webhooks are refused).")
@click.option("--page-refresh/--no-page-refresh", default=False, show_default=True,
              envvar="RECONCILER_PAGE_REFRESH",
              help="A \"reconcile now\" button on the page, for whoever can open it (put the "
                   "page behind a login first: the chart's ui.ingress).")
@env_option
@allow_rollback_option
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
@lease_seconds_option
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
        webhook_secret_file: str | None, page_refresh: bool, environments: tuple[str, ...],
        allow_rollback: bool,
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
    from ..controller import Backoff, Controller, ControllerConfig, Redactor, configure_logging

    source = _source(root, repo, branch, checkout, subdirectory, cache_dir)
    host, port = _listen_address(listen)
    secret = _webhook_secret(webhook_secret_file)
    redactor = Redactor()
    configure_logging(redactor, level=logging.INFO, fmt=log_format)
    config = ControllerConfig(
        interval=interval, environments=tuple(environments), allow_rollback=allow_rollback,
        overrides=load_overrides(overrides),
        backoff=Backoff(backoff_base, backoff_factor, backoff_cap, stall_after),
        lease_seconds=lease_seconds, runs_budget=runs_budget, approval_hint=approval_hint)
    controller = Controller(source, config,
                            environ=_controller_environ(cache_dir, bool(repo or checkout)),
                            wall=lambda: datetime.now(UTC), redactor=redactor)
    if once:
        result = controller.run_once()
        if result is None:
            raise CliError(str(controller.status.source.error))
        controller.context.leases.release()
        echo_plan_text(result)
        echo_results(result)
        sys.exit(apply_exit(result))
    _serve(controller, host, port, secret,
           f"{source.describe()} -> {', '.join(environments) or 'every environment'}",
           page_refresh)


def _ask_controller(url: str, path: str, payload: dict[str, Any], secret: bytes,
                    what: str) -> dict[str, Any]:
    """POST ``payload`` to a running controller, signed with its webhook's secret."""
    import hashlib
    import hmac
    import urllib.error
    import urllib.request
    import uuid

    body = json.dumps(payload).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=body, method="POST",
                                     headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": f"{what}-{uuid.uuid4()}",
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            reply = json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("error", detail)
        raise CliError(f"{url} refused the {what} ({exc.code}): {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CliError(f"cannot reach {url}: {exc}") from None
    return reply if isinstance(reply, dict) else {}


def _operator() -> str:
    """Who runs a command, for the operations journal: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container's numeric user has no name
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


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

    from ..controller.health import settled

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/status", timeout=10) as answer:
            data = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CliError(f"cannot read {url}/status: {exc}") from None
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


def _echo_status(data: dict[str, Any], envs: dict[str, Any]) -> None:
    source = data.get("source", {})
    stale = " (STALE: " + one_line(str(source.get("error"))) + ")" if source.get("stale") else ""
    click.echo(f"source {source.get('location')} at {source.get('revision')}{stale}")
    if data.get("error"):
        click.secho(f"error: nothing planned: {one_line(data['error'])}", fg="red")
    rows = [("ENV", "PIPELINE", "SYNC", "HEALTH", "REVISION", "NEXT RETRY", "REASON",
             "LAST ERROR")]
    cut = False
    for name, env in envs.items():
        for key in ("error", "waiting"):
            if env.get(key):
                text = one_line(env[key])
                cut |= len(text) > STATUS_WIDTH
                rows.append((name, "-", "Unknown" if key == "error" else "-",
                             "Unknown" if key == "error" else "-", "-", "-", "-",
                             clip(text)))
        for p in env["pipelines"]:
            error = one_line(p.get("last_error") or "")
            cut |= len(error) > STATUS_WIDTH
            rows.append((name, p["pipeline"], p["sync_status"], p["health_status"],
                         (p.get("last_applied_revision") or "-")[:12],
                         (p.get("next_retry") or "-")[:19], clip(one_line(p.get("reason") or
                                                                          "-")),
                         clip(error)))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True))
                   .rstrip())
    if cut:
        click.echo("(long errors are cut: --format json has them in full)")


STATUS_WIDTH = 80  # characters of a reason or an error in the status table


def one_line(text: str) -> str:
    """A multi-line message (an HTML error page, a traceback) on one line."""
    return " ".join(text.split())


def clip(text: str, width: int = STATUS_WIDTH) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


@main.command()
@click.argument("pipeline")
@click.argument("root", default=".", type=click.Path(file_okay=False, exists=True))
@click.option("--env", "environment", required=True, help="The environment it runs in.")
@click.option("--activity", help="Only this activity's runs (its id in the definition).")
@click.option("--failed", is_flag=True, help="Rerun the failed runs (those that cascade-failed "
              "because of them run again with them).")
@click.option("--from", "start", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
              help="Backfill: rerun every run scheduled from this time (UTC) ...")
@click.option("--to", "end", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
              help="... up to this time (UTC, not included).")
@click.option("--yes", is_flag=True, help="Rerun without asking.")
@click.option("--url", default="http://127.0.0.1:9100", show_default=True,
              envvar="RECONCILER_URL",
              help="A running controller, asked to rerun them when it holds the lease.")
@click.option("--webhook-secret-file", type=click.Path(dir_okay=False),
              envvar="RECONCILER_WEBHOOK_SECRET_FILE",
              help="The controller's webhook secret (else $RECONCILER_WEBHOOK_SECRET).")
def rerun(pipeline: str, root: str, environment: str, activity: str | None, failed: bool,
          start: datetime | None, end: datetime | None, yes: bool, url: str,
          webhook_secret_file: str | None) -> None:
    """Run PIPELINE's failed runs again (--failed), or backfill the runs scheduled in a
    window (--from T1 --to T2), on Data Pipeline: the instances are set to RERUN, as the
    console's Rerun does. Shows what it will rerun and asks first; holds the environment's
    lease while it writes, so it never races the controller. Where a controller holds the
    lease (it keeps it while it runs), the controller at --url is asked to do it, signed with
    its webhook's secret: it chooses the same runs and sets them under its lease.

    \b
      reconciler rerun users manifests/ --env prod --failed
      reconciler rerun users manifests/ --env prod --from 2026-12-01 --to 2026-12-03 --yes

    \b
    Exit status: 0 rerun (or nothing to rerun), 1 an error, 3 declined.
    """
    from ..engine import PassContext, RerunRequest, plan_rerun
    from ..engine import rerun as rerun_instances
    from ..live.lease import LeaseHeld, Leases

    if failed == (start is not None):
        raise click.UsageError("give --failed, or a window with --from (and --to)")
    if end is not None and start is None:
        raise click.UsageError("--to needs --from")
    configure_logging(logging.INFO)
    utc = [t.replace(tzinfo=UTC) if t else None for t in (start, end)]
    request = RerunRequest(environment, pipeline, activity, failed, utc[0], utc[1])
    base = find_root(root)
    check_environments(base, [environment])
    try:
        plan, aws, settings, project = plan_rerun(base, request, os.environ,
                                                  datetime.now(UTC))
    except ReconcilerError as exc:
        raise CliError(str(exc)) from None
    for item in plan.skipped:
        click.echo(f"  not finished, left alone: {item['activity']} {item['scheduled']} "
                   f"({item['status']})")
    if not plan.instances:
        click.echo(f"{environment}: {pipeline} ({plan.pipeline_id}): nothing to rerun")
        return
    click.echo(f"{environment}: {pipeline} ({plan.pipeline_id}): {len(plan.instances)} run(s) "
               "to rerun:")
    for item in plan.instances:
        click.echo(f"  {item['activity']}  {item['scheduled']}  {item['status']}")
    if not yes and not click.confirm("Rerun them?", default=False):
        sys.exit(EXIT_BLOCKED)
    context = PassContext(leases=Leases(clock=lambda: datetime.now(UTC)))
    try:
        rerun_instances(request, plan, aws, settings, project, context, datetime.now(UTC),
                        by=_operator())
    except LeaseHeld as held:
        secret = _webhook_secret(webhook_secret_file)
        if secret is None:
            raise CliError(f"{held}\nTo have that controller rerun them, give --url and its "
                           "webhook secret (--webhook-secret-file or "
                           "RECONCILER_WEBHOOK_SECRET).") from None
        click.echo(f"a controller holds {environment}'s lease; asking the one at {url}")
        reply = _ask_controller(url, "/rerun", {
            "env": environment, "pipeline": pipeline, "activity": activity, "failed": failed,
            "from": start.replace(tzinfo=UTC).isoformat() if start else None,
            "to": end.replace(tzinfo=UTC).isoformat() if end else None,
            "operator": _operator()}, secret, "rerun")
        click.echo(f"{environment}: {pipeline}: {reply.get('result', 'done')}")
        return
    except ReconcilerError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"{environment}: {len(plan.instances)} run(s) of {pipeline} set to RERUN")


@main.command()
@click.option("--url", default="http://127.0.0.1:9100", show_default=True,
              envvar="RECONCILER_URL", help="Where the controller listens.")
@click.option("--webhook-secret-file", type=click.Path(dir_okay=False),
              envvar="RECONCILER_WEBHOOK_SECRET_FILE",
              help="The controller's webhook secret (else $RECONCILER_WEBHOOK_SECRET).")
@click.option("--env", "environments", multiple=True,
              help="Read only this environment in full (repeatable; default: every one).")
def refresh(url: str, webhook_secret_file: str | None, environments: tuple[str, ...]
            ) -> None:
    """Ask a running controller for a pass now, as a push to its webhook does: the request
    is signed with the webhook's secret, so whoever can start passes by hand is whoever
    holds it. The pass reads the newest revision, and every pipeline of every environment
    (--env: of those) from AWS in full, where a push's pass reads only what the commit
    changed: what was changed by hand in AWS shows at once.

    \b
      reconciler refresh --url http://127.0.0.1:9100 --env prod

    \b
    Exit status: 0 a pass was requested, 1 the controller refused or cannot be reached.
    """
    secret = _webhook_secret(webhook_secret_file)
    if secret is None:
        raise CliError("no webhook secret: give --webhook-secret-file or set "
                       "RECONCILER_WEBHOOK_SECRET (the controller's own)")
    reply = _ask_controller(url, "/webhook", {"ref": "refresh", "pusher": {
        "name": "reconciler refresh"}, "operator": _operator(),
        "environments": list(environments)}, secret, "refresh")
    click.echo(f"pass {reply.get('pass', 'requested')} at {url}")


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
        from ..emulator.server import DUMMY_CREDENTIALS, EmulatorServer
    except ImportError as exc:
        raise CliError("the embedded AWS needs the embedded extra (moto): pip install "
                       f"'dataduct-reconciler[embedded]' ({exc})") from None
    server = EmulatorServer(host, port, state_file)
    try:
        server._prepare()
    except ReconcilerError as exc:
        raise CliError(str(exc)) from None
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
    signal.signal(signal.SIGTERM, interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.save()
