"""The compatibility corpus: every Dataduct example pipeline compiles unchanged (needs
../shared/reference), and the example repository's pipelines match their reviewed golden
files."""

import json
import os
from pathlib import Path

import pytest

from reconciler.desired import sql as sqlgen
from reconciler.desired.definition import to_json

from .conftest import DATADUCT_EXAMPLES, GOLDEN_RUNNER, compile_repo, require_reference, run_cli

GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = sorted(p.name for p in DATADUCT_EXAMPLES.glob("*.yaml"))


def test_the_corpus_has_every_dataduct_example(corpus_repo):
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


def test_every_generated_sql_script_of_the_corpus_parses_back(corpus_repo):
    result = compile_repo(corpus_repo)
    checked = 0
    for pipeline in result.compiled():
        for obj in pipeline.objects:
            for key in ("script", "createTableSql"):
                text = obj.get(key)
                if text and obj.type in ("SqlActivity", "RedshiftDataNode"):
                    sqlgen.parse_sql(text, commands=sqlgen.REDSHIFT_COMMANDS)
                    checked += 1
    assert checked >= 25


@pytest.mark.parametrize("path", sorted((DATADUCT_EXAMPLES / "resources" / "tables").glob("*.sql"))
                         or [DATADUCT_EXAMPLES], ids=lambda p: p.name)
def test_every_example_table_parses(path):
    require_reference(path)
    table = sqlgen.parse_table_definition(path.read_text())
    assert table.primary_key and table.column_names


def compiled(repo, manifest, env="staging", runner=None):
    result = compile_repo(repo, [env], runner)
    (found,) = [r.compiled for r in result.pipelines if r.manifest == f"pipelines/{manifest}"]
    assert found is not None
    return found


@pytest.mark.parametrize("env", ["staging", "prod"])
@pytest.mark.parametrize("name", ["users", "discussion_votes"])
def test_golden_definitions(repo, env, name):
    """Reviewed by eye; regenerate with UPDATE_GOLDEN=1 and review the diff."""
    rendered = to_json(compiled(repo, f"{name}.yaml", env, GOLDEN_RUNNER).render("api"))
    golden = GOLDEN / env / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered)
    assert json.loads(rendered) == json.loads(golden.read_text())
    assert rendered == golden.read_text()
