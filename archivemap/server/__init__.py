"""A local NOMAD-compatible API server: offline testing against real archive semantics.

``LocalServer`` serves a folder (or an in-memory mapping) of archives as the NOMAD API v1
subset archivemap's client uses, with NOMAD's ``required`` reader, cursor pagination, token
auth, injectable faults (503 storms, rate and concurrency limits, latency, dropped
connections, truncated bodies, page-size limits) and a request log. Standard library only.
"""

from archivemap.server._faults import Faults
from archivemap.server._log import RequestRecord
from archivemap.server._server import LocalServer, serve

__all__ = ["Faults", "LocalServer", "RequestRecord", "serve"]
