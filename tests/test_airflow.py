"""The Airflow target: Data Pipeline definitions translated to Airflow 3 DAG files, proven on
a real Airflow (make install's .tools/airflow; these tests skip without it, and fail under
CI=true). The DAGs of the example repository and of every Dataduct example load with no
import error, with the same graph and run times as the definitions they came from; a
pipeline of SQL and QA steps runs under `airflow dags test` on the local PostgreSQL and
MariaDB with the same result as `reconciler run-step`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.airflow import Source, TranslationError, translate
from reconciler.airflow.jinja import RunTimes, UntranslatableExpression, translate_text
from reconciler.airflow.schedule import (
    data_pipeline_run_times,
    read_schedule,
    timetable,
)
from reconciler.desired.config import AirflowSettings
from reconciler.desired.definition import CompiledPipeline, objects_from_document
from reconciler.qa.databases import login_from_url
from reconciler.service.expressions import mapping_lookup, substitute

from .conftest import (
    CUSTOM_EXTRACT_LOCAL,
    DATADUCT_EXAMPLES,
    PROJECT,
    compile_repo,
    run_cli,
    unavailable,
)
from .databases import postgres_connect, postgres_database

AIRFLOW_PYTHON = PROJECT / ".tools" / "airflow" / "bin" / "python"
PROBE = Path(__file__).parent / "airflow_probe.py"
RUFF = Path(sys.executable).parent / "ruff"
CRON = RunTimes.for_schedule(False, 86400)


def require_airflow() -> Path:
    if not AIRFLOW_PYTHON.exists():
        unavailable(f"Apache Airflow is not installed at {AIRFLOW_PYTHON.parent.parent} "
                    "(make install provides it)")
    return AIRFLOW_PYTHON


def airflow_env(home: Path, dags: Path, **connections: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "PATH": f"{AIRFLOW_PYTHON.parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    env.update({f"AIRFLOW_CONN_{k.upper()}": v for k, v in connections.items()})
    return env


def probe(dags: Path, tmp_path: Path) -> dict:
    done = subprocess.run([str(require_airflow()), str(PROBE), str(dags)], capture_output=True,
                          text=True, timeout=300, env=airflow_env(tmp_path / "home", dags))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def export(root: Path, env: str, out: Path, *extra: str):
    return run_cli("export", str(root), "--env", env, "--target", "airflow", "--out", str(out),
                   "--start-date", "2026-11-26", *extra)


def with_corpus(repo: Path) -> None:
    """The Dataduct examples added to the repository, where ../shared/reference has them
    (the tests check the example repository alone without it)."""
    if DATADUCT_EXAMPLES.exists():
        for item in (DATADUCT_EXAMPLES / "resources").iterdir():
            shutil.copytree(item, repo / item.name, dirs_exist_ok=True)
        for example in DATADUCT_EXAMPLES.glob("*.yaml"):
            shutil.copy(example, repo / "pipelines" / example.name)
        (repo / "steps" / "custom-extract-local.yaml").write_text(CUSTOM_EXTRACT_LOCAL)


# -- what Data Pipeline would do, from the definition ----------------------------------------


def activity_graph(objects) -> dict[str, set[str]]:
    """Each activity's direct upstream activities: dependsOn, and the writers of its inputs."""
    activities = [o for o in objects if (o.type or "").endswith("Activity")]
    writers: dict[str, set[str]] = {}
    for a in activities:
        for node in a.get_all("output"):
            writers.setdefault(node, set()).add(a.id)
    return {a.id: set(a.get_all("dependsOn")) | {w for node in a.get_all("input")
                                                  for w in writers.get(node, set()) - {a.id}}
            for a in activities}


def airflow_activity_graph(tasks: dict[str, list[str]], activities: set[str]
                           ) -> dict[str, set[str]]:
    """Each activity task's nearest upstream activity tasks, through helper tasks
    (sensors, created tables, EMR waits) but not through other activities."""
    out = {}
    for task in activities:
        found, stack, seen = set(), list(tasks[task]), set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            if current in activities:
                found.add(current)
            else:
                stack += tasks[current]
        out[task] = found
    return out


def run_times(compiled: CompiledPipeline, count: int = 7) -> list[str]:
    by_id = {o.id: o for o in compiled.objects}
    default = by_id["Default"]
    schedule = by_id[default.get("schedule") or ""]
    kind = default.get("scheduleType") or "cron"
    fields = {k: schedule.get(k) for k in ("period", "startDateTime", "endDateTime",
                                            "occurrences") if schedule.get(k)}
    return [t.isoformat() for t in data_pipeline_run_times(read_schedule(kind, fields), count)]


