"""Reading an answer's body: streamed, size-limited, decoded in bounded steps, under the deadline.

Why a module of its own: the body is where a hostile or broken server does its damage. A body
is counted on the wire and again after gzip or deflate decoding, so a compression bomb is
abandoned after at most one decoding step past the limit (:class:`Decoder`); reads return what
the socket has, so the deadline is checked between the few bytes a slow server drips, and a
watchdog ends the one read that waits (:func:`~archivemap.remote._transport.watchdog`).

The exceptions here are signals between the reader and the client's retry loop, never shown to
a caller: :class:`Dropped` and :class:`TruncatedBody` are worth another attempt,
:class:`TooLarge` becomes :class:`~archivemap.errors.ResponseTooLargeError`.
"""

from __future__ import annotations

import functools
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any, Final

import requests
import urllib3

from archivemap._json import parse_json
from archivemap.errors import ArchiveDataError, MalformedResponseError, ResponseTooLargeError
from archivemap.remote._transport import DeadlineExceeded, watchdog

__all__ = ["ERROR_BODY_MAX", "Decoder", "Dropped", "TooLarge", "TruncatedBody", "parse_body", "read_body"]

#: Bytes asked of the socket per read while streaming a body.
_CHUNK: Final = 64 * 1024
#: Most bytes decoded per decompression step (bounds memory between limit checks).
_DECODE_STEP: Final = 1024 * 1024
#: Error answers are only read for their ``detail``: more than this is cut off, not an error.
ERROR_BODY_MAX: Final = 1024 * 1024


class TruncatedBody(Exception):
    """A 2xx answer whose body is not complete JSON (cut off in transit)."""


class Dropped(Exception):
    """The connection broke or stalled while the body was read: worth another attempt."""


class TooLarge(Exception):
    """The body passed the size limit (on the wire or decoded)."""


def parse_body(content: bytes | bytearray) -> Any:
    """An answer's JSON, read as archives are (exact big integers, NaN); cut or not JSON:
    :class:`TruncatedBody`, which the caller tells apart from a malformed answer."""
    try:
        return parse_json(content)
    except ArchiveDataError as exc:
        raise TruncatedBody(str(exc)) from None


class Decoder:
    """Bounded ``Content-Encoding`` decoding: never more output than the room left.

    ``zlib``'s ``max_length`` keeps each step to :data:`_DECODE_STEP` bytes, so a bomb is
    detected after at most one step past the limit, not after it has been inflated.
    Supports identity, gzip (several members too) and deflate (zlib-wrapped or raw, as
    servers disagree); anything else, or stacked codings, is refused, which is why the client
    only ever sends ``Accept-Encoding: gzip, deflate``.
    """

    def __init__(self, header: str) -> None:
        codings = [c.strip().lower() for c in header.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise ValueError(f"unsupported Content-Encoding {header!r}")
        self.kind = codings[0] if codings else None
        self._started = False
        self._later_member = False  # inside a second or later gzip member
        self._swallow = False  # trailing garbage after a complete gzip member: ignored
        self._z: Any = None
        if self.kind in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.kind == "deflate":
            self._z = zlib.decompressobj()

    def feed(self, data: bytes, out: bytearray, limit: int) -> None:
        """Decode ``data`` onto ``out``; raise :class:`TooLarge` once ``out`` passes ``limit``."""
        if self._z is None:
            if len(out) + len(data) > limit:
                raise TooLarge
            out += data
            return
        while data and not self._swallow:
            try:
                chunk = self._z.decompress(data, _DECODE_STEP)
            except zlib.error:
                if self._later_member:
                    # what other gzip clients (urllib3, browsers) do with junk after a member
                    self._swallow = True
                    return
                if self.kind == "deflate" and not self._started:
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, no zlib header
                    self._started = True
                    continue
                raise
            self._started = True
            out += chunk
            if len(out) > limit:
                raise TooLarge
            data = self._z.unconsumed_tail
            if not data and self._z.eof and self._z.unused_data and self.kind != "deflate":
                data = self._z.unused_data  # a further gzip member
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._later_member = True

    def finish(self, out: bytearray, limit: int) -> None:
        """Flush the decoder; raise :class:`Dropped` for a compressed stream cut short."""
        if self._z is None or self._swallow:
            return
        out += self._z.flush()
        if len(out) > limit:
            raise TooLarge
        if self._started and not self._z.eof:
            raise Dropped("compressed body ended early")


def read_body(
    response: requests.Response,
    deadline: float | None,
    limit: int,
    method: str,
    scrub: Callable[[Any], Any],
    *,
    cut: bool = False,
) -> tuple[bytearray, bool]:
    """Stream a body into memory under ``limit`` bytes (wire and decoded) and the deadline.

    Reads return whatever the socket has (``read1``), so the deadline is checked between
    every few bytes a slow server drips; a watchdog shuts the socket down at the deadline
    for a server that sends nothing at all. With ``cut``, a body past the limit is cut
    there (error answers are read for their detail only) instead of refused.

    Args:
        response: a streamed (``stream=True``) answer.
        deadline: the monotonic time the call must end by (``None``: none).
        limit: the most bytes accepted, on the wire and decoded.
        method: the request's method, for messages.
        scrub: takes the client's credentials out of a message (the URL may hold them).
        cut: cut a body past ``limit`` instead of refusing it.

    Returns:
        The body, and whether it was read to its end (only then may the connection be
        reused).

    Raises:
        ResponseTooLargeError: the body passed ``limit`` (without ``cut``).
        MalformedResponseError: an unsupported or corrupt content encoding.
        Dropped: the connection broke or stalled mid-body (retryable).
        DeadlineExceeded: the deadline passed.
    """
    url = response.url
    try:
        decoder = Decoder(response.headers.get("Content-Encoding", ""))
    except ValueError as exc:
        raise MalformedResponseError(f"{method} answer: {exc}", scrub(url)) from None
    out = bytearray()
    wire = 0
    fired = threading.Event()
    timer = watchdog(response, deadline, fired)
    try:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded
            try:
                data = response.raw.read1(_CHUNK, decode_content=False)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                if fired.is_set():
                    raise DeadlineExceeded from None
                raise Dropped(f"connection broken while reading the body: {exc}") from None
            if fired.is_set():
                raise DeadlineExceeded
            if not data:
                break
            wire += len(data)
            feed = functools.partial(decoder.feed, data, out, limit)
            if not _decode(feed, wire > limit, out, cut, method, url, limit, decoder.kind, scrub):
                return out, False
        finish = functools.partial(decoder.finish, out, limit)
        if not _decode(finish, False, out, cut, method, url, limit, decoder.kind, scrub):
            return out, False
        return out, True
    finally:
        if timer is not None:
            timer.cancel()


def _decode(
    step: Callable[[], None],
    over: bool,
    out: bytearray,
    cut: bool,
    method: str,
    url: str,
    limit: int,
    kind: str | None,
    scrub: Callable[[Any], Any],
) -> bool:
    """Run one decoding step of :func:`read_body`; ``False`` when the body was cut at
    ``limit`` (``cut``), the typed error when it is too large or corrupt."""
    try:
        if over:  # more than the limit on the wire already
            raise TooLarge
        step()
        return True
    except TooLarge:
        if cut:
            del out[limit:]
            return False
        raise ResponseTooLargeError(
            f"{method} answer exceeds the limit of {limit} bytes"
            f"{' once decompressed' if kind and not over else ''} (Client(max_response_bytes=...))",
            scrub(url),
            limit,
        ) from None
    except zlib.error as exc:
        raise MalformedResponseError(f"{method} answer: corrupt {kind} body: {exc}", scrub(url)) from None
