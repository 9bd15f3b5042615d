"""A local NOMAD-compatible API server: offline testing against real archive semantics.

``LocalServer`` serves a folder (or an in-memory mapping) of archives as the NOMAD API v1
subset archivemap's client uses, with NOMAD's ``required`` reader (schema-exact when given a
metainfo export), NOMAD's query validation, pagination and aggregations (terms, histogram,
date_histogram, min_max, statistics), token auth with scoped personal access tokens,
injectable faults (503 storms, rate and concurrency limits, latency, dropped connections,
truncated bodies, page-size limits) and a request log. It replays NOMAD 2.0.0's own answers
to the shared conformance corpus exactly (tests/server/test_conformance.py).

Safe to leave running: it binds 127.0.0.1, answers only requests whose ``Host`` names it,
can require a static bearer token, cuts off clients slow to send a request, caps request
bodies and their nesting, and keeps a bounded request log. Standard library plus orjson.
"""

from archivemap.server._faults import Faults
from archivemap.server._log import RequestRecord
from archivemap.server._server import LocalServer, serve

__all__ = ["Faults", "LocalServer", "RequestRecord", "serve"]