# -- the translation, without Airflow -------------------------------------------------------------


def test_expressions_become_jinja_on_the_runs_data_interval():
    assert translate_text("s3://b/#{format(@scheduledStartTime, 'YYYY-MM-dd')}/x", CRON) == \
        "s3://b/{{ logical_date.strftime('%Y-%m-%d') }}/x"
    assert translate_text("#{format(minusDays(@scheduledStartTime, 1), 'YYYY-MM-dd HH')}",
                          CRON) == "{{ logical_date.subtract(days=1).strftime('%Y-%m-%d %H') }}"
    timeseries = RunTimes.for_schedule(True, 3600)
    assert translate_text("#{@scheduledEndTime}", timeseries) == \
        "{{ data_interval_end.strftime('%Y-%m-%dT%H:%M:%S') }}"
    # what depends on nothing of the run is evaluated as the service does
    assert translate_text("#{1 + 2} #{myBucket}/#{plusDays(makeDate(2026, 1, 31), 1)}", CRON,
                          {"myBucket": "s3://data"}.get) == "3 s3://data/2026-02-01T00:00:00"
    # text that would read as Jinja stays text
    assert translate_text("echo {{ not jinja }}", CRON) == \
        "{% raw %}echo {{ not jinja }}{% endraw %}"
    with pytest.raises(UntranslatableExpression, match=r"\*myPassword is an encrypted"):
        translate_text("#{*myPassword}", CRON)
    with pytest.raises(UntranslatableExpression, match="uses 'SSS', which strftime has no form"):
        translate_text("#{format(@scheduledStartTime, 'HH:mm:ss.SSS')}", CRON)


# Expressions of the kinds the translator writes as Jinja, each field's text as a user wrote it.
RUN_EXPRESSIONS = [
    "s3://b/#{format(@scheduledStartTime, 'YYYY-MM-dd')}/part",
    "#{format(@scheduledStartTime, 'YYYY-MM-dd HH:mm:ss')}",
    "#{format(@scheduledEndTime, 'YYYY-MM-dd-HH')}",
    "#{@scheduledStartTime}", "#{@scheduledEndTime}",
    "#{format(minusDays(@scheduledStartTime, 1), 'YYYY-MM-dd')}",
    "#{format(plusHours(@scheduledStartTime, 30), 'YYYY-MM-dd HH')}",
    "#{format(plusMonths(@scheduledStartTime, 1), 'YYYY-MM-dd')}",
    "#{format(minusMonths(@scheduledStartTime, 1), 'YYYY-MM-dd')}",
    "#{format(plusWeeks(@scheduledStartTime, 2), 'yyyyMMdd')}",
    "#{format(minusMinutes(@scheduledStartTime, 90), 'HH:mm')}",
    "#{format(plusYears(@scheduledStartTime, 1), 'YYYY-MM-dd')}",
    "#{format(midnight(@scheduledStartTime), 'YYYY-MM-dd HH:mm')}",
    "#{format(firstOfMonth(@scheduledStartTime), 'YYYY-MM-dd')}",
    "#{format(yesterday(@scheduledStartTime), 'YYYY-MM-dd')}",
    "#{format(sunday(@scheduledStartTime), 'YYYY-MM-dd')}",
    "#{day(@scheduledStartTime)}-#{hour(@scheduledStartTime)}-#{month(@scheduledStartTime)}",
    "#{year(@scheduledStartTime)} #{dayOfYear(@scheduledStartTime)}",
    "#{format(@scheduledStartTime, 'd/M/yy H:m:s')} #{format(@scheduledStartTime, 'EEE MMM')}",
]
# Moments where calendars go wrong: month ends, a leap day, a Sunday, a year's last hour.
RUN_STARTS = ["2026-01-31T12:00:00", "2028-02-29T00:00:00", "2026-11-29T23:30:00",
              "2026-12-31T23:00:00", "2026-03-01T05:07:09"]


