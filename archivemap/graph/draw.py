"""Pictures of a reference graph: readable at a glance on real archives.

A real archive's graph is large (an MD run of 101 steps: 513 sections, 612 references), but
it is made of a few kinds of sections repeated. :func:`collapse` folds repeated siblings into
one node (``calculation ×101``) and their references into one edge
(``system_ref ×101``); :func:`layered_layout` puts what refers above what is referred to, so
the picture reads top-down as workflow → calculation → system / method; :func:`draw` draws
that with boxed labels and labelled edges (matplotlib, the ``plot`` extra), and
:func:`to_html` makes an interactive page for notebooks (pyvis, the ``interactive`` extra).

Colours: workflow sections orange, calculations blue, systems green, methods purple,
results teal, anything else grey-blue; dangling targets red, targets in other (not loaded)
archives dashed grey.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from archivemap.graph._nx import nx

__all__ = ["collapse", "draw", "layered_layout", "to_html"]

#: groups of at least this many sibling sections become one node
MIN_REPEATS = 3

_COLORS = {
    "workflow": "#f4a259",
    "calculation": "#5b8def",
    "system": "#3fb37f",
    "method": "#a06cd5",
    "results": "#35b5b5",
    "definitions": "#e0b03c",
    "data": "#e0b03c",
}
_OTHER = "#8ea4c8"
_DANGLING = "#e5484d"
_REMOTE = "#c7c7c7"


def _pattern(path: str) -> str:
    return re.sub(r"/\d+(?=/|$)", "/*", path)


def _group_label(pattern: str, count: int) -> str:
    names = [part for part in pattern.strip("/").split("/") if part and part != "*"]
    head = names[-1] if names else "/"
    where = "/".join(names[:-1])
    title = f"{head} ×{count}" if count > 1 else head
    return f"{title}\n{where}" if where else title


def _single_label(path: str, data: dict[str, Any]) -> str:
    label = str(data.get("label") or path)
    parts = [p for p in path.strip("/").split("/") if p]
    names = [p for p in parts if not p.isdigit()]
    where = "/".join(names[:-1])
    return f"{label}\n{where}" if where and where not in label else label


def _cut(line: str, limit: int = 30) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _kind(pattern: str, section: str | None) -> str:
    text = f"{pattern} {section or ''}".lower()
    for key in ("workflow", "calculation", "system", "method", "results", "definitions", "data"):
        last = pattern.strip("/").split("/")
        names = [p for p in last if p != "*"]
        if names and key in names[-1]:
            return key
    for key in ("workflow", "results", "definitions", "data"):
        if pattern.strip("/").startswith(key):
            return key
    return "other" if text else "other"


def collapse(g: nx.MultiDiGraph, min_repeats: int = MIN_REPEATS) -> nx.DiGraph:
    """Fold repeated sibling sections into one node, and their references into one edge.

    Sections whose paths differ only in list indices (``/run/0/calculation/3`` and
    ``/run/0/calculation/7``) of one entry form a group; a group of at least ``min_repeats``
    becomes one node labelled ``calculation ×101``. Edges between two nodes are merged into
    one whose ``label`` lists the referencing quantities with their counts.

    Args:
        g: a reference graph (:func:`archivemap.reference_graph`).
        min_repeats: the smallest group that is folded (smaller ones stay one node each).

    Returns:
        A ``networkx.DiGraph``. Node attributes: ``label``, ``count``, ``members`` (the
        original node ids), ``kind`` (workflow, calculation, system, ...), ``entry_id``,
        ``dangling``, ``remote``. Edge attributes: ``label``, ``count``, ``quantities``
        (quantity → count).
    """
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for node, data in g.nodes(data=True):
        path = str(data.get("path") or node)
        groups[(str(data.get("entry_id") or ""), _pattern(path))].append(node)
    entries = {entry for entry, _ in groups}
    where: dict[str, str] = {}
    out = nx.DiGraph()
    for (entry, pattern), members in groups.items():
        folded = len(members) >= min_repeats
        for index, member in enumerate(members if not folded else members[:1]):
            data = g.nodes[member]
            node_id = f"{entry}#{pattern}" if folded else member
            path = str(data.get("path") or member)
            label = _group_label(pattern, len(members)) if folded else _single_label(path, data)
            if len(entries) > 1 and entry:
                label += f"\n[{entry[:10]}]"
            dangling = any(g.nodes[m].get("dangling") for m in (members if folded else [member]))
            remote = all(g.nodes[m].get("remote") for m in (members if folded else [member]))
            out.add_node(
                node_id,
                label=label,
                count=len(members) if folded else 1,
                members=list(members) if folded else [member],
                kind=_kind(pattern, data.get("section")),
                entry_id=entry,
                dangling=bool(dangling),
                remote=bool(remote),
                path=pattern if folded else path,
            )
            for m in members if folded else [member]:
                where[m] = node_id
    quantities: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for u, v, data in g.edges(data=True):
        key = (where[u], where[v])
        quantities[key][str(data.get("quantity") or data.get("kind") or "")] += 1
    for (u, v), counts in quantities.items():
        parts = [f"{name} ×{n}" if n > 1 else name for name, n in sorted(counts.items())]
        out.add_edge(u, v, label="\n".join(parts), count=sum(counts.values()), quantities=dict(counts))
    return out


def _layers(cg: nx.DiGraph) -> dict[str, int]:
    """Layer of each node: its longest distance from a source (what nothing refers to), with
    every sink (what refers to nothing: systems, methods) on the bottom layer."""
    condensed = nx.condensation(cg)
    depth: dict[int, int] = {}
    for scc in nx.topological_sort(condensed):
        pred = list(condensed.predecessors(scc))
        depth[scc] = 1 + max(depth[p] for p in pred) if pred else 0
    bottom = max(depth.values(), default=0)
    for scc in condensed.nodes:
        if condensed.out_degree(scc) == 0 and condensed.in_degree(scc) > 0:
            depth[scc] = bottom
    mapping = condensed.graph["mapping"]
    return {node: depth[mapping[node]] for node in cg.nodes}


def _component_layout(cg: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Layers and barycentre order for one connected part of a collapsed graph."""
    layer_of = _layers(cg)
    layers: dict[int, list[str]] = defaultdict(list)
    for node in sorted(cg.nodes, key=lambda n: (cg.nodes[n].get("kind", ""), str(n))):
        layers[layer_of[node]].append(node)
    width = max((len(nodes) for nodes in layers.values()), default=1)

    def place(level: int) -> None:
        nodes = layers[level]
        offset = (width - len(nodes)) / 2
        for i, node in enumerate(nodes):
            x[node] = offset + i

    x: dict[str, float] = {}
    for level in layers:
        place(level)
    undirected = cg.to_undirected(as_view=True)
    levels = sorted(layers)
    for sweep in range(8):  # barycentre sweeps, down and up, over all neighbours
        for level in levels if sweep % 2 == 0 else reversed(levels):
            nodes = layers[level]

            def barycentre(node: str) -> float:
                near = [x[m] for m in undirected.neighbors(node) if layer_of[m] != level]
                return sum(near) / len(near) if near else x[node]

            nodes.sort(key=barycentre)
            place(level)
    return {node: (x[node], -float(layer_of[node])) for node in cg.nodes}


