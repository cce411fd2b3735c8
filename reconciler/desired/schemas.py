"""JSON Schema validation of loaded YAML documents, with locations and hints.

The schemas in ``schemas/`` (Draft 2020-12) are the ones editors use. For speed and for clear
errors, a pipeline is validated in two passes: the pipeline keys with every step reduced to
"an object with a step_type", then each step against the schema of its own step type, so an
error in a step is reported once, at the step, instead of through twenty-two ``if`` branches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from ..errors import Problem, did_you_mean
from .yamldoc import YamlDocument


@cache
def load_schema(name: str) -> dict[str, Any]:
    """One of the published schemas: pipeline, config, reconciler, step-template."""
    text = resources.files("reconciler").joinpath(f"schemas/{name}.schema.json").read_text("utf-8")
    return json.loads(text)


@cache
def validator(name: str) -> Draft202012Validator:
    schema = load_schema(name)
    if name == "pipeline":  # steps are checked one by one, see step_validator()
        schema = json.loads(json.dumps(schema))
        schema["$defs"]["step"] = {"type": "object", "required": ["step_type"],
                                   "properties": {"step_type": {"type": "string"}}}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@cache
def step_validator(step_type: str) -> Draft202012Validator:
    schema = load_schema("pipeline")["$defs"]["steps"][step_type]
    return Draft202012Validator(schema)


def validate_document(
    check: Draft202012Validator,
    doc: YamlDocument,
    instance: Any = None,
    base_path: tuple = (),
) -> list[Problem]:
    """All schema errors of ``instance`` (default: the whole document) as located problems."""
    data = doc.data if instance is None else instance
    problems: list[Problem] = []
    for error in sorted(check.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        problems.extend(_to_problems(error, doc, base_path))
    return problems


def _to_problems(error: ValidationError, doc: YamlDocument, base: tuple) -> Iterable[Problem]:
    path = (*base, *error.absolute_path)
    validator_name = error.validator
    if validator_name == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        extras = [k for k in error.instance if k not in error.schema.get("properties", {})]
        for key in extras:
            hint = did_you_mean(key, allowed) or f"allowed keys: {', '.join(sorted(allowed))}"
            yield Problem(doc.locate((*path, key)), f"unknown key '{key}'", (*path, key),
                          hint=hint, code="schema")
        return
    if validator_name == "oneOf" and isinstance(error.instance, dict):
        options = [s.get("required", [None])[0] for s in error.validator_value
                   if isinstance(s, dict) and "required" in s]
        if all(options):
            given = [o for o in options if o in error.instance]
            if given:
                message = f"give only one of {', '.join(options)} (found {', '.join(given)})"
            else:
                message = f"one of {', '.join(options)} is required"
            yield Problem(doc.locate(path), message, path, code="schema")
            return
    if validator_name == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        yield Problem(doc.locate(path), f"missing required key '{missing}'", path, code="schema")
        return
    if validator_name == "enum":
        suggestion = did_you_mean(str(error.instance), map(str, error.validator_value))
        allowed_text = ", ".join(map(str, error.validator_value))
        yield Problem(doc.locate(path), f"{error.instance!r} is not one of: {allowed_text}",
                      path, hint=suggestion, code="schema")
        return
    if validator_name == "type":
        wanted = error.validator_value
        expected = " or ".join(wanted) if isinstance(wanted, list) else str(wanted)
        yield Problem(doc.locate(path), f"expected {expected}, got {_kind(error.instance)} "
                      f"{_short(error.instance)}", path, code="schema")
        return
    yield Problem(doc.locate(path), error.message if len(error.message) < 200
                  else error.message[:200] + "...", path, code="schema")


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "nothing"}.get(type(value), "a value")


def _short(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return ""
    text = repr(value)
    return f"({text[:40]}...)" if len(text) > 40 else f"({text})"
