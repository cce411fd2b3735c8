"""What the compiler promises: determinism, stable ids, Dataduct's semantics, secrets kept
out, content-addressed files, templates and plugins, and nothing from the repository run."""

import json
import os
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.desired.definition import to_json

from .conftest import START, compile_repo, run_cli


def write(repo: Path, path: str, text: str) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(text))


def build(repo, manifest, env="staging"):
    result = compile_repo(repo, [env])
    found = [r for r in result.pipelines if r.manifest == f"pipelines/{manifest}"]
    assert len(found) == 1, [p.format() for p in result.all_problems()]
    return found[0]


def ok(repo, manifest, env="staging"):
    built = build(repo, manifest, env)
    assert built.compiled is not None, [p.format() for p in built.problems]
    return built.compiled


def errors(repo, manifest, env="staging"):
    return [replace(p, environments=()).format() for p in build(repo, manifest, env).problems
            if p.severity == "error"]


def ids(pipeline):
    return {o.id for o in pipeline.objects}


TWO_EXTRACTS = """\
name: two
frequency: daily
steps:
- step_type: extract-rds
  host_name: maestro
  database: db
  table: alpha
- step_type: extract-rds
  host_name: maestro
  database: db
  table: beta
"""


def test_the_same_input_gives_byte_identical_output(repo):
    first = [to_json(p.render()) for p in compile_repo(repo).compiled()]
    second = [to_json(p.render()) for p in compile_repo(repo).compiled()]
    assert first == second and len(first) == 4


def test_reordering_independent_steps_keeps_every_object_id(repo):
    write(repo, "pipelines/two.yaml", TWO_EXTRACTS)
    before = ok(repo, "two.yaml")
    steps = TWO_EXTRACTS.split("- step_type")
    write(repo, "pipelines/two.yaml", steps[0] + "- step_type" + steps[2].rstrip() + "\n"
          + "- step_type" + steps[1])
    after = ok(repo, "two.yaml")
    assert ids(before) == ids(after)
    assert {o.id: o for o in before.objects} == {o.id: o for o in after.objects}


def test_adding_a_step_leaves_the_other_objects_ids_alone(repo):
    before = ok(repo, "users.yaml")
    text = (repo / "pipelines/users.yaml").read_text()
    write(repo, "pipelines/users.yaml", text + textwrap.dedent("""\

        - step_type: primary-key-check
          table_definition: tables/prod.users.sql
        """))
    after = ok(repo, "users.yaml")
    assert ids(before) < ids(after)
    assert ids(after) - ids(before) == {"primary_key_check_prod_users"}


@pytest.mark.parametrize("written, start", [("12:00", "T12:00:00"), ("01:00", "T01:00:00"),
                                            ("1:30", "T01:30:00"), ("00:01", "T00:01:00")])
def test_load_time_is_read_as_written(repo, written, start):
    write(repo, "pipelines/t.yaml", f"""\
        name: t
        frequency: daily
        load_time: {written}
        steps:
        - step_type: extract-s3
          file_uri: s3://bucket/key
        """)
    schedule = next(o for o in ok(repo, "t.yaml").objects if o.id == "DefaultSchedule")
    assert schedule.get("startDateTime") == "2026-11-26" + start
    assert schedule.get("period") == "1 days"


def test_a_bad_load_time_names_its_line(repo):
    write(repo, "pipelines/t.yaml", """\
        name: t
        load_time: "25:00"
        steps:
        - step_type: extract-s3
          file_uri: s3://bucket/key
        """)
    assert any(e.startswith("pipelines/t.yaml:2:1: error: load_time '25:00'")
               for e in errors(repo, "t.yaml"))


def test_one_time_runs_once_and_on_demand_has_no_schedule(repo):
    write(repo, "pipelines/once.yaml", "name: once\nfrequency: one-time\nsteps:\n"
          "- {step_type: transform, command: echo hi}\n")
    once = {o.id: o for o in ok(repo, "once.yaml").objects}
    assert once["DefaultSchedule"].get("occurrences") == "1"
    write(repo, "pipelines/od.yaml", "name: od\nfrequency: on-demand\nsteps:\n"
          "- {step_type: transform, command: echo hi}\n")
    od = {o.id: o for o in ok(repo, "od.yaml").objects}
    assert "DefaultSchedule" not in od
    assert od["Default"].get("scheduleType") == "ondemand"
    assert od["Default"].get("schedule") is None


