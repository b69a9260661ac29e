"""Dashboard sessions: an API key exchanged for a random cookie, with a CSRF token for every change.

Chutes answer at `{user}-{chute}.DOMAIN`, the same site as the dashboard, so `SameSite` does not keep
their pages out: over HTTPS the cookies are `__Host-` prefixed (a browser takes such a cookie only
from the host itself, never for a parent domain), and every request that acts for the user must come
from the dashboard's own origin.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import Response

from chutes.responses import send_json
from chutes_host.control.auth import KeyCache
from chutes_host.errors import TooManySessions
from chutes_host.store.models import User
from chutes_host.web.cookies import CookiePolicy, request_host

COOKIE = "chutes_session"
SIGN_IN_COOKIE = "chutes_sign_in"  # double-submit token of the sign-in form, before any session exists
SIGN_IN_PATH = "/dashboard/sign-in"
SECURE_PREFIX = "__Host-"  # only with Secure, Path=/ and no Domain: no chute's subdomain can set it
CSRF_HEADER = "x-csrf-token"
SIGNED_OUT = "your dashboard session ended; sign in again at /"
DOUBLED = (
    "your dashboard session ended: a second session cookie came with this request (one planted for a parent "
    "domain, e.g. by a chute's page); sign in again at /, which clears it"
)
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000
MAX_USER_SESSIONS = 20  # browsers one user may be signed in from at once


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
    """Live sessions in the host's memory (a host restart signs everyone out); keys are re-checked on use.

    Each user holds at most `per_user` sessions (a new one ends that user's oldest); when the host holds
    `limit`, a user with none is refused rather than ending someone else's.
    """

    def __init__(
        self,
        keys: KeyCache,
        *,
        ttl: float = SESSION_SECONDS,
        limit: int = MAX_SESSIONS,
        per_user: int = MAX_USER_SESSIONS,
    ) -> None:
        self.keys = keys
        self.ttl = ttl
        self.limit = limit
        self.per_user = per_user
        self._sessions: dict[str, WebSession] = {}
        self._by_user: dict[int, dict[str, WebSession]] = {}  # in the order they were opened

    def open(self, key: str) -> WebSession | None:
        """Returns a new session for a valid key, else None; raises TooManySessions when the host is full."""
        found = self.keys.lookup(key)
        if found is None:
            return None
        now = time.time()
        own = self._by_user.get(found[0], {})
        if len(self._sessions) >= self.limit:
            for expired in [s for s in self._sessions.values() if s.expires <= now]:
                self._drop(expired)
        if own and (len(own) >= self.per_user or len(self._sessions) >= self.limit):
            self._drop(next(iter(own.values())))
        if len(self._sessions) >= self.limit:
            raise TooManySessions(
                "The host holds as many dashboard sessions as it keeps; try again later, or sign out elsewhere first."
            )
        session = WebSession(
            token=secrets.token_urlsafe(32),
            key=key,
            user_id=found[0],
            user_name=found[1],
            csrf=secrets.token_urlsafe(32),
            expires=now + self.ttl,
        )
        self._sessions[session.token] = session
        self._by_user.setdefault(session.user_id, {})[session.token] = session
        return session

    def find(self, token: str | None) -> WebSession | None:
        """Returns the live session of a cookie; an expired one, or one whose key was revoked, ends here."""
        session = self._sessions.get(token or "")
        if session is None:
            return None
        if session.expires <= time.time() or self.keys.lookup(session.key) is None:
            self._drop(session)
            return None
        return session

    def known(self, token: str | None) -> bool:
        """Tells whether a cookie names an unexpired session (without re-checking its key: no database)."""
        session = self._sessions.get(token or "")
        return session is not None and session.expires > time.time()

    def close(self, token: str | None) -> None:
        session = self._sessions.get(token or "")
        if session is not None:
            self._drop(session)

    def _drop(self, session: WebSession) -> None:
        self._sessions.pop(session.token, None)
        own = self._by_user.get(session.user_id, {})
        own.pop(session.token, None)
        if not own:
            self._by_user.pop(session.user_id, None)


class SessionAdmission:
    """Plain ASGI middleware: a request under one of `prefixes` without a live session cookie is
    answered 401 before any of its body is read (FastAPI reads bodies before dependencies run)."""

    def __init__(self, app: Any, *, prefixes: tuple[str, ...], sessions: SessionStore, policy: CookiePolicy) -> None:
        self.app = app
        self.prefixes = prefixes
        self.sessions = sessions
        self.policy = policy

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            scheme, host = scope.get("scheme", "http"), request_host(scope["headers"])
            if not self.policy.allows(scheme, host):
                detail = self.policy.refusal(host)
                return await send_json(send, 403, {"detail": detail}, [(b"connection", b"close")])
            found = cookie_values(scope["headers"], cookie_name(COOKIE, scheme))
            if len(found) != 1 or not self.sessions.known(found[0]):
                detail = SIGNED_OUT if len(found) < 2 else DOUBLED
                return await send_json(send, 401, {"detail": detail}, [(b"connection", b"close")])
        return await self.app(scope, receive, send)


def cookie_name(name: str, scheme: str) -> str:
    """Returns the name a dashboard cookie has on a request of this scheme (`__Host-` prefixed over HTTPS)."""
    return SECURE_PREFIX + name if scheme == "https" else name


def cookie_values(headers: list[tuple[bytes, bytes]], name: str) -> list[str]:
    """Returns every value the request's Cookie headers give cookie `name`."""
    found: list[str] = []
    for header, value in headers:
        if header != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, _, cookie = part.partition("=")
            if key.strip() == name:
                found.append(cookie.strip())
    return found


def read_cookie(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    """Returns the value of cookie `name`; None when it is absent, or sent more than once (a second one
    was planted for a parent domain or a longer path: neither is to be trusted)."""
    found = cookie_values(headers, name)
    return found[0] if len(found) == 1 else None


def session_token(request: Request, policy: CookiePolicy) -> str | None:
    """Returns the session cookie of a dashboard request (see read_cookie); None where sessions may not live."""
    scheme = request.url.scheme
    if not policy.allows(scheme, request_host(request.scope["headers"])):
        return None
    return read_cookie(request.scope["headers"], cookie_name(COOKIE, scheme))


def doubled_session(request: Request) -> bool:
    """Tells whether the request carried its session cookie more than once (one of them planted)."""
    return len(cookie_values(request.scope["headers"], cookie_name(COOKIE, request.url.scheme))) > 1


def set_session_cookie(response: Response, session: WebSession, *, scheme: str) -> None:
    response.set_cookie(
        cookie_name(COOKIE, scheme),
        session.token,
        max_age=int(session.expires - time.time()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=scheme == "https",
    )


def set_sign_in_cookie(response: Response, token: str, *, scheme: str) -> None:
    """Sets the sign-in form's double-submit token: for the form's path only, or host-wide under its
    `__Host-` name over HTTPS (that prefix requires Path=/)."""
    secure = scheme == "https"
    response.set_cookie(
        cookie_name(SIGN_IN_COOKIE, scheme),
        token,
        max_age=3600,
        path="/" if secure else SIGN_IN_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def delete_cookie(response: Response, name: str, *, scheme: str) -> None:
    secure = scheme == "https"
    path = "/" if secure or name == COOKIE else SIGN_IN_PATH
    response.delete_cookie(cookie_name(name, scheme), path=path, secure=secure, httponly=True, samesite="strict")


def foreign_origin(request: Request) -> str | None:
    """Returns where a request came from when that is not the dashboard's own origin (None when it is,
    or when the client, not a browser, says nothing of it): by Sec-Fetch-Site, Origin, then Referer."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"a {site} page"
    host = request.headers.get("host", "")
    # the host part only: behind a proxy that ends TLS the scheme the host sees is not the browser's
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value is not None:
            return None if urlsplit(value).netloc == host else value
    return None


def check_csrf(request: Request, session: WebSession) -> None:
    """Refuses (403) a request acting for the user that does not carry the session's CSRF token, or comes
    from another origin (a chute's subdomain included)."""
    origin = foreign_origin(request)
    if origin is not None:
        raise HTTPException(403, f"refused: this request came from another site ({origin}), not the dashboard")
    given = request.headers.get(CSRF_HEADER, "")
    if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
        raise HTTPException(
            403,
            "refused: this change carries no valid CSRF token; reload the dashboard page and try again "
            f"(scripts send the page's token in the {CSRF_HEADER} header)",
        )
