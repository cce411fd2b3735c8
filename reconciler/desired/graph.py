"""The DAG of a compiled pipeline, as Dataduct drew it: activities and data nodes, data edges
(node → activity it feeds, activity → node it writes) and dependency edges, with the
dependency edges that other paths already imply removed (transitive reduction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .definition import CompiledPipeline


@dataclass(frozen=True)
class GraphNode:
    id: str
    type: str
    kind: str  # "activity" or "data"


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    kind: str  # "data" or "depends_on"


@dataclass(frozen=True)
class PipelineGraph:
    name: str
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]

    def to_mermaid(self) -> str:
        lines = ["flowchart TD"]
        for node in self.nodes:
            label = f"{node.id}<br/><i>{node.type}</i>"
            shape = f'["{label}"]' if node.kind == "activity" else f'[("{label}")]'
            lines.append(f"    {_mermaid_id(node.id)}{shape}")
        for edge in self.edges:
            arrow = "-->" if edge.kind == "data" else "-.->"
            lines.append(f"    {_mermaid_id(edge.source)} {arrow} {_mermaid_id(edge.target)}")
        return "\n".join(lines) + "\n"

    def to_graphviz(self) -> Any:
        """The graph as a ``graphviz.Digraph`` (its ``source`` is DOT; rendering it to SVG
        needs Graphviz's ``dot`` program, which is the caller's to run)."""
        import graphviz

        dot = graphviz.Digraph(self.name, graph_attr={"rankdir": "TB", "label": self.name},
                               node_attr={"fontname": "Helvetica", "fontsize": "11"})
        for node in self.nodes:
            shape = "box" if node.kind == "activity" else "cylinder"
            dot.node(node.id, f"{node.id}\n{node.type}", shape=shape,
                     style="rounded" if node.kind == "activity" else "")
        for edge in self.edges:
            dot.edge(edge.source, edge.target,
                     style="solid" if edge.kind == "data" else "dashed")
        return dot


def _mermaid_id(value: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in value)


def pipeline_graph(pipeline: CompiledPipeline, *, activities_only: bool = False) -> PipelineGraph:
    objects = {o.id: o for o in pipeline.objects}

    def kind(oid: str) -> str | None:
        obj_type = objects[oid].type or ""
        if obj_type.endswith("Activity"):
            return "activity"
        if obj_type.endswith("DataNode"):
            return "data"
        return None

    activities = sorted(o for o in objects if kind(o) == "activity")
    data_edges: set[tuple[str, str]] = set()
    dep_edges: set[tuple[str, str]] = set()
    for aid in activities:
        obj = objects[aid]
        for f in obj.fields:
            if f.key == "input" and f.value in objects:
                data_edges.add((f.value, aid))
            elif f.key == "output" and f.value in objects:
                data_edges.add((aid, f.value))
            elif f.key == "dependsOn" and f.value in objects:
                dep_edges.add((f.value, aid))
    # Named outputs (output_node) are sub-directories of an activity's output: the activity
    # writes them too.
    paths = {oid: objects[oid].get("directoryPath") for oid in objects if kind(oid) == "data"}
    for writer, node in [e for e in data_edges if e[0] in activities]:
        base = paths.get(node)
        for other, path in paths.items():
            if base and path and path.startswith(base + "/"):
                data_edges.add((writer, other))
    if activities_only:
        writers = {t: s for s, t in data_edges if s in activities}
        derived = {(writers[s], t) for s, t in data_edges if s in writers and t in activities}
        dep_edges |= {e for e in derived if e[0] != e[1]}
        data_edges = set()
        nodes = activities
    else:
        nodes = sorted({*activities, *(n for e in data_edges for n in e)})
    reduced = {e for e in dep_edges if not _reachable_without(e, data_edges | dep_edges)}
    return PipelineGraph(
        name=pipeline.name,
        nodes=tuple(GraphNode(n, objects[n].type or "", kind(n) or "data") for n in nodes),
        edges=tuple(sorted([GraphEdge(s, t, "data") for s, t in data_edges]
                           + [GraphEdge(s, t, "depends_on") for s, t in reduced],
                           key=lambda e: (e.source, e.target, e.kind))),
    )


def _reachable_without(edge: tuple[str, str], edges: set[tuple[str, str]]) -> bool:
    """Whether edge's target is reachable from its source by a path of two or more edges."""
    source, target = edge
    adjacency: dict[str, list[str]] = {}
    for s, t in edges:
        if (s, t) != edge:
            adjacency.setdefault(s, []).append(t)
    stack, seen = list(adjacency.get(source, [])), set()
    while stack:
        node = stack.pop()
        if node == target:
            return True
        if node in seen:
            continue
        seen.add(node)
        stack.extend(adjacency.get(node, []))
    return False
