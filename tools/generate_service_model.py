"""Generate reconciler/service/service_model.json from the AWS Data Pipeline Developer Guide.

The object model that the compiler's checks and the embedded service enforce is read from the
guide's object reference (``doc_source/dp-object-*.md``), not typed by hand: each page's field
tables say which fields an object type has, which are required, which form one-of groups and
which hold references, and which required groups are exclusive ("specify only one", "not
both"). The guide's own examples are the second source: a field that an example on an object
page writes on an object of some type, and that type's tables omit, is added as
``"documented": false`` (the service accepted it; the check reports it as a warning, never as
an error). Run it when the guide changes:

    python tools/generate_service_model.py ../shared/reference/aws-data-pipeline-guide/doc_source

``tests/test_service_model.py`` checks that the committed file matches the guide.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "reconciler" / "service" / "service_model.json"

_TABLE_HEADER = re.compile(r"^\| (?P<kind>[^|]+?) \| Description \| Slot Type \|\s*$")
_ROW = re.compile(r"^\| (?P<field>[^|]+?) \|(?P<desc>.*)\| (?P<slot>[^|]*?) \|\s*$")
_TYPE_IN_EXAMPLE = re.compile(r'"type"\s*:\s*"(?P<type>[A-Za-z0-9]+)"')
_EXCLUSIVE = re.compile(r"specify only one|but not both|can't specify both|cannot specify both",
                        re.IGNORECASE)
_CODE_BLOCK = re.compile(r"```(?:json)?\n(.*?)```", re.DOTALL)


# Where a page's field table contradicts the guide's own examples, the examples win. Each
# correction names the example that shows the real slot type.
CORRECTIONS = {
    # dp-object-emrcluster.md lists terminateAfter as Integer, while the EmrCluster examples in
    # dp-launch-emr-jobflow-cli.md and emrcluster-example-*.md write periods ("1 Hour").
    ("EmrCluster", "terminateAfter"): "Period",
}


def _clean(text: str) -> str:
    return text.replace("\\", "").strip()


def parse_page(text: str) -> dict | None:
    title = _clean(text.splitlines()[0].lstrip("# ").split("<a")[0])
    kinds: dict[str, list[tuple[str, str]]] = {}
    current = None
    groups: list[list[str]] = []
    exclusive: list[bool] = []
    for line in text.splitlines():
        header = _TABLE_HEADER.match(line)
        if header:
            current = _clean(header["kind"])
            if current.startswith("Required Group"):
                groups.append([])
                exclusive.append(False)
            continue
        if current is None:
            continue
        if line.startswith("| ---"):
            continue
        row = _ROW.match(line)
        if not row:
            if not line.startswith("|"):
                current = current if line.strip() in ("", "****") else None
            continue
        name = _clean(row["field"]).split(" ")[0]
        slot = _clean(row["slot"])
        kinds.setdefault(current, []).append((name, slot))
        if current.startswith("Required Group"):
            groups[-1].append(name)
            if _EXCLUSIVE.search(row["desc"].replace("\\", "")):
                exclusive[-1] = True
    if not kinds:
        return None
    type_name = title if re.fullmatch(r"[A-Za-z0-9]+", title) else None
    if type_name is None:
        match = _TYPE_IN_EXAMPLE.search(text)
        type_name = match["type"] if match else None
    if type_name is None:
        return None
    fields: dict[str, dict] = {}
    required: list[str] = []
    for kind, rows in kinds.items():
        for name, slot in rows:
            runtime = kind in ("Runtime Fields", "System Fields") or name.startswith("@")
            entry = fields.setdefault(name, {})
            entry["ref"] = slot.startswith("Reference Object")
            entry["slot"] = re.split(r"[,:.]", slot)[0].strip()
            if runtime:
                entry["runtime"] = True
            if kind == "Required Fields":
                required.append(name)
    for (corrected_type, name), slot in CORRECTIONS.items():
        if corrected_type == type_name and name in fields:
            fields[name]["slot"] = slot
    return {
        "type": type_name,
        "required": sorted(set(required)),
        "one_of": [sorted(g) for g in groups if g],
        "exclusive": [sorted(g) for g, only in zip(groups, exclusive, strict=True) if g and only],
        "fields": dict(sorted(fields.items())),
    }


def _lenient_json(text: str):
    """The guide's examples, some with trailing commas; None when it is not JSON at all."""
    for candidate in (text, re.sub(r",(\s*[}\]])", r"\1", text)):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def example_objects(text: str):
    """Every object with a type in the JSON examples of a page."""
    for block in _CODE_BLOCK.findall(text):
        data = _lenient_json(block)
        items = data.get("objects", [data]) if isinstance(data, dict) else []
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("type"), str):
                yield item


def add_example_fields(model: dict, pages: list[Path]) -> None:
    """Fields (and object types) the examples write and the tables omit, as undocumented."""
    for page in pages:
        for obj in example_objects(page.read_text(encoding="utf-8")):
            if obj["type"] == "Default":
                continue
            spec = model.setdefault(obj["type"], {"documented": False, "exclusive": [],
                                                  "fields": {}, "one_of": [], "required": [],
                                                  "source": page.name})
            for key, value in obj.items():
                if key in ("id", "name", "type") or key in spec["fields"] or \
                        key.startswith(("my", "*my", "@")):
                    continue
                values = value if isinstance(value, list) else [value]
                is_ref = all(isinstance(v, dict) and "ref" in v for v in values)
                spec["fields"][key] = {"ref": is_ref, "slot": "Reference Object" if is_ref
                                       else "String", "documented": False,
                                       "example": page.name}
            spec["fields"] = dict(sorted(spec["fields"].items()))


def main(doc_source: str) -> int:
    model = {}
    pages = sorted(Path(doc_source).glob("dp-object-*.md"))
    for page in pages:
        parsed = parse_page(page.read_text(encoding="utf-8"))
        if parsed:
            parsed["source"] = page.name
            model[parsed.pop("type")] = parsed
    add_example_fields(model, sorted(Path(doc_source).glob("*.md")))
    OUTPUT.write_text(json.dumps(model, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {len(model)} object types to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else
                  "../shared/reference/aws-data-pipeline-guide/doc_source"))
