"""Each built-in step type compiled from this project's own pipelines (tests/fixtures/steps):
wiring, generated SQL, shell commands and the QA runner, without Dataduct's corpus."""

import shlex

import pytest

from reconciler.desired import sql as sqlgen

from .conftest import compile_repo


def compiled(repo, manifest, env="staging"):
    result = compile_repo(repo, [env])
    assert [p.format() for p in result.errors] == []
    (found,) = [r.compiled for r in result.pipelines if r.manifest == f"pipelines/{manifest}"]
    assert found is not None
    return found


def by_id(pipeline):
    return {o.id: o for o in pipeline.objects}


def test_every_step_type_is_used_by_the_fixtures(steps_repo):
    from reconciler.desired.steps.builtin import BUILTIN_STEPS

    used = set()
    for path in (steps_repo / "pipelines").glob("*.yaml"):
        used |= {line.split(":", 1)[1].strip() for line in path.read_text().splitlines()
                 if line.strip().lstrip("- ").startswith("step_type:")}
    assert {cls.step_type for cls in BUILTIN_STEPS} <= used


def test_the_fixtures_compile_for_every_environment(steps_repo):
    result = compile_repo(steps_repo)
    assert [p.format() for p in result.errors] == []
    assert len([r for r in result.pipelines if r.ok]) == 2 * 9


def test_named_outputs_feed_later_steps(steps_repo):
    objects = by_id(compiled(steps_repo, "transforms.yaml"))
    assert objects["summarise_first"].get_all("input") == ["split_output_first"]
    assert objects["profile"].get_all("input") == ["split_output_second"]
    assert objects["summarise_first"].get_all("dependsOn") == ["split"]


def test_an_input_mapping_stages_inputs_in_named_subdirectories(steps_repo):
    objects = by_id(compiled(steps_repo, "transforms.yaml"))
    combine = objects["split_combine_inputs"]
    assert combine.get_all("input") == ["customers_output", "words_output"]
    assert "${OUTPUT1_STAGING_DIR}/first" in combine.get("command")
    assert "${OUTPUT1_STAGING_DIR}/second" in combine.get("command")
    assert objects["split"].get_all("input") == ["split_output_inputs"]


def test_script_arguments_use_the_staging_variables(steps_repo):
    objects = by_id(compiled(steps_repo, "transforms.yaml"))
    assert objects["summarise_first"].get_all("scriptArgument") == [
        "--input=${INPUT1_STAGING_DIR}", "--output=${OUTPUT1_STAGING_DIR}"]


def test_a_script_directory_is_uploaded_and_its_script_run(steps_repo):
    pipeline = compiled(steps_repo, "transforms.yaml")
    command = by_id(pipeline)["profile"].get("command")
    words = shlex.split(command)
    assert words[:4] == ["aws", "s3", "cp", "s3://tools-bucket/config.ini"]
    assert "./profile_tools/profile.sh" in words
    assert {a.path for a in pipeline.artifacts} >= {"scripts/profile_tools/profile.sh",
                                                     "scripts/profile_tools/helpers.sh"}


def test_qa_transform_logs_to_s3(steps_repo):
    arguments = by_id(compiled(steps_repo, "transforms.yaml"))["qa_words"].get_all(
        "scriptArgument")
    assert "--log_to_s3=s3://coursera-reinvent/staging/qa/transforms/qa_words/" in arguments


def test_extracts_name_their_table_and_quote_generated_queries(steps_repo):
    objects = by_id(compiled(steps_repo, "extracts.yaml"))
    assert objects["rds_by_query_source"].get("table") == "customers"
    assert "#{format(minusDays(@scheduledStartTime, 1), 'YYYY-MM-dd')}" in \
        objects["rds_by_query_source"].get("selectQuery")
    assert objects["rds_by_table_source"].get("selectQuery") == \
        "SELECT * FROM `shop`.`customers`"
    assert objects["from_redshift_source"].get("selectQuery") == \
        'SELECT * FROM "shop"."customers"'
    assert objects["into_postgres"].get_all("input") == ["from_redshift_output"]


def test_emr_streaming_uploads_mapper_and_reducer_and_runs_on_emr(steps_repo):
    pipeline = compiled(steps_repo, "emr.yaml")
    objects = by_id(pipeline)
    step = objects["count"].get("step")
    assert ",-mapper,count_words.py,-reducer,sum_counts.py," in step
    assert objects["count"].get("runsOn") == "EmrCluster"
    assert objects["EmrCluster"].get("amiVersion") == "3.3.1"
    assert objects["EmrCluster"].get("coreInstanceCount") == "3"
    assert {a.path for a in pipeline.artifacts} >= {"scripts/count_words.py",
                                                     "scripts/sum_counts.py"}


