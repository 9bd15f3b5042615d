"""Drawing a reference graph with matplotlib (the ``plot`` extra, imported when drawing)."""

from __future__ import annotations

from typing import Any

import networkx as nx

__all__ = ["draw"]


def draw(g: nx.MultiDiGraph, ax: Any = None, **kwargs: Any) -> Any:
    """Draw the graph with matplotlib (the ``plot`` extra): dangling red, remote grey.

    Args:
        g: a reference graph.
        ax: a matplotlib ``Axes``; the current one when ``None``.
        **kwargs: passed on to ``networkx.draw_networkx``.

    Returns:
        The ``Axes`` drawn on.

    Raises:
        ImportError: matplotlib is not installed.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("drawing needs matplotlib: pip install 'archivemap[plot]'") from None
    if ax is None:
        ax = plt.gca()
    colors = [
        "tab:red" if d.get("dangling") else "lightgrey" if d.get("remote") else "tab:blue"
        for _, d in g.nodes(data=True)
    ]
    options: dict[str, Any] = {
        "pos": nx.spring_layout(g, seed=0),
        "ax": ax,
        "node_color": colors,
        "labels": {n: d.get("label") or n for n, d in g.nodes(data=True)},
        "font_size": 7,
        "node_size": 200,
    }
    options.update(kwargs)
    nx.draw_networkx(g, **options)
    ax.set_axis_off()
    return ax
