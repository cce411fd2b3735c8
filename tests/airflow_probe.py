"""Run by Airflow's own Python (make install's .tools/airflow): load a DAG folder the way
Airflow's DAG processor does and print, as JSON, the import errors, how long each file took
to parse, and each DAG's tasks with their upstream tasks, its next run times, its deadline
alerts and the steps its EMR tasks add."""

import json
import sys
import time
from pathlib import Path

from airflow.dag_processing.dagbag import DagBag
from airflow.timetables.base import TimeRestriction


def next_runs(dag, count):
    restriction = TimeRestriction(earliest=dag.start_date, latest=dag.end_date, catchup=True)
    runs, last = [], None
    for _ in range(count):
        info = dag.timetable.next_dagrun_info(last_automated_data_interval=last,
                                              restriction=restriction)
        if info is None:
            break
        runs.append(info.run_after.isoformat())
        last = info.data_interval
    return runs


def main(folder: str, count: int) -> None:
    parse_seconds = {}
    for path in sorted(Path(folder).glob("*.py")):
        started = time.perf_counter()
        DagBag(dag_folder=str(path))
        parse_seconds[path.name] = time.perf_counter() - started
    bag = DagBag(dag_folder=folder)
    dags = {
        dag_id: {
            "file": Path(dag.fileloc).name,
            "tasks": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
            "operators": {t.task_id: type(t).__name__ for t in dag.tasks},
            "runs": next_runs(dag, count) if dag.timetable.can_be_scheduled else [],
            "schedule": type(dag.timetable).__name__,
            "deadlines": [[d.name, d.interval.total_seconds(), type(d.reference).__name__]
                          for d in dag.deadline or []],
            "emr_steps": {t.task_id: t.steps for t in dag.tasks
                          if type(t).__name__ == "EmrAddStepsOperator"},
        }
        for dag_id, dag in bag.dags.items()
    }
    print(json.dumps({"import_errors": {Path(k).name: v for k, v in bag.import_errors.items()},
                      "parse_seconds": parse_seconds, "dags": dags}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 7)