def test_file_keys_change_exactly_when_the_content_does(repo):
    write(repo, "scripts/job.py", "print('v1')\n")
    write(repo, "pipelines/job.yaml", "name: job\nsteps:\n- {step_type: transform, script: "
          "scripts/job.py}\n")
    first = ok(repo, "job.yaml")
    (repo / "pipelines/users.yaml").write_text((repo / "pipelines/users.yaml").read_text()
                                               + "# unrelated edit\n")
    assert ok(repo, "job.yaml").digest == first.digest
    write(repo, "scripts/job.py", "print('v2')\n")
    second = ok(repo, "job.yaml")
    (a1,), (a2,) = first.artifacts, second.artifacts
    assert a1.path == a2.path == "scripts/job.py"
    assert a1.s3_uri != a2.s3_uri and a1.sha256 != a2.sha256
    assert a1.s3_uri.startswith("s3://coursera-reinvent/staging/artifacts/")
    assert first.digest != second.digest


def test_environment_config_is_deep_merged_over_defaults(repo):
    staging, prod = ok(repo, "users.yaml", "staging"), ok(repo, "users.yaml", "prod")
    sdb = next(o for o in staging.objects if o.id == "RedshiftDatabase")
    pdb = next(o for o in prod.objects if o.id == "RedshiftDatabase")
    assert sdb.get("clusterId") == "coursera-dw-staging" and pdb.get("clusterId") == "coursera-dw"
    assert sdb.get("username") == pdb.get("username") == "etl"  # sibling keys survive
    assert next(o for o in prod.objects if o.id == "Ec2Instance").get("instanceType") == "m3.large"
    assert next(o for o in staging.objects if o.id == "Ec2Instance").get("instanceType") == \
        "m1.small"
    assert "FailureAlarm" in ids(prod) and "FailureAlarm" not in ids(staging)


def test_secrets_are_encrypted_parameters_and_never_values(repo):
    rendered = to_json(ok(repo, "users.yaml").render("api"))
    assert '"*password": "#{*myMysqlMaestroPassword}"' not in rendered  # api form: fields list
    data = json.loads(rendered)
    assert {"key": "*password", "stringValue": "#{*myMysqlMaestroPassword}"} in [
        f for o in data["pipelineObjects"] for f in o["fields"]]
    assert data["parameterValues"] == []
    assert data["secrets"] == [{"from": "env:MAESTRO_PASSWORD", "id": "*myMysqlMaestroPassword"},
                               {"from": "env:REDSHIFT_PASSWORD", "id": "*myRedshiftPassword"}]


def test_a_password_written_in_the_config_is_refused_and_never_echoed(repo):
    config = (repo / "config/staging.yaml").read_text()
    write(repo, "config/staging.yaml",
          config + "mysql:\n  maestro:\n    PASSWORD: hunter2-s3cret\n")
    result = run_cli("validate", str(repo), "--format", "json")
    assert result.code == 1
    assert "hunter2-s3cret" not in result.stdout + result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert any(p["message"] == "PASSWORD is written in the repository" and p["line"] == 10
               and "from_env" in p["hint"] for p in problems)


def test_variables_become_parameters(repo):
    write(repo, "pipelines/v.yaml", """\
        name: v
        variables:
          target_bucket: s3://out
          day_offset: 2
        steps:
        - step_type: transform
          command: "aws s3 cp x #{myTargetBucket}/ && echo #{myDayOffset}"
        """)
    pipeline = ok(repo, "v.yaml")
    assert dict(pipeline.parameter_values) == {"myTargetBucket": "s3://out", "myDayOffset": "2"}
    assert {p.id: p.type for p in pipeline.parameters} == {"myTargetBucket": "String",
                                                           "myDayOffset": "Integer"}


def test_an_undeclared_parameter_is_refused_like_the_service_would(repo):
    write(repo, "pipelines/v.yaml", "name: v\nsteps:\n- step_type: transform\n"
          "  command: 'echo #{myMissing}'\n")
    assert any("uses '#{myMissing}', which is neither a parameter nor a field" in e and
               e.startswith("pipelines/v.yaml:3:3") for e in errors(repo, "v.yaml"))


def test_input_node_path_resolves_to_the_named_output(repo):
    objects = {o.id: o for o in ok(repo, "discussion_votes.yaml").objects}
    load = objects["load_discussion_question_votes"]
    assert load.get_all("input") == ["vote_emr_output_questions"]
    assert load.get_all("dependsOn") == ["vote_emr"]
    assert objects["vote_emr_output_questions"].get("directoryPath").endswith("/questions")


