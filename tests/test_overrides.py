"""Deployment overrides (``--overrides``, the Helm chart's ConfigMap): the installation's
values over the repository's reconciler.yaml."""

import boto3

from reconciler.desired.config import Environment, Policy, Settings
from reconciler.desired.overrides import Overrides, OverridesError

from .test_cli_reconcile import cli


def _settings() -> Settings:
    return Settings(environments={
        "staging": Environment("staging", "config/staging.yaml", region="us-east-1",
                               endpoint_url="embedded", policy=Policy(allow_replace=True)),
        "prod": Environment("prod", "config/prod.yaml", region="us-east-1",
                            role_arn="arn:aws:iam::1:role/repo", name_prefix="prod-"),
    })


def test_overrides_replace_only_the_values_they_name():
    overrides = Overrides("values.yaml", installation="cluster-a", environments={
        "staging": {"endpoint_url": None, "role_arn": "arn:aws:iam::2:role/staging",
                    "region": "eu-west-1"},
        "prod": {"policy": {"prune": True, "max_delete_percent": 5}},
    })
    settings = overrides.apply(_settings())
    staging, prod = settings.environments["staging"], settings.environments["prod"]
    assert settings.installation == "cluster-a"
    assert (staging.endpoint_url, staging.role_arn, staging.region) == (
        None, "arn:aws:iam::2:role/staging", "eu-west-1")
    assert staging.policy.allow_replace is True  # untouched
    assert prod.role_arn == "arn:aws:iam::1:role/repo" and prod.name_prefix == "prod-"
    assert (prod.policy.prune, prod.policy.max_delete_percent) == (True, 5.0)


def test_an_environment_the_repository_does_not_have_is_an_error_with_a_suggestion():
    overrides = Overrides("values.yaml", environments={"stagng": {"region": "eu-west-1"}})
    try:
        overrides.apply(_settings())
    except OverridesError as exc:
        assert "environment stagng is not in the repository's reconciler.yaml" in str(exc)
        assert "did you mean 'staging'?" in str(exc)
    else:
        raise AssertionError("an unknown environment was accepted")


def test_a_wrong_value_is_refused_with_its_line(tmp_path):
    path = tmp_path / "overrides.yaml"
    path.write_text("environments:\n  prod:\n    policy:\n      prune: 'yes'\n")
    result = cli("http://127.0.0.1:9", "plan", "manifests", "--overrides", str(path))
    assert result.code == 1
    assert f"{path}:4:7: error: expected boolean" in result.stderr


def _managed_by(url: str) -> set[str]:
    client = boto3.client("datapipeline", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    ids = [p["id"] for p in client.list_pipelines()["pipelineIdList"]]
    return {t["value"] for d in client.describe_pipelines(pipelineIds=ids)[
        "pipelineDescriptionList"] for t in d["tags"]
        if t["key"] == "dataduct-reconciler/managed-by"}


def test_apply_uses_the_installation_and_environments_of_the_overrides(endpoint, repo,
                                                                       tmp_path):
    path = tmp_path / "overrides.yaml"
    path.write_text("installation: cluster-a\nenvironments:\n  prod:\n"
                    "    policy: {allow_replace: true}\n")
    assert cli(endpoint, "apply", str(repo), "--yes", "--env", "staging",
               "--overrides", str(path)).code == 0
    assert _managed_by(endpoint) == {"cluster-a"}
    path.write_text("environments:\n  production: {region: us-east-1}\n")
    refused = cli(endpoint, "apply", str(repo), "--yes", "--overrides", str(path))
    assert refused.code == 1
    assert "environment production is not in the repository's reconciler.yaml" in refused.stderr
    assert _managed_by(endpoint) == {"cluster-a"}  # nothing else was touched
