"""The controller's Prometheus metrics. Their names and labels are an API (dashboards and
alerts query them): ``tests/test_controller.py`` scrapes them and checks every one.

Each controller has its own registry (tests run several in one process); ``/metrics`` serves
it. Label values are environment and pipeline names, operations and states: never a secret,
a path or an error message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PASS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
# pipeline runs last from seconds to hours
RUN_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.reconcile_duration = Histogram(
            "dataduct_reconcile_duration_seconds", "Time of one pass over an environment.",
            ["env"], buckets=PASS_BUCKETS, registry=registry)
        self.reconcile_total = Counter(
            "dataduct_reconcile", "Passes over an environment, by result (success, failure: "
            "an action or the environment failed, waiting: another writer holds the lease).",
            ["env", "result"], registry=registry)
        self.pipeline_info = Gauge(
            "dataduct_pipeline_info", "One series per pipeline (value 1): its sync status "
            "(Synced, OutOfSync, Unknown, Suspended, Stalled) and health (Healthy, Progressing,"
            " Degraded, Missing, Unknown).",
            ["env", "pipeline", "sync_status", "health_status"], registry=registry)
        self.sync_actions = Counter(
            "dataduct_sync_actions", "Actions applied, by action and result (applied, failed, "
            "skipped).", ["env", "action", "result"], registry=registry)
        self.aws_requests = Counter(
            "dataduct_aws_requests", "AWS requests sent (every attempt), by operation and "
            "answer (OK or the error code).", ["env", "operation", "code"], registry=registry)
        self.aws_throttles = Counter(
            "dataduct_aws_throttles", "AWS requests answered with throttling.",
            ["env", "operation"], registry=registry)
        self.source_revision = Gauge(
            "dataduct_source_revision_info", "The revision of the manifests repository the "
            "controller applies (value 1).", ["revision"], registry=registry)
        self.source_last_success = Gauge(
            "dataduct_source_last_success_timestamp_seconds",
            "When the manifests repository was last read successfully (Unix time).",
            registry=registry)
        self.source_errors = Counter(
            "dataduct_source_errors", "Failed fetches or reads of the manifests repository.",
            registry=registry)
        self.drift_detected = Counter(
            "dataduct_drift_detected", "Pipelines found changed outside git.", ["env"],
            registry=registry)
        self.run_duration = Histogram(
            "dataduct_pipeline_run_duration_seconds", "Duration of finished activity runs "
            "(instances), from their first attempt's start to their end.",
            ["env", "pipeline", "activity"], buckets=RUN_BUCKETS, registry=registry)
        self.runs_total = Counter(
            "dataduct_pipeline_runs", "Finished activity runs, by final status (FINISHED, "
            "FAILED, CANCELED, ...).", ["env", "pipeline", "activity", "status"],
            registry=registry)
        self.run_retries = Counter(
            "dataduct_pipeline_run_retries", "Attempts after the first of finished activity "
            "runs.", ["env", "pipeline", "activity"], registry=registry)
        self.last_success = Gauge(
            "dataduct_pipeline_last_success_timestamp_seconds",
            "When a run of the pipeline last finished successfully (Unix time).",
            ["env", "pipeline"], registry=registry)
        self.late = Gauge(
            "dataduct_pipeline_late_seconds", "How far the pipeline's latest expected run is "
            "overdue (0 when on time).", ["env", "pipeline"], registry=registry)
        self.pass_progress = Gauge(
            "dataduct_pass_progress_ratio", "How far the current (or last) apply of an "
            "environment is: actions done of its total (1 when it has none left).", ["env"],
            registry=registry)
        self.pass_remaining = Gauge(
            "dataduct_pass_remaining_seconds", "When the current apply of an environment "
            "should end, at its pace so far (0 when none is running).", ["env"],
            registry=registry)
        self.operations = Counter(
            "dataduct_operations", "Operations done by hand, by operation (refresh, rerun) and"
            " environment (all: every one): the controller's page and webhook, and what "
            "`reconciler rerun` wrote in the operations journal.", ["operation", "env"],
            registry=registry)
        self._pipeline_series: set[tuple[str, ...]] = set()
        self._revision: str | None = None

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def set_revision(self, revision: str) -> None:
        if self._revision is not None and self._revision != revision:
            self.source_revision.remove(self._revision)
        self._revision = revision
        self.source_revision.labels(revision).set(1)

    def set_pipelines(self, env: str, rows: Iterable[tuple[str, str, str]]) -> None:
        """Replace the environment's pipeline_info series: (pipeline, sync, health) each."""
        wanted = {(env, *row) for row in rows}
        for labels in [s for s in self._pipeline_series if s[0] == env and s not in wanted]:
            self.pipeline_info.remove(*labels)
            self._pipeline_series.discard(labels)
        for labels in wanted:
            self.pipeline_info.labels(*labels).set(1)
            self._pipeline_series.add(labels)

    def forget_pipeline(self, env: str, pipeline: str) -> None:
        """A pipeline no longer managed: its run gauges go too."""
        for gauge in (self.last_success, self.late):
            with contextlib.suppress(KeyError):  # never had a value
                gauge.remove(env, pipeline)