@pytest.mark.parametrize("timeseries", [False, True], ids=["cron", "timeseries"])
def test_the_jinja_renders_what_the_service_evaluates_for_the_same_run(tmp_path, timeseries):
    """Each expression, rendered by Airflow for a run, is the text the service gives the
    instance that run stands for."""
    python = require_airflow()
    period = 3600
    times = RunTimes.for_schedule(timeseries, period)
    cases, expected = [], []
    for start in RUN_STARTS:
        moment = datetime.fromisoformat(start).replace(tzinfo=UTC)
        end = moment + timedelta(seconds=period)
        # the run Airflow makes for this instance: a trigger at the scheduled start, or a
        # data interval from it to its end
        context = ({"data_interval_start": moment, "data_interval_end": end} if timeseries
                   else {"logical_date": moment})
        service = mapping_lookup({"@scheduledStartTime": moment, "@scheduledEndTime": end})
        for text in RUN_EXPRESSIONS:
            cases.append({"template": translate_text(text, times),
                          "times": {k: v.isoformat() for k, v in context.items()}})
            expected.append(substitute(text, service))
    done = subprocess.run([str(python), str(Path(__file__).parent / "airflow_render.py")],
                          input=json.dumps(cases), capture_output=True, text=True, timeout=120,
                          env=airflow_env(tmp_path / "home", tmp_path / "dags"))
    assert done.returncode == 0, done.stderr[-3000:]
    rendered = json.loads(done.stdout.strip().splitlines()[-1])
    differ = [(case["template"], case["times"], want, got)
              for case, want, got in zip(cases, expected, rendered, strict=True) if want != got]
    assert differ == []


@pytest.mark.parametrize("text", [
    "plain", "it's", 'say "hi"', "both ' and \"", "tab\there", "back\\slash", "line\nbreak",
    "two\nlines\\ with a backslash", 'ends with a quote"\nsecond line"', "\x00\x1f\x7f",
    "unicode: é ✓", "CRLF\r\n",
])
def test_string_literals_read_back_as_the_text(text):
    import ast

    from reconciler.airflow.pycode import string

    assert ast.literal_eval(string(text)) == text


@pytest.mark.parametrize("period, start, kind, expected", [
    ("1 days", "2026-11-26T12:00:00", "cron", ("cron", "0 12 * * *")),
    ("1 hours", "2026-11-26T12:30:00", "cron", ("cron", "30 * * * *")),
    ("6 hours", "2026-11-26T03:15:00", "timeseries", ("cron", "15 3-23/6 * * *")),
    ("15 minutes", "2026-11-26T00:05:00", "cron", ("cron", "5-59/15 * * * *")),
    ("1 weeks", "2026-11-26T08:00:00", "cron", ("cron", "0 8 * * 4")),
    ("1 months", "2026-11-26T08:00:00", "cron", ("cron", "0 8 26 * *")),
    ("3 days", "2026-11-26T08:00:00", "cron", ("delta", 3 * 86400)),
    ("7 minutes", "2026-11-26T08:00:00", "timeseries", ("delta", 420)),
])
def test_schedules_become_timetables_with_the_same_times(period, start, kind, expected):
    schedule = read_schedule(kind, {"period": period, "startDateTime": start})
    table = timetable(schedule)
    assert (table.kind, table.argument) == expected
    assert table.timeseries == (kind == "timeseries")


def test_occurrences_and_end_bound_the_dag():
    schedule = read_schedule("cron", {"period": "1 days", "startDateTime": "2026-11-26T00:00:00",
                                      "occurrences": "3"})
    assert timetable(schedule).end == datetime(2026, 11, 28, tzinfo=UTC)
    assert len(data_pipeline_run_times(schedule, 7)) == 3


UNTRANSLATABLE = {"objects": [
    {"id": "Default", "scheduleType": "ondemand"},
    {"id": "Hive", "type": "HiveCopyActivity", "filterSql": "true", "runsOn": {"ref": "Emr"}},
    {"id": "Emr", "type": "EmrCluster"},
    {"id": "Report", "type": "ShellCommandActivity", "command": "echo done",
     "dependsOn": {"ref": "Hive"}},
]}


def test_what_does_not_translate_is_refused_or_a_failing_todo_task():
    objects, values = objects_from_document(UNTRANSLATABLE)
    with pytest.raises(TranslationError) as refused:
        translate(Source("hive", objects, values), AirflowSettings())
    assert [r.format() for r in refused.value.refusals] == [
        "Hive: HiveCopyActivity is not translated"]
    dag = translate(Source("hive", objects, values), AirflowSettings(), best_effort=True)
    assert [r.object_id for r in dag.refusals] == ["Hive"]
    assert "echo 'TODO: Hive (HiveCopyActivity) was not translated: HiveCopyActivity is not " \
           "translated' >&2; exit 1" in dag.text
    assert "    Hive >> Report" in dag.text


