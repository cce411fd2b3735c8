"""The Helm chart, checked by its ecosystem's tools: helm lint and template (default and full
example values), the rendered objects against Kubernetes' schemas (kubernetes-validate,
strict), checkov, the values schema, the generated README, and the overrides it renders
accepted by the controller."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reconciler.desired.config import load_settings
from reconciler.desired.overrides import parse_overrides
from reconciler.source import read_snapshot

from .conftest import MANIFESTS, PROJECT, require_tool

CHART = PROJECT / "charts" / "dataduct-reconciler"
FULL_VALUES = CHART / "ci" / "production-values.yaml"
MINIMAL = ["--set", "source.repo=https://github.com/example-org/etl-manifests.git"]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([require_tool("helm"), *args], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "HELM_CACHE_HOME": "/tmp/helm-cache",
                                              "HELM_CONFIG_HOME": "/tmp/helm-config"})
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def render(*values: str) -> list[dict]:
    text = helm("template", "dataduct", str(CHART), "--namespace", "dataduct", *values).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


@pytest.fixture(scope="module")
def full() -> list[dict]:
    return render("-f", str(FULL_VALUES))


@pytest.fixture(scope="module")
def minimal() -> list[dict]:
    return render(*MINIMAL)


def test_helm_lint_passes_strictly_with_both_values_files():
    helm("lint", "--strict", str(CHART), *MINIMAL)
    helm("lint", "--strict", str(CHART), "-f", str(FULL_VALUES))


def test_default_values_need_only_the_repository_and_say_so():
    refused = helm("template", "dataduct", str(CHART), check=False)
    assert refused.returncode != 0
    assert "source.repo is required: the manifests repository" in refused.stderr


def test_the_minimal_install_renders_a_safe_single_controller(minimal):
    kinds = sorted(d["kind"] for d in minimal)
    assert kinds == ["ConfigMap", "ConfigMap", "Deployment", "NetworkPolicy", "Service",
                     "ServiceAccount"]
    deployment = by_kind(minimal, "Deployment")[0]
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["limits"] and container["resources"]["requests"]
    reconciler, git_sync = pod["containers"]
    assert reconciler["args"] == ["--checkout", "/git/current"]
    assert reconciler["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert reconciler["readinessProbe"]["httpGet"]["path"] == "/readyz"
    mounts = {m["mountPath"] for m in reconciler["volumeMounts"]}
    assert {"/var/cache/reconciler", "/tmp"} <= mounts  # the only writable paths
    assert git_sync["name"] == "git-sync"
    env = {e["name"]: e.get("value") for e in git_sync["env"]}
    assert env["GITSYNC_REPO"] == "https://github.com/example-org/etl-manifests.git"


def test_the_full_example_uses_ssh_irsa_ingress_and_monitoring(full):
    kinds = {d["kind"] for d in full}
    assert {"Ingress", "ServiceMonitor", "PrometheusRule"} <= kinds
    account = by_kind(full, "ServiceAccount")[0]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == \
        "arn:aws:iam::333333333333:role/dataduct-reconciler"
    pod = by_kind(full, "Deployment")[0]["spec"]["template"]["spec"]
    git_sync = pod["containers"][1]
    env = {e["name"]: e.get("value") for e in git_sync["env"]}
    assert env["GITSYNC_SSH"] == "true"
    assert env["GITSYNC_SSH_KEY_FILE"] == "/etc/git-secret/ssh"
    # ssh needs a user of /etc/passwd: git-sync runs as its image's own user
    assert git_sync["securityContext"]["runAsUser"] == 65533
    assert env["GITSYNC_SSH_KNOWN_HOSTS"] == "true"
    secret_volume = next(v for v in pod["volumes"] if v["name"] == "git-secret")["secret"]
    assert secret_volume["secretName"] == "etl-manifests-deploy-key"
    reconciler_env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert reconciler_env["REDSHIFT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "dataduct-databases", "key": "redshift-password"}
    ingresses = {d["metadata"]["name"]: d for d in by_kind(full, "Ingress")}
    paths = ingresses["dataduct-dataduct-reconciler"]["spec"]["rules"][0]["http"]["paths"]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/webhook", "Exact")]
    # the page on a host of its own, behind the login its annotations put in front
    ui = ingresses["dataduct-dataduct-reconciler-ui"]
    assert ui["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"]
    assert [(p["path"], p["pathType"]) for p in ui["spec"]["rules"][0]["http"]["paths"]] == [
        ("/", "Exact"), ("/pipelines/", "Prefix"), ("/status", "Exact"), ("/refresh", "Exact")]
    settings = next(d for d in full if d["metadata"]["name"].endswith("-settings"))
    assert settings["data"]["RECONCILER_PAGE_REFRESH"] == "true"
    dashboard = next(d for d in full if d["metadata"]["name"].endswith("-dashboard"))
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["dataduct-reconciler.json"])["uid"] == \
        "dataduct-reconciler"


def test_the_chart_creates_no_secret_and_holds_no_secret_value(full, minimal):
    for docs in (full, minimal):
        assert not by_kind(docs, "Secret")
        pod = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for env in container["env"]:
                if re.search(r"PASSWORD|SECRET|TOKEN|KEY$", env["name"]) and \
                        not env["name"].endswith("_FILE"):
                    assert "valueFrom" in env and "value" not in env, env


def test_the_rendered_overrides_are_accepted_by_the_controller(full):
    overrides = next(d for d in full if d["metadata"]["name"].endswith("-overrides"))
    loaded = parse_overrides(overrides["data"]["overrides.yaml"], "overrides.yaml")
    settings = load_settings(read_snapshot(MANIFESTS), [])
    assert settings is not None
    applied = loaded.apply(settings)
    prod = applied.environments["prod"]
    assert prod.role_arn == "arn:aws:iam::222222222222:role/dataduct-reconciler-prod"
    assert prod.endpoint_url is None and prod.policy.max_delete_percent == 10.0
    assert applied.installation == "data-platform-eks"
    staging = applied.environments["staging"]  # moved to MWAA by the installation
    assert staging.target == "airflow"
    assert (staging.airflow.dags, staging.airflow.mwaa, staging.airflow.parse_timeout) == (
        "s3://mwaa-staging-dags/dags", "etl-staging", 600)
    assert staging.airflow.conn_id("RedshiftDatabase") == "redshift_etl"
    settings_map = next(d for d in full if d["metadata"]["name"].endswith("-settings"))
    assert settings_map["data"]["RECONCILER_OVERRIDES"] == "/etc/reconciler/overrides.yaml"


def test_the_rendered_settings_are_options_of_reconciler_run(full):
    """Every RECONCILER_* variable and every option the chart gives `reconciler run` is one
    it reads."""
    from reconciler.cli.operating import run as run_command

    envvars = {p.envvar for p in run_command.params if getattr(p, "envvar", None)}
    options = {opt for p in run_command.params for opt in getattr(p, "opts", [])}
    settings_map = next(d for d in full if d["metadata"]["name"].endswith("-settings"))
    for name in settings_map["data"]:
        assert name in envvars, f"{name} is not an option of reconciler run"
    container = by_kind(full, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    for env in container["env"]:
        if env["name"].startswith("RECONCILER_") and env["name"] != "RECONCILER_SECRETS_KEY_FILE":
            assert env["name"] in envvars, env["name"]
    assert "--checkout" in container["args"]
    assert {a for a in container["args"] if a.startswith("--")} <= options


@pytest.mark.parametrize("values, message", [
    (["--set", "controller.interval=0"], "/controller/interval"),
    (["--set", "source.mode=pull"], "/source/mode"),
    (["--set", "enviroments.prod.region=us-east-1"], "additional properties 'enviroments'"),
    (["--set", "environments.prod.roleArn=arn:aws:iam::1:role/x"], "/environments/prod/roleArn"),
    (["--set", "source.auth.type=ssh"], "/source/auth/existingSecret"),
    (["--set", "source.mode=git", "--set", "source.auth.type=https",
      "--set", "source.auth.existingSecret=token"], "source.auth.type https needs"),
    (["--set", "ingress.enabled=true", "--set", "ingress.host=hooks.example.com"],
     "set webhook.existingSecret"),
    (["--set", "ui.ingress.enabled=true", "--set", "ui.ingress.host=dataduct.example.com"],
     "exposes the page, which has no login"),
    (["--set", "ui.ingress.enabled=true"], "/ui/ingress/host"),
])
def test_a_wrong_value_fails_at_install_time(values, message):
    refused = helm("template", "dataduct", str(CHART), *MINIMAL, *values, check=False)
    assert refused.returncode != 0
    assert message in refused.stderr, refused.stderr


def _validate(documents: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "rendered.yaml"
    path.write_text(documents)
    return subprocess.run([require_tool("kubernetes-validate"), "--strict", "--quiet",
                           "-k", "1.30.0", str(path)], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("values", [MINIMAL, ["-f", str(FULL_VALUES)]],
                         ids=["minimal", "full"])
def test_rendered_objects_pass_kubernetes_validate_strict(values, tmp_path):
    rendered = helm("template", "dataduct", str(CHART), "-n", "dataduct", *values).stdout
    result = _validate(rendered, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # the operator's kinds have no schema there; PrometheusRule's rules are checked by promtool
    unknown = re.findall(r"Couldn't find schema for kind (\w+)", result.stdout + result.stderr)
    assert set(unknown) <= {"ServiceMonitor", "PrometheusRule"}


def test_kubernetes_validate_strict_catches_an_unknown_field(tmp_path):
    docs = render(*MINIMAL)
    deployment = by_kind(docs, "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    result = _validate(yaml.safe_dump(deployment), tmp_path)
    assert result.returncode != 0 and "imagePullPolicyy" in result.stdout + result.stderr


def test_checkov_finds_nothing_that_is_not_skipped_with_a_reason(tmp_path):
    checkov = require_tool("checkov")
    for name, values in (("minimal", MINIMAL), ("full", ["-f", str(FULL_VALUES)])):
        (tmp_path / f"{name}.yaml").write_text(
            helm("template", "dataduct", str(CHART), "-n", "dataduct", *values).stdout)
    result = subprocess.run([checkov, "--directory", str(tmp_path), "--framework", "kubernetes",
                             "--skip-download", "--output", "json", "--quiet"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [], failed
    assert report["summary"]["passed"] > 100
    skips = re.findall(r"checkov\.io/skip\d+: (CKV_\w+)=(.*)",
                       (CHART / "templates" / "deployment.yaml").read_text())
    assert skips and all(len(reason) > 30 for _, reason in skips)
    assert report["summary"]["failed"] == 0
    assert report["summary"]["skipped"] == 2 * len(skips)  # each skip, in both renders


def test_the_readme_documents_every_value_and_is_current():
    result = subprocess.run([sys.executable, str(PROJECT / "tools" / "chart_readme.py"),
                             "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    readme = (CHART / "README.md").read_text()
    assert "| `source.auth.type` |" in readme and "| `monitoring.dashboard.labelValue` |" in readme


def test_the_readme_check_catches_an_undocumented_value(tmp_path, monkeypatch):
    sys.path.insert(0, str(PROJECT / "tools"))
    try:
        import chart_readme
    finally:
        sys.path.pop(0)
    values = (CHART / "values.yaml").read_text() + "\nsurprise: 1\n"
    copy = tmp_path / "chart"
    copy.mkdir()
    (copy / "values.yaml").write_text(values)
    (copy / "Chart.yaml").write_text((CHART / "Chart.yaml").read_text())
    monkeypatch.setattr(chart_readme, "CHART", copy)
    _, undocumented = chart_readme.render()
    assert undocumented == ["surprise"]