def layered_layout(cg: nx.DiGraph, row_width: float = 24.0) -> dict[str, tuple[float, float]]:
    """Positions for a collapsed graph: layers top-down, ordered to keep edges short.

    Layer 0 (top) holds what refers to others and is not referred to (workflow sections),
    each section sits one layer below the lowest section referring to it, and the bottom
    layer holds what only is referred to (systems, methods). Within a layer, nodes are
    ordered by the mean position of their neighbours (a few barycentre sweeps), which keeps
    edges from crossing on the usual workflow → calculation → system shapes. Parts that do
    not refer to each other (the archives of a folder) are laid out apart, side by side, in
    rows of about ``row_width`` columns.

    Returns:
        ``{node: (x, y)}`` with x in columns (one per node) and y = 0, -1, -2 ... per layer.
    """
    def entry_of(part: set[str]) -> str:
        entries = [str(cg.nodes[n].get("entry_id", "")) for n in part]
        return max(sorted(set(entries)), key=entries.count)

    parts = list(nx.weakly_connected_components(cg))
    size_of_entry: dict[str, int] = defaultdict(int)
    for part in parts:
        size_of_entry[entry_of(part)] += len(part)
    # an entry's parts side by side, the biggest entry and part first
    parts.sort(key=lambda c: (-size_of_entry[entry_of(c)], entry_of(c), -len(c), sorted(map(str, c))[0]))
    pos: dict[str, tuple[float, float]] = {}
    x0 = 0.0
    y0 = 0.0
    row_depth = 0.0
    for part in parts:
        sub = _component_layout(cg.subgraph(part).copy())
        width = max(p[0] for p in sub.values()) + 1
        depth = -min(p[1] for p in sub.values()) + 1
        if x0 > 0 and x0 + width > row_width:  # next row
            x0, y0 = 0.0, y0 - row_depth - 0.6
            row_depth = 0.0
        for node, (x, y) in sub.items():
            pos[node] = (x0 + x, y0 + y)
        x0 += width + 0.5
        row_depth = max(row_depth, depth)
    return pos


