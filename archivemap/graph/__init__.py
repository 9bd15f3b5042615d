"""The reference graph, laid out like networkx: builders, queries, export and drawing apart.

:func:`reference_graph` builds a plain ``networkx.MultiDiGraph`` of which section of which
archive points at which (node and edge attributes: :mod:`archivemap.graph.build`); everything
else is a function over such a graph, so any networkx algorithm applies as well.
"""

from archivemap.graph.build import node_id, reference_graph
from archivemap.graph.draw import draw
from archivemap.graph.export import to_dot, to_graphml, to_text
from archivemap.graph.queries import (
    dangling_references,
    reference_cycle_groups,
    reference_cycles,
    referrers,
    subgraph_of,
)

__all__ = [
    "dangling_references",
    "draw",
    "node_id",
    "reference_cycle_groups",
    "reference_cycles",
    "reference_graph",
    "referrers",
    "subgraph_of",
    "to_dot",
    "to_graphml",
    "to_text",
]
