"""The sync and health statuses, derived from a planned action, its apply's result and the
pipeline's latest run (reconciler/controller/health.py), case by case."""

from __future__ import annotations

import pytest

from reconciler.apply.executor import ActionResult
from reconciler.controller.health import Health, SyncStatus, health, settled, sync_status
from reconciler.live.model import LivePipeline
from reconciler.plan.planner import Action, PlannedAction, State

UNKNOWN = "unknown"  # a pipeline whose manifest does not compile


def live(state: str = "SCHEDULED", **fields: str) -> LivePipeline:
    return LivePipeline("df-1", "users", {}, state, dict(fields))


def planned(action: Action | str, live_pipeline: LivePipeline | None = None
            ) -> PlannedAction:
    if action == UNKNOWN:
        return PlannedAction("prod", "users", Action.NOOP, "why", live=live_pipeline,
                             state=State.UNKNOWN)
    return PlannedAction("prod", "users", Action(action), "why", live=live_pipeline)


def result(action: Action | str, outcome: str) -> ActionResult:
    return ActionResult("prod", "users", Action(action), outcome)


@pytest.mark.parametrize("action, outcome, stalled, expected", [
    (Action.NOOP, None, False, SyncStatus.SYNCED),
    (Action.UPDATE, None, False, SyncStatus.OUT_OF_SYNC),
    (Action.UPDATE, "applied", False, SyncStatus.SYNCED),
    (Action.UPDATE, "failed", False, SyncStatus.OUT_OF_SYNC),
    (Action.UPDATE, "skipped", False, SyncStatus.OUT_OF_SYNC),
    (Action.DEACTIVATE, "applied", False, SyncStatus.SUSPENDED),
    (UNKNOWN, None, False, SyncStatus.UNKNOWN),
    (Action.UPDATE, "failed", True, SyncStatus.STALLED),
])
def test_sync_status(action, outcome, stalled, expected):
    done = result(action, outcome) if outcome else None
    assert sync_status(planned(action, live()), done, stalled=stalled) is expected


@pytest.mark.parametrize("action, live_pipeline, outcome, failed_run, expected", [
    (Action.NOOP, live(), None, False, Health.HEALTHY),
    (Action.NOOP, live(), None, True, Health.DEGRADED),
    (Action.NOOP, live(**{"@healthStatus": "ERROR"}), None, False, Health.DEGRADED),
    (Action.NOOP, live("ACTIVATING"), None, False, Health.PROGRESSING),
    (Action.UPDATE, live(), "applied", False, Health.PROGRESSING),
    (Action.UPDATE, live(), "failed", False, Health.HEALTHY),
    (Action.CREATE, None, "applied", False, Health.PROGRESSING),
    (UNKNOWN, live(), None, False, Health.UNKNOWN),
])
def test_health(action, live_pipeline, outcome, failed_run, expected):
    done = result(action, outcome) if outcome else None
    assert health(planned(action, live_pipeline), done, latest_run_failed=failed_run) \
        is expected


def test_a_pipeline_in_git_but_not_in_the_account_is_missing():
    from reconciler.desired.definition import CompiledPipeline

    desired = CompiledPipeline.__new__(CompiledPipeline)  # only its presence matters here
    missing = PlannedAction("prod", "users", Action.CREATE, "new", desired=desired)
    assert health(missing, None) is Health.MISSING


@pytest.mark.parametrize("sync, health_status, expected", [
    ("Synced", "Healthy", True), ("Suspended", "Degraded", True),
    ("Synced", "Degraded", False), ("OutOfSync", "Healthy", False),
    ("Stalled", "Healthy", False), ("Synced", "Progressing", False),
])
def test_settled_is_what_reconciler_status_exits_0_on(sync, health_status, expected):
    assert settled(sync, health_status) is expected


def test_progress_estimates_the_end_at_the_pace_so_far():
    from reconciler.apply.progress import Progress

    progress = Progress("prod", total=4, started=100.0)
    assert progress.remaining_seconds(100.0) is None and progress.ratio == 0
    progress.step()
    progress.step(failed=True)
    assert progress.ratio == 0.5 and progress.remaining_seconds(110.0) == 10.0
    assert progress.to_json(110.0, wall=1_000.0) == {
        "done": 2, "total": 4, "failed": 1, "ratio": 0.5, "estimated_end": 1_010.0}
    assert Progress("prod", total=0, started=0.0).ratio == 1.0
