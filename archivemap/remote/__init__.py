"""The remote layer: NOMAD's API v1 over HTTP, and archives that fetch what they lack.

``required`` (pure functions over specs) and ``_limits`` (rate, concurrency, retries) are its
leaves; ``fetch`` implements the archive layer's seams over an ``ArchiveAPI``; ``stream`` is
the bulk download; ``client`` is the HTTP client on top, its machinery in private modules
(``_transport``, ``_body``, ``_secrets``, ``_urls``, ``_failures``, ``_paging``, ``_cursors``,
``_sampling``).
"""

from archivemap.remote.client import Client
from archivemap.remote.fetch import ClientSource, RemoteFetcher, open_archive
from archivemap.remote.stream import ArchiveStream

__all__ = ["ArchiveStream", "Client", "ClientSource", "RemoteFetcher", "open_archive"]
