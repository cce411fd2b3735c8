"""Field-level comparison of a desired definition with a live one.

Both sides are normalised first: the service's runtime ``@`` fields are dropped, objects are
keyed by id, repeated references are sorted while repeated strings keep their order, encrypted
values (which the service masks)
compare by presence only, and the desired schedules are anchored on the live start when both
start the same schedule (the compiler anchors new pipelines on today). deepdiff does the
comparison; the result is a sorted tuple of typed :class:`Change` values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from deepdiff import DeepDiff

from ..desired.definition import field_value, start_phase

ENCRYPTED = "<encrypted>"

ChangeKind = Literal["add-object", "remove-object", "add-field", "remove-field", "change"]


@dataclass(frozen=True, order=True)
class Change:
    object_id: str
    field: str | None
    kind: ChangeKind
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    def describe(self) -> str:
        where = f"{self.object_id}.{self.field}" if self.field else self.object_id
        return {"add-object": f"+ object {where}", "remove-object": f"- object {where}",
                "add-field": f"+ {where} = {_show(self.after)}",
                "remove-field": f"- {where} = {_show(self.before)}",
                "change": f"~ {where}: {_show(self.before)} -> {_show(self.after)}"}[self.kind]


def _show(values: tuple[str, ...]) -> str:
    """The values whole: a plan never hides part of a change."""
    return ", ".join(values)


def normalise(objects: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, tuple[str, ...]]]:
    """{object id: {field: values}}: no runtime fields, references marked, secrets hidden."""
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for obj in objects:
        fields: dict[str, list[str]] = {"name": [obj.get("name", obj["id"])]}
        for f in obj.get("fields", []):
            key = f["key"]
            if key.startswith("@"):
                continue
            if "refValue" in f:
                value = "ref:" + f["refValue"]
            else:
                value = f.get("stringValue", "")
                if key.startswith("*") and not (value.startswith("#{") and value.endswith("}")):
                    value = ENCRYPTED
            fields.setdefault(key, []).append(value)
        # references are a set (dependsOn a and b is dependsOn b and a); strings keep their
        # order, which matters for scriptArgument, commandOptions and the like
        out[obj["id"]] = {k: tuple(sorted(v)) if v and v[0].startswith("ref:") else tuple(v)
                          for k, v in fields.items()}
    return out


def anchor_like_live(desired: list[dict[str, Any]], live: Iterable[Mapping[str, Any]]
                     ) -> list[dict[str, Any]]:
    """The desired objects with each schedule's start taken from the live object of the same
    id when both start the same schedule (the same :func:`start_phase` for the desired
    period): a live pipeline keeps the start it has, and a replacement keeps the next run it
    was moved to."""
    live_starts = {o["id"]: f.get("stringValue") for o in live for f in o.get("fields", [])
                   if f.get("key") == "startDateTime"}
    out = []
    for obj in desired:
        start = live_starts.get(obj["id"])
        period = field_value(obj, "period")
        fields = []
        for f in obj["fields"]:
            if (f["key"] == "startDateTime" and start and "stringValue" in f
                    and start_phase(start, period) == start_phase(f["stringValue"], period)):
                f = {"key": "startDateTime", "stringValue": start}
            fields.append(f)
        out.append({**obj, "fields": fields})
    return out


def field_changes(live: Iterable[Mapping[str, Any]], desired: Iterable[Mapping[str, Any]]
                  ) -> tuple[Change, ...]:
    """What applying ``desired`` over ``live`` changes, object by object, field by field."""
    before, after = normalise(live), normalise(desired)
    changes: set[Change] = {Change(oid, None, "add-object") for oid in after.keys() - before}
    changes |= {Change(oid, None, "remove-object") for oid in before.keys() - after}
    common = sorted(before.keys() & after.keys())
    diff = DeepDiff({oid: before[oid] for oid in common}, {oid: after[oid] for oid in common},
                    view="tree", ignore_order=False)
    for items in diff.values():
        for item in items:
            path = item.path(output_format="list")
            oid, key = str(path[0]), str(path[1])
            old = before[oid].get(key, ())
            new = after[oid].get(key, ())
            if not old:
                changes.add(Change(oid, key, "add-field", (), new))
            elif not new:
                changes.add(Change(oid, key, "remove-field", old, ()))
            else:
                changes.add(Change(oid, key, "change", old, new))
    return tuple(sorted(changes))
