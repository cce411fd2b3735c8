"""The sync and health status of one pipeline, derived from what a pass planned, what its
apply did and how the pipeline's latest run ended, as Argo CD's gitops-engine derives them
(``pkg/health``, ``pkg/sync``). Pure: the controller records them, ``/status`` serves them,
the metrics count them and ``reconciler status`` judges them, all from here.

Sync says whether what runs is what git says: ``Synced``, ``OutOfSync``, ``Suspended``
(``suspend: true`` and deactivated), ``Stalled`` (failed too many times in a row) or
``Unknown`` (the live state could not be compared). Health says how it runs: ``Healthy``,
``Progressing`` (just applied, or the service is activating or deactivating it),
``Degraded`` (the service reports an error, or its latest run failed), ``Missing`` (in git,
not in the account) or ``Unknown``.
"""

from __future__ import annotations

from enum import StrEnum

from ..apply.executor import ActionResult
from ..plan.planner import Action, PlannedAction, State


class SyncStatus(StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"
    SUSPENDED = "Suspended"
    STALLED = "Stalled"


class Health(StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    MISSING = "Missing"
    UNKNOWN = "Unknown"


# @pipelineState while it changes; UNPARSED: a DAG file Airflow has not parsed yet
TRANSITIONS = ("PENDING", "ACTIVATING", "DEACTIVATING", "UNPARSED")


def sync_status(planned: PlannedAction, result: ActionResult | None, *,
                stalled: bool = False) -> SyncStatus:
    """After a pass: ``result`` is what its apply did to the pipeline (None: nothing)."""
    if stalled:
        return SyncStatus.STALLED
    if planned.state is State.UNKNOWN:
        return SyncStatus.UNKNOWN
    if result is not None:
        if result.outcome != "applied":
            return SyncStatus.OUT_OF_SYNC
        return SyncStatus.SUSPENDED if planned.action is Action.DEACTIVATE \
            else SyncStatus.SYNCED
    if planned.kind == Action.NOOP:
        suspended = planned.desired is not None and planned.desired.suspend
        return SyncStatus.SUSPENDED if suspended else SyncStatus.SYNCED
    return SyncStatus.OUT_OF_SYNC


def health(planned: PlannedAction, result: ActionResult | None, *,
           latest_run_failed: bool = False) -> Health:
    """After a pass, from the live pipeline it read, its apply's result and its runs."""
    if planned.state is State.UNKNOWN:
        return Health.UNKNOWN
    applied = result is not None and result.outcome == "applied"
    live = planned.live
    if live is None:
        if applied:
            return Health.PROGRESSING
        return Health.MISSING if planned.desired is not None else Health.UNKNOWN
    if live.state in TRANSITIONS or (applied and planned.action is not Action.DELETE):
        return Health.PROGRESSING
    if live.fields.get("@healthStatus") == "ERROR" or latest_run_failed:
        return Health.DEGRADED
    return Health.HEALTHY


def settled(sync: str, health_status: str) -> bool:
    """Nothing for anyone to do: suspended on purpose, or synced and healthy."""
    return sync == SyncStatus.SUSPENDED or (sync == SyncStatus.SYNCED
                                            and health_status == Health.HEALTHY)
