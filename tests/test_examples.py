"""The compatibility corpus: every Dataduct example pipeline compiles unchanged, and the
example repository's pipelines match their reviewed golden files."""

import json
import os
from pathlib import Path

import pytest

from reconciler.desired.definition import to_json

from .conftest import DATADUCT_EXAMPLES, compile_repo, run_cli

GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = sorted(p.name for p in DATADUCT_EXAMPLES.glob("*.yaml"))


def test_the_corpus_has_every_dataduct_example():
    assert len(EXAMPLES) == 24


def test_every_dataduct_example_compiles_unchanged_for_every_environment(corpus_repo):
    result = compile_repo(corpus_repo)
    assert [p.format() for p in result.errors] == []
    built = {(r.manifest, r.environment) for r in result.pipelines if r.ok}
    for name in EXAMPLES:
        for env in ("staging", "prod"):
            assert (f"pipelines/{name}", env) in built


def test_the_cli_validates_the_corpus(corpus_repo):
    result = run_cli("validate", str(corpus_repo))
    assert result.code == 0, result.stderr
    assert "26 manifest(s), 52 of 52 pipeline build(s) valid, 0 error(s)" in result.stdout


def by_id(pipeline):
    return {o.id: o for o in pipeline.objects}


def compiled(repo, manifest, env="staging"):
    result = compile_repo(repo, [env])
    (found,) = [r.compiled for r in result.pipelines if r.manifest == f"pipelines/{manifest}"]
    assert found is not None
    return found


def test_double_output_reads_named_outputs_of_the_transform(corpus_repo):
    objects = by_id(compiled(corpus_repo, "example_double_output.yaml"))
    inputs = {name: objects[name].get_all("input") for name in ("profiler_1", "profiler_2")}
    writer = next(o for o in objects.values() if o.type == "ShellCommandActivity"
                  and o.get_all("output") and "cp -r" in (o.get("command") or "")
                  and "combine" not in o.id)
    assert inputs == {"profiler_1": [f"{writer.id}_output_step2_a"],
                      "profiler_2": [f"{writer.id}_output_step2_b"]}
    assert objects["profiler_1"].get_all("dependsOn") == [writer.id]


def test_double_input_mapping_stages_inputs_in_named_subdirectories(corpus_repo):
    objects = by_id(compiled(corpus_repo, "example_double_input.yaml"))
    combine = objects["transform_s3_profiler_combine_inputs"]
    assert combine.get_all("input") == ["step1_output", "step2_output"]
    assert "${OUTPUT1_STAGING_DIR}/script" in combine.get("command")
    assert "${OUTPUT1_STAGING_DIR}/directory" in combine.get("command")
    assert objects["transform_s3_profiler"].get_all("input") == [
        "transform_s3_profiler_output_inputs"]


def test_bootstrap_runs_before_the_first_activity(corpus_repo):
    objects = by_id(compiled(corpus_repo, "example_bootstrap.yaml"))
    assert objects["transform"].get_all("dependsOn") == ["bootstrap_override"]


def test_transform_arguments_use_the_staging_variables(corpus_repo):
    objects = by_id(compiled(corpus_repo, "example_transform.yaml"))
    assert objects["transform_s3_profiler"].get_all("scriptArgument") == [
        "--input=${INPUT1_STAGING_DIR}", "--output=${OUTPUT1_STAGING_DIR}"]
    assert objects["transform_s3_profiler"].get_all("input") == ["extract-node_output"]
    assert objects["Ec2Instance"].get("instanceType") == "m1.small"  # ec2_resource_config


def test_create_update_sql_fills_percent_s_from_script_arguments(corpus_repo):
    objects = by_id(compiled(corpus_repo, "example_create_update_sql.yaml"))
    script = next(o for o in objects.values() if o.type == "SqlActivity").get("script")
    assert "WHERE id < 4;" in script and "%s" not in script
    assert script.startswith("CREATE TABLE IF NOT EXISTS dev.test_table")


def test_pipeline_dependencies_waits_with_the_qa_runner(corpus_repo):
    objects = by_id(compiled(corpus_repo, "example_pipeline_dependency.yaml"))
    step = objects["dependency_step"]
    assert step.get("command").startswith("dataduct-qa wait-for-pipelines")
    assert "--pipelines=example_transform" in step.get_all("scriptArgument")
    assert "--ok_to_fail=example_failed_pipeline" in step.get_all("scriptArgument")


def test_checks_and_extracts_of_the_corpus(corpus_repo):
    count = by_id(compiled(corpus_repo, "example_count_check.yaml"))["count_check"]
    arguments = count.get_all("scriptArgument")
    assert "--source_sql=SELECT COUNT(*) FROM (SELECT id, name FROM networks_network) AS " \
           "counted;" in arguments
    assert any(a.startswith("--log_to_s3=s3://coursera-reinvent/staging/qa/") for a in arguments)
    assert "--source_password=#{*myMysqlMaestroPassword}" in arguments
    rds = by_id(compiled(corpus_repo, "example_extract_rds.yaml"))
    assert rds["extract_rds_specializations_specialization_source"].get("table") == \
        "specializations_specialization"
    assert rds["extract_rds_source"].get("table") == "networks_network"


def test_emr_streaming_uploads_mapper_and_reducer_and_runs_on_emr(corpus_repo):
    pipeline = compiled(corpus_repo, "example_emr_streaming.yaml")
    objects = by_id(pipeline)
    step = objects["emr_streaming_word_mapper"].get("step")
    assert ",-mapper,word_mapper.py,-reducer,word_reducer.py," in step
    assert objects["emr_streaming_word_mapper"].get("runsOn") == "EmrCluster"
    assert objects["EmrCluster"].get("amiVersion") == "3.3.1"
    assert {a.path for a in pipeline.artifacts} >= {"scripts/word_mapper.py",
                                                     "scripts/word_reducer.py"}


@pytest.mark.parametrize("env", ["staging", "prod"])
@pytest.mark.parametrize("name", ["users", "discussion_votes"])
def test_golden_definitions(repo, env, name):
    """Reviewed by eye; regenerate with UPDATE_GOLDEN=1 and review the diff."""
    rendered = to_json(compiled(repo, f"{name}.yaml", env).render("api"))
    golden = GOLDEN / env / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered)
    assert json.loads(rendered) == json.loads(golden.read_text())
    assert rendered == golden.read_text()


def test_every_generated_sql_script_of_the_corpus_parses_back(corpus_repo):
    from reconciler.desired import sql as sqlgen

    result = compile_repo(corpus_repo)
    checked = 0
    for pipeline in result.compiled():
        for obj in pipeline.objects:
            for key in ("script", "createTableSql"):
                text = obj.get(key)
                if text and obj.type in ("SqlActivity", "RedshiftDataNode"):
                    sqlgen.check_parses(text)
                    checked += 1
    assert checked >= 25


def test_sql_written_in_a_manifest_is_parsed(repo):
    (repo / "pipelines" / "bad_sql.yaml").write_text(
        "name: bad_sql\nsteps:\n- step_type: sql-command\n  command: SELECT FROM WHERE (\n")
    result = compile_repo(repo, ["staging"])
    (problem,) = [p for p in result.errors if p.location.file == "pipelines/bad_sql.yaml"]
    assert problem.location.line == 4 and "generated SQL does not parse" not in problem.message
    assert "SQL does not parse" in problem.message
