"""Uploads, datasets, users and raw files of the local server, derived from the served archives.

NOMAD keeps uploads, datasets and users in a database beside the search index; a folder of
archives has only what each archive's ``metadata`` says (``upload_id``, ``upload_create_time``,
``main_author``, ``coauthors``, ``datasets``, ``published``). That is enough for the read-only
endpoints a client reaches for, in NOMAD 2.0.0's response layouts, so code tested here calls
the same URLs and reads the same keys as against NOMAD.

Raw files come from a folder laid out like NOMAD's upload storage, ``<raw>/<upload_id>/<path>``
(by default a ``raw/`` folder beside the archives folder). Every path is resolved and must stay
inside its upload's folder (symbolic links included): a request can never read outside it.
Single byte ranges (``Range: bytes=a-b``) are answered with 206, as NOMAD's file endpoints do,
so clients can resume downloads.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from archivemap.server._problems import ApiProblem, validation_problem
from archivemap.server._query import url_with
from archivemap.server._store import Entry, EntryStore

__all__ = [
    "MAX_ENTRY_DOWNLOAD", "RawFiles", "UploadIndex", "byte_range", "page_answer", "parse_page", "zip_files", "zip_name",
]

#: NOMAD's ``max_entry_download``: raw zips of more entries are refused (400).
MAX_ENTRY_DOWNLOAD = 50_000
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")
_UPLOAD_NOT_FOUND = "The specified upload_id was not found."
_DATASET_NOT_FOUND = "The dataset with the given id does not exist."
_USER_NOT_FOUND = "The user with the given user_id does not exist."
_FILE_NOT_FOUND = "The requested file does not exist."


def _user_id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        found = value.get("user_id")
        return None if found is None else str(found)
    return None if value is None else str(value)


def _metadata(entry: Entry) -> Mapping[str, Any]:
    raw = entry.archive.get("metadata")
    return raw if isinstance(raw, Mapping) else {}


class UploadIndex:
    """Uploads, datasets and users as NOMAD's ``uploads``, ``datasets`` and ``users`` routers
    answer them, computed once from a store."""

    def __init__(self, store: EntryStore) -> None:
        by_upload: dict[str, list[Entry]] = {}
        for entry in store.entries:
            by_upload.setdefault(entry.upload_id, []).append(entry)
        self.entries_by_upload = {key: sorted(value, key=lambda e: e.mainfile) for key, value in by_upload.items()}
        self.uploads = {upload_id: _upload_document(upload_id, items) for upload_id, items in sorted(by_upload.items())}
        self.datasets: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        for entry in store.entries:
            metadata = _metadata(entry)
            owner = _user_id(metadata.get("main_author"))
            for value in metadata.get("datasets") or []:
                dataset = _dataset_document(value, owner, metadata.get("upload_create_time"))
                if dataset is not None:
                    self.datasets.setdefault(dataset["dataset_id"], dataset)
            for name in ("main_author", "coauthors", "reviewers", "entry_coauthors"):
                value = metadata.get(name)
                for person in value if isinstance(value, list) else [value]:
                    user_id = _user_id(person)
                    if user_id:
                        name_of = person.get("name") if isinstance(person, Mapping) else None
                        self.users.setdefault(user_id, {"user_id": user_id, "name": str(name_of or user_id)})

    def upload(self, upload_id: str) -> dict[str, Any]:
        """One upload's document; 404 in NOMAD's words for an unknown one."""
        found = self.uploads.get(upload_id)
        if found is None:
            raise ApiProblem(404, _UPLOAD_NOT_FOUND)
        return found

    def upload_entries(self, upload_id: str) -> list[dict[str, Any]]:
        """The ``GET uploads/{id}/entries`` items: processing state and ``entry_metadata``."""
        self.upload(upload_id)
        return [
            {
                "process_running": False,
                "process_status": "SUCCESS",
                "errors": [],
                "warnings": [],
                "entry_id": entry.entry_id,
                **({"entry_create_time": _metadata(entry)["entry_create_time"]} if "entry_create_time" in _metadata(entry) else {}),
                "mainfile": entry.mainfile,
                "upload_id": entry.upload_id,
                **({"parser_name": entry.parser_name} if entry.parser_name is not None else {}),
                "entry_metadata": entry.metadata,
            }
            for entry in self.entries_by_upload.get(upload_id, [])
        ]

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        """One dataset; 404 for an unknown one."""
        found = self.datasets.get(dataset_id)
        if found is None:
            raise ApiProblem(404, _DATASET_NOT_FOUND)
        return found

    def user(self, user_id: str) -> dict[str, Any]:
        """One user; 404 for an unknown one."""
        found = self.users.get(user_id)
        if found is None:
            raise ApiProblem(404, _USER_NOT_FOUND)
        return found


def _upload_document(upload_id: str, entries: Sequence[Entry]) -> dict[str, Any]:
    metadatas = [_metadata(entry) for entry in entries]
    first = metadatas[0] if metadatas else {}
    created = sorted(str(m["upload_create_time"]) for m in metadatas if m.get("upload_create_time"))
    owner = _user_id(first.get("main_author"))
    coauthors = [uid for uid in (_user_id(v) for v in first.get("coauthors") or []) if uid]
    reviewers = [uid for uid in (_user_id(v) for v in first.get("reviewers") or []) if uid]
    published = bool(first.get("published", False))
    document: dict[str, Any] = {
        "process_running": False,
        "current_process": "process_upload",
        "process_status": "SUCCESS",
        "errors": [],
        "warnings": [],
        "upload_id": upload_id,
    }
    if first.get("upload_name"):
        document["upload_name"] = first["upload_name"]
    if created:
        document["upload_create_time"] = created[0]
    if owner is not None:
        document["main_author"] = owner
    document.update(
        {
            "coauthors": coauthors,
            "coauthor_groups": [],
            "reviewers": reviewers,
            "reviewer_groups": [],
            "writers": [uid for uid in [owner, *coauthors] if uid],
            "writer_groups": [],
            "viewers": [uid for uid in [owner, *coauthors, *reviewers] if uid],
            "viewer_groups": [],
            "published": published,
            "published_to": [],
            "with_embargo": bool(first.get("with_embargo", False)),
            "embargo_length": int(first.get("embargo_length") or 0),
            "license": str(first.get("license") or "CC BY 4.0"),
            "entries": len(entries),
        }
    )
    if published and first.get("publish_time"):
        document["publish_time"] = first["publish_time"]
    return document


def _dataset_document(value: Any, owner: str | None, created: Any) -> dict[str, Any] | None:
    """A dataset from an entry's ``datasets`` item: an id (2.0) or an object (older archives)."""
    if isinstance(value, Mapping):
        dataset_id = value.get("dataset_id")
        if not dataset_id:
            return None
        document = {k: v for k, v in value.items() if v is not None}
        document["dataset_id"] = str(dataset_id)
        document.setdefault("dataset_name", str(dataset_id))
        document.setdefault("dataset_type", "owned")
        if owner is not None:
            document.setdefault("user_id", owner)
        return document
    if not isinstance(value, str) or not value:
        return None
    document = {"dataset_id": value, "dataset_name": value, "dataset_type": "owned"}
    if owner is not None:
        document["user_id"] = owner
    if created:
        document["dataset_create_time"] = str(created)
    return document


