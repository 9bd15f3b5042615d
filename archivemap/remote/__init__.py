"""The remote layer: NOMAD's API v1 over HTTP, and archives that fetch what they lack.

``required`` (pure functions over specs) and ``_limits`` (rate, concurrency, retries) are its
leaves; ``fetch`` implements the archive layer's seams over an ``ArchiveAPI``; ``client`` is
the HTTP client on top.
"""

from archivemap.remote.client import ArchiveStream, Client
from archivemap.remote.fetch import ClientSource, RemoteFetcher, open_archive

__all__ = ["ArchiveStream", "Client", "ClientSource", "RemoteFetcher", "open_archive"]