def test_the_cli_translates_a_definition_file_and_refuses_clearly(repo, tmp_path):
    definition = tmp_path / "hive.json"
    definition.write_text(json.dumps(UNTRANSLATABLE))
    out = tmp_path / "dags"
    refused = export(repo, "staging", out, "--definition", str(definition))
    assert refused.code == 1
    assert "Hive: HiveCopyActivity is not translated" in refused.stderr
    assert "use --best-effort" in refused.stderr
    written = export(repo, "staging", out, "--definition", str(definition), "--best-effort")
    assert written.code == 0, written.stderr
    assert "hive.py: 2 task(s), 1 TODO task(s)" in written.stdout
    assert "TODO Hive: HiveCopyActivity is not translated" in written.stdout
    broken = tmp_path / "broken.json"
    broken.write_text('{"pipeline": []}')
    bad = export(repo, "staging", out, "--definition", str(broken))
    assert bad.code == 1 and "not a pipeline definition: a definition has 'objects'" in \
        bad.stderr


def test_render_and_validate_speak_airflow(repo):
    users = repo / "pipelines" / "users.yaml"
    rendered = run_cli("render", str(users), "--env", "prod", "--target", "airflow")
    assert rendered.code == 0, rendered.stderr
    assert rendered.stdout.startswith('"""prod-users: translated from AWS Data Pipeline')
    assert 'dag_id="prod-users"' in rendered.stdout
    assert "{{ conn.redshift_database.password or '' }}" in rendered.stdout
    assert "demo-" not in rendered.stdout and "password=" not in rendered.stdout.lower()
    valid = run_cli("validate", str(repo), "--target", "airflow")
    assert valid.code == 0, valid.stderr


def test_connection_ids_come_from_reconciler_yaml(repo):
    settings = repo / "reconciler.yaml"
    settings.write_text(settings.read_text().replace(
        "    name_prefix: prod-\n",
        "    name_prefix: prod-\n    airflow:\n      aws_conn_id: aws_prod\n"
        "      connections:\n        RedshiftDatabase: redshift_prod\n"))
    rendered = run_cli("render", str(repo / "pipelines" / "users.yaml"), "--env", "prod",
                       "--target", "airflow")
    assert rendered.code == 0, rendered.stderr
    assert 'conn_id="redshift_prod"' in rendered.stdout
    assert 'aws_conn_id="aws_prod"' in rendered.stdout
    assert "mysql_database_maestro_user_db" in rendered.stdout  # the default: snake case


