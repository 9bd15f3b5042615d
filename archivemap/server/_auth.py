"""Users and opaque bearer tokens of the local server (spec §5.1, §5.7).

Tokens are random strings, not JWTs: clients must treat NOMAD tokens as opaque anyway. No
token or password is ever written to a log, a repr or an error message.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Mapping

__all__ = ["TokenStore", "missing_scopes_detail", "required_scope"]

#: NOMAD's default ``app_token_max_expires_in`` (30 days).
APP_TOKEN_MAX_EXPIRES_IN = 2_592_000

# The scope each served read endpoint asks for, by the first path segment (NOMAD 2.0.0's
# routers: ``get_current_user([Scope.ENTRIES_READ])`` on every entries read route,
# ``UPLOADS_READ`` on uploads (their archive and raw routes too), ``DATASETS_READ``,
# ``USERS_READ``, and ``TOKENS_CREATE`` on ``auth/app_token``).
_READ_SCOPES = {"entries": "entries:read", "uploads": "uploads:read", "datasets": "datasets:read", "users": "users:read"}


def required_scope(path: str) -> str | None:
    """The scope NOMAD 2.0.0 requires for a served route (path below the API base), or None."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["auth", "app_token"]:
        return "tokens:create"
    return _READ_SCOPES.get(parts[0])


def missing_scopes_detail(scopes: Iterable[str]) -> str:
    """NOMAD 2.0.0's 403 detail, character for character.

    NOMAD formats ``f"Missing scopes: {sorted(missing)}"`` over members of its ``Scope`` enum
    (a ``str`` enum without its own ``repr``), so each appears as ``<Scope.ENTRIES_READ:
    'entries:read'>``; the member name is the value upper-cased with ``:`` as ``_``.
    """
    members = [f"<Scope.{scope.replace(':', '_').upper()}: {scope!r}>" for scope in sorted(scopes)]
    return f"Missing scopes: [{', '.join(members)}]"


class TokenStore:
    """Checks passwords, issues access/refresh/app tokens and tells who a token belongs to.

    Thread-safe. Expired tokens are rejected like unknown ones, so :meth:`expire_all` lets a
    test force a client's refresh-on-401 path.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        token_lifetime: float = 3600.0,
        app_token_max_expires_in: int = APP_TOKEN_MAX_EXPIRES_IN,
    ) -> None:
        self._users = dict(users or {})
        self.token_lifetime = token_lifetime
        self.app_token_max_expires_in = app_token_max_expires_in
        self._lock = threading.Lock()
        self._access: dict[str, tuple[str, float]] = {}
        self._refresh: dict[str, str] = {}
        self._scopes: dict[str, frozenset[str]] = {}

    def __repr__(self) -> str:
        return f"TokenStore(users={sorted(self._users)!r})"

    def check_password(self, username: str, password: str) -> bool:
        """True if the user exists and the password is right (constant-time compare)."""
        expected = self._users.get(username)
        return expected is not None and secrets.compare_digest(expected.encode(), password.encode())

    def issue(self, username: str) -> dict[str, object]:
        """A token answer in NOMAD 2.0.0's layout for ``POST auth/token``."""
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            self._access[access] = (username, time.monotonic() + self.token_lifetime)
            self._refresh[refresh] = username
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.token_lifetime),
            "refresh_token": refresh,
            "refresh_expires_in": int(self.token_lifetime) * 10,
            "scope": "openid profile email",
            "id_token": None,
        }

    def refresh(self, refresh_token: str) -> dict[str, object] | None:
        """A new token answer for a refresh token, or None for an unknown one."""
        with self._lock:
            username = self._refresh.pop(refresh_token, None)
        return None if username is None else self.issue(username)

    def issue_app_token(self, username: str, expires_in: int) -> str:
        """A long-lived token for ``GET auth/app_token``."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._access[token] = (username, time.monotonic() + expires_in)
        return token

    def user_for(self, token: str) -> str | None:
        """The user a valid token belongs to, or None for unknown or expired tokens."""
        with self._lock:
            found = self._access.get(token)
            if found is None:
                return None
            username, expires = found
            if time.monotonic() >= expires:
                del self._access[token]
                return None
            return username

    def add_pat(self, token: str, username: str, scopes: Iterable[str]) -> None:
        """A personal access token limited to ``scopes`` (NOMAD 2.0's PATs), valid until expired."""
        with self._lock:
            self._access[token] = (username, float("inf"))
            self._scopes[token] = frozenset(scopes)

    def scopes_for(self, token: str) -> frozenset[str] | None:
        """The scopes of a personal access token; None for tokens without limits (logins)."""
        with self._lock:
            return self._scopes.get(token)

    def expire_all(self, refresh_tokens: bool = False) -> None:
        """Invalidate every access and app token (and refresh tokens if asked)."""
        with self._lock:
            self._access.clear()
            if refresh_tokens:
                self._refresh.clear()
