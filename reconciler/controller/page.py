"""The controller's web pages: ``/``, every environment's pipelines at a glance, from the
same status ``/status`` serves, and the operations done on them; ``/pipelines/ENV/NAME``,
one pipeline: its manifest, its last error in full, the pending plan's diff, its graph
(``/pipelines/ENV/NAME/graph.svg``, drawn by Graphviz), its recent runs and what the
controller and the operators did to it.

Server-rendered HTML that needs no script (filters are a plain form, paging plain links, a
refresh every 30 s a meta tag); rendered by Jinja2 with autoescaping, so whatever a manifest
or AWS put in a name, a reason or an error is shown as text. Nothing is fetched from
elsewhere: the page carries its own style. Pure: a status document and a query in, bytes
out.
"""

from __future__ import annotations

import urllib.parse
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import jinja2

from ..desired.definition import CompiledPipeline
from ..desired.graph import pipeline_graph

PAGE_SIZE = 200  # rows a page shows; 1,000 pipelines x 2 environments is 10 pages
REFRESH_SECONDS = 30
STATUSES = ("Synced", "OutOfSync", "Unknown", "Suspended", "Stalled", "Healthy",
            "Progressing", "Degraded", "Missing")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("reconciler.controller", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["duration"] = duration
    env.filters["when"] = when
    return env


def when(text: str | None) -> str:
    """An ISO 8601 time as the page shows it: ``2026-12-07 20:58:13Z`` (UTC, to the second);
    what is not one is shown as it is."""
    if not text:
        return "-"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def duration(seconds: float) -> str:
    """``1h 2m``, ``3m 5s``, ``42s``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def overview(status: Mapping[str, Any], query: Mapping[str, str],
             operations: Sequence[Mapping[str, Any]] = (),
             refresh_button: bool = False) -> bytes:
    """The page of ``status`` (``Status.to_json()``), filtered by the query's ``env``,
    ``status`` (a sync or health status) and ``name`` (a part of the pipeline's name), and
    paged (``page``); below it the ``operations`` done lately (refresh, rerun), and a button
    to reconcile now when ``refresh_button``."""
    env_filter = query.get("env", "")
    status_filter = query.get("status", "")
    name_filter = query.get("name", "").strip().lower()
    environments, rows = [], []
    counts: Counter[str] = Counter()
    total = attention = 0
    for name, env in status.get("environments", {}).items():
        environments.append({"name": name, **env})
        for pipeline in env.get("pipelines", []):
            total += 1
            counts[pipeline["sync_status"]] += 1
            counts[pipeline["health_status"]] += 1
            if (pipeline["sync_status"], pipeline["health_status"]) not in (
                    ("Synced", "Healthy"), ("Suspended", "Healthy"), ("Suspended", "Unknown")):
                attention += 1
            if env_filter and name != env_filter:
                continue
            if status_filter and status_filter not in (pipeline["sync_status"],
                                                       pipeline["health_status"]):
                continue
            if name_filter and name_filter not in pipeline["pipeline"].lower():
                continue
            rows.append({"env": name, "href": pipeline_href(name, pipeline["pipeline"]),
                         **pipeline})
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    try:
        page = min(max(1, int(query.get("page", "1"))), pages)
    except ValueError:
        page = 1
    shown = rows[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
    kept = {k: v for k, v in (("env", env_filter), ("status", status_filter),
                              ("name", query.get("name", ""))) if v}

    def query_for(n: int) -> str:
        return urllib.parse.urlencode({**kept, "page": n})

    html = _environment().get_template("overview.html").render(
        source=status.get("source", {}), error=status.get("error"),
        last_pass_started=status.get("last_pass_started"), environments=environments,
        counts={"total": total, "attention": attention,
                "by_status": [(s, counts[s]) for s in STATUSES if counts[s]]},
        statuses=STATUSES, rows=shown, matched=len(rows), shown=len(shown), page=page,
        pages=pages, query={"env": env_filter, "status": status_filter,
                            "name": query.get("name", "")},
        query_for=query_for, refresh=REFRESH_SECONDS, operations=operations,
        refresh_button=refresh_button)
    return html.encode()


def pipeline_href(env: str, name: str) -> str:
    quote = urllib.parse.quote
    return f"/pipelines/{quote(env, safe='')}/{quote(name, safe='')}"


def pipeline_page(detail: Mapping[str, Any], source: Mapping[str, Any],
                  definition: CompiledPipeline | None = None) -> bytes:
    """The page of one pipeline (``PipelineStatus.detail_json()``): its manifest, statuses,
    last error in full, the pending plan's diff, the graph of its ``definition``, its runs
    and what was done to it."""
    svg = text = None
    if definition is not None:
        if graph_svg(definition) is not None:
            svg = pipeline_href(detail["environment"], detail["pipeline"]) + "/graph.svg"
        else:
            text = pipeline_graph(definition).to_mermaid()
    return _environment().get_template("pipeline.html").render(
        p=detail, source=source, refresh=REFRESH_SECONDS, graph_svg=svg, graph_text=text,
        description=definition.description if definition else None).encode()


@lru_cache(maxsize=128)
def graph_svg(definition: CompiledPipeline) -> bytes | None:
    """The graph of activities and data nodes as SVG, drawn by Graphviz's ``dot`` (None
    where it is not installed). Served as an image, so nothing in it can run on the page."""
    import graphviz

    try:
        return bytes(pipeline_graph(definition).to_graphviz().pipe(format="svg"))
    except graphviz.ExecutableNotFound:
        return None


def parse_query(text: str) -> dict[str, str]:
    """A query string's first value of each name."""
    return {k: v[0] for k, v in urllib.parse.parse_qs(text, max_num_fields=20).items() if v}
