"""Which NOMAD installation a URL belongs to, and which origin it is sent to.

Why a module of its own: two decisions of the client hang on comparing URLs, and both are
security decisions. Credentials go only to the client's own origin (:func:`origin`), and
archive data may only lead to installations the user named (:func:`installation_key`).
Comparing parsed parts instead of strings keeps ``HTTP://Host:80`` and ``http://host`` one
origin and stops user info (``http://a@b``) from disguising a host.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["api_base_url", "installation_key", "origin"]


def api_base_url(url: str) -> str:
    """The API v1 base of any URL of a NOMAD installation.

    ``https://host/prod/v1/api/v1/uploads/u/archive/e`` → ``https://host/prod/v1/api/v1``;
    ``https://host/prod/v1/api`` → ``…/api/v1``; ``https://host/prod/v1`` → ``…/api/v1``,
    the same normalisation NOMAD's own client applies (spec §5.1).

    Args:
        url: an http(s) URL.

    Returns:
        The base URL without trailing slash.

    Raises:
        ValueError: not an http(s) URL.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    marker = path.find("/api/v1")
    if marker >= 0 and (len(path) == marker + 7 or path[marker + 7] == "/"):
        path = path[: marker + 7]
    elif path.endswith("/api"):
        path += "/v1"
    else:
        path += "/api/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


def installation_key(base: str) -> tuple[str, str, int | None, str]:
    """What identifies an installation: scheme, host, port (default filled in) and API path.

    Compared instead of strings so ``HTTP://Host:80/api/v1`` and ``http://host/api/v1`` are
    one installation, and user info (``http://a@b``) cannot disguise a host.
    """
    return (*origin(base), urlsplit(base).path.rstrip("/"))


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (with the scheme's default filled in) of a URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port
