"""Nothing a user writes crashes a pass: a step type, template or plugin that raises costs only
its pipeline, every problem has a file and a line, and every error the project raises is a
ReconcilerError. The fuzz test mutates the project's own manifests and asserts the same."""

import inspect
import os
import pkgutil
import textwrap
from dataclasses import replace

import boto3
import pytest
from botocore.config import Config
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reconciler
from reconciler.cli import main
from reconciler.desired.compiler import CompileOptions
from reconciler.desired.project import compile_project
from reconciler.errors import ReconcilerError
from reconciler.live.aws import AwsError, call
from reconciler.plugins import BrokenPlugin
from reconciler.qa.bundle import qa_runner
from reconciler.source import read_snapshot

from .conftest import START, compile_repo, run_cli

OPTIONS = CompileOptions(START, qa_runner=qa_runner())


def write(repo, path, text):
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(text))


class Exploding:
    """A step plugin with a bug."""

    step_type = "explode"
    produces_output = False
    resource = "ec2"

    def validator(self):
        from jsonschema import Draft202012Validator

        return Draft202012Validator({"type": "object"})

    def compile(self, ctx):
        raise RuntimeError("the plugin's own bug")


class BadValidator(Exploding):
    step_type = "bad-validator"

    def validator(self):
        raise KeyError("schema")


def test_a_step_plugin_that_raises_costs_only_its_pipeline(repo):
    write(repo, "pipelines/boom.yaml", "name: boom\nsteps:\n- step_type: explode\n")
    plugins = {"explode": Exploding(), "bad-validator": BadValidator()}
    result = compile_project(read_snapshot(repo), OPTIONS, plugins=plugins)
    ok = {r.manifest for r in result.pipelines if r.ok}
    assert ok == {"pipelines/users.yaml", "pipelines/discussion_votes.yaml"}
    (problem,) = {replace(p, environments=()) for p in result.errors}
    assert (problem.location.file, problem.location.line) == ("pipelines/boom.yaml", 3)
    assert "RuntimeError: the plugin's own bug" in problem.message
    assert problem.code == "internal" and "bug in the step type 'explode'" in problem.hint


def test_a_plugin_whose_validator_raises_reports_its_steps(repo):
    write(repo, "pipelines/v.yaml", "name: v\nsteps:\n- step_type: bad-validator\n")
    result = compile_project(read_snapshot(repo), OPTIONS,
                             plugins={"bad-validator": BadValidator()}, manifests=[
                                 "pipelines/v.yaml"])
    assert any("validator() raised KeyError" in p.message for p in result.errors)


def test_a_plugin_that_fails_to_load_stands_in_with_its_reason(repo):
    broken = BrokenPlugin("notify", "step plugin notify (acme:Notify) failed to load: "
                          "ImportError: no module named acme")
    write(repo, "pipelines/n.yaml", "name: n\nsteps:\n- {step_type: notify}\n")
    result = compile_project(read_snapshot(repo), OPTIONS,
                             plugins={"notify": broken})
    (problem,) = {replace(p, environments=()) for p in result.errors}
    assert problem.location.file == "pipelines/n.yaml" and "failed to load" in problem.message
    assert len([r for r in result.pipelines if r.ok]) == 4


def test_a_template_that_raises_is_located_at_the_step(repo):
    write(repo, "steps/db.yaml", """\
        step_type: db
        activity:
          type: SqlActivity
          fields:
            database: {database: mysql}
            script: SELECT 1
        """)
    write(repo, "pipelines/d.yaml", "name: d\nsteps:\n- {step_type: db}\n")
    problems = [p for p in compile_repo(repo, ["staging"]).errors]
    assert any(p.location.file in ("pipelines/d.yaml", "steps/db.yaml") for p in problems)


@pytest.mark.parametrize("sql, line", [
    ("SELECT 'unterminated FROM t", 4),
    ("SELECT 1 /* never closed", 4),
])
def test_sql_that_cannot_be_tokenized_is_a_located_error_not_a_traceback(repo, sql, line):
    write(repo, "pipelines/s.yaml", f"name: s\nsteps:\n- step_type: sql-command\n"
                                    f"  command: \"{sql}\"\n")
    result = run_cli("validate", str(repo))
    assert result.code == 1 and "Traceback" not in result.stderr
    assert f"pipelines/s.yaml:{line}:" in result.stderr
    assert "never closed" in result.stderr


