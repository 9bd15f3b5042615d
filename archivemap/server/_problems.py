"""The server's internal "answer with this error" signal and NOMAD's error body layouts.

An :class:`ApiProblem` never leaves the server: the handler turns it into an HTTP response.
It lives here rather than in :mod:`archivemap.errors` because it is control flow of the
fixture, not an error a library user catches; what users see is the HTTP answer, which the
client maps onto :class:`archivemap.errors.HTTPStatusError` subclasses.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiProblem", "validation_item", "validation_problem"]


class ApiProblem(Exception):
    """An error answer: HTTP status, NOMAD ``detail`` and optional extra headers.

    Attributes:
        status: the HTTP status to answer with.
        detail: the value of the body's ``detail`` key (string, list of items or dict).
        headers: extra response headers (``WWW-Authenticate``, ``Retry-After``).
    """

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(f"{status}: {detail!r}")


def validation_item(
    loc: list[Any],
    msg: str,
    type_: str | None = None,
    input_: Any = None,
    ctx: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one pydantic-v2 style validation item (spec §5.8).

    NOMAD's hand-made 422s (``required`` keys, unknown quantities) have no ``type``; pass
    ``type_=None`` for those and only ``msg``/``loc`` are written.
    """
    if type_ is None:
        return {"msg": msg, "loc": loc}
    item: dict[str, Any] = {"type": type_, "loc": loc, "msg": msg, "input": input_}
    if ctx is not None:
        item["ctx"] = ctx
    return item


def validation_problem(
    loc: list[Any],
    msg: str,
    type_: str | None = None,
    input_: Any = None,
    ctx: dict[str, Any] | None = None,
) -> ApiProblem:
    """A 422 with a single validation item."""
    return ApiProblem(422, [validation_item(loc, msg, type_, input_, ctx)])