# -- pagination of the upload/dataset listings (page numbers, index cursors) ---------------------


def parse_page(params: Mapping[str, list[str]], default_order_by: str, orderable: Iterable[str]) -> dict[str, Any]:
    """``page``, ``page_size``, ``page_after_value`` (an index), ``order_by`` and ``order``
    of NOMAD's page-numbered listings, validated (422 in FastAPI's layout)."""

    def integer(name: str, default: int | None, minimum: int) -> int | None:
        values = params.get(name)
        if not values:
            return default
        try:
            number = int(values[0])
        except ValueError:
            raise validation_problem(
                ["query", name], "Input should be a valid integer, unable to parse string as an integer", "int_parsing", values[0]
            ) from None
        if number < minimum:
            raise validation_problem(
                ["query", name], f"Input should be greater than or equal to {minimum}", "greater_than_equal", number, {"ge": minimum}
            )
        return number

    page_size = integer("page_size", 10, 0) or 0
    page = integer("page", None, 1)
    after = params.get("page_after_value", [None])[0]
    order_by = params.get("order_by", [default_order_by])[0]
    if order_by not in orderable:
        raise validation_problem(["query", "order_by"], f"Input should be {', '.join(repr(o) for o in orderable)}", "enum", order_by)
    order = params.get("order", ["asc"])[0]
    if order not in ("asc", "desc"):
        raise validation_problem(["query", "order"], "Input should be 'asc' or 'desc'", "enum", order)
    start = 0
    if page is not None:
        start = (page - 1) * page_size
    elif after is not None:
        try:
            start = int(after) + 1
        except ValueError:
            raise ApiProblem(422, [{"loc": ["query", "page_after_value"], "msg": "page_after_value is no index"}]) from None
    return {"page_size": page_size, "page": page, "page_after_value": after, "order_by": order_by, "order": order, "start": start}