def test_export_is_deterministic_and_passes_ruff(repo, tmp_path):
    with_corpus(repo)
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        done = export(repo, "prod", out)
        assert done.code == 0, done.stdout + done.stderr
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    formatted = subprocess.run([str(RUFF), "format", "--isolated", "--check", str(first)],
                               capture_output=True, text=True)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    checked = subprocess.run([str(RUFF), "check", "--isolated", "--select", "E4,E7,E9,F,W,I,B,UP",
                              str(first)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
    assert "prod-users/" in (first / ".airflowignore").read_text().splitlines()


# -- on a real Airflow ---------------------------------------------------------------------------


GUIDE_STYLE = {  # the guide's shapes: a CopyActivity from S3 to RDS, a staged shell command
    "objects": [
        {"id": "Default", "scheduleType": "cron", "schedule": {"ref": "Hourly"},
         "failureAndRerunMode": "CASCADE", "role": "DataPipelineDefaultRole",
         "resourceRole": "DataPipelineDefaultResourceRole", "runsOn": {"ref": "Worker"}},
        {"id": "Worker", "type": "Ec2Resource", "instanceType": "m5.large",
         "terminateAfter": "2 Hours"},
        {"id": "Hourly", "type": "Schedule", "period": "1 hours",
         "startDateTime": "2026-11-26T00:00:00"},
        {"id": "Rds", "type": "RdsDatabase", "rdsInstanceId": "reporting", "username": "etl",
         "*password": "not-a-real-password"},
        {"id": "Csv", "type": "CSV"},
        {"id": "Input", "type": "S3DataNode", "dataFormat": {"ref": "Csv"},
         "filePath": "s3://bucket/in/#{format(@scheduledStartTime, 'YYYY-MM-dd-HH')}.csv",
         "precondition": {"ref": "Ready"}},
        {"id": "Ready", "type": "S3KeyExists",
         "s3Key": "s3://bucket/in/#{format(@scheduledStartTime, 'YYYY-MM-dd-HH')}.csv"},
        {"id": "Table", "type": "SqlDataNode", "database": {"ref": "Rds"}, "table": "events",
         "insertQuery": "INSERT INTO events (id, kind) VALUES (?, ?)"},
        {"id": "Load", "type": "CopyActivity", "input": {"ref": "Input"},
         "output": {"ref": "Table"}, "maximumRetries": "3", "retryDelay": "5 Minutes"},
        {"id": "Out", "type": "S3DataNode", "directoryPath": "s3://bucket/out/"},
        {"id": "Summarise", "type": "ShellCommandActivity", "stage": "true",
         "input": {"ref": "Input"}, "output": {"ref": "Out"}, "dependsOn": {"ref": "Load"},
         "command": "wc -l ${INPUT1_STAGING_DIR}/* > ${OUTPUT1_STAGING_DIR}/count.txt",
         "attemptTimeout": "1 hours"},
    ],
    "parameters": []}


EMR_APPLICATIONS = {  # the guide's HadoopActivity, a staged HiveActivity, a PigActivity
    "objects": [
        {"id": "Default", "scheduleType": "cron", "schedule": {"ref": "Daily"},
         "role": "DataPipelineDefaultRole", "resourceRole": "DataPipelineDefaultResourceRole"},
        {"id": "Daily", "type": "Schedule", "period": "1 days",
         "startDateTime": "2026-11-26T03:00:00"},
        {"id": "Cluster", "type": "EmrCluster", "releaseLabel": "emr-6.15.0",
         "masterInstanceType": "m5.xlarge", "coreInstanceCount": "2",
         "applications": ["hive", "pig"], "terminateAfter": "3 Hours"},
        {"id": "Late", "type": "SnsAlarm", "topicArn": "arn:aws:sns:us-east-1:123456789012:etl",
         "subject": "#{node.name} is late",
         "message": "#{node.name} of #{format(node.@scheduledStartTime, 'YYYY-MM-dd')} "
                    "has not finished"},
        {"id": "WordCount", "type": "HadoopActivity", "runsOn": {"ref": "Cluster"},
         "jarUri": "/home/hadoop/contrib/streaming/hadoop-streaming.jar",
         "argument": ["-files", "s3://elasticmapreduce/samples/wordcount/wordSplitter.py",
                      "-mapper", "wordSplitter.py", "-reducer", "aggregate",
                      "-input", "s3://elasticmapreduce/samples/wordcount/input/",
                      "-output", "s3://bucket/wordcount/#{format(@scheduledStartTime,"
                                 "'YYYY-MM-dd')}"],
         "maximumRetries": "0", "lateAfterTimeout": "2 Hours",
         "onLateAction": {"ref": "Late"}},
        {"id": "Format", "type": "CSV", "column": ["host STRING", "status INT"]},
        {"id": "Logs", "type": "S3DataNode", "dataFormat": {"ref": "Format"},
         "directoryPath": "s3://bucket/logs/#{format(@scheduledStartTime, 'YYYY-MM-dd')}"},
        {"id": "Errors", "type": "S3DataNode", "dataFormat": {"ref": "Format"},
         "directoryPath": "s3://bucket/errors/"},
        {"id": "FindErrors", "type": "HiveActivity", "runsOn": {"ref": "Cluster"},
         "input": {"ref": "Logs"}, "output": {"ref": "Errors"},
         "scriptVariable": "LIMIT=500", "dependsOn": {"ref": "WordCount"},
         "hiveScript": "INSERT OVERWRITE TABLE ${output1} SELECT host, status FROM "
                       "${input1} WHERE status >= ${LIMIT};"},
        {"id": "Summarise", "type": "PigActivity", "runsOn": {"ref": "Cluster"},
         "stage": "false", "input": {"ref": "Errors"},
         "scriptUri": "s3://bucket/scripts/summarise.pig",
         "scriptVariable": "DAY=#{format(@scheduledStartTime, 'YYYY-MM-dd')}"},
    ],
    "parameters": []}


def test_hadoop_hive_and_pig_become_steps_on_the_activitys_cluster():
    objects, values = objects_from_document(EMR_APPLICATIONS)
    dag = translate(Source("emr-apps", objects, values), AirflowSettings())
    assert dag.tasks == ("Cluster_create", "WordCount", "WordCount_wait", "FindErrors",
                         "FindErrors_wait", "Summarise", "Summarise_wait", "Cluster_terminate")
    # the Hive script reads the data nodes as the external tables the service stages
    assert ("CREATE EXTERNAL TABLE input1 (`host` STRING, `status` INT) ROW FORMAT SERDE "
            "'org.apache.hadoop.hive.serde2.OpenCSVSerde' LOCATION "
            "'s3://bucket/logs/{{ logical_date.strftime('%Y-%m-%d') }}/';") in dag.text
    # a lateness with an action is the run's deadline alert, sending the same alarm
    assert "reference=DeadlineReference.DAGRUN_LOGICAL_DATE" in dag.text
    assert "interval=datetime.timedelta(seconds=7200)" in dag.text
    assert '"subject": "WordCount is late",' in dag.text
    assert ('"message": "WordCount of {{ dag_run.logical_date.strftime(\'%Y-%m-%d\') }} has '
            'not finished",') in dag.text

    def variant(object_id: str, **fields: str | None) -> list[str]:
        def change(o: dict) -> dict:
            o = {**o, **fields} if o["id"] == object_id else o
            return {k: v for k, v in o.items() if v is not None}
        changed = {"objects": [change(o) for o in EMR_APPLICATIONS["objects"]]}
        objects, values = objects_from_document(changed)
        with pytest.raises(TranslationError) as refused:
            translate(Source("emr-apps", objects, values), AirflowSettings())
        return [r.format() for r in refused.value.refusals]

    assert variant("WordCount", hadoopQueue="high") == [
        "WordCount.hadoopQueue: the YARN queue is the cluster's to set (EMR configurations); "
        "it is not translated"]
    assert variant("Summarise", stage="true") == [
        "Summarise.stage: Pig staging (${INPUT1} loaded from the data node) is not "
        "translated: set stage: false and LOAD the data node's path in the script"]
    assert variant("FindErrors", hiveScript=None, scriptUri="s3://b/find.q") == [
        "FindErrors.scriptUri: staged tables with a script read from S3 are not translated: "
        "give the script as hiveScript, or set stage: false and create the tables in it"]
    assert variant("FindErrors", hiveScript=None) == [
        "FindErrors.hiveScript: has neither hiveScript nor scriptUri"]
    assert variant("Cluster", releaseLabel="", amiVersion="3.7.0")[0].startswith(
        "FindErrors.runsOn: Cluster has no releaseLabel")


def test_every_translated_dag_loads_with_the_same_graph_and_run_times(repo, tmp_path):
    require_airflow()
    with_corpus(repo)
    dags = tmp_path / "dags"
    compiled: dict[str, CompiledPipeline] = {}
    result = compile_repo(repo)
    for env in ("staging", "prod"):
        done = export(repo, env, dags)
        assert done.code == 0, done.stdout + done.stderr
        prefix = result.settings.environments[env].name_prefix
        compiled.update({f"{prefix}{c.aws_name}": c for c in result.compiled(env)})
    for name, document in (("guide-style", GUIDE_STYLE), ("emr-apps", EMR_APPLICATIONS)):
        definition = tmp_path / f"{name}.json"
        definition.write_text(json.dumps(document))
        done = export(repo, "staging", dags, "--definition", str(definition))
        assert done.code == 0, done.stdout + done.stderr
    loaded = probe(dags, tmp_path)
    assert loaded["import_errors"] == {}
    assert set(loaded["dags"]) == {*compiled, "guide-style", "emr-apps"}
    slow = {name: seconds for name, seconds in loaded["parse_seconds"].items() if seconds >= 1}
    assert slow == {}
    for dag_id, pipeline in compiled.items():
        dag = loaded["dags"][dag_id]
        expected = activity_graph(pipeline.objects)
        assert airflow_activity_graph(dag["tasks"], set(expected)) == expected, dag_id
        assert dag["runs"] == run_times(pipeline), dag_id
    guide = loaded["dags"]["guide-style"]
    assert guide["tasks"]["Load"] == ["Input_Ready"]
    assert sorted(guide["tasks"]["Summarise"]) == ["Input_Ready", "Load"]
    assert guide["operators"] == {"Input_Ready": "S3KeySensor", "Load": "S3ToSqlOperator",
                                  "Summarise": "BashOperator"}
    assert guide["runs"][:2] == ["2026-11-26T00:00:00+00:00", "2026-11-26T01:00:00+00:00"]
    emr = loaded["dags"]["emr-apps"]
    assert emr["deadlines"] == [["WordCount late", 7200.0, "DagRunLogicalDateDeadline"]]
    assert emr["runs"][:2] == ["2026-11-26T03:00:00+00:00", "2026-11-27T03:00:00+00:00"]
    hive = emr["emr_steps"]["FindErrors"][0]["HadoopJarStep"]
    assert hive["Jar"] == "command-runner.jar"
    assert hive["Args"][:7] == ["hive", "-d", "input1=input1", "-d", "output1=output1", "-d",
                                "LIMIT=500"]
    assert emr["emr_steps"]["WordCount"][0]["HadoopJarStep"]["Args"][-1] == \
        "s3://bucket/wordcount/{{ logical_date.strftime('%Y-%m-%d') }}"
    assert emr["tasks"]["Cluster_terminate"] == ["FindErrors_wait", "Summarise_wait",
                                                 "WordCount_wait"]
    if not DATADUCT_EXAMPLES.exists():
        pytest.skip(f"only the example repository was checked: {DATADUCT_EXAMPLES} is missing")


CHECKS_PIPELINE = """\
name: users_checks
frequency: daily
load_time: 12:00
description: The users upsert and its QA checks, on data already staged

steps:
- step_type: upsert
  name: upsert_users
  source: tables/staging.maestro_users.sql
  destination: tables/prod.users.sql

- step_type: primary-key-check
  name: unique_users
  table_definition: tables/prod.users.sql

- step_type: count-check
  name: count_users
  source_host: maestro
  source_table_name: users
  destination_table_definition: tables/prod.users.sql
  tolerance: 1.0
"""


def test_airflow_runs_sql_and_qa_steps_as_run_step_does(repo, tmp_path, mysql):
    require_airflow()
    (repo / "pipelines" / "users_checks.yaml").write_text(CHECKS_PIPELINE)
    dags = tmp_path / "dags"
    done = export(repo, "prod", dags, "--pipeline", "users_checks", "--sql-dialect", "postgres")
    assert done.code == 0, done.stdout + done.stderr
    home = tmp_path / "home"
    with postgres_database() as by_run_step, postgres_database() as by_airflow:
        for dsn in (by_run_step, by_airflow):
            seeded = subprocess.run([sys.executable, str(PROJECT / "tools" / "load_seed.py"),
                                     "--dsn", dsn, "--source-dsn", mysql.dsn],
                                    capture_output=True, text=True, timeout=60)
            assert seeded.returncode == 0, seeded.stderr
        pipeline = str(repo / "pipelines" / "users_checks.yaml")
        for step in ("upsert_users", "unique_users", "count_users"):
            ran = run_cli("run-step", pipeline, step, "--env", "prod", "--dsn", by_run_step,
                          "--source-dsn", mysql.dsn, "--scheduled-time", "2026-11-27T12:00:00")
            assert ran.code == 0, ran.stderr
        # the check's source has no database object here: its connection is named after
        # the password it is given (*myMysqlMaestroPassword)
        assert "(connections: aws_default, mysql_maestro, redshift_database)" in done.stdout
        env = airflow_env(home, dags, redshift_database=by_airflow, mysql_maestro=mysql.dsn)
        # without the retries, which `airflow dags test` would wait out (10 minutes each)
        dag_file = dags / "prod-users_checks.py"
        dag_file.write_text(re.sub(r"retries=\d+", "retries=0", dag_file.read_text()))
        migrated = subprocess.run([str(AIRFLOW_PYTHON.parent / "airflow"), "db", "migrate"],
                                  capture_output=True, text=True, timeout=120, env=env)
        assert migrated.returncode == 0, migrated.stderr[-2000:]

        def dags_test() -> subprocess.CompletedProcess:
            return subprocess.run([str(AIRFLOW_PYTHON.parent / "airflow"), "dags", "test",
                                   "prod-users_checks", "2026-11-27T12:00:00+00:00"],
                                  capture_output=True, text=True, timeout=300, env=env)

        run = dags_test()
        log = run.stdout + run.stderr
        assert run.returncode == 0, log[-4000:]
        assert log.count("new_state=success") == 3, log[-4000:]

        def rows(dsn: str) -> list[tuple]:
            with postgres_connect(login_from_url(dsn, "destination")) as connection:
                return [tuple(r) for r in connection.execute(
                    "SELECT * FROM prod.users ORDER BY id").fetchall()]

        assert rows(by_airflow) == rows(by_run_step)
        assert len(rows(by_airflow)) == 12
        # a row lost on the way: the count check fails its task, and the run
        with postgres_connect(login_from_url(by_airflow, "destination")) as connection:
            connection.execute("DELETE FROM prod.users WHERE id = 12")
            connection.execute("CREATE OR REPLACE FUNCTION prod.keep_out() RETURNS trigger "
                               "AS $$ BEGIN RETURN NULL; END $$ LANGUAGE plpgsql")
            connection.execute("CREATE TRIGGER keep_out BEFORE INSERT ON prod.users FOR EACH "
                               "ROW WHEN (NEW.id = 12) EXECUTE FUNCTION prod.keep_out()")
        failed = dags_test()
        log = failed.stdout + failed.stderr
        assert failed.returncode != 0, log[-4000:]
        assert '"destination_rows": 11' in log, log[-4000:]
        assert "new_state=failed" in log and "count_users" in log


def test_an_extract_rds_task_writes_the_rows_to_the_embedded_s3(repo, tmp_path, mysql, endpoint):
    require_airflow()
    import boto3

    dags = tmp_path / "dags"
    done = export(repo, "prod", dags, "--pipeline", "users")
    assert done.code == 0, done.stdout + done.stderr
    with postgres_database() as dsn:  # the seed loads both; this test reads MySQL's
        seeded = subprocess.run([sys.executable, str(PROJECT / "tools" / "load_seed.py"),
                                 "--dsn", dsn, "--source-dsn", mysql.dsn],
                                capture_output=True, text=True, timeout=60)
    assert seeded.returncode == 0, seeded.stderr
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="coursera-reinvent")
    aws = json.dumps({"conn_type": "aws", "login": "testing", "password": "testing",
                      "extra": {"region_name": "us-east-1", "endpoint_url": endpoint}})
    env = airflow_env(tmp_path / "home", dags, mysql_database_maestro_user_db=mysql.dsn,
                      aws_default=aws)
    airflow = str(AIRFLOW_PYTHON.parent / "airflow")
    migrated = subprocess.run([airflow, "db", "migrate"], capture_output=True, text=True,
                              timeout=120, env=env)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    ran = subprocess.run([airflow, "tasks", "test", "prod-users", "extract_rds",
                          "2026-11-27T12:00:00+00:00"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-4000:]
    key = "prod/data/users/extract_rds/2026-11-27-12-00-00/extract_rds.csv"
    written = s3.get_object(Bucket="coursera-reinvent", Key=key)["Body"].read().decode()
    with mysql.connection.cursor() as cursor:
        cursor.execute("SELECT id, user_name, user_email FROM users")
        rows = cursor.fetchall()
    # the rows of the pipeline's selectQuery, tab-separated, as the TSV data node holds them
    assert written == "".join("\t".join(str(v) for v in row) + "\n" for row in rows)
    assert len(rows) == 12


def test_a_live_pipeline_translates_by_its_id(repo, tmp_path, endpoint):
    import boto3

    client = boto3.client("datapipeline", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    pipeline_id = client.create_pipeline(name="hand-made", uniqueId="hand-made")["pipelineId"]
    objects, _ = objects_from_document(GUIDE_STYLE)
    put = client.put_pipeline_definition(pipelineId=pipeline_id,
                                         pipelineObjects=[o.api() for o in objects])
    assert not put["errored"], put
    out = tmp_path / "dags"
    done = run_cli("export", str(repo), "--env", "staging", "--out", str(out),
                   "--pipeline-id", pipeline_id, "--dag-id", "hand-made",
                   env={"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"})
    assert done.code == 0, done.stdout + done.stderr
    text = (out / "hand-made.py").read_text()
    assert f"Source: {pipeline_id} (staging)" in text
    assert 'task_id="Summarise"' in text and "S3ToSqlOperator(" in text
    assert "not-a-real-password" not in text  # the database's password stays in AWS
    assert 'sql_conn_id="rds"' in text
    missing = run_cli("export", str(repo), "--env", "staging", "--out", str(out),
                      "--pipeline-id", "df-NOSUCHPIPELINE",
                      env={"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing"})
    assert missing.code == 1 and "df-NOSUCHPIPELINE is not a pipeline in staging" in \
        missing.stderr


def test_a_manifest_that_does_not_translate_is_an_error_at_its_line(repo, tmp_path):
    """Every built-in step type (tests/fixtures/steps) translates but one: a load-postgres
    from a directory, which S3ToSqlOperator cannot read."""
    shutil.copytree(Path(__file__).parent / "fixtures" / "steps", repo, dirs_exist_ok=True)
    validated = run_cli("validate", str(repo), "--target", "airflow")
    assert validated.code == 1
    assert "pipelines/extracts.yaml:32:3: error: into_postgres.input does not translate to " \
           "Airflow: S3ToSqlOperator reads one file: give the input's filePath; see " \
           "docs/airflow.md, or use --best-effort" in validated.stderr, validated.stderr
    assert "9 manifest(s), 16 of 18 pipeline build(s) valid, 1 error(s)" in validated.stderr
    out = tmp_path / "dags"
    exported = export(repo, "staging", out)
    assert exported.code == 1
    assert "extracts.yaml: refused (see above)" in exported.stdout
    written = sorted(p.name for p in out.glob("*.py"))
    assert "staging-extracts.py" not in written and len(written) == 8, written
