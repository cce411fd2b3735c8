"""What a manifests repository's users run: the example GitHub Actions workflow (actionlint,
and every reconciler command in it exists with the options it uses) and the pre-commit hook
(run as pre-commit runs it, on a good and on a broken repository)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

from reconciler.cli import main as cli_main

from .conftest import MANIFESTS, PROJECT, require_tool, run_cli

WORKFLOWS = PROJECT / "examples" / "manifests-repo" / ".github" / "workflows"
HOOKS = PROJECT / ".pre-commit-hooks.yaml"


def actionlint(*workflows: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("actionlint"), "-no-color", *map(str, workflows)],
                          capture_output=True, text=True, timeout=60)


def test_the_example_workflow_passes_actionlint():
    workflows = list(WORKFLOWS.glob("*.yml"))
    assert workflows
    result = actionlint(*workflows)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path):
    copy = tmp_path / ".github" / "workflows"
    copy.mkdir(parents=True)
    text = (WORKFLOWS / "dataduct-plan.yml").read_text()
    (copy / "dataduct-plan.yml").write_text(text.replace("steps.plan.outputs.exit-code",
                                                         "steps.plann.outputs.exit-code"))
    result = actionlint(copy / "dataduct-plan.yml")
    assert result.returncode != 0 and "plann" in result.stdout


def reconciler_invocations(script: str) -> list[list[str]]:
    joined = script.replace("\\\n", " ")
    return [shlex.split(line.strip().split(">")[0])[1:]
            for line in joined.splitlines() if re.match(r"\s*reconciler\s", line)]


def assert_real_command(words: list[str]) -> None:
    command = cli_main.commands[words[0]]
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    for word in words[1:]:
        if word.startswith("--"):
            assert word in options, f"reconciler {words[0]} has no {word}"


def test_the_workflow_runs_real_reconciler_commands():
    workflow = yaml.safe_load((WORKFLOWS / "dataduct-plan.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    invocations = [words for s in steps if "run" in s for words in
                   reconciler_invocations(s["run"])]
    assert [w[0] for w in invocations] == ["validate", "plan"]
    for words in invocations:
        assert_real_command(words)
    plan = invocations[1]
    assert plan[plan.index("--format") + 1] == "markdown"
    assert {"staging", "prod"} == {plan[i + 1] for i, w in enumerate(plan) if w == "--env"}
    assert workflow["permissions"]["contents"] == "read"


def test_the_workflows_overrides_are_valid(tmp_path):
    """The overrides the workflow writes with printf, written the same way, are accepted."""
    workflow = yaml.safe_load((WORKFLOWS / "dataduct-plan.yml").read_text())
    script = next(s["run"] for job in workflow["jobs"].values() for s in job["steps"]
                  if s.get("id") == "plan")
    printf = next(line for line in script.replace("\\\n", " ").splitlines() if "printf" in line)
    command = printf.replace('"$overrides"', str(tmp_path / "overrides.yaml"))
    subprocess.run(["bash", "-c", command], check=True, timeout=30,
                   env={"STAGING_ROLE": "arn:aws:iam::111111111111:role/read",
                        "PROD_ROLE": "arn:aws:iam::222222222222:role/read",
                        "PATH": "/usr/bin:/bin"})
    from reconciler.desired.overrides import parse_overrides

    overrides = parse_overrides((tmp_path / "overrides.yaml").read_bytes(), "overrides.yaml")
    assert overrides.environments["prod"] == {"role_arn": "arn:aws:iam::222222222222:role/read",
                                              "endpoint_url": None}


def test_the_pre_commit_hook_validates_the_repository(tmp_path):
    hooks = yaml.safe_load(HOOKS.read_text())
    hook = next(h for h in hooks if h["id"] == "reconciler-validate")
    assert hook["language"] == "python" and hook["pass_filenames"] is False
    words = [*shlex.split(hook["entry"]), *hook["args"]]
    assert words[0] == "reconciler"
    assert_real_command(words[1:])
    repo = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, repo, ignore=shutil.ignore_patterns(".reconciler"))
    assert re.search(hook["files"], "pipelines/users.yaml")
    assert run_cli(*words[1:], cwd=repo).code == 0
    users = repo / "pipelines" / "users.yaml"
    users.write_text(users.read_text().replace("step_type:", "step_typ:", 1))
    broken = run_cli(*words[1:], cwd=repo)
    assert broken.code == 1
    assert "pipelines/users.yaml:" in broken.stdout + broken.stderr
