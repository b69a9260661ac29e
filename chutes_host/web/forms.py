"""The sign-in form's tokens: issued by the host, signed with its own secret, good for one sign-in."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

FORM_SECONDS = 3600
MAX_SPENT = 100_000  # spent tokens remembered until they expire; past this the oldest are forgotten


class SignInTokens:
    """Tokens of the sign-in form. A client cannot make one up (each is signed with a secret only this host
    process holds), and each is taken once: a second sign-in with it is refused like an expired form.

    >>> tokens = SignInTokens()
    >>> token = tokens.issue()
    >>> tokens.take(token), tokens.take(token)
    (True, False)
    """

    def __init__(self, *, ttl: float = FORM_SECONDS, remembered: int = MAX_SPENT) -> None:
        self.ttl = ttl
        self.remembered = remembered
        self._secret = secrets.token_bytes(32)
        self._spent: dict[str, float] = {}  # token -> when it expires, oldest first

    def issue(self) -> str:
        """Returns a new token, good for `ttl` seconds."""
        body = f"{int(time.time() + self.ttl)}.{secrets.token_urlsafe(18)}"
        return f"{body}.{self._sign(body)}"

    def take(self, token: str) -> bool:
        """Tells whether `token` was issued here, is unexpired and unspent; spends it if so."""
        body, _, mac = token.rpartition(".")
        expires, _, _ = body.partition(".")
        if not hmac.compare_digest(mac.encode(), self._sign(body).encode()) or not expires.isdigit():
            return False
        now = time.time()
        if int(expires) <= now or token in self._spent:
            return False
        while self._spent and (len(self._spent) >= self.remembered or next(iter(self._spent.values())) <= now):
            del self._spent[next(iter(self._spent))]
        self._spent[token] = int(expires)
        return True

    def _sign(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()[:32]
