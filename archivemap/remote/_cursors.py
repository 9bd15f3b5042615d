"""Resume positions of a bulk download: the opaque ``am1:`` cursor.

Why a module of its own: NOMAD's ``page_after_value`` names a page, but a download is
interrupted between two entries of a page, and a page may be short because entries without
archive were dropped. The cursor :attr:`~archivemap.remote.stream.ArchiveStream.cursor` hands
out (and ``after=`` takes back, in :meth:`~archivemap.remote.client.Client.archives_raw` and
:meth:`~archivemap.remote.client.Client.analyze`) is therefore a page cursor, how many
entries of that page were passed, and how many entries of the query lie before the page. A
plain NOMAD ``page_after_value`` is accepted too.
"""

from __future__ import annotations

import base64
import json
from typing import Final

__all__ = ["decode_cursor", "encode_cursor"]

_CURSOR_PREFIX: Final = "am1:"


def encode_cursor(after: str | None, skip: int, base: int | None) -> str:
    """An opaque resume position: ``skip`` entries after the page cursor ``after``.

    ``base`` is how many entries of the query lie before ``after`` (``None``: unknown, e.g.
    after a NOMAD ``page_after_value`` given by the user); with it, a resumed stream can tell
    from the server's ``total`` whether a short last page is complete.
    """
    raw = json.dumps([after, skip, base], separators=(",", ":")).encode()
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str | None) -> tuple[str | None, int, int | None]:
    """``(page cursor, entries to skip after it, entries before it or None)`` of a cursor.

    Raises:
        ValueError: an ``am1:`` cursor that does not decode.
    """
    if cursor is None:
        return None, 0, 0
    if not cursor.startswith(_CURSOR_PREFIX):
        return cursor, 0, None  # a plain NOMAD page_after_value
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor[len(_CURSOR_PREFIX) :]))
        after, skip = parts[0], int(parts[1])
        base = parts[2] if len(parts) > 2 else None  # cursors of earlier versions have none
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ValueError(f"not an archivemap cursor: {cursor!r}") from exc
    if (after is not None and not isinstance(after, str)) or (base is not None and not isinstance(base, int)):
        raise ValueError(f"not an archivemap cursor: {cursor!r}")
    return after, skip, base