def test_copy_options_of_create_load_redshift(steps_repo):
    objects = by_id(compiled(steps_repo, "loads.yaml"))
    assert objects["load_staging"].get_all("commandOptions") == [
        "DELIMITER '\\t'", "MAXERROR 10", "ACCEPTINVCHARS AS '?'", "ESCAPE", "GZIP"]
    assert objects["append_raw"].get_all("commandOptions") == [
        "DELIMITER '\\t'", "MAXERROR 5", "ACCEPTINVCHARS AS '_'", "GZIP"]


def test_upsert_with_history_runs_the_history_after_the_load(steps_repo):
    objects = by_id(compiled(steps_repo, "loads.yaml"))
    upsert = objects["upsert_customers"].get("script")
    history = objects["upsert_customers_history"].get("script")
    assert objects["upsert_customers_history"].get_all("dependsOn") == ["upsert_customers"]
    assert [k.__name__ for k in sqlgen.statement_types(upsert)] == [
        "Transaction", "Create", "Select", "Create", "Insert", "Delete", "Insert", "Grant",
        "Commit", "Analyze"]
    assert "\"expiration_ts\" = CAST('9999-12-31 23:59:59.999999' AS TIMESTAMP)" in history


def test_reload_reads_its_query_from_a_file_and_keeps_every_row(steps_repo):
    script = by_id(compiled(steps_repo, "loads.yaml"))["reload_recent"].get("script")
    assert "WHERE loaded_at > GETDATE() - INTERVAL '2 days'" in script
    assert "ROW_NUMBER()" not in script  # enforce_primary_key: false
    assert 'DELETE FROM "shop"."customers";' in script


def test_delta_load_stages_atomically_then_upserts_then_checks(steps_repo):
    objects = by_id(compiled(steps_repo, "loads.yaml"))
    stage = objects["delta_customers_stage"].get("script")
    assert [k.__name__ for k in sqlgen.statement_types(stage)] == [
        "Create", "Transaction", "Delete", "Insert", "Commit"]
    assert "TRUNCATE" not in stage
    assert objects["delta_customers"].get_all("dependsOn") == ["delta_customers_stage"]
    assert objects["delta_customers_primary_key_check"].get_all("dependsOn") == [
        "delta_customers"]


def test_a_script_with_a_trailing_comment_is_wrapped_safely(steps_repo):
    script = by_id(compiled(steps_repo, "sql.yaml"))["refresh_summary"].get("script")
    statements = sqlgen.parse_sql(script).statements
    assert [type(s).__name__ for s in statements] == ["Transaction", "Delete", "Insert",
                                                      "Commit"]
    assert "'#{format(@scheduledStartTime, 'YYYY-MM-dd')}'" in script


def test_redshift_statements_sqlglot_cannot_parse_are_allowed_in_scripts(steps_repo):
    assert by_id(compiled(steps_repo, "sql.yaml"))["vacuum"].get("script") == \
        "VACUUM shop.orders -- nightly"


def test_create_update_sql_fills_percent_s_from_script_arguments(steps_repo):
    script = by_id(compiled(steps_repo, "sql.yaml"))["orders_archive"].get("script")
    assert "CURRENT_DATE - 365" in script and "%s" not in script
    assert script.startswith('CREATE TABLE IF NOT EXISTS "shop"."orders"')


def test_checks_run_as_sql_or_through_the_qa_runner(steps_repo):
    objects = by_id(compiled(steps_repo, "checks.yaml"))
    assert objects["orders_unique"].type == "SqlActivity"
    logged = objects["customers_unique_logged"]
    assert logged.type == "ShellCommandActivity"
    lines = logged.get("command").split("\n")
    run = next(i for i, line in enumerate(lines) if "-m reconciler.qa" in line)
    assert shlex.split(lines[run]) == [
        "$runner/bin/python", "-m", "reconciler.qa", "primary-key", "--passwords_from_stdin",
        "$@", "<<DATADUCT_QA_PASSWORDS"]
    # the runner is installed first, from the artifacts bucket, without a package index
    wheel = next(a for a in compiled(steps_repo, "checks.yaml").artifacts
                 if a.path.startswith("<qa-runner>/"))
    install = "\n".join(lines[:run])
    assert f"aws s3 cp --quiet {wheel.s3_uri} " in install and "--no-index" in install
    assert lines[run + 1:] == ["destination_password=#{*myRedshiftPassword}",
                               "DATADUCT_QA_PASSWORDS"]
    count = objects["customers_counted"].get_all("scriptArgument")
    assert "--source_sql=SELECT COUNT(*) FROM (\nSELECT customer_id FROM customers\n) AS " \
           "counted" in count
    assert not [a for a in count if "password" in a.lower()]
    assert "source_password=#{*myMysqlMaestroPassword}" in \
        objects["customers_counted"].get("command").splitlines()
    sample = objects["customers_sampled"].get_all("scriptArgument")
    assert "--source_sql=SELECT customer_id, full_name, country, signed_up FROM customers " \
           "ORDER BY RAND() LIMIT 20" in sample


