"""docs/iam-policy.json is exactly what the controller needs: every AWS call the test session
made (recorded by the reconciler itself, $RECONCILER_AWS_CALL_LOG, in this process and its
subprocesses) and every call the code can make is allowed, and the policy allows nothing
else. These tests run after all the others (conftest.RUN_LAST)."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from .conftest import AWS_CALL_LOG, FULL_SUITE, MANIFESTS, PROJECT, run_cli

POLICY = PROJECT / "docs" / "iam-policy.json"
# the IAM actions an API call needs, where they are not the call's own name
NEEDS = {
    # HeadObject and GetObject of a missing key answer 403, not 404, without s3:ListBucket;
    # the controller relies on the 404 (upload unless present, a lease not taken yet)
    "s3:HeadObject": {"s3:GetObject", "s3:ListBucket"},
    "s3:GetObject": {"s3:GetObject", "s3:ListBucket"},
    "s3:ListObjectsV2": {"s3:ListBucket"},
    "s3:CopyObject": {"s3:GetObject", "s3:PutObject"},
    "s3:DeleteObjects": {"s3:DeleteObject"},
    # the definition names the pipeline's roles (role, resourceRole): AWS checks PassRole
    "datapipeline:PutPipelineDefinition": {"datapipeline:PutPipelineDefinition",
                                           "iam:PassRole"},
    "datapipeline:ValidatePipelineDefinition": {"datapipeline:ValidatePipelineDefinition",
                                                "iam:PassRole"},
}
# calls made only against the embedded service (it starts with no buckets)
EMBEDDED_ONLY = {"s3:CreateBucket"}


def allowed_actions() -> set[str]:
    policy = json.loads(POLICY.read_text())
    actions = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def needed(calls: set[str]) -> set[str]:
    return set().union(*(NEEDS.get(call, {call}) for call in calls - EMBEDDED_ONLY))


def calls_in_the_code() -> set[str]:
    """Every call written in the one module family that talks to AWS (reconciler/live)."""
    found = set()
    for path in (PROJECT / "reconciler" / "live").glob("*.py"):
        text = path.read_text()
        for client, operation in re.findall(
                r'(?:_call|call\(self\.(?:aws\.)?(\w+),)\s*\(?"([a-z0-9_]+)"', text):
            service = client or "datapipeline"
            found.add(f"{service}:{''.join(w.capitalize() for w in operation.split('_'))}")
        # MWAA's client (signing name: airflow) is called directly, for its error's fields
        for operation in re.findall(r"self\.airflow\.([a-z_]+)\(", text):
            found.add(f"airflow:{''.join(w.capitalize() for w in operation.split('_'))}")
    found.add("sts:AssumeRole")  # botocore's AssumeRoleCredentialFetcher (live/aws.py)
    return found


def recorded_calls() -> set[str]:
    path = os.environ[AWS_CALL_LOG]
    if not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8") as lines:
        return {line.strip() for line in lines if line.strip()}


def test_the_policy_is_plain_and_names_no_wildcard_action():
    for action in allowed_actions():
        assert re.fullmatch(r"[a-z0-9]+:[A-Za-z]+", action), action
    policy = json.loads(POLICY.read_text())
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids))
    pass_role = next(s for s in policy["Statement"] if s["Action"] == "iam:PassRole")
    assert all(":role/DataPipeline" in r for r in pass_role["Resource"])  # the roles only


def test_the_recorder_sees_a_command_line_apply(tmp_path):
    """The record is made by the reconciler's own AWS clients, in a subprocess too."""
    log = tmp_path / "calls.log"
    repo = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, repo, ignore=shutil.ignore_patterns(".reconciler"))
    result = run_cli("sync", str(repo), "--once", "--env", "staging", "--allow-dirty",
                     env={AWS_CALL_LOG: str(log), "MAESTRO_PASSWORD": "m",
                          "REDSHIFT_PASSWORD": "r", "POSTGRES_PASSWORD": "p",
                          "RECONCILER_EMBEDDED_STATE": str(tmp_path / "state.json")})
    assert result.code in (0, 3), result.stderr
    calls = set(log.read_text().split())
    assert {"datapipeline:CreatePipeline", "datapipeline:PutPipelineDefinition",
            "datapipeline:ActivatePipeline", "s3:PutObject"} <= calls
    with open(os.environ[AWS_CALL_LOG], "a", encoding="utf-8") as session_log:
        session_log.write(log.read_text())


def test_every_call_the_tests_made_is_written_in_the_code_and_allowed():
    calls = recorded_calls()
    assert calls, f"no AWS call recorded in {os.environ[AWS_CALL_LOG]}"
    assert calls <= calls_in_the_code() | EMBEDDED_ONLY, \
        "a call outside reconciler/live: " + ", ".join(sorted(calls - calls_in_the_code()))
    missing = needed(calls) - allowed_actions()
    assert not missing, f"docs/iam-policy.json does not allow {sorted(missing)}"


def test_the_policy_allows_exactly_what_the_code_calls():
    assert needed(calls_in_the_code()) == allowed_actions()


def test_the_tests_exercised_every_call_the_policy_allows(request):
    if not request.config.stash.get(FULL_SUITE, False):
        pytest.skip("only a full run of the suite records every call (make test)")
    exercised = needed(recorded_calls())
    assert allowed_actions() - exercised == set(), \
        "allowed but never called by any test"