def page_answer(items: list[dict[str, Any]], page: Mapping[str, Any], url: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Sort and cut ``items``; NOMAD's ``pagination`` answer with index cursors and page URLs."""
    key = page["order_by"]
    ordered = sorted(items, key=lambda item: (item.get(key) is None, str(item.get(key, ""))), reverse=page["order"] == "desc")
    start, size = page["start"], page["page_size"]
    data = ordered[start : start + size]
    info: dict[str, Any] = {"page_size": size, "order_by": key, "order": page["order"]}
    if page["page"] is not None:
        if page["page"] > 1:
            info["page_after_value"] = str(start - 1)
        info["page"] = page["page"]
    elif page["page_after_value"] is not None:
        info["page_after_value"] = page["page_after_value"]
    info["total"] = len(ordered)
    following = str(start + size - 1) if size and start + size < len(ordered) else None
    if following is not None:
        info["next_page_after_value"] = following
    if url:
        info.update(_urls(url, page, following))
    return info, data


def _urls(url: str, page: Mapping[str, Any], following: str | None) -> dict[str, str]:
    urls = {"page_url": url}
    if following is not None:
        urls["next_page_url"] = url_with(url, page=None, page_after_value=following)
    if page["page"] is not None and page["page"] > 1:
        urls["prev_page_url"] = url_with(url, page=page["page"] - 1)
    urls["first_page_url"] = url_with(url, page=None, page_after_value=None)
    return urls


# -- raw files -----------------------------------------------------------------------------------


class RawFiles:
    """Raw files under ``<root>/<upload_id>/<path>``, never anything outside an upload's folder.

    Args:
        root: the raw folder, or None when the server has no raw files (every raw request 404).
    """

    def __init__(self, root: str | Path | None) -> None:
        self.root = None if root is None else Path(root).resolve()

    def upload_folder(self, upload_id: str) -> Path | None:
        """The folder of an upload, or None (also for ids that are no single safe name)."""
        if self.root is None or not upload_id or upload_id in (".", "..") or "/" in upload_id or "\\" in upload_id or "\0" in upload_id:
            return None
        folder = (self.root / upload_id).resolve()
        if folder.parent != self.root or not folder.is_dir():
            return None
        return folder

    def path(self, upload_id: str, path: str) -> Path | None:
        """The real path of ``path`` inside the upload, or None when it is not inside it (or
        does not exist). ``..``, absolute paths and links pointing out are all refused."""
        folder = self.upload_folder(upload_id)
        if folder is None or "\0" in path:
            return None
        candidate = (folder / path.lstrip("/")).resolve()
        if candidate != folder and folder not in candidate.parents:
            return None
        return candidate if candidate.exists() else None

    def entry_files(self, entry: Entry) -> list[tuple[str, Path]]:
        """``(path in upload, real path)`` of an entry's raw files: its ``metadata.files``, else
        every file in its mainfile's folder."""
        folder = self.upload_folder(entry.upload_id)
        if folder is None:
            return []
        listed = _metadata(entry).get("files")
        names: list[str] = []
        if isinstance(listed, list) and listed:
            names = [str(name) for name in listed]
        else:
            base = self.path(entry.upload_id, str(Path(entry.mainfile).parent)) if "/" in entry.mainfile else folder
            if base is not None and base.is_dir():
                names = sorted(str(p.relative_to(folder)) for p in base.iterdir() if p.is_file())
        found: list[tuple[str, Path]] = []
        for name in names:
            real = self.path(entry.upload_id, name)
            if real is not None and real.is_file():
                found.append((name, real))
        return found

    def file(self, upload_id: str, path: str) -> Path:
        """A raw file; 404 unless it is a file inside the upload."""
        real = self.path(upload_id, path)
        if real is None or not real.is_file():
            raise ApiProblem(404, _FILE_NOT_FOUND)
        return real


def zip_files(files: Iterable[tuple[str, Path]]) -> bytes:
    """A zip of ``(name in zip, real path)`` pairs (stored, as NOMAD streams raw zips by default)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        seen: set[str] = set()
        for name, real in files:
            if name in seen:
                continue
            seen.add(name)
            archive.write(real, name)
    return buffer.getvalue()


def byte_range(header: str | None, size: int, offset: int = 0, length: int = -1) -> tuple[int, int, bool]:
    """``(start, end_exclusive, partial)`` for a ``Range`` header and NOMAD's ``offset``/``length``.

    One range ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n``; other forms (several ranges) are
    ignored, as RFC 9110 allows, and the whole file is sent. A range starting past the end is
    416.
    """
    start = max(0, offset)
    end = size if length is None or length < 0 else min(size, start + length)
    if header is None:
        return start, end, False
    found = _RANGE.match(header)
    if found is None or (not found.group(1) and not found.group(2)):
        return start, end, False
    first, last = found.group(1), found.group(2)
    if first:
        begin = int(first)
        stop = size if not last else min(size, int(last) + 1)
    else:
        begin = max(0, size - int(last))
        stop = size
    if begin >= size or stop <= begin:
        raise ApiProblem(416, "Range Not Satisfiable", {"Content-Range": f"bytes */{size}"})
    return begin, stop, True


def zip_name(entry_id: str) -> str:
    """The attachment name of an entry's raw zip."""
    return f"{entry_id}.zip"

