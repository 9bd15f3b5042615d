"""networkx, imported by the first graph built rather than by ``import archivemap.graph``.

networkx takes ~150 ms to import (its backends are found through package metadata), and the
CLI imports the graph layer for every command, ``show`` included. One stand-in for all the
graph modules (:mod:`archivemap._lazy`: safe when threads are its first users).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archivemap._lazy import deferred_import

if TYPE_CHECKING:
    import networkx as nx
else:
    nx = deferred_import("networkx")

__all__ = ["nx"]
