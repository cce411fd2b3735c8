"""Run by Airflow's own Python: render templates the way a task's fields are rendered, with
a DAG's template environment and a run's times as pendulum datetimes, and print the results
as JSON. Reads ``[{"template": ..., "times": {"logical_date": ISO, ...}}, ...]`` on stdin."""

import json
import sys

import pendulum
from airflow.sdk import DAG


def main() -> None:
    env = DAG("render", schedule=None).get_template_env()
    out = []
    for case in json.load(sys.stdin):
        context = {name: pendulum.parse(value) for name, value in case["times"].items()}
        out.append(env.from_string(case["template"]).render(**context))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
