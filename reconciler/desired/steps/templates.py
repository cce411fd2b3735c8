"""Step templates: custom step types declared in YAML in the manifests repository.

A template says which parameters its steps take and which Data Pipeline activity (and extra
objects) they become. Values may use placeholders, replaced as plain text; nothing in a
template is ever executed or imported:

``{{ params.NAME }}``   a parameter's value (lists joined with commas)
``{{ files.NAME }}``    the S3 URI of the repository file a ``file`` parameter names
``{{ output.path }}``   the step's output directory; ``{{ output.NAME }}`` a named output
``{{ inputs }}``        the input directories, joined with commas
``{{ step.name }}``     the step's name; ``{{ pipeline.name }}`` the pipeline's
``{{ s3.base }}``       ``s3://S3_ETL_BUCKET/S3_BASE_PATH``
``{{ config.SECTION.KEY }}``  a value of the shared config

A field's value may also be an object reference, ``{ref: ID}``, or a database the way
built-in steps use them, ``{database: redshift}``, ``{database: postgres}`` or
``{database: mysql, host: ALIAS, name: DATABASE}`` (its password becomes an encrypted
parameter like every other).

The activity gets the same wiring as built-in steps: inputs, outputs, dependencies, the
resource it runs on, retries and the failure alarm. See ``manifests/steps/`` for examples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from ...errors import Problem
from ..definition import Ref
from ..schemas import load_schema, validate_document, validator
from ..yamldoc import YamlDocument
from .base import OutputNode, StepResult
from .context import StepContext

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")
_JSON_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"}, "integer": {"type": "integer"},
    "number": {"type": "number"}, "boolean": {"type": "boolean"},
    "file": {"type": "string", "minLength": 1},
    "list": {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
}


@dataclass
class TemplateStep:
    """A step type defined by a YAML template."""

    step_type: str
    document: YamlDocument
    spec: dict[str, Any]

    @property
    def produces_output(self) -> bool:
        return bool(self.spec.get("produces_output", True))

    @property
    def resource(self) -> str:
        return self.spec.get("resource", "ec2")

    def validator(self) -> Draft202012Validator:
        common = load_schema("pipeline")["$defs"]["steps"]["transform"]["properties"]
        props: dict[str, Any] = {k: common[k] for k in ("step_type", "name", "input_node",
                                                        "depends_on", "max_retries",
                                                        "worker_group")}
        if self.produces_output:
            props["output_node"] = common["output_node"]
            props["output_path"] = common["output_path"]
        required = ["step_type"]
        for name, param in (self.spec.get("parameters") or {}).items():
            schema: dict[str, Any] = dict(_JSON_TYPES[param["type"]])
            if param.get("description"):
                schema["description"] = param["description"]
            props[name] = schema
            if param.get("required"):
                required.append(name)
        return Draft202012Validator({"type": "object", "properties": props,
                                     "required": required, "additionalProperties": False})

    def compile(self, ctx: StepContext) -> StepResult:
        params = dict(ctx.step.params)
        for name, param in (self.spec.get("parameters") or {}).items():
            if name not in params and "default" in param:
                params[name] = param["default"]
        inputs = ctx.inputs()
        result = StepResult()
        outputs: list[OutputNode] = []
        if self.produces_output and not params.get("no_output"):
            result.output = ctx.output_node()
            outputs.append(result.output)
            for name in params.get("output_node") or []:
                result.named_outputs[name] = ctx.output_node(
                    name, path=f"{result.output.path}/{name}")
        values = _Values(ctx, self, params, inputs, result)
        for index, obj in enumerate(self.spec.get("objects") or []):
            fields = {k: values.render(v, ("objects", index, k)) for k, v in obj.items()
                      if k not in ("id", "type")}
            oid = values.render(obj["id"], ("objects", index, "id"))
            ctx.add_object(oid, obj["type"], **fields)
        activity = self.spec["activity"]
        fields = {k: values.render(v, ("activity", "fields", k))
                  for k, v in (activity.get("fields") or {}).items()}
        resource = None if self.resource == "none" else self.resource
        ctx.activity(activity["type"], inputs=inputs, outputs=outputs, resource=resource,
                     **fields)
        return result


class _Values:
    def __init__(self, ctx: StepContext, template: TemplateStep, params: dict[str, Any],
                 inputs: list[OutputNode], result: StepResult):
        self.ctx, self.template, self.params = ctx, template, params
        self.inputs, self.result = inputs, result

    def render(self, value: Any, path: tuple) -> Any:
        if isinstance(value, list):
            return [self.render(v, path) for v in value]
        if isinstance(value, dict) and set(value) == {"ref"}:
            return Ref(self.render(value["ref"], path))
        if isinstance(value, dict) and "database" in value:
            return self.ctx.database(self.render(value["database"], path),
                                     self.render(value.get("host"), path),
                                     self.render(value.get("name"), path))
        if not isinstance(value, str):
            return value
        return _PLACEHOLDER.sub(lambda m: self.lookup(m.group(1), path), value)

    def lookup(self, name: str, path: tuple) -> str:
        ctx, kinds = self.ctx, (self.template.spec.get("parameters") or {})
        head, _, rest = name.partition(".")
        if head == "params" and rest in kinds:
            value = self.params.get(rest)
            if value is None:
                return ""
            return ",".join(map(str, value)) if isinstance(value, list) else str(value)
        if head == "files" and kinds.get(rest, {}).get("type") == "file":
            return ctx.file_uri(rest, self.params.get(rest))
        if head == "output" and self.result.output is not None:
            if rest == "path":
                return self.result.output.path
            if rest in self.result.named_outputs:
                return self.result.named_outputs[rest].path
        if name == "inputs":
            return ",".join(n.path for n in self.inputs)
        if name == "step.name":
            return ctx.step.name
        if name == "pipeline.name":
            return ctx.pipeline_name
        if name == "s3.base":
            return ctx.s3_base()
        if head == "config" and rest.count(".") == 1:
            section, key = rest.split(".")
            value = ctx.config.get(section, key)
            if value is not None:
                return str(value)
            ctx.fail(f"template {self.template.step_type} uses {{{{ {name} }}}}, and the config "
                     f"has no {section}.{key}")
        location = self.template.document.locate(path)
        ctx.fail(f"template {self.template.step_type} uses unknown placeholder "
                 f"{{{{ {name} }}}}", hint="see docs/language.md for the placeholders",
                 location=location)


def load_template(doc: YamlDocument, reserved: set[str], problems: list[Problem]
                  ) -> TemplateStep | None:
    found = validate_document(validator("step-template"), doc)
    if found:
        problems.extend(found)
        return None
    spec = doc.data
    if spec["step_type"] in reserved:
        problems.append(Problem(doc.locate(("step_type",)), f"step type '{spec['step_type']}' "
                                "is already defined (built-in, plugin or another template)",
                                ("step_type",), hint="choose another name", code="schema"))
        return None
    return TemplateStep(spec["step_type"], doc, spec)
