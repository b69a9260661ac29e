"""API keys: making them, hashing them, and finding the user a request's key belongs to."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

import anyio
from sqlalchemy import select
from sqlalchemy.orm import Session

from chutes_host.store.models import ApiKey, User

KEY_SCHEME = "cpk"


def generate_key() -> tuple[str, str, str]:
    """Returns (key, prefix, digest) for a new key shaped `cpk_<prefix>_<secret>`."""
    prefix = secrets.token_hex(4)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, digest_key(key)


def digest_key(key: str) -> str:
    """Returns the stored form of a key: its SHA-256 hex digest."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str | None:
    """Returns the public prefix of a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not parts[1] or not parts[2]:
        return None
    return parts[1]


def read_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Takes raw ASGI headers, and returns the key from `Authorization: Bearer` or `X-API-Key`.

    When both are sent, the one shaped like a host key wins, so a chute's own bearer token can
    travel beside the host key.
    """
    found = None
    for name, value in headers:
        if name not in CREDENTIAL_HEADERS:
            continue
        token = credential(name, value)
        if token.startswith(f"{KEY_SCHEME}_"):
            return token
        found = found or token or None
    return found


CREDENTIAL_HEADERS = (b"authorization", b"x-api-key")


def credential(name: bytes, value: bytes) -> str:
    """Takes an Authorization or X-API-Key header, and returns the token it carries ('' if none).

    Any whitespace may follow `Bearer`, and one pair of quotes around the token is dropped, so a
    key written `Bearer<TAB>cpk_...` or `Bearer "cpk_..."` is still recognised as the key it is.
    """
    text = value.decode("latin-1").strip()
    if name == b"authorization":
        parts = text.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return ""
        text = parts[1].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def carries_host_key(name: bytes, value: bytes) -> bool:
    """Returns whether a header is a credential header holding something shaped like a host key."""
    return name in CREDENTIAL_HEADERS and KEY_SCHEME.encode() + b"_" in value


class FailureLimiter:
    """Bounds failed key checks per client address (a token bucket), so guessing keys cannot load
    the database for everyone: `burst` failures at once, then `rate` per second."""

    def __init__(self, *, rate: float = 5.0, burst: float = 20.0, max_clients: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}

    def blocked(self, client: str) -> float:
        """Returns 0 when `client` may try a key now, else the seconds until it may."""
        bucket = self._buckets.get(client)
        if bucket is None:
            return 0.0
        tokens = self._tokens(bucket, time.monotonic())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def failed(self, client: str) -> None:
        """Records one failed key check of `client`."""
        now = time.monotonic()
        bucket = self._buckets.get(client)
        tokens = self.burst if bucket is None else self._tokens(bucket, now)
        if bucket is None and len(self._buckets) >= self.max_clients:
            self._buckets = {c: b for c, b in self._buckets.items() if self._tokens(b, now) < self.burst}
        self._buckets[client] = (max(tokens - 1, 0.0), now)

    def _tokens(self, bucket: tuple[float, float], now: float) -> float:
        tokens, at = bucket
        return min(self.burst, tokens + (now - at) * self.rate)


def find_user(session: Session, key: str) -> User | None:
    """Returns the user owning an unrevoked key, or None."""
    if key_prefix(key) is None:
        return None
    row = session.execute(
        select(ApiKey).where(ApiKey.digest == digest_key(key), ApiKey.revoked_at.is_(None))
    ).scalar_one_or_none()
    if row is None or not hmac.compare_digest(row.digest, digest_key(key)):
        return None
    return row.user


class KeyCache:
    """Remembers recent key -> user-id answers briefly, so the gateway skips the database."""

    def __init__(self, db, *, ttl: float = 2.0) -> None:
        self._db = db
        self._ttl = ttl
        self._hits: dict[str, tuple[int, str, float]] = {}

    def lookup(self, key: str) -> tuple[int, str] | None:
        """Returns (user id, user name) for a valid key, else None; failures are never cached."""
        digest = digest_key(key)
        hit = self._hits.get(digest)
        now = time.monotonic()
        if hit is not None and hit[2] > now:
            return hit[0], hit[1]
        with self._db.session() as session:
            user = find_user(session, key)
            if user is None:
                self._hits.pop(digest, None)
                return None
            found = (user.id, user.name)
        if len(self._hits) > 10_000:
            self._hits.clear()
        self._hits[digest] = (*found, now + self._ttl)
        return found

    def cached(self, key: str) -> tuple[int, str] | None:
        """Returns (user id, user name) when the key was found valid in the last `ttl` seconds, else None."""
        hit = self._hits.get(digest_key(key))
        if hit is not None and hit[2] > time.monotonic():
            return hit[0], hit[1]
        return None

    async def lookup_off_loop(self, key: str) -> tuple[int, str] | None:
        """Like lookup, but a cache miss queries the database in a worker thread, not on the event loop."""
        return self.cached(key) or await anyio.to_thread.run_sync(self.lookup, key)

    def forget(self) -> None:
        self._hits.clear()


async def check_key(keys: KeyCache, failures: FailureLimiter, key: str, client: str) -> tuple[int, str] | float | None:
    """Returns (user id, user name) for a valid key, None for a bad one, or the seconds `client`
    must wait before its key is looked up, after too many bad ones (a recently valid key never waits)."""
    found = keys.cached(key)
    if found is not None:
        return found
    wait = failures.blocked(client)
    if wait:
        return wait
    found = await keys.lookup_off_loop(key)
    if found is None:
        failures.failed(client)
    return found
