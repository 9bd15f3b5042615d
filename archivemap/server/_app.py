"""Routing and endpoint logic of the NOMAD API v1 subset (spec §5.2), free of HTTP details.

:class:`Api` maps ``(method, path, query, headers, body)`` to a :class:`Response`; the HTTP
handler in :mod:`archivemap.server._http` does sockets, faults and the request log.
"""

from __future__ import annotations

import dataclasses
import traceback
import urllib.parse
from collections.abc import Mapping
from typing import Any

from archivemap.server._auth import TokenStore
from archivemap.server._faults import FaultInjector
from archivemap.server._problems import ApiProblem, validation_item, validation_problem
from archivemap.server._query import (
    OWNERS,
    compile_query,
    filter_metadata,
    paginate,
    parse_pagination,
)
from archivemap.server._required import read_required
from archivemap.server._store import Entry, EntryStore

__all__ = ["Api", "Request", "Response"]

_NOT_FOUND = "The entry does not exist or is not visible to you."
_AUTH_REQUIRED = "Authentication required."
_BEARER = {"WWW-Authenticate": "Bearer"}


@dataclasses.dataclass(frozen=True)
class Request:
    """A parsed request as the endpoints see it.

    Attributes:
        method: upper-case HTTP method.
        path: the path below the API base, no leading or trailing slash.
        query: URL query parameters (repeated parameters keep every value).
        authorization: the ``Authorization`` header value, or None.
        json: the parsed JSON body, or None.
        form: the parsed form body (``application/x-www-form-urlencoded``), or None.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    json: Any = None
    form: dict[str, str] | None = None


@dataclasses.dataclass
class Response:
    """An answer: status, JSON-able body, extra headers, and the fault that shaped it."""

    status: int
    body: Any
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    fault: str | None = None


def error_response(problem: ApiProblem) -> Response:
    """The NOMAD layout ``{"detail": ...}`` of an :class:`ApiProblem`."""
    fault = "page_size" if _is_page_size_fault(problem) else None
    return Response(problem.status, {"detail": problem.detail}, problem.headers, fault)


def _is_page_size_fault(problem: ApiProblem) -> bool:
    detail = problem.detail
    return (
        problem.status == 422
        and isinstance(detail, list)
        and bool(detail)
        and isinstance(detail[0], dict)
        and detail[0].get("type") == "less_than_equal"
    )


def internal_error(error: BaseException) -> Response:
    """NOMAD's 500 layout for an unexpected exception (no stack trace, just its last line)."""
    return Response(
        500,
        {
            "detail": {
                "reason": "Unexpected exception while handling your request",
                "exception": str(error),
                "exception_class": type(error).__name__,
                "exception_traceback": "".join(traceback.format_exception_only(type(error), error)).strip(),
            }
        },
    )


