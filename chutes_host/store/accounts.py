"""Users and their API keys, as the `chutes host users|keys` commands and the API change them."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from chutes_host.control.auth import generate_key
from chutes_host.errors import AccountError
from chutes_host.store.models import ApiKey, User, utcnow

# What Chute(username=...) accepts. No '-': the slug `{username}-{name}` splits at its first '-',
# so user 'alice' with chute 'x-foo' cannot take the hostname of user 'alice-x' with chute 'foo'.
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")
MAX_LABEL = 128  # the api_keys.label column


def check_username(name: str) -> str:
    """Returns the name, case-folded, if it can be part of a subdomain, else raises AccountError."""
    folded = name.lower()
    if not USERNAME_RE.match(folded):
        hint = " ('-' separates the user from the chute name in hostnames; use '_')" if "-" in name else ""
        raise AccountError(
            f"invalid user name {name!r}: use 1-63 letters, digits or '_', starting with a letter or digit; "
            f"it becomes part of the hostnames of the user's chutes{hint}"
        )
    return folded


def check_label(label: str) -> str:
    """Returns the key label if it fits, else raises AccountError."""
    if len(label) > MAX_LABEL:
        raise AccountError(f"key label is {len(label)} characters long; use at most {MAX_LABEL}")
    return label


def add_user(session: Session, name: str) -> tuple[User, str]:
    """Creates a user with a first key; returns (user, key). The key is shown only now."""
    name = check_username(name)
    if session.execute(select(User).where(User.name == name)).scalar_one_or_none():
        raise AccountError(f"user {name!r} already exists; create another key with `keys create`")
    user = User(name=name)
    session.add(user)
    session.flush()
    key = create_key(session, user, label="first key")
    return user, key


def get_user(session: Session, name: str) -> User:
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        raise AccountError(f"no user {name!r}; add one with `chutes host users add {name}`")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.execute(select(User).order_by(User.name)).scalars())


def create_key(session: Session, user: User, *, label: str = "") -> str:
    """Adds a key for a user and returns it in full (only its digest is stored)."""
    check_label(label)
    key, prefix, digest = generate_key()
    session.add(ApiKey(user_id=user.id, prefix=prefix, digest=digest, label=label))
    session.flush()
    return key


def list_keys(session: Session, user: User) -> list[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.created_at)
    return list(session.execute(stmt).scalars())


def revoke_key(session: Session, prefix: str, *, user: User | None = None) -> ApiKey:
    """Revokes the key with this prefix (of this user, when given); raises AccountError if none."""
    prefix = prefix.removeprefix("cpk_").split("_", 1)[0]
    stmt = select(ApiKey).where(ApiKey.prefix == prefix)
    if user is not None:
        stmt = stmt.where(ApiKey.user_id == user.id)
    key = session.execute(stmt).scalar_one_or_none()
    if key is None:
        raise AccountError(f"no key with prefix {prefix!r}; list keys with `keys list`")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key
