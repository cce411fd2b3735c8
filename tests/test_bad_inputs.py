"""The bad-input corpus (tests/bad_inputs/): each broken manifest gives exit 1 and a one-line
``file:line`` error that says what to do, never a traceback, and the other pipelines of the
repository still validate."""

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from .conftest import run_cli

CORPUS = Path(__file__).parent / "bad_inputs"

# case -> (line of the error, what the message says)
EXPECTED = {
    "yaml_syntax.yaml": (4, "YAML syntax error: found unexpected end of stream while scanning "
                            "a quoted scalar"),
    "wrong_types.yaml": (2, "expected integer, got a string ('many') (at max_retries)"),
    "unknown_key.yaml": (2, "unknown key 'frequncy' (at frequncy); did you mean 'frequency'?"),
    "unknown_step_type.yaml": (3, "unknown step type 'extract-rdss' (at steps[0].step_type); "
                                  "did you mean 'extract-rds'?"),
    "duplicate_step_name.yaml": (7, "duplicate step name 'twice' (first used at line 3)"),
    "dangling_depends_on.yaml": (8, "depends_on names unknown step 'frist' "
                                    "(at steps[1].depends_on); did you mean 'first'?"),
    "cycle.yaml": (5, "dependency cycle: a -> b -> a"),
    "missing_table.yaml": (6, "'tables/no_such_table.sql' does not exist in the repository"),
    "path_escape.yaml": (4, "'../../../../etc/passwd' points outside the repository"),
    "alias_bomb.yaml": (7, "document expands to more than 200,000 values"),
    "field_too_big.yaml": (3, "field 'script': value is 13,025 bytes, over the 10,240-byte "
                              "limit per field"),
    "too_many_objects.yaml": (1, "102 objects, over the limit of 100 objects per pipeline"),
}


def test_every_case_of_the_corpus_has_an_expectation():
    assert sorted(p.name for p in CORPUS.glob("*.yaml")) == sorted(EXPECTED)


def validate_with(repo: Path, *files: Path):
    for file in files:
        shutil.copy(file, repo / "pipelines" / file.name)
    text = run_cli("validate", cwd=repo)
    as_json = run_cli("validate", "--format", "json", cwd=repo)
    return text, json.loads(as_json.stdout)


def assert_examples_still_valid(report):
    valid = {(p["manifest"], p["environment"]) for p in report["pipelines"] if p["valid"]}
    for name in ("users", "discussion_votes"):
        for env in ("staging", "prod"):
            assert (f"pipelines/{name}.yaml", env) in valid


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_input_gives_one_located_line_and_spares_the_other_pipelines(repo, case):
    line, message = EXPECTED[case]
    started = time.perf_counter()
    text, report = validate_with(repo, CORPUS / case)
    assert time.perf_counter() - started < 30
    assert text.code == 1
    assert "Traceback" not in text.stderr + text.stdout
    lines = [x for x in text.stderr.splitlines() if x.startswith(f"pipelines/{case}:")]
    assert lines, text.stderr
    assert any(x.startswith(f"pipelines/{case}:{line}:") and message in x for x in lines), lines
    assert not report["valid"]
    assert_examples_still_valid(report)


def test_the_whole_corpus_at_once_reports_every_error(repo):
    text, report = validate_with(repo, *sorted(CORPUS.glob("*.yaml")))
    assert text.code == 1
    for case, (line, message) in EXPECTED.items():
        assert any(p["file"] == f"pipelines/{case}" and p["line"] == line
                   and message.split(" (at ")[0] in p["message"] for p in report["problems"]), case
    assert_examples_still_valid(report)


def test_a_symlink_out_of_the_repository_is_not_followed(repo):
    os.symlink("/etc/hostname", repo / "tables" / "escape.sql")
    (repo / "pipelines" / "link.yaml").write_text(
        "name: link\nsteps:\n- {step_type: extract-s3, file_uri: 's3://b/k'}\n"
        "- {step_type: create-load-redshift, table_definition: tables/escape.sql}\n")
    text, report = validate_with(repo)
    assert text.code == 1
    assert any(x.startswith("pipelines/link.yaml:4:37:") and
               "symbolic link to /etc/hostname leads outside the repository" in x
               for x in text.stderr.splitlines()), text.stderr
    assert any(x.startswith("tables/escape.sql:1:") for x in text.stderr.splitlines())
    assert_examples_still_valid(report)


def test_a_broken_table_definition_points_into_the_sql_file(repo):
    (repo / "tables" / "broken.sql").write_text("CREATE TABLE t (\n  id INTEGER,\n  name\n")
    (repo / "pipelines" / "t.yaml").write_text(
        "name: t\nsteps:\n- {step_type: extract-s3, file_uri: 's3://b/k'}\n"
        "- {step_type: create-load-redshift, table_definition: tables/broken.sql}\n")
    text, _ = validate_with(repo)
    assert text.code == 1
    assert any(x.startswith("tables/broken.sql:3:") and "table definition: SQL does not parse"
               in x and "used by step 'create_load_redshift_broken' at pipelines/t.yaml:4:3" in x
               for x in text.stderr.splitlines()), text.stderr


def test_a_broken_config_stops_no_environment_but_its_own(repo):
    (repo / "config" / "prod.yaml").write_text("etl:\n  MAX_RETRIES: lots\n")
    text, report = validate_with(repo)
    assert text.code == 1
    assert "config/prod.yaml:2:3: error: expected integer, got a string ('lots')" in text.stderr
    valid = {(p["manifest"], p["environment"]) for p in report["pipelines"] if p["valid"]}
    assert valid == {("pipelines/users.yaml", "staging"),
                     ("pipelines/discussion_votes.yaml", "staging")}