def _import_pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("drawing needs matplotlib: pip install 'archivemap[plot]'") from None
    return plt


def _color(data: dict[str, Any]) -> str:
    if data.get("dangling"):
        return _DANGLING
    if data.get("remote"):
        return _REMOTE
    return _COLORS.get(str(data.get("kind")), _OTHER)


def _pastel(color: str, keep: float = 0.22) -> str:
    """An opaque light tint of a ``#rrggbb`` colour (edges behind a box stay hidden)."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(255 - (255 - c) * keep):02x}" for c in rgb)


def draw(
    g: nx.MultiDiGraph,
    ax: Any = None,
    *,
    collapse_repeats: bool = True,
    min_repeats: int = MIN_REPEATS,
    edge_labels: bool = True,
    title: str | None = None,
    **kwargs: Any,
) -> Any:
    """Draw a reference graph so that a person can read it (matplotlib, the ``plot`` extra).

    Repeated siblings are folded (``calculation ×101``, see :func:`collapse`), nodes are laid
    out in layers (:func:`layered_layout`), drawn as boxed labels coloured by kind, and
    edges carry the referencing quantity (``system_ref ×101``). Without an ``ax`` a figure
    sized to the graph is made.

    Args:
        g: a reference graph.
        ax: a matplotlib ``Axes``; a new figure of a fitting size when ``None``.
        collapse_repeats: fold repeated siblings (``False``: one node per section).
        min_repeats: the smallest group of siblings that is folded.
        edge_labels: write the referencing quantities on the edges.
        title: a title for the axes.
        **kwargs: passed on to ``networkx.draw_networkx_edges``.

    Returns:
        The ``Axes`` drawn on (``ax.figure.savefig("graph.png", dpi=150)`` writes it).

    Raises:
        ImportError: matplotlib is not installed.
    """
    plt = _import_pyplot()
    cg = collapse(g, min_repeats if collapse_repeats else 10**9)
    for node in cg.nodes:  # long names are cut, so that boxes keep to their column
        cg.nodes[node]["label"] = "\n".join(_cut(line) for line in str(cg.nodes[node]["label"]).split("\n"))
    pos = layered_layout(cg)
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    span_x, span_y = max(xs) - min(xs) + 1, max(ys) - min(ys) + 1
    font = 8 if span_x <= 10 else 7 if span_x <= 18 else 6
    longest = max((len(line) for _, d in cg.nodes(data=True) for line in str(d["label"]).split("\n")), default=10)
    column = max(1.6, 0.62 * font / 72 * longest + 0.45)  # inches per column: the widest box fits
    if ax is None:
        fig_w = min(max(6.0, column * span_x + 0.8), 60.0)
        fig_h = min(max(3.0, 1.7 * span_y + 0.8), 40.0)
        _, ax = plt.subplots(figsize=(fig_w, fig_h))
    options: dict[str, Any] = {
        "arrows": True,
        "arrowstyle": "-|>",
        "arrowsize": 11,
        "edge_color": "#57606a",
        "width": 1.0,
        "min_source_margin": 18,
        "min_target_margin": 22,
        "connectionstyle": "arc3,rad=0.0",
        "node_size": 1800,
    }
    options.update(kwargs)
    # edges are straight unless a box sits in their way; then they bow around it, to the
    # side away from the box
    styles: dict[tuple[str, str], dict[str, Any]] = {}
    for u, v in cg.edges:
        (x1, y1), (x2, y2) = pos[u], pos[v]
        rad = 0.0
        for node, (xn, yn) in pos.items():
            if node in (u, v) or not min(y1, y2) < yn < max(y1, y2):
                continue
            xl = x1 + (x2 - x1) * (yn - y1) / (y2 - y1)
            if abs(xn - xl) < 0.6:
                left = xn >= xl  # pass on the left of the box
                rad = (0.55 if left else -0.55) * (1 if y2 < y1 else -1)
                break
        styles[(u, v)] = {**options, "connectionstyle": f"arc3,rad={rad}"}
    by_style: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for edge, style in styles.items():
        by_style[style["connectionstyle"]].append(edge)
    for connection, edges in by_style.items():
        nx.draw_networkx_edges(cg, pos, ax=ax, edgelist=edges, **{**options, "connectionstyle": connection})
    for node, (x, y) in pos.items():
        data = cg.nodes[node]
        face = _color(data)
        ax.text(
            x, y, str(data["label"]), ha="center", va="center", fontsize=font, zorder=3,
            bbox={
                "boxstyle": "round,pad=0.35", "facecolor": _pastel(face), "edgecolor": face,
                "linewidth": 1.4, "linestyle": "--" if data.get("remote") else "-",
            },
        )
    if edge_labels:
        for connection, edges in by_style.items():
            labels = {(u, v): cg.edges[u, v]["label"] for u, v in edges if cg.edges[u, v].get("label")}
            nx.draw_networkx_edge_labels(
                cg, pos, edge_labels=labels, ax=ax, font_size=font - 1, font_color="#24292f", label_pos=0.5,
                rotate=False, connectionstyle=connection,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
            )
    ax.set_xlim(min(xs) - 0.7, max(xs) + 0.7)
    ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
    ax.set_axis_off()
    sections = g.number_of_nodes()
    references = g.number_of_edges()
    ax.set_title(title or f"{sections} sections, {references} references", fontsize=font + 2)
    return ax


#: What pyvis's page template loads from elsewhere beside the inlined vis-network: Bootstrap
#: from a CDN (styling only) and, commented out, a node_modules copy of vis.
_FETCHED = re.compile(
    r"<link[^>]*bootstrap[^>]*>|<script[^>]*bootstrap[^>]*>\s*</script>|<!--\s*<link[^>]*node_modules.*?-->",
    re.DOTALL,
)


def _offline(page: str) -> str:
    """The page without what it would fetch from the network: it must open offline, and a
    page that loads scripts from a CDN also tells the CDN who looked at which graph."""
    return _FETCHED.sub("", page)


def to_html(
    g: nx.MultiDiGraph,
    path: str | None = None,
    *,
    collapse_repeats: bool = True,
    min_repeats: int = MIN_REPEATS,
    height: str = "650px",
) -> str:
    """An interactive page of the graph for notebooks (pyvis, the ``interactive`` extra).

    The same folded, layered graph as :func:`draw`, with pan, zoom and drag; hovering a node
    shows its members (the original section paths). The page embeds its JavaScript, so it
    works offline; in Jupyter show it with ``IPython.display.HTML(to_html(g))``.

    Args:
        g: a reference graph.
        path: also write the page to this file.
        collapse_repeats: fold repeated siblings.
        min_repeats: the smallest group of siblings that is folded.
        height: the height of the drawing area (CSS).

    Returns:
        The HTML page.

    Raises:
        ImportError: pyvis is not installed.
    """
    try:
        from pyvis.network import Network  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ImportError("interactive graphs need pyvis: pip install 'archivemap[interactive]'") from None
    cg = collapse(g, min_repeats if collapse_repeats else 10**9)
    pos = layered_layout(cg)
    net = Network(height=height, width="100%", directed=True, cdn_resources="in_line", notebook=False)
    net.toggle_physics(False)
    for node, data in cg.nodes(data=True):
        x, y = pos[node]
        members = data["members"]
        shown = "\n".join(str(m) for m in members[:12]) + (f"\n… {len(members) - 12} more" if len(members) > 12 else "")
        color = _color(data)
        net.add_node(
            node, label=str(data["label"]), title=shown, x=x * 270, y=-y * 160, shape="box",
            color={"background": color + "55", "border": color}, font={"face": "monospace", "size": 13},
        )
    for u, v, data in cg.edges(data=True):
        net.add_edge(u, v, label=str(data.get("label", "")), arrows="to", font={"size": 10, "align": "horizontal"})
    page: str = _offline(net.generate_html())
    if path is not None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(page)
    return page
