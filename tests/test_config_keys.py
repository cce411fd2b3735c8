"""Dataduct's config keys are honoured or refused, never silently ignored: NAME_PREFIX, TAGS,
modes, teardown, log paths, frequencies, the default load time, log_to_s3, and database
objects in step templates."""

import textwrap
from dataclasses import replace

import pytest

from .conftest import compile_repo


def write(repo, path, text):
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(text))


def add_config(repo, text, path="config/defaults.yaml"):
    (repo / path).write_text((repo / path).read_text() + textwrap.dedent(text))


def add_etl(repo, text):
    config = repo / "config/defaults.yaml"
    config.write_text(config.read_text().replace("etl:\n", "etl:\n" + textwrap.indent(
        textwrap.dedent(text), "  "), 1))


def built(repo, manifest="users.yaml", env="staging"):
    result = compile_repo(repo, [env])
    (found,) = [r for r in result.pipelines if r.manifest == f"pipelines/{manifest}"]
    return found, result


def problems(repo, severity=None):
    return [replace(p, environments=()).format() for p in compile_repo(repo).all_problems()
            if severity is None or p.severity == severity]


def test_name_prefix_names_the_pipeline_in_aws_as_dataduct_did(repo):
    add_etl(repo, "NAME_PREFIX: dev\n")
    pipeline, _ = built(repo)
    assert (pipeline.compiled.name, pipeline.compiled.aws_name) == ("users", "dev_users")
    alarm = [o for o in pipeline.compiled.objects if o.id == "FailureAlarm"]
    assert alarm == []  # staging has no failure topic; prod's subject names dev_users
    prod, _ = built(repo, env="prod")
    assert "dev_users" in next(o for o in prod.compiled.objects
                               if o.id == "FailureAlarm").get("subject")


def test_tags_come_from_strings_and_pipeline_variables(repo):
    add_etl(repo, """\
        TAGS:
          team: {string: data-eng}
          Name: {variable: name}
          cadence: {variable: frequency}
        """)
    pipeline, _ = built(repo)
    assert dict(pipeline.compiled.tags) == {"team": "data-eng", "Name": "users",
                                            "cadence": "daily"}


def test_more_tags_than_aws_leaves_room_for_is_an_error_that_counts(repo):
    add_etl(repo, "TAGS:\n" + "".join(f"  t{i}: {{string: v}}\n" for i in range(4)))
    found = problems(repo, "error")
    assert any("etl.TAGS gives 4 tags; a pipeline has at most 10 tags and the reconciler "
               "uses 7, so 3 are left" in p for p in found), found


def test_a_tag_with_both_forms_is_refused(repo):
    add_etl(repo, "TAGS:\n  team: {string: a, variable: name}\n")
    assert any("tag team must be {string: VALUE} or {variable: KEY}" in p
               for p in problems(repo, "error"))


def test_a_dataduct_mode_is_selected_per_environment(repo):
    add_config(repo, "production:\n  etl:\n    S3_BASE_PATH: released\n")
    settings = repo / "reconciler.yaml"
    settings.write_text(settings.read_text().replace(
        "    config: config/prod.yaml\n", "    config: config/prod.yaml\n    mode: production\n"))
    prod, _ = built(repo, env="prod")
    default = next(o for o in prod.compiled.objects if o.id == "Default")
    assert default.get("pipelineLogUri") == "s3://coursera-reinvent/released/logs/users/"
    staging, _ = built(repo)
    assert "released" not in next(o for o in staging.compiled.objects
                                  if o.id == "Default").get("pipelineLogUri")


def test_a_mode_no_environment_selects_is_reported(repo):
    add_config(repo, "production:\n  etl:\n    S3_BASE_PATH: released\n")
    assert any("config/defaults.yaml:" in p and "mode 'production' is used by no environment"
               in p and "warning" in p for p in problems(repo))


def test_an_unknown_mode_is_an_error_in_reconciler_yaml(repo):
    settings = repo / "reconciler.yaml"
    settings.write_text(settings.read_text().replace(
        "    config: config/prod.yaml\n", "    config: config/prod.yaml\n    mode: nope\n"))
    assert any(p.startswith("reconciler.yaml:") and "mode 'nope' is not a block" in p
               for p in problems(repo, "error"))


@pytest.mark.parametrize("section, key, value, why", [
    ("etl", "DP_INSTANCE_LOG_PATH", "dp_instances", "archived under the pipeline's log URI"),
    ("etl", "DP_QA_TESTS_LOG_PATH", "qa_tests", "QA_LOG_PATH"),
    ("emr", "HADOOP_VERSION", "2.4.0", "release_label"),
])
def test_keys_with_no_effect_are_reported_with_what_to_use(repo, section, key, value, why):
    config = repo / "config/defaults.yaml"
    config.write_text(config.read_text().replace(f"{section}:\n", f"{section}:\n  {key}: {value}\n",
                                                 1))
    found = [p for p in problems(repo, "warning") if f"{section}.{key} has no effect" in p]
    assert found and why in found[0] and found[0].startswith("config/defaults.yaml:")


