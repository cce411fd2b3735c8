"""Hostile manifests (tests/hostile/<case>/): each route by which a manifest could reach
generated SQL, a shell command or a file outside the repository is either refused with
file:line or rendered inert: its SQL parses back as exactly the statements meant, its command
splits (shlex) into exactly the arguments meant. Special files (FIFOs, sockets, links, big
files) are made by the test, as git cannot hold them.

Each case's expect.yaml says which: ``outcome: refused`` with ``file``, ``line`` and
``message``, or ``outcome: inert`` with the ``object`` and ``field``, and ``sql`` (statement
kinds, in order) or ``argv``."""

import os
import shlex
import shutil
import socket
import time
from pathlib import Path

import pytest
import yaml

from reconciler.desired import sql as sqlgen
from reconciler.desired.steps.builtin.common import sqlglot_dialect

from .conftest import MANIFESTS, compile_repo, run_cli

HOSTILE = Path(__file__).parent / "hostile"
CASES = sorted(p.name for p in HOSTILE.iterdir() if (p / "expect.yaml").is_file())


def build(case: str, tmp_path: Path) -> tuple[Path, dict]:
    repo = tmp_path / "repo"
    shutil.copytree(MANIFESTS, repo)
    source = HOSTILE / case
    expect = yaml.safe_load((source / "expect.yaml").read_text())
    for item in source.rglob("*"):
        if item.is_file() and item.name != "expect.yaml":
            target = repo / item.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(item, target)
    for edit in expect.get("edit", []):
        path = repo / edit["file"]
        text = path.read_text()
        assert edit["old"] in text, edit
        path.write_text(text.replace(edit["old"], edit["new"], 1))
    make_special(repo, expect.get("special") or {})
    return repo, expect


def make_special(repo: Path, special: dict) -> None:
    for key, value in special.items():
        if key == "directory":
            (repo / value).mkdir(parents=True, exist_ok=True)
        elif key == "fifo":
            (repo / value).parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(repo / value)
        elif key == "socket":
            (repo / value).parent.mkdir(parents=True, exist_ok=True)
            server = socket.socket(socket.AF_UNIX)
            server.bind(str(repo / value))  # left bound: the file stays a socket
            make_special.sockets.append(server)
        elif key == "link":
            for name, target in value.items():
                (repo / name).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(target if target.startswith("/") else repo / target, repo / name)
        elif key in ("table_bytes", "file_bytes"):
            for name, size in value.items():
                text = "CREATE TABLE big.t (id INTEGER PRIMARY KEY"
                while len(text) < size:
                    text += f", c{len(text)} VARCHAR(255)"
                (repo / name).parent.mkdir(parents=True, exist_ok=True)
                (repo / name).write_text(text + ");\n")


make_special.sockets = []


def test_there_is_a_case_for_every_route():
    routes = [yaml.safe_load((HOSTILE / c / "expect.yaml").read_text())["route"] for c in CASES]
    kinds = {r.split(":")[0] for r in routes}
    assert kinds == {"SQL", "Shell", "Files", "Shapes"}
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES)
def test_hostile_input_is_refused_or_inert(case, tmp_path):
    repo, expect = build(case, tmp_path)
    started = time.monotonic()
    result = compile_repo(repo, ["staging"])
    assert time.monotonic() - started < 60, "validation must never hang"
    errors = [p for p in result.errors]
    if expect["outcome"] == "refused":
        where = [p for p in errors if (p.location.file, p.location.line) ==
                 (expect["file"], expect["line"])]
        assert any(expect["message"] in p.message for p in where), [p.format() for p in errors]
        assert not [r for r in result.pipelines if r.manifest == "pipelines/p.yaml" and r.ok]
        return
    assert errors == [], [p.format() for p in errors]
    (pipeline,) = [r.compiled for r in result.pipelines if r.manifest == "pipelines/p.yaml"]
    obj = next(o for o in pipeline.objects if o.id == expect["object"])
    value = obj.get(expect["field"])
    if "sql" in expect:
        dialect = sqlglot_dialect(expect["dialect"]) if "dialect" in expect else sqlgen.DIALECT
        kinds = [k.__name__ for k in sqlgen.statement_types(value, dialect)]
        assert kinds == expect["sql"], value
    if "argv" in expect:
        argv = shlex.split(value)
        wanted = [_placeholder(w, argv, i) for i, w in enumerate(expect["argv"])]
        assert argv == wanted, value
    for text in expect.get("contains", []):
        assert text in value, value


def _placeholder(word: str, argv: list[str], index: int) -> str:
    """``<uri>`` and ``<prefix>/`` stand for content-addressed S3 keys."""
    if word in ("<uri>", "<prefix>/") and index < len(argv) and argv[index].startswith("s3://"):
        return argv[index]
    return word


def test_the_cli_refuses_a_fifo_without_blocking(tmp_path):
    repo, _ = build("fifo", tmp_path)
    result = run_cli("validate", str(repo))  # run_cli times out after 120 s
    assert result.code == 1 and "is a FIFO, not a regular file" in result.stderr


def test_the_largest_parsed_sql_file_allowed_validates_in_seconds(tmp_path):
    """An upsert of a table whose definition is as large as limits allow: generated SQL,
    parsed back, then refused by the service's 10,240-byte field limit (as AWS would)."""
    repo, _ = build("sql_too_big", tmp_path)
    text = "CREATE TABLE big.t (id INTEGER PRIMARY KEY"
    while len(text) < 64 * 1024 - 40:
        text += f", c{len(text)} VARCHAR(255)"
    (repo / "tables/big.sql").write_text(text + ");\n")
    assert len((repo / "tables/big.sql").read_bytes()) <= 64 * 1024
    (repo / "pipelines/p.yaml").write_text(
        "name: p\nsteps:\n- step_type: upsert\n  source: tables/big.sql\n"
        "  destination: tables/big.sql\n")
    sqlgen.clear_caches()
    started = time.monotonic()
    result = compile_repo(repo, ["staging"])
    took = time.monotonic() - started
    assert any("over the 10,240-byte limit per field" in p.message for p in result.errors)
    print(f"largest allowed SQL file (64 KiB, upsert): validated in {took:.2f}s")
    assert took < 30, f"{took:.1f}s"
