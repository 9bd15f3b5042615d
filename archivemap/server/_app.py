"""Routing and endpoint logic of the NOMAD API v1 subset (spec §5.2), free of HTTP details.

:class:`Api` maps a :class:`Request` to a :class:`Response`; the HTTP handler in
:mod:`archivemap.server._http` does sockets, limits, faults and the request log. The
endpoints follow NOMAD 2.0.0's entries router: request-model validation first (all field
errors in one 422), then the owner, the query against the search document, pagination,
``required``, and the answer in NOMAD's response models.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from archivemap._json import parse_json
from archivemap.errors import ArchiveDataError
from archivemap.server._aggregations import aggregate, check_aggregations
from archivemap.server._auth import TokenStore, missing_scopes_detail, required_scope
from archivemap.server._faults import FaultInjector
from archivemap.server._problems import ApiProblem, validation_item, validation_problem
from archivemap.server._query import (
    OWNERS,
    Pagination,
    SearchFields,
    check_order_by,
    compile_query,
    filter_metadata,
    paginate,
    parse_metadata_required,
    parse_pagination,
    query_from_parameters,
    url_with,
)
from archivemap.server._required import read_required, split_required
from archivemap.server._store import Entry, EntryStore
from archivemap.server._uploads import (
    MAX_ENTRY_DOWNLOAD,
    RawFiles,
    UploadIndex,
    byte_range,
    page_answer,
    parse_page,
    zip_files,
    zip_name,
)

__all__ = ["MAX_JSON_DEPTH", "Api", "Request", "Response", "internal_error"]

#: Request bodies nested deeper than this are refused (422) before any endpoint sees them.
MAX_JSON_DEPTH = 64

_NOT_FOUND = "The entry does not exist or is not visible to you."
_NOT_FOUND_METADATA = "The entry with the given id does not exist or is not visible to you."
_AUTH_REQUIRED = "Authentication required."
_BEARER = {"WWW-Authenticate": "Bearer"}
_OWNER_ALL = (
    "The owner=all is not allowed for this operation as it will search for entries "
    "that you might now be allowed to access."
)
_OWNER_EXPECTED = ", ".join(f"'{name}'" for name in OWNERS[:-1]) + f" or '{OWNERS[-1]}'"
_PAGINATION_PARAMETERS = ("page_size", "order_by", "order", "page_after_value", "page", "page_offset")
# The user behind the server's static token (LocalServer(token=...)).
_TOKEN_USER = "token-user"


@dataclasses.dataclass(frozen=True)
class Request:
    """A parsed request as the endpoints see it.

    Attributes:
        method: upper-case HTTP method.
        path: the path below the API base, no leading or trailing slash.
        query: URL query parameters (repeated parameters keep every value).
        authorization: the ``Authorization`` header value, or None.
        body: the raw request body.
        content_type: the media type of the body (lower case, no parameters), or "".
        url: the request URL as the client addressed it (for NOMAD's ``page_url``).
        range: the ``Range`` header (raw file downloads), or None.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    body: bytes = b""
    content_type: str = ""
    url: str = ""
    range: str | None = None


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
    """NOMAD's 500 layout (``reason``, ``exception``, ``exception_class``, and a traceback).

    Where the ``required`` reader fails on purpose, because NOMAD's fails on the same spec,
    the traceback field carries that explanation instead of a stack.
    """
    explanation = getattr(error, "nomad_explanation", None)
    if isinstance(explanation, str):
        trace = (
            f"{type(error).__name__}: {error}\n{explanation}\n"
            "(archivemap local server: NOMAD 2.0.0 answers this request with the same 500.)"
        )
    else:
        trace = "".join(traceback.format_exception_only(type(error), error)).strip()
    return Response(
        500,
        {
            "detail": {
                "reason": "Unexpected exception while handling your request",
                "exception": str(error),
                "exception_class": type(error).__name__,
                "exception_traceback": trace,
            }
        },
    )


# what can change the nesting depth of JSON text: brackets, and the quotes and backslashes
# that tell brackets inside strings from the others
_STRUCTURE = re.compile(rb'["\\\[\]{}]')


def _nesting_exceeds(raw: bytes, limit: int) -> bool:
    """Whether JSON text nests deeper than ``limit``, read off the text before any parser.

    Parsers recurse on the C stack (msgspec and the stdlib about 350 B a level): a body a
    thousand levels deep would overflow a thread stack of 128-256 kB (musl's default) and
    take the whole server down, where the client must get a 422. Linear, brackets only.
    """
    depth = 0
    in_string = False
    escaped = -1  # the position a backslash escapes
    for match in _STRUCTURE.finditer(raw):
        at = match.start()
        if at == escaped:
            continue
        char = raw[at]
        if in_string:
            if char == 0x5C:  # backslash
                escaped = at + 1
            elif char == 0x22:  # quote
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        else:  # ] }
            depth -= 1
    return False


def _too_deep() -> ApiProblem:
    return ApiProblem(
        422,
        [
            validation_item(
                ["body"], f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)", "json_invalid", {},
                {"error": "nesting limit exceeded"},
            )
        ],
    )


