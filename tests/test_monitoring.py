"""Alerts and dashboard: the rules pass promtool's checks and unit tests (each alert fires on a
series made for it and stays quiet on one that must not fire), each has its runbook section,
the chart's PrometheusRule carries the same rules, and every query of the Grafana dashboard
parses and uses only metrics a real controller exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from .conftest import PROJECT, require_tool
from .test_chart import CHART, MINIMAL, by_kind, render
from .test_controller import remote, scrape_after_runs  # noqa: F401  (fixture)

ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARD = CHART / "files" / "dashboard.json"
PROMTOOL_TESTS = PROJECT / "tests" / "promtool"
ALERT_TESTS = sorted(PROMTOOL_TESTS.glob("*_test.yaml"))
RUNBOOK = PROJECT / "docs" / "runbook.md"
REQUIRED_ALERTS = {  # the list, by name
    "DataductControllerDown", "DataductReconcileFailing", "DataductPipelineOutOfSync",
    "DataductPipelineStalled", "DataductPipelineRunFailed", "DataductPipelineRunRetriesHigh",
    "DataductPipelineRunSlow", "DataductPipelineLate", "DataductSourceStale",
    "DataductAwsThrottling"}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]


def test_promtool_checks_the_rules():
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert {r["alert"] for r in rules()} == REQUIRED_ALERTS


def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", *(p.name for p in ALERT_TESTS), cwd=PROMTOOL_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_would_catch_a_changed_threshold(tmp_path):
    broken = tmp_path / "alerts.yaml"
    broken.write_text(ALERTS.read_text().replace("dataduct_pipeline_late_seconds > 1800",
                                                 "dataduct_pipeline_late_seconds > 7200"))
    tests = yaml.safe_load((PROMTOOL_TESTS / "alerts_test.yaml").read_text())
    tests["rule_files"] = [str(broken)]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode != 0 and "DataductPipelineLate" in result.stdout + result.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_must_not():
    firing: set[str] = set()
    quiet: set[str] = set()
    cases = [c for path in ALERT_TESTS for c in yaml.safe_load(path.read_text())["tests"]]
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == REQUIRED_ALERTS
    assert quiet == REQUIRED_ALERTS


def test_every_alert_says_what_and_where_and_has_a_runbook_section():
    """The description names the environment and pipeline wherever the alert carries them
    (the labels of its firing cases in the promtool tests)."""
    carried: dict[str, set[str]] = {}
    for path in ALERT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                for alert in check["exp_alerts"]:
                    carried.setdefault(check["alertname"], set()).update(alert["exp_labels"])
    sections = set(re.findall(r"^## (\w+)$", RUNBOOK.read_text(), re.MULTILINE))
    for rule in rules():
        name, annotations = rule["alert"], rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        for label in {"env", "pipeline"} & carried[name]:
            assert f"$labels.{label}" in annotations["description"], (name, label)
        assert name in sections, f"docs/runbook.md has no section '## {name}'"
        assert annotations["runbook_url"].endswith(f"docs/runbook.md#{name.lower()}"), name


def test_the_chart_ships_the_same_rules_with_its_runbook_address(tmp_path):
    docs = render(*MINIMAL, "--set", "monitoring.prometheusRule.enabled=true",
                  "--set", "monitoring.prometheusRule.runbookUrl=https://wiki.example.com/rb")
    spec = by_kind(docs, "PrometheusRule")[0]["spec"]
    shipped = [r for g in spec["groups"] for r in g["rules"]]
    assert [r["alert"] for r in shipped] == [r["alert"] for r in rules()]
    assert [r["expr"] for r in shipped] == [r["expr"] for r in rules()]
    assert all(r["annotations"]["runbook_url"].startswith("https://wiki.example.com/rb#")
               for r in shipped)
    path = tmp_path / "rendered-rules.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# -- the dashboard ------------------------------------------------------------------------------

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$env": ".*",
                     "$pipeline": ".*"}


def _with_values(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def dashboard_queries() -> dict[str, str]:
    """'panel title / refId' -> the PromQL, Grafana's variables replaced by values."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = {f"{panel['title']} / {target['refId']}": _with_values(target["expr"])
               for panel in dashboard["panels"] for target in panel.get("targets", [])}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.+), \w+\)", variable["definition"])
            assert inner is not None, variable["definition"]
            queries[f"variable {variable['name']}"] = _with_values(inner.group(1))
    return queries


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(dataduct_[a-z_]+|up)\b(?=\s*[{\[)]|\s*$|\s*[-+*/><=]|\s+unless)",
                          expr))


SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count"), "gauge": ("",), "info": ("_info",)}


def exported(exposition: str) -> set[str]:
    """The series names a scrape can return, from its ``# TYPE`` lines: a labelled counter
    that has not counted yet is declared there without a sample."""
    names = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE):
        base = family.removesuffix("_total") if kind == "counter" else family
        names.update(base + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names


def missing_metrics(queries: dict[str, str], exposition: str) -> dict[str, set[str]]:
    names = exported(exposition) | {"up"}  # Prometheus's own, per target
    return {where: missing for where, expr in queries.items()
            if (missing := metric_names(expr) - names)}


def test_every_dashboard_query_parses(tmp_path):
    queries = dashboard_queries()
    assert len(queries) >= 20
    as_rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr}
        for i, expr in enumerate(queries.values())]}]}
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(as_rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    path.write_text(yaml.safe_dump({"groups": [{"name": "bad", "rules": [
        {"record": "dashboard:bad", "expr": "sum by (env (dataduct_reconcile_total)"}]}]}))
    assert promtool("check", "rules", str(path)).returncode != 0


def test_the_dashboard_covers_what_on_call_needs():
    titles = " | ".join(p["title"] for p in json.loads(DASHBOARD.read_text())["panels"])
    for topic in ("sync status", "Reconcile duration", "Reconcile results", "Actions", "Errors",
                  "AWS requests", "AWS throttles", "Source freshness", "Run duration",
                  "Runs by status", "Retries", "last successful run"):
        assert topic.lower() in titles.lower(), topic


TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series


def series_labels() -> dict[str, set[str]]:
    """Each series name the controller can export -> its label names (from the metric
    definitions: a counter that has not counted yet has no sample to read them from)."""
    from reconciler.observe.metrics import Metrics

    found: dict[str, set[str]] = {"up": set()}
    for metric in vars(Metrics()).values():
        if not hasattr(metric, "_labelnames"):
            continue
        labels = set(metric._labelnames)
        kind = metric._type
        for suffix in SUFFIXES.get(kind, ("",)):
            found[metric._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return found


def unknown_labels(expr: str, known: dict[str, set[str]]) -> set[str]:
    """Label names ``expr`` matches or groups by that none of its metrics has."""
    available = TARGET_LABELS.union(*(known.get(m, set()) for m in metric_names(expr)))
    used = {name for selector in re.findall(r"\{([^}]*)\}", expr)
            for name in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector)}
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        used.update(word.strip() for word in clause.split(",") if word.strip())
    return used - available


def test_every_label_the_alerts_and_the_dashboard_use_exists():
    known = series_labels()
    assert known["dataduct_pipeline_info"] >= {"env", "pipeline", "sync_status"}
    exprs = {**{f"alert {r['alert']}": r["expr"] for r in rules()}, **dashboard_queries()}
    wrong = {where: bad for where, expr in exprs.items() if (bad := unknown_labels(expr, known))}
    assert wrong == {}
    # and the check can fail
    assert unknown_labels('dataduct_pipeline_info{sync="Stalled"}', known) == {"sync"}
    assert unknown_labels("sum by (env, stage) (dataduct_reconcile_total)", known) == {"stage"}


def test_every_metric_the_dashboard_and_the_alerts_use_is_exported(
        emulator_server, remote, tmp_path):  # noqa: F811
    exposition = scrape_after_runs(emulator_server.endpoint, remote, tmp_path).decode()
    queries = {**dashboard_queries(), **{f"alert {r['alert']}": r["expr"] for r in rules()}}
    used = set().union(*map(metric_names, queries.values()))
    assert len(used) >= 14
    assert missing_metrics(queries, exposition) == {}
    # and the check can fail
    assert missing_metrics({"typo": "rate(dataduct_reconcile_totl[5m])"}, exposition) == {
        "typo": {"dataduct_reconcile_totl"}}


# -- the alerts on what a real controller exports -------------------------------------------------


def _reconcile_series(controller, passes: int, env: str, before_each=None) -> list[dict]:
    """One pass a minute (the embedded clock moved on each time); the controller's
    dataduct_reconcile_total after each, as promtool input series."""
    from reconciler import emulator

    from .test_controller import sample, scrape

    values: dict[str, list[str]] = {"failure": [], "success": []}
    for _ in range(passes):
        if before_each is not None:
            before_each()
        controller.run_once()
        emulator.CONTROLS.advance(60)
        text = scrape(controller)
        for result, series in values.items():
            series.append(f"{sample(text, 'dataduct_reconcile_total', env=env, result=result):g}")
    return [{"series": f'dataduct_reconcile_total{{env="{env}", result="{result}"}}',
             "values": " ".join(series)} for result, series in values.items()]


def _fires(tmp_path: Path, series: list[dict], alert: str, labels: dict) -> str:
    """promtool's complaint if ``alert`` does not fire on ``series`` at 30 minutes, else ''."""
    (rule,) = [r for r in rules() if r.get("alert") == alert]
    annotations = {key: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)],
                               value) for key, value in rule["annotations"].items()}
    tests = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m",
             "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": [
                 {"eval_time": "30m", "alertname": alert,
                  "exp_alerts": [{"exp_labels": {"severity": "warning", **labels},
                                  "exp_annotations": annotations}]}]}]}
    path = tmp_path / "from_the_controller_test.yaml"
    path.write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", path.name, cwd=tmp_path)
    return result.stdout + result.stderr if result.returncode else ""