class Api:
    """The endpoints of the local NOMAD API.

    Args:
        store: the served entries.
        tokens: users and tokens.
        injector: fault state (only the page-size limit is an API concern).
        require_auth: when True every endpoint except ``POST auth/token`` needs a token.
    """

    def __init__(self, store: EntryStore, tokens: TokenStore, injector: FaultInjector, require_auth: bool) -> None:
        self.store = store
        self.tokens = tokens
        self.injector = injector
        self.require_auth = require_auth

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises (errors become NOMAD-style error answers)."""
        try:
            return self._route(request)
        except ApiProblem as problem:
            return error_response(problem)
        except Exception as error:  # the server must survive any input (incl. RecursionError)
            return internal_error(error)

    # -- routing -------------------------------------------------------------------------

    def _route(self, request: Request) -> Response:
        parts = [urllib.parse.unquote(part) for part in request.path.split("/")] if request.path else []
        if parts == ["auth", "token"]:
            return self._only(request, "POST", self._auth_token)
        user = self._user(request)
        if parts == ["auth", "app_token"]:
            return self._only(request, "GET", lambda r: self._app_token(r, user))
        if parts[:1] == ["entries"]:
            rest = parts[1:]
            if rest == ["query"]:
                return self._only(request, "POST", lambda r: self._entries_query(r, user))
            if rest == ["archive", "query"]:
                return self._only(request, "POST", lambda r: self._archives_query(r, user))
            if len(rest) == 1:
                return self._only(request, "GET", lambda r: self._entry_metadata(rest[0]))
            if len(rest) == 2 and rest[1] == "archive":
                return self._only(request, "GET", lambda r: self._entry_archive(rest[0], "*"))
            if len(rest) == 3 and rest[1:] == ["archive", "download"]:
                return self._only(request, "GET", lambda r: self._download(rest[0]))
            if len(rest) == 3 and rest[1:] == ["archive", "query"]:
                return self._only(request, "POST", lambda r: self._entry_archive_query(r, rest[0]))
        if parts[:1] == ["uploads"] and len(parts) >= 4 and parts[2] == "archive":
            upload_id = parts[1]
            if parts[3] == "mainfile" and len(parts) > 4:
                mainfile = "/".join(parts[4:])
                entry_id = self.store.entry_id_for_mainfile(upload_id, mainfile) or ""
                return self._only(request, "GET", lambda r: self._entry_archive(entry_id, "*", upload_id))
            if len(parts) == 4:
                return self._only(request, "GET", lambda r: self._entry_archive(parts[3], "*", upload_id))
        return Response(404, {"detail": "Not Found"})

    @staticmethod
    def _only(request: Request, method: str, endpoint: Any) -> Response:
        if request.method != method:
            return Response(405, {"detail": "Method Not Allowed"}, {"Allow": method})
        response: Response = endpoint(request)
        return response

    def _user(self, request: Request) -> str | None:
        """The authenticated user; a bad token is a 401 even where anonymous access is fine."""
        header = request.authorization
        if header is None:
            if self.require_auth:
                raise ApiProblem(401, _AUTH_REQUIRED, _BEARER)
            return None
        scheme, _, token = header.partition(" ")
        user = self.tokens.user_for(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if user is None:
            raise ApiProblem(401, _AUTH_REQUIRED, _BEARER)
        return user

    # -- auth ----------------------------------------------------------------------------

    def _auth_token(self, request: Request) -> Response:
        form = request.form or {}
        grant_type = form.get("grant_type")
        needed = ["grant_type"] + (["refresh_token"] if grant_type == "refresh_token" else ["username", "password"])
        missing = [name for name in needed if not form.get(name)]
        if missing:
            raise ApiProblem(
                422, [validation_item(["body", name], "Field required", "missing", None) for name in missing]
            )
        if grant_type == "refresh_token":
            answer = self.tokens.refresh(form["refresh_token"])
            if answer is None:
                raise ApiProblem(401, "Invalid refresh token", _BEARER)
            return Response(200, answer, {"Cache-Control": "no-store"})
        if grant_type != "password":
            raise validation_problem(
                ["body", "grant_type"], "String should match pattern '^password$'",
                "string_pattern_mismatch", grant_type, {"pattern": "^password$"},
            )
        if not self.tokens.check_password(form["username"], form["password"]):
            raise ApiProblem(401, "Incorrect username or password", _BEARER)
        return Response(200, self.tokens.issue(form["username"]), {"Cache-Control": "no-store"})

    def _app_token(self, request: Request, user: str | None) -> Response:
        if user is None:
            raise ApiProblem(401, _AUTH_REQUIRED, _BEARER)
        values = request.query.get("expires_in")
        if not values:
            raise validation_problem(["query", "expires_in"], "Field required", "missing", None)
        try:
            expires_in = int(values[0])
        except ValueError:
            raise validation_problem(
                ["query", "expires_in"], "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing", values[0],
            ) from None
        maximum = self.tokens.app_token_max_expires_in
        if expires_in <= 0 or expires_in > maximum:
            raise validation_problem(
                ["query", "expires_in"], f"expires_in must be between 1 and {maximum} seconds",
                "value_error", expires_in, {"le": maximum},
            )
        return Response(200, {"app_token": self.tokens.issue_app_token(user, expires_in)})

    # -- entries -------------------------------------------------------------------------

    def _body(self, request: Request) -> dict[str, Any]:
        body = {} if request.json is None else request.json
        if not isinstance(body, dict):
            raise validation_problem(
                ["body"], "Input should be a valid dictionary or object to extract fields from",
                "model_attributes_type", body,
            )
        return body

    def _owner(self, body: Mapping[str, Any], user: str | None, archive: bool) -> str:
        owner = body.get("owner", "public")
        if owner not in OWNERS:
            expected = ", ".join(f"'{name}'" for name in OWNERS[:-1]) + f" or '{OWNERS[-1]}'"
            raise validation_problem(
                ["body", "owner"], f"Input should be {expected}", "enum", owner, {"expected": expected}
            )
        if owner in ("shared", "user", "staging", "admin") and user is None:
            raise ApiProblem(401, f"Authentication required for owner value {owner}", _BEARER)
        if owner == "admin":
            raise ApiProblem(403, "This can only be used by the admin user.")
        if owner == "all" and archive:
            raise ApiProblem(403, "The owner value 'all' is not allowed for archive requests.")
        return str(owner)

    def _search(self, body: Mapping[str, Any]) -> tuple[Any, Any]:
        pagination = parse_pagination(body.get("pagination"), self.injector.max_page_size())
        predicate = compile_query(body.get("query"), self.store)
        return pagination, paginate(self.store, predicate, pagination)

    @staticmethod
    def _pagination_answer(pagination: Any, page: Any) -> dict[str, Any]:
        answer: dict[str, Any] = {**pagination.echo(), "total": page.total}
        if page.next_page_after_value is not None:
            answer["next_page_after_value"] = page.next_page_after_value
        return answer

    def _entries_query(self, request: Request, user: str | None) -> Response:
        body = self._body(request)
        owner = self._owner(body, user, archive=False)
        required = body.get("required")
        filter_metadata({}, required)  # validate before searching
        pagination, page = self._search(body)
        answer: dict[str, Any] = {
            "owner": owner,
            "query": body.get("query") or {},
            "pagination": self._pagination_answer(pagination, page),
        }
        if required is not None:
            answer["required"] = required
        answer["data"] = [filter_metadata(entry.metadata, required) for entry in page.entries]
        return Response(200, answer)

    def _archives_query(self, request: Request, user: str | None) -> Response:
        body = self._body(request)
        owner = self._owner(body, user, archive=True)
        required = body.get("required", "*")
        pagination, page = self._search(body)
        data = [self._archive_data(entry, required) for entry in page.entries]
        answer = {
            "owner": owner,
            "query": body.get("query") or {},
            "pagination": self._pagination_answer(pagination, page),
            "required": required,
            "data": data,
        }
        return Response(200, answer)

    def _entry(self, entry_id: str, upload_id: str | None = None) -> Entry:
        entry = self.store.get(entry_id)
        if entry is None or (upload_id is not None and entry.upload_id != upload_id):
            raise ApiProblem(404, _NOT_FOUND)
        return entry

    def _archive_data(self, entry: Entry, required: Any) -> dict[str, Any]:
        archive = read_required(
            required, entry.archive, entry_id=entry.entry_id, upload_id=entry.upload_id, lookup=self.store
        )
        return {
            "entry_id": entry.entry_id,
            "upload_id": entry.upload_id,
            "parser_name": entry.parser_name,
            "archive": archive,
        }

    def _entry_metadata(self, entry_id: str) -> Response:
        entry = self._entry(entry_id)
        return Response(200, {"entry_id": entry.entry_id, "required": {}, "data": entry.metadata})

    def _entry_archive(self, entry_id: str, required: Any, upload_id: str | None = None) -> Response:
        entry = self._entry(entry_id, upload_id)
        return Response(200, {"entry_id": entry.entry_id, "required": required, "data": self._archive_data(entry, required)})

    def _entry_archive_query(self, request: Request, entry_id: str) -> Response:
        body = self._body(request)
        return self._entry_archive(entry_id, body.get("required", "*"))

    def _download(self, entry_id: str) -> Response:
        entry = self._entry(entry_id)
        return Response(200, entry.archive)
