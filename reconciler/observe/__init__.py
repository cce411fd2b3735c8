"""What the controller observes and exports: its Prometheus metrics (``metrics``) and how the
pipelines run (``runs``: finished runs, retries, durations, last success, lateness)."""

from .metrics import Metrics
from .runs import ActivityRun, CursorStore, RunObserver, RunSummary

__all__ = ["ActivityRun", "CursorStore", "Metrics", "RunObserver", "RunSummary"]