def test_a_pipeline_failing_on_every_attempt_fires_reconcile_failing(
        emulator_server, remote, tmp_path):  # noqa: F811
    from functools import partial

    from botocore.config import Config

    from reconciler.controller import Backoff
    from reconciler.emulator.server import control
    from reconciler.engine import connect_environment

    from .test_controller import make_controller

    # each 5xx fails its action at once (botocore's retries would only make the test slow:
    # the controller's backoff is what is under test)
    controller = make_controller(remote, emulator_server.endpoint, tmp_path,
                                 environments=("staging",),
                                 backoff=Backoff(base=60, factor=2, cap=600, stall_after=3),
                                 connect=partial(connect_environment, config=Config(
                                     retries={"mode": "standard", "max_attempts": 1})))
    control("faults", {"operation": "CreatePipeline", "5xx": 1.0})
    try:
        series = _reconcile_series(controller, 31, "staging")
    finally:
        control("faults", {"operation": "CreatePipeline"})
    assert (failed := _fires(tmp_path, series, "DataductReconcileFailing",
                             {"env": "staging"})) == "", failed


def test_an_invalid_reconciler_yaml_fires_reconcile_failing(
        emulator_server, remote, tmp_path):  # noqa: F811
    from .test_controller import make_controller

    controller = make_controller(remote, emulator_server.endpoint, tmp_path)
    controller.run_once()
    remote.edit("reconciler.yaml", "environments:", "environmentz:")
    series = _reconcile_series(controller, 31, "prod")
    assert (failed := _fires(tmp_path, series, "DataductReconcileFailing",
                             {"env": "prod"})) == "", failed
