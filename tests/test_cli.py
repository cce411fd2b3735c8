"""The command line as its users run it: real subprocesses on a copy of the example
repository."""

import json

from .conftest import require_tool, run_cli


def test_validate_the_example_repository(repo):
    result = run_cli("validate", str(repo))
    assert result.code == 0, result.stderr
    assert "2 manifest(s), 4 of 4 pipeline build(s) valid, 0 error(s)" in result.stdout


def test_validate_one_environment_as_json(repo):
    result = run_cli("validate", str(repo), "--env", "prod", "--format", "json")
    report = json.loads(result.stdout)
    assert result.code == 0 and report["valid"] is True
    assert {p["environment"] for p in report["pipelines"]} == {"prod"}
    assert all(len(p["digest"]) == 64 for p in report["pipelines"])


def test_validate_an_unknown_environment(repo):
    result = run_cli("validate", str(repo), "--env", "qa")
    assert result.code == 2  # a usage error, naming the flag
    assert "Invalid value for --env: no environment 'qa' in reconciler.yaml (it has " \
        "staging, prod)" in result.stderr
    close = run_cli("plan", str(repo), "--env", "production")
    assert close.code == 2 and "no environment 'production' in reconciler.yaml; did you " \
        "mean 'prod'?" in close.stderr


def test_validate_outside_a_repository(tmp_path):
    result = run_cli("validate", str(tmp_path))
    assert result.code == 1
    assert "no reconciler.yaml here or in any parent directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_render_finds_the_root_from_the_file_and_prints_the_api_form(repo):
    result = run_cli("render", "pipelines/users.yaml", "--env", "prod", "--start-date",
                     "2026-12-01", cwd=repo)
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"pipelineObjects", "parameterObjects", "parameterValues", "secrets",
                         "artifacts", "digest"}
    schedule = next(o for o in data["pipelineObjects"] if o["id"] == "DefaultSchedule")
    assert {"key": "startDateTime", "stringValue": "2026-12-01T12:00:00"} in schedule["fields"]


def test_render_the_console_definition_file(repo):
    result = run_cli("render", str(repo / "pipelines/users.yaml"), "--env", "staging",
                     "--format", "definition")
    data = json.loads(result.stdout)
    default = next(o for o in data["objects"] if o["id"] == "Default")
    assert default["schedule"] == {"ref": "DefaultSchedule"}
    assert {p["id"] for p in data["parameters"]} == {"*myMysqlMaestroPassword",
                                                    "*myRedshiftPassword"}


def test_render_never_prints_secret_values(repo):
    secrets = {"MAESTRO_PASSWORD": "maestro-secret-1", "REDSHIFT_PASSWORD": "redshift-secret-2"}
    outputs = []
    for env in ("staging", "prod"):
        for name in ("users", "discussion_votes"):
            for form in ("api", "definition"):
                result = run_cli("render", str(repo / f"pipelines/{name}.yaml"), "--env", env,
                                 "--format", form, env=secrets)
                assert result.code == 0
                outputs.append(result.stdout + result.stderr)
    outputs.append(run_cli("validate", str(repo), "--format", "json", env=secrets).stdout)
    for value in secrets.values():
        assert not any(value in out for out in outputs)


def test_render_a_broken_manifest_fails_with_its_error(repo):
    (repo / "pipelines/users.yaml").write_text("name: users\nsteps: []\n")
    result = run_cli("render", str(repo / "pipelines/users.yaml"), "--env", "staging")
    assert result.code == 1 and result.stdout == ""
    assert "users.yaml:2:1: error:" in result.stderr


def test_render_an_unknown_environment(repo):
    result = run_cli("render", str(repo / "pipelines/users.yaml"), "--env", "qa")
    assert result.code == 2
    assert "no environment 'qa' in reconciler.yaml" in result.stderr


def test_graph_as_mermaid_and_dot(repo):
    mermaid = run_cli("graph", str(repo / "pipelines/discussion_votes.yaml"), "--format",
                      "mermaid")
    assert mermaid.code == 0
    assert "n_vote_emr --> n_vote_emr_output_questions" in mermaid.stdout
    assert "n_vote_emr_output_questions --> n_load_discussion_question_votes" in mermaid.stdout
    # the dependency is implied by the data path: transitive reduction drops it
    assert "n_vote_emr -.-> n_load_discussion_question_votes" not in mermaid.stdout
    dot = run_cli("graph", str(repo / "pipelines/users.yaml"), "--activities-only")
    assert dot.code == 0
    assert "extract_rds -> load_staging [style=dashed]" in dot.stdout
    assert "load_staging -> upsert_users [style=dashed]" in dot.stdout
    assert "extract_rds -> upsert_users" not in dot.stdout
    assert "cylinder" not in dot.stdout


def test_graph_as_svg_through_graphviz(repo, tmp_path):
    require_tool("dot")
    out = tmp_path / "users.svg"
    result = run_cli("graph", str(repo / "pipelines/users.yaml"), "--format", "svg", "-o",
                     str(out))
    assert result.code == 0, result.stderr
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "upsert_users" in svg


def test_graph_as_svg_without_graphviz_says_what_to_install(repo, tmp_path):
    result = run_cli("graph", str(repo / "pipelines/users.yaml"), "--format", "svg",
                     env={"PATH": str(tmp_path)})
    assert result.code == 1
    assert "needs Graphviz's 'dot' program, which is not installed" in result.stderr


def test_help_teaches_the_commands():
    result = run_cli("--help")
    assert result.code == 0
    for word in ("validate", "render", "graph", "reconciler validate manifests/"):
        assert word in result.stdout
    render_help = run_cli("render", "--help").stdout
    assert "--start-date" in render_help and "Exit status" in render_help


def test_render_refuses_a_file_that_is_not_a_pipeline(repo):
    result = run_cli("render", str(repo / "reconciler.yaml"), "--env", "staging")
    assert result.code == 1 and result.stdout == ""
    assert "reconciler.yaml:1: error: not a pipeline manifest; pipelines are the *.yaml files " \
           "under pipelines/" in result.stderr
