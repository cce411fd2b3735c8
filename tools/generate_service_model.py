"""Generate reconciler/desired/service_model.json from the AWS Data Pipeline Developer Guide.

The object model that the compiler's checks and the embedded service enforce is read from the
guide's object reference (``doc_source/dp-object-*.md``), not typed by hand: each page's field
tables say which fields an object type has, which are required, which form one-of groups and
which hold references. Run it when the guide changes:

    python tools/generate_service_model.py ../shared/reference/aws-data-pipeline-guide/doc_source

``tests/test_service_model.py`` checks that the committed file matches the guide.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "reconciler" / "desired" / "service_model.json"

_TABLE_HEADER = re.compile(r"^\| (?P<kind>[^|]+?) \| Description \| Slot Type \|\s*$")
_ROW = re.compile(r"^\| (?P<field>[^|]+?) \|(?P<desc>.*)\| (?P<slot>[^|]*?) \|\s*$")
_TYPE_IN_EXAMPLE = re.compile(r'"type"\s*:\s*"(?P<type>[A-Za-z0-9]+)"')


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
    for line in text.splitlines():
        header = _TABLE_HEADER.match(line)
        if header:
            current = _clean(header["kind"])
            if current.startswith("Required Group"):
                groups.append([])
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
        "fields": dict(sorted(fields.items())),
    }


def main(doc_source: str) -> int:
    model = {}
    for page in sorted(Path(doc_source).glob("dp-object-*.md")):
        parsed = parse_page(page.read_text(encoding="utf-8"))
        if parsed:
            parsed["source"] = page.name
            model[parsed.pop("type")] = parsed
    OUTPUT.write_text(json.dumps(model, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {len(model)} object types to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else
                  "../shared/reference/aws-data-pipeline-guide/doc_source"))
