"""Every JSON pipeline definition printed in the Developer Guide is accepted by the object
model, or this file names why AWS would refuse it (placeholders and skeletons the guide means
to be filled in). Needs ../shared/reference (skips without it, fails without it under CI)."""

import json
import re
from pathlib import Path

import pytest

from reconciler.service.model import check_definition

from .conftest import GUIDE, require_reference

_BLOCK = re.compile(r"```(?:json)?\n(.*?)```", re.DOTALL)

# Pages whose definition AWS would refuse as printed, and why.
REFUSED = {
    "dp-copydata-redshift-define-pipeline-cli.md":
        "placeholders: startDateTime 'yyyy-mm-ddT00:00:00' and period 'period' are to be "
        "filled in",
    "dp-object-redshiftcopyactivity.md":
        "placeholders: startDateTime 'yyyy-mm-ddT00:00:00' and period 'period' are to be "
        "filled in",
    "dp-object-hadoopactivity.md":
        "the example defines the object id ShellScriptConfig twice and uses the placeholders "
        "'start_datetime'/'end_datetime'",
    "dp-writing-pipeline-definition.md": "a skeleton: objects without ids, names or types",
}
# Excerpts that are not JSON documents at all.
NOT_JSON = {"dp-error-logs.md": "an excerpt: the objects list ends with '...'"}


def lenient_json(text: str):
    for candidate in (text, re.sub(r",(\s*[}\]])", r"\1", text)):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def api_form(doc: dict) -> tuple[list, list, list]:
    objects = []
    for item in doc.get("objects", []):
        fields = []
        for key, value in item.items():
            if key in ("id", "name"):
                continue
            for one in value if isinstance(value, list) else [value]:
                if isinstance(one, dict) and "ref" in one:
                    fields.append({"key": key, "refValue": one["ref"]})
                else:
                    fields.append({"key": key, "stringValue": str(one)})
        objects.append({"id": item.get("id"), "name": item.get("name", item.get("id")),
                        "fields": fields})
    parameters = [{"id": p["id"], "attributes": [
        {"key": k, "stringValue": str(v)} for k, vs in p.items() if k != "id"
        for v in (vs if isinstance(vs, list) else [vs])]} for p in doc.get("parameters", [])]
    values = [{"id": k, "stringValue": str(v)} for k, vs in (doc.get("values") or {}).items()
              for v in (vs if isinstance(vs, list) else [vs])]
    return objects, parameters, values


def definitions() -> list[tuple[str, int, str]]:
    if not GUIDE.is_dir():
        return []
    found = []
    for page in sorted(GUIDE.glob("*.md")):
        blocks = [b for b in _BLOCK.findall(page.read_text(encoding="utf-8"))
                  if '"objects"' in b]
        found += [(page.name, i, block) for i, block in enumerate(blocks)]
    return found


def page_extras(page: str) -> dict:
    """Parameters and values a page prints in blocks of their own, next to its objects
    (dp-custom-templates.md shows them as separate files)."""
    extras: dict = {"parameters": [], "values": {}}
    for block in _BLOCK.findall((GUIDE / page).read_text(encoding="utf-8")):
        data = lenient_json(block)
        if isinstance(data, dict) and "objects" not in data:
            extras["parameters"] += data.get("parameters", [])
            extras["values"].update(data.get("values") or {})
    return extras


def test_the_guide_prints_pipeline_definitions():
    require_reference(GUIDE)
    assert len(definitions()) >= 20


@pytest.mark.parametrize("page, index, block", definitions() or [("(no guide)", 0, "")],
                         ids=lambda v: v if isinstance(v, str) and v.endswith(".md") else "")
def test_every_definition_of_the_guide_is_accepted_or_its_refusal_named(page, index, block):
    require_reference(GUIDE)
    doc = lenient_json(block)
    if doc is None:
        assert page in NOT_JSON, f"{page} block {index} is not JSON"
        return
    extras = page_extras(page)
    doc = {**doc, "parameters": doc.get("parameters", []) + extras["parameters"],
           "values": {**extras["values"], **(doc.get("values") or {})}}
    errors = [f.format() for f in check_definition(*api_form(doc)) if f.severity == "error"]
    if page in REFUSED:
        assert errors, f"{page} is listed as refused ({REFUSED[page]}) but is accepted now"
    else:
        assert errors == [], f"{page} block {index}"


def test_the_lists_of_refusals_name_only_pages_of_the_guide():
    require_reference(GUIDE)
    for page in [*REFUSED, *NOT_JSON]:
        assert Path(GUIDE, page).is_file(), page
