"""The YAML loader: safe_load semantics, locations, and hostile input rejected fast."""

import time

import pytest
import yaml

from reconciler.desired.yamldoc import load_yaml
from reconciler.errors import InvalidInputError


def problem_of(content, **limits):
    with pytest.raises(InvalidInputError) as caught:
        load_yaml(content, "p.yaml", **limits)
    (problem,) = caught.value.problems
    return problem


def test_loads_what_safe_load_loads_with_timestamps_kept_as_text():
    text = "a: 1\nb: [x, 'y', 2.5, true, null]\nc: {d: 12:00}\ne: 2015-01-01\nf: 01:00\n"
    expected = yaml.safe_load(text)
    expected["e"] = "2015-01-01"
    assert load_yaml(text, "p.yaml").data == expected


def test_every_key_and_item_has_its_line_and_column():
    doc = load_yaml("name: users\nsteps:\n- step_type: x\n  name: first\n", "p.yaml")
    assert str(doc.locate(("steps", 0, "name"))) == "p.yaml:4:3"
    assert str(doc.locate(("steps", 0))) == "p.yaml:3:3"
    assert str(doc.locate(("steps", 0, "missing", "deeper"))) == "p.yaml:3:3"


def test_raw_text_of_a_sexagesimal_scalar_is_kept():
    doc = load_yaml("load_time: 12:00\n", "p.yaml")
    assert doc.data["load_time"] == 720  # what YAML 1.1 says
    assert doc.raw(("load_time",)) == "12:00"  # what the author wrote


def test_merge_keys_merge_and_explicit_keys_win():
    doc = load_yaml("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n", "p.yaml")
    assert doc.data["use"] == {"x": 1, "y": 3}


def test_duplicate_keys_are_refused_with_their_line():
    problem = problem_of("a: 1\nb: 2\na: 3\n")
    assert str(problem.location) == "p.yaml:3:1"
    assert "duplicate key 'a'" in problem.message


def test_syntax_error_names_the_line():
    problem = problem_of("name: users\nsteps: [\n")
    assert problem.location.line == 3
    assert problem.message.startswith("YAML syntax error")


def test_an_alias_bomb_is_rejected_quickly():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    problem = problem_of("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 2
    assert "too many aliases" in problem.message


@pytest.mark.parametrize("depth", [100, 5000, 100_000])
def test_deep_nesting_is_rejected_without_recursion_error(depth):
    started = time.perf_counter()
    problem = problem_of("x: " + "[" * depth + "]" * depth + "\n")
    assert time.perf_counter() - started < 2
    assert "nesting deeper than 64 levels" in problem.message or \
        "exceeded maximum nesting depth" in problem.message  # libyaml's own limit is 1,000


def test_a_huge_file_is_rejected_before_parsing():
    content = b"a: " + b"x" * (50 * 1024 * 1024) + b"\n"
    started = time.perf_counter()
    problem = problem_of(content)
    assert time.perf_counter() - started < 1
    assert "over the 1,048,576-byte limit" in problem.message


def test_python_tags_are_refused_not_constructed():
    problem = problem_of("a: !!python/object/apply:os.system ['echo pwned']\n")
    assert "unsupported YAML tag" in problem.message


def test_more_than_one_document_is_refused():
    assert "more than one YAML document" in problem_of("a: 1\n---\nb: 2\n").message


def test_non_utf8_is_refused_with_a_hint():
    problem = problem_of(b"a: \xff\xfe\n")
    assert "not UTF-8" in problem.message and problem.hint