def _json_error(raw: bytes) -> ApiProblem:
    """FastAPI's 422 for a body that is no JSON (position and message of Python's parser)."""
    try:
        json.loads(raw.decode("utf-8", "replace"))
    except json.JSONDecodeError as error:
        return ApiProblem(
            422, [validation_item(["body", error.pos], "JSON decode error", "json_invalid", {}, {"error": error.msg})]
        )
    except (ValueError, RecursionError):
        pass
    return ApiProblem(422, [validation_item(["body", 0], "JSON decode error", "json_invalid", {}, {"error": "Invalid JSON"})])


class Api:
    """The endpoints of the local NOMAD API.

    Args:
        store: the served entries.
        tokens: users and tokens.
        injector: fault state (only the page-size limit is an API concern).
        require_auth: when True every endpoint except ``POST auth/token`` needs a token.
        token: a static bearer token every request must carry, or None.
        raw: the raw-files folder (``<raw>/<upload_id>/<path>``), or None.
    """

    def __init__(
        self,
        store: EntryStore,
        tokens: TokenStore,
        injector: FaultInjector,
        require_auth: bool,
        token: str | None = None,
        raw: str | Path | None = None,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.injector = injector
        self.require_auth = require_auth
        self._token = token
        self.raw = RawFiles(raw)
        self._index: UploadIndex | None = None

    @property
    def index(self) -> UploadIndex:
        """Uploads, datasets and users of the store (derived on first use)."""
        if self._index is None:
            self._index = UploadIndex(self.store)
        return self._index

    @property
    def fields(self) -> SearchFields:
        """The search document's quantities."""
        return SearchFields.for_store(self.store)

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
        if self._token is not None:
            self._check_static_token(request)
        if parts == ["auth", "token"]:
            return self._only(request, "POST", self._auth_token)
        user = self._user(request)
        if parts == ["auth", "app_token"]:
            return self._only(request, "GET", lambda r: self._app_token(r, user))
        if parts == ["entries"]:
            return self._only(request, "GET", lambda r: self._entries_get(r, user))
        if parts == ["entries", "raw"]:
            return self._only(request, "GET", lambda r: self._entries_raw(self._body_from_parameters(r.query), user))
        if parts == ["entries", "raw", "query"]:
            return self._only(request, "POST", lambda r: self._entries_raw(self._json_body(r), user))
        if parts[:1] == ["entries"] and len(parts) >= 3 and parts[2] == "raw":
            entry_id, inner = parts[1], "/".join(parts[3:])
            return self._only(request, "GET", lambda r: self._entry_raw(r, entry_id, inner))
        found = self._route_uploads(request, parts, user)
        if found is not None:
            return found
        if parts[:1] == ["entries"]:
            rest = parts[1:]
            if rest == ["query"]:
                return self._only(request, "POST", lambda r: self._entries_query(r, user))
            if rest == ["archive", "query"]:
                return self._only(request, "POST", lambda r: self._archives_query(r, user))
            if rest == ["archive"]:
                return self._only(request, "GET", lambda r: self._archives_get(r, user))
            if len(rest) == 1:
                return self._only(request, "GET", lambda r: self._entry_metadata(r, rest[0]))
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

    def _route_uploads(self, request: Request, parts: list[str], user: str | None) -> Response | None:
        """Uploads, datasets, users and upload raw files; None for other paths."""
        head, rest = (parts[0] if parts else ""), parts[1:]
        if head == "uploads" and not rest:
            return self._only(request, "GET", lambda r: self._uploads_list(r, user))
        if head == "uploads" and len(rest) == 1:
            return self._only(request, "GET", lambda r: Response(200, {"upload_id": rest[0], "data": self.index.upload(rest[0])}))
        if head == "uploads" and len(rest) == 2 and rest[1] == "entries":
            return self._only(request, "GET", lambda r: self._upload_entries(r, rest[0]))
        if head == "uploads" and len(rest) >= 2 and rest[1] == "raw":
            return self._only(request, "GET", lambda r: self._upload_raw(r, rest[0], "/".join(rest[2:])))
        if head == "datasets" and not rest:
            return self._only(request, "GET", self._datasets_list)
        if head == "datasets" and len(rest) == 1:
            return self._only(request, "GET", lambda r: Response(200, {"dataset_id": rest[0], "data": self.index.dataset(rest[0])}))
        if head == "users" and not rest:
            return self._only(request, "GET", self._users_list)
        if head == "users" and rest == ["me"]:
            return self._only(request, "GET", lambda r: self._user_me(user))
        if head == "users" and len(rest) == 1:
            return self._only(request, "GET", lambda r: Response(200, self.index.user(rest[0])))
        return None

    def _check_scopes(self, request: Request) -> None:
        """NOMAD 2.0's scope check for personal access tokens: 403 naming the missing scope.

        Runs for matched routes only, after the method check and before the body is read, as
        NOMAD's ``get_current_user([...])`` dependency does.
        """
        scheme, _, token = (request.authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return
        scopes = self.tokens.scopes_for(token.strip())
        needed = required_scope(request.path)
        if scopes is None or needed is None or needed in scopes:
            return
        raise ApiProblem(403, missing_scopes_detail([needed]))

    def _only(self, request: Request, method: str, endpoint: Callable[[Request], Response]) -> Response:
        if request.method != method:
            return Response(405, {"detail": "Method Not Allowed"}, {"Allow": method})
        self._check_scopes(request)
        return endpoint(request)

    def _check_static_token(self, request: Request) -> None:
        assert self._token is not None
        scheme, _, given = (request.authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), self._token.encode()):
            raise ApiProblem(401, _AUTH_REQUIRED, _BEARER)

    def _user(self, request: Request) -> str | None:
        """The authenticated user; a bad token is a 401 even where anonymous access is fine."""
        if self._token is not None:
            return _TOKEN_USER
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

    # -- bodies --------------------------------------------------------------------------

    def _json_body(self, request: Request) -> dict[str, Any]:
        """The JSON object body of a request, validated like FastAPI does for a body model."""
        raw = request.body
        if not raw:
            raise ApiProblem(422, [validation_item(["body"], "Field required", "missing", None)])
        kind = request.content_type
        if kind and not (kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))):
            # FastAPI hands a non-JSON body to the model as it is: never silently a form.
            text = raw.decode("utf-8", "replace")
            raise ApiProblem(
                422,
                [
                    validation_item(
                        ["body"], "Input should be a valid dictionary or object to extract fields from", "model_attributes_type", text
                    )
                ],
            )
        if _nesting_exceeds(raw, MAX_JSON_DEPTH):
            raise _too_deep()
        try:
            body = parse_json(raw)
        except ArchiveDataError:
            raise _json_error(raw) from None
        if not isinstance(body, dict):
            raise validation_problem(
                ["body"], "Input should be a valid dictionary or object to extract fields from", "model_attributes_type", body
            )
        return body

    # -- auth ----------------------------------------------------------------------------

    def _auth_token(self, request: Request) -> Response:
        form: dict[str, str] = {}
        if request.content_type == "application/x-www-form-urlencoded":
            form = dict(urllib.parse.parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
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

    # -- request models ------------------------------------------------------------------

    @staticmethod
    def _owner_errors(owner: Any, loc: list[Any], errors: list[dict[str, Any]]) -> str:
        if owner is None:
            return "public"
        if owner not in OWNERS:
            errors.append(
                validation_item(loc, f"Input should be {_OWNER_EXPECTED}", "enum", owner, {"expected": _OWNER_EXPECTED})
            )
            return "public"
        return str(owner)

    def _search_model(
        self, body: Mapping[str, Any], loc: str = "body", archive: bool = False
    ) -> tuple[str, Any, Pagination, Any]:
        """Validate owner, query (model level), pagination and ``required`` together.

        Returns:
            ``(owner, query, pagination, required)``; ``required`` is validated for the
            endpoint kind (archive: string or object; metadata: include/exclude).
        """
        errors: list[dict[str, Any]] = []
        owner = self._owner_errors(body.get("owner"), [loc, "owner"], errors)
        query = body.get("query")
        try:
            if query is not None:
                compile_query(query, None)
        except ApiProblem as problem:
            errors.extend(problem.detail if isinstance(problem.detail, list) else [])
        pagination = Pagination()
        try:
            pagination = parse_pagination(body.get("pagination"), self.injector.max_page_size())
        except ApiProblem as problem:
            errors.extend(problem.detail)
        if not archive:
            errors.extend(check_aggregations(body.get("aggregations")))
        required = body.get("required")
        try:
            if not archive:
                required = parse_metadata_required(required)
            elif required is not None and not isinstance(required, (str, dict)):
                split_required(required)  # the request model's union errors
        except ApiProblem as problem:
            errors.extend(problem.detail)
        if errors:
            raise ApiProblem(422, errors)
        return owner, query, pagination, required

    def _check_owner(self, owner: str, user: str | None, archive: bool) -> None:
        if archive and owner == "all":
            raise ApiProblem(403, _OWNER_ALL)
        if owner in ("shared", "user", "staging", "admin") and user is None:
            raise ApiProblem(401, f"Authentication required for owner={owner!r}.", _BEARER)
        if owner == "admin":
            raise ApiProblem(403, "This can only be used by the admin user.")

    def _search(self, owner: str, query: Any, pagination: Pagination, user: str | None, archive: bool) -> tuple[Any, Any, list[Entry]]:
        """The search: owner, query against the search document, order_by, one page.

        Returns:
            ``(query echo, page, all matching entries)``.
        """
        self._check_owner(owner, user, archive)
        fields = self.fields
        compiled = compile_query(query, fields)
        check_order_by(pagination, fields)
        matching = [entry for entry in self.store.entries if compiled.predicate(entry)]
        return compiled.echo, paginate(matching, pagination), matching

    def _select(self, query: Any) -> list[Entry]:
        """The served entries a (validated) query selects."""
        predicate = compile_query(query, self.fields).predicate
        return [entry for entry in self.store.entries if predicate(entry)]

    @staticmethod
    def _pagination_answer(pagination: Pagination, page: Any, request: Request | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = {**pagination.echo(), "total": page.total}
        if page.next_page_after_value is not None:
            answer["next_page_after_value"] = page.next_page_after_value
        if request is not None and request.url:
            answer.update(_page_urls(request.url, pagination, page.next_page_after_value))
        return answer

    # -- entries -------------------------------------------------------------------------

    def _entries_query(self, request: Request, user: str | None) -> Response:
        body = self._json_body(request)
        return self._metadata_search(body, user, request=None)

    def _entries_get(self, request: Request, user: str | None) -> Response:
        body = self._body_from_parameters(request.query)
        required: dict[str, Any] = {}
        for name in ("include", "exclude"):
            if name in request.query:
                required[name] = list(request.query[name])
        if required:
            body["required"] = required
        return self._metadata_search(body, user, request=request, loc="query")

    def _body_from_parameters(self, params: dict[str, list[str]]) -> dict[str, Any]:
        """A request body equivalent to ``GET`` parameters (owner, query, pagination)."""
        body: dict[str, Any] = {"owner": params.get("owner", ["public"])[0]}
        query = query_from_parameters(params, self.fields)
        if query:
            body["query"] = query
        pagination = {name: params[name][0] for name in _PAGINATION_PARAMETERS if name in params}
        if pagination:
            body["pagination"] = pagination
        return body

    def _metadata_search(self, body: Mapping[str, Any], user: str | None, request: Request | None, loc: str = "body") -> Response:
        owner, query, pagination, required = self._search_model(body, loc)
        aggregations = body.get("aggregations")
        echo, page, matching = self._search(owner, query, pagination, user, archive=False)
        answer: dict[str, Any] = {"owner": owner, "query": echo, "pagination": self._pagination_answer(pagination, page, request)}
        if required is not None:
            answer["required"] = required
        found = aggregate(aggregations, query, matching, self.store.entries, self.fields, self._select)
        if found:
            answer["aggregations"] = found
        answer["data"] = [filter_metadata(entry.metadata, required) for entry in page.entries]
        return Response(200, answer)

    def _archives_query(self, request: Request, user: str | None) -> Response:
        body = self._json_body(request)
        return self._archive_search(body, user, None)

    def _archives_get(self, request: Request, user: str | None) -> Response:
        body = self._body_from_parameters(request.query)
        return self._archive_search(body, user, request)

    def _archive_search(self, body: Mapping[str, Any], user: str | None, request: Request | None) -> Response:
        owner, query, pagination, required = self._search_model(body, archive=True)
        if required is None:
            required = "*"
        echo, page, _ = self._search(owner, query, pagination, user, archive=True)
        split_required(required)  # resolve-inplace is checked once the search is done
        failing = self._failing_archive(entry.entry_id for entry in page.entries)
        if failing is not None:
            return failing
        data = [self._archive_data(entry, required) for entry in page.entries]
        answer = {
            "owner": owner,
            "query": echo,
            "pagination": self._pagination_answer(pagination, page, request),
            "required": required,
            "data": data,
        }
        return Response(200, answer)

    def _failing_archive(self, entry_ids: Iterable[str]) -> Response | None:
        """The injected 500 of ``Faults.fail_entries`` if an answer would include such an entry.

        NOMAD answers a whole ``entries/archive/query`` batch with 500 when it cannot render
        one archive in it (seen with ELN entries); this lets clients be tested against that.
        """
        failing = self.injector.failing_entries(entry_ids)
        if not failing:
            return None
        response = internal_error(RuntimeError(f"cannot render the archive of entry {failing[0]}"))
        response.fault = "entry_500"
        return response

    def _entry(self, entry_id: str, upload_id: str | None = None, detail: str = _NOT_FOUND) -> Entry:
        entry = self.store.get(entry_id)
        if entry is None or (upload_id is not None and entry.upload_id != upload_id):
            raise ApiProblem(404, detail)
        return entry

    def _archive_data(self, entry: Entry, required: Any) -> dict[str, Any]:
        archive = read_required(
            required,
            entry.archive,
            entry_id=entry.entry_id,
            upload_id=entry.upload_id,
            lookup=self.store,
            definitions=self.store.definitions,
        )
        return {
            "entry_id": entry.entry_id,
            "upload_id": entry.upload_id,
            "parser_name": entry.parser_name,
            "archive": archive,
        }

    def _entry_metadata(self, request: Request, entry_id: str) -> Response:
        raw_required = {name: list(request.query[name]) for name in ("include", "exclude") if name in request.query}
        required = parse_metadata_required(raw_required) or {}
        entry = self._entry(entry_id, detail=_NOT_FOUND_METADATA)
        return Response(200, {"entry_id": entry.entry_id, "required": required, "data": filter_metadata(entry.metadata, required)})

    def _entry_archive(self, entry_id: str, required: Any, upload_id: str | None = None) -> Response:
        entry = self._entry(entry_id, upload_id)
        split_required(required)
        failing = self._failing_archive([entry.entry_id])
        if failing is not None:
            return failing
        return Response(200, {"entry_id": entry.entry_id, "required": required, "data": self._archive_data(entry, required)})

    def _entry_archive_query(self, request: Request, entry_id: str) -> Response:
        body = self._json_body(request)
        required = body.get("required", "*")
        if required is None:
            required = "*"
        if not isinstance(required, (str, dict)):
            split_required(required)  # the request model's 422
        return self._entry_archive(entry_id, required)

    def _download(self, entry_id: str) -> Response:
        entry = self._entry(entry_id)
        return Response(200, entry.archive)

    # -- uploads, datasets, users ------------------------------------------------------------

    def _uploads_list(self, request: Request, user: str | None) -> Response:
        if user is None:  # NOMAD lists only the caller's uploads
            raise ApiProblem(401, _AUTH_REQUIRED, _BEARER)
        params = request.query
        page = parse_page(params, "upload_create_time", ("upload_create_time", "upload_id", "upload_name", "publish_time"))
        uploads = list(self.index.uploads.values())
        query: dict[str, Any] = {}
        if "upload_id" in params:
            query["upload_id"] = params["upload_id"]
            uploads = [u for u in uploads if u["upload_id"] in params["upload_id"]]
        if "upload_name" in params:
            query["upload_name"] = params["upload_name"]
            uploads = [u for u in uploads if u.get("upload_name") in params["upload_name"]]
        if "is_published" in params:
            wanted = params["is_published"][0].lower() in ("true", "1")
            query["is_published"] = wanted
            uploads = [u for u in uploads if u["published"] == wanted]
        info, data = page_answer(uploads, page, request.url)
        return Response(200, {"query": query, "pagination": info, "data": data})

    def _upload_entries(self, request: Request, upload_id: str) -> Response:
        upload = self.index.upload(upload_id)
        page = parse_page(request.query, "mainfile", ("mainfile", "entry_id", "parser_name", "process_status", "entry_create_time"))
        info, data = page_answer(self.index.upload_entries(upload_id), page, request.url)
        return Response(
            200,
            {"pagination": info, "processing_successful": upload["entries"], "processing_failed": 0, "upload": upload, "data": data},
        )

    def _datasets_list(self, request: Request) -> Response:
        params = request.query
        page = parse_page(params, "dataset_id", ("dataset_id", "dataset_name", "dataset_create_time"))
        datasets = list(self.index.datasets.values())
        query: dict[str, Any] = {}
        for name in ("dataset_id", "dataset_name", "user_id", "dataset_type", "doi"):
            if name in params:
                query[name] = params[name][0]
                datasets = [d for d in datasets if str(d.get(name)) in params[name]]
        info, data = page_answer(datasets, page, request.url)
        return Response(200, {"query": query, "pagination": info, "data": data})

    def _users_list(self, request: Request) -> Response:
        ids = request.query.get("user_id", [])
        return Response(200, {"data": [self.index.users[uid] for uid in dict.fromkeys(ids) if uid in self.index.users]})

    def _user_me(self, user: str | None) -> Response:
        if user is None:
            raise ApiProblem(401, _AUTH_REQUIRED, _BEARER)
        return Response(200, self.index.users.get(user) or {"user_id": user, "name": user, "username": user})

    # -- raw files ---------------------------------------------------------------------------

    def _entries_raw(self, body: Mapping[str, Any], user: str | None) -> Response:
        owner, query, pagination, _ = self._search_model(body)
        _, _, matching = self._search(owner, query, pagination, user, archive=False)
        if len(matching) > MAX_ENTRY_DOWNLOAD:
            raise ApiProblem(400, f"The limit of maximum number of entries in a single download ({MAX_ENTRY_DOWNLOAD}) has been exceeded ({len(matching)}).")
        files = [(f"{entry.upload_id}/{name}", real) for entry in matching for name, real in self.raw.entry_files(entry)]
        return _binary(zip_files(files), "application/zip", "raw.zip")

    def _entry_raw(self, request: Request, entry_id: str, inner: str) -> Response:
        entry = self._entry(entry_id)
        if not inner:
            files = self.raw.entry_files(entry)
            return _binary(zip_files(files), "application/zip", zip_name(entry.entry_id))
        folder = str(Path(entry.mainfile).parent) if "/" in entry.mainfile else ""
        return self._raw_file(request, entry.upload_id, f"{folder}/{inner}" if folder else inner)

    def _upload_raw(self, request: Request, upload_id: str, path: str) -> Response:
        self.index.upload(upload_id)
        return self._raw_file(request, upload_id, path)

    def _raw_file(self, request: Request, upload_id: str, path: str) -> Response:
        compress = request.query.get("compress", ["false"])[0].lower() in ("true", "1")
        real = self.raw.path(upload_id, path) if path else self.raw.upload_folder(upload_id)
        if real is not None and real.is_dir():
            if not compress:
                raise ApiProblem(404, "The requested path is a directory: use compress=true for a zip of it.")
            folder = self.raw.upload_folder(upload_id)
            assert folder is not None
            members = [(str(p.relative_to(folder)), p) for p in sorted(real.rglob("*")) if p.is_file() and self.raw.path(upload_id, str(p.relative_to(folder)))]
            return _binary(zip_files(members), "application/zip", f"{real.name or upload_id}.zip")
        real = self.raw.file(upload_id, path)
        offset = _int_param(request.query, "offset", 0)
        length = _int_param(request.query, "length", -1)
        size = real.stat().st_size
        start, end, partial = byte_range(request.range, size, offset, length)
        with real.open("rb") as stream:
            stream.seek(start)
            content = stream.read(end - start)
        headers = {"Accept-Ranges": "bytes"}
        if partial:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        response = _binary(content, "application/octet-stream", real.name, headers)
        if partial:
            response.status = 206
        return response


def _int_param(params: Mapping[str, list[str]], name: str, default: int) -> int:
    values = params.get(name)
    if not values:
        return default
    try:
        return int(values[0])
    except ValueError:
        raise validation_problem(
            ["query", name], "Input should be a valid integer, unable to parse string as an integer", "int_parsing", values[0]
        ) from None


def _binary(content: bytes, media_type: str, filename: str, headers: Mapping[str, str] | None = None) -> Response:
    """A non-JSON answer: the HTTP layer sends ``bytes`` bodies as they are."""
    quoted = urllib.parse.quote(filename)
    return Response(
        200,
        content,
        {"Content-Type": media_type, "Content-Disposition": f"attachment; filename*=UTF-8''{quoted}", **(headers or {})},
    )


def _page_urls(url: str, pagination: Pagination, next_value: str | None) -> dict[str, str]:
    """NOMAD's ``PaginationResponse.populate_urls`` for ``GET`` listings."""
    urls = {"page_url": url}
    if pagination.page_size:
        urls["first_page_url"] = url_with(url, page=None, page_after_value=None, page_offset=None)
    if next_value is not None:
        urls["next_page_url"] = url_with(url, page=None, page_after_value=next_value, page_offset=None)
    if pagination.page is not None and pagination.page > 1:
        urls["prev_page_url"] = url_with(url, page=pagination.page - 1, page_size=pagination.page_size, page_offset=None)
    return urls