def test_a_region_that_disagrees_with_reconciler_yaml_is_reported(repo):
    config = repo / "config/defaults.yaml"
    config.write_text(config.read_text().replace("REGION: us-east-1", "REGION: eu-west-1"))
    assert any("etl.REGION is eu-west-1, but staging runs in us-east-1" in p
               for p in problems(repo, "warning"))


def test_the_logging_section_is_reported(repo):
    add_config(repo, "logging:\n  LOG_DIR: ~/.dataduct\n")
    assert any("the logging section has no effect" in p for p in problems(repo, "warning"))


def test_dp_pipeline_log_path_places_the_logs(repo):
    add_etl(repo, "DP_PIPELINE_LOG_PATH: dp_pipelines\n")
    pipeline, _ = built(repo)
    default = next(o for o in pipeline.compiled.objects if o.id == "Default")
    assert default.get("pipelineLogUri") == \
        "s3://coursera-reinvent/staging/dp_pipelines/users/"


def test_a_teardown_in_the_config_runs_after_every_pipeline_without_one(repo):
    add_config(repo, "teardown:\n  step_type: transform\n  name: finished\n"
                     "  command: echo done\n  no_output: true\n")
    pipeline, _ = built(repo)
    finished = next(o for o in pipeline.compiled.objects if o.id == "finished")
    assert finished.get_all("dependsOn") == ["sample_users"]  # the last step, a check


@pytest.mark.parametrize("frequency, period", [("2-hours", "2 hours"), ("1-week", "1 weeks"),
                                               ("3-days", "3 days"), ("hourly", "1 hours")])
def test_dataducts_frequencies(repo, frequency, period):
    users = repo / "pipelines/users.yaml"
    users.write_text(users.read_text().replace("frequency: daily", f"frequency: {frequency}"))
    pipeline, _ = built(repo)
    schedule = next(o for o in pipeline.compiled.objects if o.id == "DefaultSchedule")
    assert schedule.get("period") == period


def test_an_unknown_frequency_suggests_the_right_spelling(repo):
    users = repo / "pipelines/users.yaml"
    users.write_text(users.read_text().replace("frequency: daily", "frequency: 2-hour"))
    assert any("pipelines/users.yaml:2:" in p and "'2-hour' is not one of" in p and
               "2-hours" in p for p in problems(repo, "error"))


def test_the_default_load_time_is_dataducts_one_oclock(repo):
    config = repo / "config/defaults.yaml"
    config.write_text(config.read_text().replace("  DAILY_LOAD_TIME: 1\n", ""))
    pipeline, _ = built(repo, "discussion_votes.yaml")
    schedule = next(o for o in pipeline.compiled.objects if o.id == "DefaultSchedule")
    assert schedule.get("startDateTime").endswith("T01:00:00")


def test_a_daily_load_time_that_is_not_a_time_is_an_error_in_the_config(repo):
    config = repo / "config/defaults.yaml"
    config.write_text(config.read_text().replace("DAILY_LOAD_TIME: 1", "DAILY_LOAD_TIME: noon"))
    assert any(p.startswith("config/defaults.yaml:") and "etl.DAILY_LOAD_TIME 'noon'" in p
               for p in problems(repo, "error"))


def test_log_to_s3_on_a_delta_load_sends_its_check_through_the_qa_runner(steps_repo):
    loads = steps_repo / "pipelines/loads.yaml"
    loads.write_text(loads.read_text().replace("  window: 2\n", "  window: 2\n  log_to_s3: true\n"))
    pipeline, _ = built(steps_repo, "loads.yaml")
    check = next(o for o in pipeline.compiled.objects
                 if o.id == "delta_customers_primary_key_check")
    assert check.type == "ShellCommandActivity"
    assert any(a.startswith("--log_to_s3=s3://coursera-reinvent/staging/qa/loads/")
               for a in check.get_all("scriptArgument"))


def test_a_template_can_use_redshift_and_mysql_like_built_in_steps(repo):
    write(repo, "steps/vacuum.yaml", """\
        step_type: vacuum
        produces_output: false
        parameters:
          table: {type: string, required: true}
        activity:
          type: SqlActivity
          fields:
            database: {database: redshift}
            script: "VACUUM {{ params.table }}"
        objects:
        - id: "{{ step.name }}_source"
          type: SqlDataNode
          table: users
          selectQuery: SELECT 1 FROM users
          database: {database: mysql, host: maestro, name: userDb}
        """)
    write(repo, "pipelines/v.yaml",
          "name: v\nsteps:\n- {step_type: vacuum, name: vacuum, table: x}\n")
    pipeline, result = built(repo, "v.yaml")
    assert pipeline.compiled is not None, [p.format() for p in result.errors]
    objects = {o.id: o for o in pipeline.compiled.objects}
    assert objects["vacuum"].get("database") == "RedshiftDatabase"
    assert objects["vacuum_source"].get("database") == "MysqlDatabase_maestro_userDb"
    assert {s.parameter_id for s in pipeline.compiled.secrets} == {
        "*myRedshiftPassword", "*myMysqlMaestroPassword"}