def test_an_ambiguous_output_name_asks_for_the_step(repo):
    write(repo, "pipelines/amb.yaml", """\
        name: amb
        steps:
        - {step_type: transform, name: a, command: x, output_node: [out]}
        - {step_type: transform, name: b, command: x, output_node: [out]}
        - {step_type: transform, name: c, command: x, input_node: out}
        """)
    (error,) = errors(repo, "amb.yaml")
    assert "ambiguous: outputs named 'out' come from a, b; write 'step/out'" in error
    write(repo, "pipelines/amb.yaml", (repo / "pipelines/amb.yaml").read_text()
          .replace("input_node: out", "input_node: b/out"))
    objects = {o.id: o for o in ok(repo, "amb.yaml").objects}
    assert objects["c"].get_all("input") == ["b_output_out"]


def test_steps_default_to_reading_and_following_the_previous_step(repo):
    objects = {o.id: o for o in ok(repo, "users.yaml").objects}
    assert objects["load_staging"].get_all("input") == ["extract_rds_output"]
    assert objects["upsert_users"].get_all("dependsOn") == ["load_staging"]
    assert objects["extract_rds"].get_all("dependsOn") == []


def test_environments_and_overrides(repo):
    write(repo, "pipelines/only.yaml", """\
        name: only
        environments: [staging]
        max_retries: 1
        overrides:
          staging: {max_retries: 4}
        steps:
        - {step_type: transform, command: x}
        """)
    result = compile_repo(repo)
    built = [(r.environment, r.compiled) for r in result.pipelines
             if r.manifest == "pipelines/only.yaml"]
    assert [env for env, _ in built] == ["staging"]
    assert next(o for o in built[0][1].objects if o.id == "transform").get(
        "maximumRetries") == "4"


def test_teardown_runs_after_every_other_activity(repo):
    write(repo, "pipelines/td.yaml", """\
        name: td
        steps:
        - {step_type: transform, name: a, command: x}
        - {step_type: transform, name: b, command: y, input_node: [], depends_on: []}
        teardown:
          step_type: transform
          name: cleanup
          command: rm -rf /tmp/work
          input_node: []
        """)
    objects = {o.id: o for o in ok(repo, "td.yaml").objects}
    assert sorted(objects["cleanup"].get_all("dependsOn")) == ["a", "b"]


def test_colliding_object_ids_are_an_error(repo):
    write(repo, "pipelines/clash.yaml", """\
        name: clash
        steps:
        - {step_type: transform, name: x, command: a}
        - {step_type: transform, name: x_output, command: b}
        """)
    assert any("object id 'x_output' is produced twice" in e for e in errors(repo, "clash.yaml"))


def test_templates_with_unknown_placeholders_name_the_template_line(repo):
    write(repo, "steps/broken.yaml", """\
        step_type: broken
        activity:
          type: ShellCommandActivity
          fields:
            command: "run {{ params.nope }}"
        """)
    write(repo, "pipelines/b.yaml", "name: b\nsteps:\n- {step_type: broken}\n")
    (error,) = errors(repo, "b.yaml")
    assert error.startswith("steps/broken.yaml:5:5: error: template broken uses unknown "
                            "placeholder {{ params.nope }}")
    assert "used by step 'broken' at pipelines/b.yaml:3:3" in error


def test_template_parameters_are_checked_like_built_in_ones(repo):
    write(repo, "pipelines/d.yaml", """\
        name: d
        steps:
        - step_type: scalding
          job: org.example.Job
        """)
    found = errors(repo, "d.yaml")
    assert any("missing required key 'job_name'" in e for e in found)
    assert any("unknown key 'job'" in e for e in found)


def test_nothing_from_the_repository_is_ever_executed(repo, tmp_path):
    marker = tmp_path / "executed"
    payload = f"open({str(marker)!r}, 'w').write('x')\n"
    write(repo, "custom_extract_local.py", payload)
    write(repo, "steps/__init__.py", payload)
    write(repo, "pipelines/conftest.py", payload)
    config = (repo / "config/defaults.yaml").read_text()
    write(repo, "config/defaults.yaml", config + textwrap.dedent("""\
        custom_steps:
        -   class_name: CustomExtractLocalStep
            file_path: custom_extract_local.py
            step_type: custom-extract-local
        """))
    write(repo, "pipelines/c.yaml", "name: c\nsteps:\n- {step_type: custom-extract-local, "
          "path: data/x.tsv}\n")
    result = run_cli("validate", str(repo))
    assert result.code == 1
    assert "custom_steps would run Python from the repository" in result.stderr
    assert not marker.exists()