def test_sql_errors_in_a_block_scalar_point_at_the_yaml_line(repo):
    write(repo, "pipelines/s.yaml", """\
        name: s
        steps:
        - step_type: sql-command
          command: |
            DELETE FROM t;
            SELECT FROM WHERE (
        """)
    (problem,) = {replace(p, environments=()) for p in compile_repo(repo).errors}
    assert (problem.location.file, problem.location.line) == ("pipelines/s.yaml", 6)


def test_sql_errors_in_a_file_point_at_the_file(repo):
    write(repo, "scripts/broken.sql", "DELETE FROM t;\n\nSELECT 'open\n")
    write(repo, "pipelines/s.yaml", "name: s\nsteps:\n- step_type: sql-command\n"
                                    "  script: scripts/broken.sql\n")
    (problem,) = {replace(p, environments=()) for p in compile_repo(repo).errors}
    assert (problem.location.file, problem.location.line) == ("scripts/broken.sql", 3)
    assert "used by step" in problem.hint


def test_a_huge_yaml_integer_is_a_located_error(repo):
    write(repo, "pipelines/big.yaml", "name: big\nmax_retries: " + "9" * 5000 + "\nsteps: []\n")
    result = run_cli("validate", str(repo))
    assert result.code == 1 and "Traceback" not in result.stderr
    assert "pipelines/big.yaml:2:14: error: a number of 5,000 digits is too long" in \
        result.stderr


def test_undecodable_bytes_name_their_line(repo):
    (repo / "pipelines/latin1.yaml").write_bytes(b"name: x\ndescription: caf\xe9\nsteps: []\n")
    (repo / "tables/latin1.sql").write_bytes(b"CREATE TABLE t (\n  a INT -- \xe9\n);\n")
    problems = {(p.location.file, p.location.line) for p in compile_repo(repo).errors}
    assert ("pipelines/latin1.yaml", 2) in problems
    assert ("tables/latin1.sql", 2) in problems


def test_a_table_file_no_step_uses_is_still_checked(repo):
    write(repo, "tables/unused.sql", "CREATE TABLE t (a INT NULL NOT NULL);\n")
    (problem,) = [p for p in compile_repo(repo).errors if p.location.file == "tables/unused.sql"]
    assert "both NULL and NOT NULL" in problem.message


def test_a_promotion_cycle_is_a_validation_error(repo):
    settings_file = repo / "reconciler.yaml"
    text = settings_file.read_text().replace(
        "      allow_replace: true\n", "      allow_replace: true\n      promote_from: prod\n", 1)
    text += "      promote_from: staging\n"
    settings_file.write_text(text)
    result = run_cli("validate", str(repo))
    assert result.code == 1
    assert "promote_from forms a cycle" in result.stderr and "reconciler.yaml:" in result.stderr


def test_every_error_class_of_the_project_is_a_reconciler_error():
    classes = []
    for info in pkgutil.walk_packages(reconciler.__path__, "reconciler."):
        if info.name.startswith("reconciler.emulator") or info.name.endswith("__main__"):
            continue  # the embedded service raises AWS's errors (moto's JsonRESTError)
        module = __import__(info.name, fromlist=["_"])
        classes += [c for _, c in inspect.getmembers(module, inspect.isclass)
                    if issubclass(c, BaseException) and c.__module__ == info.name]
    assert classes
    assert [c.__qualname__ for c in classes if not issubclass(c, ReconcilerError)] == []


# -- every AWS call goes through one wrapper ----------------------------------------------------

def _client(service, endpoint):
    return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"max_attempts": 1}, connect_timeout=1,
                                      read_timeout=1))


@pytest.mark.parametrize("service, operation, kwargs", [
    ("s3", "head_object", {"Bucket": "b", "Key": "k"}),
    ("sts", "assume_role", {"RoleArn": "arn:aws:iam::1:role/r", "RoleSessionName": "session"}),
    ("datapipeline", "list_pipelines", {}),
])
def test_an_unreachable_endpoint_is_a_temporary_aws_error(service, operation, kwargs):
    with pytest.raises(AwsError) as caught:
        call(_client(service, "http://127.0.0.1:9"), operation, **kwargs)
    assert caught.value.temporary and caught.value.code == "EndpointConnectionError"


