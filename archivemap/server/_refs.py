"""Reference strings as the server's ``required`` reader understands them.

NOMAD's server does not use the full client-side reference grammar while answering
``archive/query``: it recognises same-archive paths (``/run/0``, ``#/run/0``) and the two URL
forms of ``nomad.datamodel.util.parse_path``. This module reproduces exactly that, so the local
server rewrites and drops references the way a real NOMAD does (spec §3.2-§3.4).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

__all__ = ["ArchiveLookup", "ParsedReference", "generate_entry_id", "parse_reference_url"]


class ArchiveLookup(Protocol):
    """Where the reader finds the archives that cross-entry references point to."""

    def archive_for(self, entry_id: str) -> tuple[Mapping[str, Any], str | None] | None:
        """Return ``(archive, upload_id)`` of an entry, or None when it does not exist."""

    def entry_id_for_mainfile(self, upload_id: str | None, mainfile: str) -> str | None:
        """Return the id of the entry with that mainfile in that upload, or None."""

# ../entries/<entry_id>/archive#<path>  and  /entries/<entry_id>/archive#<path>
_FORM_A = re.compile(r"^(?:\.\.)?/entries/([^?]+)/(archive|raw)#([^?]+?)$")
# [<installation>|..]/upload[s]/[<upload_id>/](archive|raw)/<id or path>#<path>


class ParsedReference(NamedTuple):
    """The parts of a cross-entry reference URL.

    Attributes:
        installation: another NOMAD installation, or None for this one.
        upload_id: the target upload (the current one when the URL leaves it out).
        entry_id: the target entry id; for ``raw`` references None (look it up by mainfile).
        mainfile: the mainfile named by ``mainfile/<path>`` or ``raw/<path>`` forms, else None.
        kind: ``"archive"`` or ``"raw"``.
        fragment: the path inside the target archive, always with a leading ``/``.
    """

    installation: str | None
    upload_id: str | None
    entry_id: str | None
    mainfile: str | None
    kind: str
    fragment: str


def generate_entry_id(upload_id: str, mainfile: str, mainfile_key: str | None = None) -> str:
    """Compute NOMAD's entry id from upload id and mainfile (spec §3.4).

    Args:
        upload_id: the upload the entry belongs to.
        mainfile: the mainfile path inside the upload.
        mainfile_key: the optional key of a child entry.

    Returns:
        The 28-character URL-safe id NOMAD assigns to that entry.
    """
    text = upload_id + mainfile + (mainfile_key or "")
    digest = hashlib.sha512(text.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest)[:28].decode("ascii")


def parse_reference_url(url: str, current_upload_id: str | None) -> ParsedReference | None:
    """Parse a reference URL the way NOMAD's ``parse_path`` does.

    Same-archive paths (``#/...``, ``/run/...``) are not URLs and give None, as do strings that
    are not references at all; callers handle those before calling this.

    Args:
        url: the reference string.
        current_upload_id: the upload of the archive holding the reference; relative forms
            (``../upload/...``, ``../entries/...``) resolve against it.

    Returns:
        The parsed parts, or None when the string is not an archive URL.
    """
    match = _match_form_b(url)
    if match is None:
        match_a = _FORM_A.match(url)
        if match_a is None:
            return None
        by_entry, kind, fragment = match_a.groups()
        return ParsedReference(None, current_upload_id, by_entry, None, kind, _leading_slash(fragment))

    installation, found_upload, kind, id_or_path, fragment = match
    if installation in ("", ".."):
        installation = None
    upload_id = found_upload or current_upload_id
    mainfile: str | None = None
    entry_id: str | None = id_or_path
    if kind == "archive":
        if id_or_path.startswith("mainfile/"):
            mainfile = id_or_path[len("mainfile/") :]
            entry_id = generate_entry_id(upload_id or "", mainfile)
        elif "/" in id_or_path:
            return None
    else:
        mainfile, entry_id = id_or_path, None
    return ParsedReference(installation, upload_id, entry_id, mainfile, kind, _leading_slash(fragment))


# What follows "/upload" in form B, matched at each "/upload" in turn: NOMAD's own pattern
# starts with a lazy "([^?]+?)?", which backtracks over every candidate for every failure (a
# 64 kB reference took a second); trying the candidates left to right is the same match, in
# linear time.
_FORM_B_TAIL = re.compile(r"s?/(?P<upload>[\w=-]*)/?(?P<kind>archive|raw)/(?P<rest>[^?#][^?]*)\Z")


def _match_form_b(url: str) -> tuple[str | None, str, str, str, str] | None:
    """Form B's groups ``(installation, upload, kind, id_or_path, fragment)``, or None."""
    if "?" in url:
        return None
    head, hash_, fragment = url.partition("#")
    if not hash_ or not fragment:
        return None
    start = 0
    while True:
        at = head.find("/upload", start)
        if at < 0:
            return None
        tail = _FORM_B_TAIL.match(head, at + len("/upload"))
        if tail is not None:
            return head[:at] or None, tail.group("upload"), tail.group("kind"), tail.group("rest"), fragment
        start = at + 1


def _leading_slash(fragment: str) -> str:
    return fragment if fragment.startswith("/") else "/" + fragment
