"""Writing a reference graph out: GraphML, Graphviz DOT and a text listing."""

from __future__ import annotations

import os
from typing import Any

from archivemap.graph._nx import nx

__all__ = ["to_dot", "to_graphml", "to_text"]


def to_graphml(g: nx.MultiDiGraph, path: str | os.PathLike[str]) -> None:
    """Write the graph as GraphML (readable by networkx.read_graphml, Gephi, yEd, Cytoscape).

    Attributes that GraphML cannot hold (``None``, containers) are left out or written as text.
    """
    out = nx.MultiDiGraph()
    for node, data in g.nodes(data=True):
        out.add_node(node, **_graphml_attrs(data))
    for u, v, key, data in g.edges(keys=True, data=True):
        out.add_edge(u, v, key=key, **_graphml_attrs(data))
    nx.write_graphml(out, os.fspath(path))


def _graphml_attrs(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (str, int, float, bool)) else str(v)) for k, v in data.items() if v is not None}


def _dot_quote(text: Any) -> str:
    """A DOT double-quoted string: archive data is untrusted, so escape everything special."""
    s = str(text)
    s = s.replace("\\", "\\\\").replace('"', '\\"')
    s = s.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    return f'"{s}"'


def to_dot(g: nx.MultiDiGraph, name: str = "references") -> str:
    """The graph in Graphviz DOT (no pydot needed); labels are escaped.

    Remote targets are dashed boxes, dangling targets red, ``contains`` edges dotted.
    """
    lines = [f"digraph {_dot_quote(name)} {{", "  node [shape=ellipse, fontsize=10];", "  edge [fontsize=8];"]
    for node, data in g.nodes(data=True):
        attrs = [f"label={_dot_quote(data.get('label') or node)}", f"tooltip={_dot_quote(node)}"]
        if data.get("dangling"):
            attrs.append('color="red", fontcolor="red"')
        elif data.get("remote"):
            attrs.append('shape="box", style="dashed"')
        lines.append(f"  {_dot_quote(node)} [{', '.join(attrs)}];")
    for u, v, data in g.edges(data=True):
        attrs = [f"label={_dot_quote(_edge_label(data))}"]
        if data.get("kind") == "contains":
            attrs.append('style="dotted", arrowhead="none"')
        elif data.get("kind") == "definition":
            attrs.append('style="dashed"')
        lines.append(f"  {_dot_quote(u)} -> {_dot_quote(v)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _edge_label(data: dict[str, Any]) -> str:
    label = str(data.get("quantity", ""))
    return f"{label}[{data['index']}]" if data.get("index") is not None else label


def to_text(g: nx.MultiDiGraph) -> str:
    """A readable listing (for the command line): each referencing section, then its targets."""
    ref_edges = [(u, v, d) for u, v, d in g.edges(data=True) if d.get("kind") != "contains"]
    n_remote = sum(1 for _, d in g.nodes(data=True) if d.get("remote"))
    n_dangling = sum(1 for _, d in g.nodes(data=True) if d.get("dangling"))
    lines = [
        f"{g.number_of_nodes()} nodes, {len(ref_edges)} references "
        f"({n_dangling} dangling target(s), {n_remote} remote)"
    ]
    by_source: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for u, v, d in ref_edges:
        by_source.setdefault(u, []).append((v, d))
    for source in sorted(by_source):
        section = g.nodes[source].get("section")
        lines.append(f"{source}" + (f"  ({section})" if section else ""))
        for target, d in by_source[source]:
            tdata = g.nodes[target]
            flag = " [dangling: %s]" % tdata.get("error", "") if tdata.get("dangling") else ""
            flag = flag or (" [remote]" if tdata.get("remote") else "")
            lines.append(f"  {_edge_label(d)} -> {target}{flag}")
    return "\n".join(lines) + "\n"
