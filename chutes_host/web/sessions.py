"""Dashboard sessions: an API key exchanged for a random cookie, with a CSRF token for every change."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import Response

from chutes_host.auth import KeyCache
from chutes_host.models import User

COOKIE = "chutes_session"
SIGN_IN_COOKIE = "chutes_sign_in"  # double-submit token of the sign-in form, before any session exists
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000


class SignInRequired(Exception):
    """A dashboard page asked for without a live session; the page handler shows the sign-in form."""


@dataclass(eq=False)
class WebSession:
    """One signed-in browser: the key stays here on the host, the browser holds only `token`."""

    token: str
    key: str = field(repr=False)
    user_id: int
    user_name: str
    csrf: str = field(repr=False)
    expires: float

    @property
    def user(self) -> User:
        return User(id=self.user_id, name=self.user_name)

    def __repr__(self) -> str:
        return f"WebSession(user={self.user_name!r}, expires={self.expires:.0f})"


class SessionStore:
    """Live sessions in the host's memory (a host restart signs everyone out); keys are re-checked on use."""

    def __init__(self, keys: KeyCache, *, ttl: float = SESSION_SECONDS, limit: int = MAX_SESSIONS) -> None:
        self.keys = keys
        self.ttl = ttl
        self.limit = limit
        self._sessions: dict[str, WebSession] = {}

    def open(self, key: str) -> WebSession | None:
        """Returns a new session for a valid key, else None."""
        found = self.keys.lookup(key)
        if found is None:
            return None
        now = time.time()
        if len(self._sessions) >= self.limit:  # expired ones go first, then the oldest
            live = sorted((s for s in self._sessions.values() if s.expires > now), key=lambda s: s.expires)
            self._sessions = {s.token: s for s in live[max(0, len(live) - self.limit + 1) :]}
        session = WebSession(
            token=secrets.token_urlsafe(32),
            key=key,
            user_id=found[0],
            user_name=found[1],
            csrf=secrets.token_urlsafe(32),
            expires=now + self.ttl,
        )
        self._sessions[session.token] = session
        return session

    def find(self, token: str | None) -> WebSession | None:
        """Returns the live session of a cookie; an expired one, or one whose key was revoked, ends here."""
        session = self._sessions.get(token or "")
        if session is None:
            return None
        if session.expires <= time.time() or self.keys.lookup(session.key) is None:
            self._sessions.pop(session.token, None)
            return None
        return session

    def close(self, token: str | None) -> None:
        self._sessions.pop(token or "", None)


def set_session_cookie(response: Response, session: WebSession, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=int(session.expires - time.time()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def check_csrf(request: Request, session: WebSession) -> None:
    """Refuses (403) a change that does not carry the session's CSRF token, or comes from another origin."""
    origin = request.headers.get("origin")
    # the host part only: behind a proxy that ends TLS the scheme the host sees is not the browser's
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, f"refused: this change came from another site ({origin})")
    given = request.headers.get(CSRF_HEADER, "")
    if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
        raise HTTPException(
            403,
            "refused: this change carries no valid CSRF token; reload the dashboard page and try again "
            f"(scripts send the page's token in the {CSRF_HEADER} header)",
        )
