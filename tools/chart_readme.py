"""Generate the chart's README.md from its values.yaml (helm-docs style): every value with a
``# --`` comment above it becomes a row of the values table, with its type and default.

    python tools/chart_readme.py            # write charts/dataduct-reconciler/README.md
    python tools/chart_readme.py --check    # exit 1: README.md stale, or a value lacks a comment

A value whose comment documents a mapping (``resources``) stands for its children; any other
leaf without a comment is an error, so a new value cannot ship undocumented.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent / "charts" / "dataduct-reconciler"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")
DOC = re.compile(r"^ *# -- ?(?P<text>.*)$")
MORE = re.compile(r"^ *# ?(?P<text>.*)$")


def documented(lines: list[str]) -> dict[str, str]:
    """key path (a.b.c) -> description, from the ``# --`` comments above the keys."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in lines:
        if (match := DOC.match(line)) is not None:
            pending = [match["text"]]
            continue
        if pending is not None and line.lstrip().startswith("#") and not line.startswith("#  "):
            pending.append(MORE.match(line)["text"])  # type: ignore[index]
            continue
        match = KEY.match(line)
        if match is None:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            pending = None
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if pending is not None:
            found[".".join(k for _, k in stack)] = " ".join(pending).strip()
        pending = None
    return found


def leaves(values: Any, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        return [leaf for key, value in values.items()
                for leaf in leaves(value, f"{prefix}.{key}" if prefix else key)]
    return [prefix]


def lookup(values: Any, path: str) -> Any:
    for part in path.split("."):
        values = values[part]
    return values


def type_of(value: Any) -> str:
    return {dict: "object", list: "list", bool: "bool", int: "int", float: "float",
            str: "string", type(None): "null"}[type(value)]


def render() -> tuple[str, list[str]]:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    docs = documented(text.splitlines())
    undocumented = [leaf for leaf in leaves(values)
                    if not any(leaf == d or leaf.startswith(d + ".") for d in docs)]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    rows = []
    for path, description in docs.items():
        value = lookup(values, path)
        default = json.dumps(value, separators=(", ", ": "))
        rows.append(f"| `{path}` | {type_of(value)} | `{default}` | "
                    f"{description.replace('|', '&#124;')} |")
    readme = f"""# {chart['name']}

{chart['description']}

Version {chart['version']} of the chart, controller {chart['appVersion']}. This file is generated
from `values.yaml` by `tools/chart_readme.py`; edit the comments there.

## Install

```sh
kubectl create namespace dataduct
kubectl -n dataduct create secret generic etl-manifests-deploy-key \\
  --from-file=ssh-privatekey=deploy_key --from-file=known_hosts=known_hosts
helm install dataduct charts/dataduct-reconciler -n dataduct -f my-values.yaml
```

`ci/production-values.yaml` is a complete example (staging and prod in two accounts, git-sync
over SSH, the webhook behind an ingress, Prometheus Operator and Grafana). A wrong value fails
at install time (`values.schema.json`). The chart never creates a Secret from values: it
references the Secrets you create (git credentials, webhook secret, database passwords).

The Deployment runs one replica with the `Recreate` strategy: two controllers must never apply
to the same environment at once (the controller also holds a lease per environment, so a
second one waits instead of fighting).

## Values

| Key | Type | Default | Description |
|-----|------|---------|-------------|
{chr(10).join(rows)}
"""
    return readme, undocumented


def main(argv: list[str]) -> int:
    readme, undocumented = render()
    for leaf in undocumented:
        print(f"charts/dataduct-reconciler/values.yaml: {leaf} has no '# --' comment",
              file=sys.stderr)
    target = CHART / "README.md"
    if "--check" in argv:
        stale = not target.exists() or target.read_text() != readme
        if stale:
            print(f"{target} is stale: run python tools/chart_readme.py", file=sys.stderr)
        return 1 if stale or undocumented else 0
    target.write_text(readme)
    return 1 if undocumented else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
