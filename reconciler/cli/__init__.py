"""The ``reconciler`` command line: a thin shell over the stages, one module per family of
commands. It is the only place that reads the clock (the schedule's start date defaults to
today, UTC) and the terminal.

``common``: the group, the options several commands share (defined once), the errors and
exit codes; ``authoring``: validate, render, graph, sql, run-step, qa; ``reconciling``: plan,
apply, sync; ``operating``: run (the controller), status, emulator; ``migrating``: export
(pipelines as Airflow DAGs).
"""

from . import authoring, migrating, operating, reconciling
from .common import main

__all__ = ["authoring", "main", "migrating", "operating", "reconciling"]
