"""Questions asked of a reference graph: plain functions over a ``networkx.MultiDiGraph``."""

from __future__ import annotations

from collections import deque
from typing import Any

from archivemap.archive.sections import Section
from archivemap.graph._nx import nx
from archivemap.graph.build import node_id


__all__ = ["dangling_references", "reference_cycle_groups", "reference_cycles", "referrers", "subgraph_of"]


def _node_of(g: nx.MultiDiGraph, section_or_node: Section | str) -> str:
    node = node_id(section_or_node) if isinstance(section_or_node, Section) else section_or_node
    if node not in g:
        raise KeyError(f"{node!r} is not a node of this graph")
    return node


def dangling_references(g: nx.MultiDiGraph) -> list[tuple[str, str, dict[str, Any]]]:
    """Every reference edge whose target does not exist.

    Returns:
        ``(source node, target node, edge attributes)`` tuples; the target node's ``error``
        attribute says which segment failed.
    """
    return [
        (u, v, data)
        for u, v, data in g.edges(data=True)
        if data.get("kind") != "contains" and g.nodes[v].get("dangling")
    ]


def _nearest_container(g: nx.MultiDiGraph, node: str) -> str | None:
    for parent, _, kind in g.in_edges(node, data="kind"):  # built with containment: O(1)
        if kind == "contains":
            return str(parent)
    entry, _, path = node.rpartition("#")
    segments = [s for s in path.split("/") if s]
    while segments:
        segments.pop()
        candidate = f"{entry}#/" + "/".join(segments)
        if candidate in g:
            return candidate
    return None


def reference_cycles(
    g: nx.MultiDiGraph, through_containment: bool = False, limit: int | None = 1000
) -> list[list[str]]:
    """Cycles made by reference edges (``contains`` edges are ignored), at most ``limit``.

    The number of simple cycles grows exponentially with the number of mutually referencing
    sections (12 sections that all reference each other have over 100 million), so the
    enumeration stops after ``limit`` cycles; each further cycle costs at most one pass over
    the graph (Johnson's algorithm has polynomial delay). :func:`reference_cycle_groups`
    answers "which sections take part in cycles" in linear time whatever their number.

    Args:
        g: a reference graph.
        through_containment: also count a reference into one of the referencing section's
            own ancestors as a cycle (``/workflow/0/task/0`` → ``#/workflow/0``): following it
            and then the section's sub-sections leads back to the start, which is what makes
            NOMAD's ``include-resolved`` recurse forever (spec §3.5).
        limit: the most cycles to return; ``None`` for all of them (exponential in the worst
            case).

    Returns:
        Each cycle as a list of nodes, in edge order.
    """
    dg = _cycle_graph(g, through_containment)
    ref_edges = {(u, v) for u, v, kind in g.edges(data="kind") if kind != "contains"}
    out: list[list[str]] = []
    for cycle in nx.simple_cycles(dg):
        # A cycle must use at least one reference edge; containment alone is a tree.
        if through_containment and not any(
            (cycle[k], cycle[(k + 1) % len(cycle)]) in ref_edges for k in range(len(cycle))
        ):
            continue
        out.append(list(cycle))
        if limit is not None and len(out) >= limit:
            break
    return out


def reference_cycle_groups(g: nx.MultiDiGraph, through_containment: bool = False) -> list[list[str]]:
    """The groups of sections that reference each other in cycles (linear time).

    Each group is a strongly connected component with more than one node, or a single node
    that references itself; every cycle of :func:`reference_cycles` lies inside one group.

    Returns:
        The groups, each sorted, largest first.
    """
    dg = _cycle_graph(g, through_containment)
    groups = [sorted(c) for c in nx.strongly_connected_components(dg) if len(c) > 1]
    in_groups = {node for group in groups for node in group}
    groups.extend([node] for node in nx.nodes_with_selfloops(dg) if node not in in_groups)
    return sorted(groups, key=lambda c: (-len(c), c))


def _cycle_graph(g: nx.MultiDiGraph, through_containment: bool) -> nx.DiGraph:
    dg = nx.DiGraph()
    dg.add_edges_from((u, v) for u, v, kind in g.edges(data="kind") if kind != "contains")
    if through_containment:
        for node in list(dg.nodes):
            parent = _nearest_container(g, node)
            while parent is not None:
                if parent in dg:
                    dg.add_edge(parent, node)
                    break
                parent = _nearest_container(g, parent)
    return dg


def referrers(g: nx.MultiDiGraph, section_or_node: Section | str) -> list[str]:
    """The nodes whose references point at a section (sorted, without ``contains`` parents).

    Raises:
        KeyError: the section is not a node of the graph.
    """
    node = _node_of(g, section_or_node)
    return sorted({u for u, _, kind in g.in_edges(node, data="kind") if kind != "contains"})


def subgraph_of(g: nx.MultiDiGraph, section_or_node: Section | str, depth: int = 1, direction: str = "both") -> nx.MultiDiGraph:
    """The neighbourhood of a node: everything within ``depth`` edges of it (a copy).

    Args:
        g: a reference graph.
        section_or_node: a loaded section or a node id.
        depth: how many edges away to go (0 gives the node alone).
        direction: ``"out"`` follows edges forward (what it references), ``"in"`` backward
            (what references it), ``"both"`` either way.

    Raises:
        KeyError: the section is not a node of the graph.
        ValueError: ``direction`` is not one of the three.
    """
    if direction not in ("out", "in", "both"):
        raise ValueError(f"direction must be 'out', 'in' or 'both', not {direction!r}")
    start = _node_of(g, section_or_node)
    seen = {start}
    frontier = deque([(start, 0)])
    while frontier:
        node, dist = frontier.popleft()
        if dist >= depth:
            continue
        nbrs: list[str] = []
        if direction in ("out", "both"):
            nbrs.extend(g.successors(node))
        if direction in ("in", "both"):
            nbrs.extend(g.predecessors(node))
        for nbr in nbrs:
            if nbr not in seen:
                seen.add(nbr)
                frontier.append((nbr, dist + 1))
    return g.subgraph(seen).copy()  # type: ignore[no-any-return]