def test_a_refused_s3_call_is_a_permanent_aws_error(emulator_server):
    client = _client("s3", emulator_server.endpoint)
    with pytest.raises(AwsError) as caught:
        call(client, "put_object", Bucket="no-such-bucket", Key="k", Body=b"x")
    assert (caught.value.code, caught.value.temporary) == ("NoSuchBucket", False)
    assert caught.value.operation == "PutObject"


def test_missing_credentials_are_an_aws_error(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.session.Session(region_name="us-east-1").client(
        "datapipeline", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(AwsError) as caught:
        call(client, "list_pipelines")
    assert caught.value.code == "NoCredentialsError"


# -- fuzzing ------------------------------------------------------------------------------------

METACHARACTERS = list(":-[]{}#&*!|>'\"%@`\t\n ,?") + ["#{", "}", "\x00", "\xe9", "99" * 40]
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
RANDOM_FUZZ = os.environ.get("FUZZ_RANDOM") == "1"  # a new seed each run, for longer hunts


@st.composite
def mutated(draw, texts):
    """A manifest of the project's own, changed in a few places as a hurried edit would."""
    text = draw(st.sampled_from(texts))
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        kind = draw(st.sampled_from(["char", "insert", "drop", "dup", "swap", "cut", "indent"]))
        at = draw(st.integers(0, max(len(text) - 1, 0)))
        row = draw(st.integers(0, len(lines) - 1))
        if kind == "char":
            text = text[:at] + draw(st.sampled_from(METACHARACTERS)) + text[at + 1:]
        elif kind == "insert":
            pieces = draw(st.lists(st.sampled_from(METACHARACTERS + list("abcxyz019_")),
                                   max_size=6))
            text = text[:at] + "".join(pieces) + text[at:]
        elif kind == "drop":
            text = "\n".join(lines[:row] + lines[row + 1:])
        elif kind == "dup":
            text = "\n".join(lines[:row] + [lines[row]] + lines[row:])
        elif kind == "swap" and row + 1 < len(lines):
            lines[row], lines[row + 1] = lines[row + 1], lines[row]
            text = "\n".join(lines)
        elif kind == "cut":
            text = text[:at]
        elif kind == "indent":
            lines[row] = "  " + lines[row]
            text = "\n".join(lines)
    return text


@pytest.fixture(scope="module")
def fuzz_base(tmp_path_factory):
    import shutil

    from .conftest import MANIFESTS, STEP_FIXTURES

    root = tmp_path_factory.mktemp("fuzz") / "manifests"
    shutil.copytree(MANIFESTS, root)
    for item in STEP_FIXTURES.iterdir():
        if item.is_dir():
            shutil.copytree(item, root / item.name, dirs_exist_ok=True)
    snapshot = read_snapshot(root)
    texts = [snapshot.files[p].decode() for p in sorted(snapshot.files)
             if p.startswith("pipelines/")]
    return snapshot, texts


def test_fuzzed_manifests_never_crash_and_every_problem_has_a_line(fuzz_base):
    snapshot, texts = fuzz_base

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=not RANDOM_FUZZ,
              suppress_health_check=list(HealthCheck))
    @given(mutated(texts))
    def check(text):
        files = {**snapshot.files, "pipelines/fuzzed.yaml": text.encode("utf-8", "replace")}
        result = compile_project(replace(snapshot, files=files), OPTIONS,
                                 manifests=["pipelines/fuzzed.yaml"])
        for problem in result.all_problems():
            assert problem.location.file and problem.location.line >= 1, problem
            assert problem.code != "internal", problem.format()

    check()


def test_the_command_line_exits_0_or_1_on_fuzzed_manifests(fuzz_base, tmp_path):
    import shutil

    snapshot, texts = fuzz_base
    root = tmp_path / "repo"
    shutil.copytree(snapshot.root, root)
    runner = CliRunner()

    @settings(max_examples=max(FUZZ_EXAMPLES // 5, 10), deadline=None, derandomize=not RANDOM_FUZZ,
              suppress_health_check=list(HealthCheck))
    @given(mutated(texts))
    def check(text):
        (root / "pipelines" / "fuzzed.yaml").write_bytes(text.encode("utf-8", "replace"))
        outcome = runner.invoke(main, ["validate", str(root), "--format", "json"],
                                catch_exceptions=False)
        assert outcome.exit_code in (0, 1), outcome.output

    check()


def test_the_compiler_leaves_etl_tags_exactly_the_tags_the_reconciler_does_not_use():
    from reconciler.desired.compiler import RESERVED_TAGS
    from reconciler.live.model import MANAGED_TAGS

    assert len(MANAGED_TAGS) == RESERVED_TAGS


# -- wrong shapes -------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6)
PIPELINE_KEYS = ["name", "frequency", "load_time", "description", "topic_arn", "max_retries",
                 "ec2_resource_config", "emr_cluster_config", "bootstrap", "teardown", "steps",
                 "variables", "environments", "overrides"]
STEP_KEYS = ["step_type", "name", "input_node", "depends_on", "max_retries", "sql", "table",
             "script", "source", "destination", "output_node", "script_arguments", "history",
             "table_definition", "command", "host_name", "database", "path"]


@pytest.mark.parametrize("shape", [
    "environments: [{}]", "environments: {staging: 1}", "overrides: [1]", "steps: {}",
    "steps: [[]]", "steps: [{step_type: [x]}]", "variables: [a]", "bootstrap: [1]",
    "teardown: 3", "steps: [{step_type: transform, command: x, input_node: {a: [1]}}]",
    "steps: [{step_type: transform, command: x, depends_on: [[a]]}]",
])
def test_wrong_shapes_are_errors_not_tracebacks(repo, shape):
    write(repo, "pipelines/shape.yaml", "name: shape\n" + (
        "" if shape.startswith("steps") else "steps: []\n") + shape + "\n")
    result = compile_repo(repo)
    found = [p for p in result.all_problems() if p.location.file == "pipelines/shape.yaml"]
    assert found and all(p.code != "internal" for p in found), [p.format() for p in found]
    assert len([r for r in result.pipelines if r.ok]) == 4


def test_fuzzed_shapes_never_crash(fuzz_base):
    import json

    snapshot, _ = fuzz_base

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=not RANDOM_FUZZ,
              suppress_health_check=list(HealthCheck))
    @given(st.dictionaries(st.sampled_from(PIPELINE_KEYS), JSON_VALUES, max_size=4),
           st.dictionaries(st.sampled_from(STEP_KEYS), JSON_VALUES, max_size=5))
    def check(top, step):
        document = {"name": "shape", "steps": [{"step_type": "transform", "command": "x",
                                                **step}], **top}
        files = {**snapshot.files, "pipelines/shape.yaml": json.dumps(document).encode()}
        result = compile_project(replace(snapshot, files=files), OPTIONS,
                                 manifests=["pipelines/shape.yaml"])
        assert all(p.code != "internal" for p in result.all_problems()), [
            p.format() for p in result.all_problems()]

    check()


def test_only_an_embedded_environment_creates_a_missing_bucket(emulator_server, monkeypatch):
    """What "embedded" means is decided once, by the engine's connect: the live layer writes
    to any endpoint the same way, and only the embedded service's missing buckets are made."""
    from reconciler.desired.config import EMBEDDED, Environment
    from reconciler.engine import connect_environment

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    environ = {"AWS_ENDPOINT_URL": emulator_server.endpoint}
    endpoint = Environment("staging", "config/staging.yaml", region="us-east-1",
                           endpoint_url=emulator_server.endpoint)
    aws = connect_environment(endpoint, "default", environ)
    with pytest.raises(AwsError) as caught:
        aws.write("s3://not-made-for-aws/k", b"x")
    assert caught.value.code == "NoSuchBucket"
    embedded = Environment("staging", "config/staging.yaml", region="us-east-1",
                           endpoint_url=EMBEDDED)
    connect_environment(embedded, "default", environ).write("s3://made-when-embedded/k", b"x")
    got = _client("s3", emulator_server.endpoint).get_object(Bucket="made-when-embedded",
                                                              Key="k")
    assert got["Body"].read() == b"x"