def test_step_plugins_are_found_through_entry_points(repo, tmp_path):
    site = tmp_path / "site"
    (site / "acme_steps").mkdir(parents=True)
    (site / "acme_steps" / "__init__.py").write_text(textwrap.dedent("""\
        from reconciler.desired.steps.base import StepResult
        from jsonschema import Draft202012Validator

        class Notify:
            step_type = "notify"
            produces_output = False
            resource = "ec2"

            def validator(self):
                return Draft202012Validator({"type": "object", "required": ["message"],
                    "properties": {"step_type": {}, "name": {}, "message": {"type": "string"}},
                    "additionalProperties": False})

            def compile(self, ctx):
                ctx.activity("ShellCommandActivity", command="echo " + ctx.step.params["message"])
                return StepResult()
        """))
    dist = site / "acme_steps-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-steps\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[dataduct_reconciler.steps]\nnotify = acme_steps:Notify\n")
    write(repo, "pipelines/n.yaml", "name: n\nsteps:\n- {step_type: notify, message: hello}\n")
    result = run_cli("render", str(repo / "pipelines/n.yaml"), "--env", "staging",
                     env={"PYTHONPATH": str(site) + ":" + ":".join(sys.path)})
    assert result.code == 0, result.stderr
    objects = {o["id"]: o for o in json.loads(result.stdout)["pipelineObjects"]}
    assert {"key": "command", "stringValue": "echo hello"} in objects["notify"]["fields"]


def test_config_bootstrap_runs_first_and_its_errors_point_into_the_config(repo):
    config = (repo / "config/defaults.yaml").read_text()
    write(repo, "config/defaults.yaml", config + textwrap.dedent("""\
        bootstrap:
          ec2:
          - step_type: transform
            name: install_tools
            command: pip install awscli
            no_output: true
        """))
    objects = {o.id: o for o in ok(repo, "users.yaml").objects}
    assert objects["extract_rds"].get_all("dependsOn") == ["install_tools"]
    assert objects["install_tools"].get_all("dependsOn") == []
    # every activity on the bootstrapped resource waits for the bootstrap
    assert objects["load_staging"].get_all("dependsOn") == ["extract_rds", "install_tools"]
    write(repo, "config/defaults.yaml", config + "bootstrap:\n  ec2:\n"
          "  - {step_type: transform, name: install_tools, comand: x}\n")
    problems = [p for p in compile_repo(repo, ["staging"]).errors]
    assert any(str(p.location).startswith("config/defaults.yaml:") and
               "unknown key 'comand'" in p.message for p in problems), problems


def test_a_big_repository_compiles_across_processes_to_the_same_result(repo, monkeypatch,
                                                                         tmp_path):
    # validate and plan compile a big repository in forked processes: every pipeline, every
    # problem (a broken manifest's included) and every definition as one process makes them
    from reconciler import processes
    from reconciler.desired import project
    from reconciler.desired.compiler import CompileOptions
    from reconciler.desired.project import compile_project
    from reconciler.qa.bundle import qa_runner
    from reconciler.source import read_snapshot
    for i in range(12):
        write(repo, f"pipelines/copy_{i:02d}.yaml", TWO_EXTRACTS.replace("name: two",
                                                                        f"name: copy_{i}"))
    write(repo, "pipelines/broken.yaml", "name: broken\nsteps:\n- step_type: nope\n")
    alone = compile_repo(repo)
    monkeypatch.setattr(project, "PARALLEL_FROM", 4)
    monkeypatch.setattr(processes.threading, "active_count", lambda: 1)  # pytest's own
    monkeypatch.setenv(processes.PROCESSES_VARIABLE, "2")
    seen = tmp_path / "pids"
    original = project._Files.compile

    def compile_and_say_where(self, paths, problems):
        with seen.open("a") as out:  # a forked worker's list would stay in the worker
            out.write(f"{os.getpid()}\n")
        return original(self, paths, problems)

    monkeypatch.setattr(project._Files, "compile", compile_and_say_where)
    options = CompileOptions(START, qa_runner=qa_runner())
    together = compile_project(read_snapshot(repo), options, mapper=processes.forked_map)
    pids = set(seen.read_text().split())
    assert len(pids) == 2 and str(os.getpid()) not in pids, "two other processes compiled"
    assert [(r.manifest, r.environment) for r in together.pipelines] == [
        (r.manifest, r.environment) for r in alone.pipelines]
    assert [to_json(r.compiled.render()) if r.compiled else None for r in together.pipelines] \
        == [to_json(r.compiled.render()) if r.compiled else None for r in alone.pipelines]
    assert [p.format() for p in together.all_problems()] == [
        p.format() for p in alone.all_problems()]
    assert any("nope" in p.format() for p in together.all_problems())
    seen.unlink()
    monkeypatch.setenv(processes.PROCESSES_VARIABLE, "1")
    compile_project(read_snapshot(repo), options, mapper=processes.forked_map)
    assert set(seen.read_text().split()) == {str(os.getpid())}, "1 process: compiled here"