def test_pipeline_dependencies_waits_with_the_qa_runner(steps_repo):
    step = by_id(compiled(steps_repo, "checks.yaml"))["wait_for_loads"]
    assert shlex.split(step.get("command").splitlines()[-1]) == [
        "$runner/bin/python", "-m", "reconciler.qa", "dependencies", "$@"]
    # the runner looks pipelines up by their names in AWS (the environment's prefix)
    assert "--pipelines=staging-loads,staging-extracts" in step.get_all("scriptArgument")
    assert "--ok_to_fail=staging-extracts" in step.get_all("scriptArgument")


def test_a_dependency_on_a_pipeline_no_manifest_defines_suggests_one(steps_repo):
    checks = steps_repo / "pipelines/checks.yaml"
    checks.write_text(checks.read_text().replace("[loads, extracts]", "[laods, extracts]"))
    result = compile_repo(steps_repo, ["staging"])
    assert any("no pipeline named 'laods' is deployed to staging" in p.message
               and "did you mean 'loads'?" in (p.hint or "") for p in result.errors)


def test_bootstrap_comes_before_every_activity_on_the_instance_and_teardown_last(steps_repo):
    objects = by_id(compiled(steps_repo, "phases.yaml"))
    assert objects["first"].get_all("dependsOn") == ["install_tools"]
    assert objects["first"].get_all("input") == ["extract_local_customers_output"]
    assert objects["second"].get_all("dependsOn") == ["install_tools"]
    assert sorted(objects["announce"].get_all("dependsOn")) == ["first", "install_tools",
                                                                "second"]
    assert objects["Ec2Instance"].get("instanceType") == "m3.medium"


@pytest.mark.parametrize("manifest", ["extracts.yaml", "loads.yaml", "sql.yaml", "checks.yaml"])
def test_every_generated_script_parses_back(steps_repo, manifest):
    for obj in compiled(steps_repo, manifest).objects:
        for key in ("script", "createTableSql"):
            if obj.get(key):
                sqlgen.parse_sql(obj.get(key), commands=sqlgen.REDSHIFT_COMMANDS)


def test_sql_written_in_a_manifest_is_parsed_where_it_is_written(repo):
    (repo / "pipelines" / "bad_sql.yaml").write_text(
        "name: bad_sql\nsteps:\n- step_type: sql-command\n  command: SELECT FROM WHERE (\n")
    result = compile_repo(repo, ["staging"])
    (problem,) = [p for p in result.errors if p.location.file == "pipelines/bad_sql.yaml"]
    assert problem.location.line == 4 and "SQL does not parse" in problem.message


def test_every_generated_shell_command_splits_into_the_intended_words(steps_repo):
    commands = {o.id: o.get("command") for name in ("transforms.yaml", "checks.yaml")
                for o in compiled(steps_repo, name).objects if o.get("command")}
    summarise = shlex.split(commands["summarise_first"])
    assert summarise[:3] == ["aws", "s3", "cp"] and summarise[4:] == [
        "./summarise.py", "&&", "chmod", "+x", "./summarise.py", "&&", "./summarise.py", "$@"]
    *install, run, source, destination, end = commands["customers_counted"].splitlines()
    assert all(shlex.split(line) for line in install)
    assert shlex.split(run) == ["$runner/bin/python", "-m", "reconciler.qa", "count",
                                "--passwords_from_stdin", "$@", "<<DATADUCT_QA_PASSWORDS"]
    assert (source.split("=")[0], destination.split("=")[0]) == ("destination_password",
                                                                 "source_password")
    assert end == "DATADUCT_QA_PASSWORDS"
    assert shlex.split(commands["split_combine_inputs"]) == [
        "mkdir", "-p", "${OUTPUT1_STAGING_DIR}/first", "&&", "cp", "-r",
        "${INPUT1_STAGING_DIR}/.", "${OUTPUT1_STAGING_DIR}/first/", "&&",
        "mkdir", "-p", "${OUTPUT1_STAGING_DIR}/second", "&&", "cp", "-r",
        "${INPUT2_STAGING_DIR}/.", "${OUTPUT1_STAGING_DIR}/second/"]
