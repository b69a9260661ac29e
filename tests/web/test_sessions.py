"""Dashboard sessions against a real SQLite database of users and keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from chutes_host.control.auth import KeyCache
from chutes_host.store import accounts
from chutes_host.store.db import Database
from chutes_host.web.sessions import SessionStore, TooManySessions


@pytest.fixture
def keys(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'host.db'}")
    with db.session() as session:
        _, key = accounts.add_user(session, "alice")
    yield db, KeyCache(db, ttl=0.0), key
    db.close()


def test_a_session_holds_the_user_but_its_token_is_not_the_key(keys) -> None:
    _, cache, key = keys
    store = SessionStore(cache)
    opened = store.open(key)
    assert opened is not None and opened.user_name == "alice"
    assert key not in opened.token and opened.csrf != opened.token
    assert store.find(opened.token) is opened
    assert "cpk_" not in repr(opened)
    assert store.open("cpk_00000000_nope") is None and store.find("not-a-token") is None


def test_expired_and_closed_sessions_are_gone(keys) -> None:
    _, cache, key = keys
    expired = SessionStore(cache, ttl=-1)
    assert expired.find(expired.open(key).token) is None
    store = SessionStore(cache)
    opened = store.open(key)
    store.close(opened.token)
    assert store.find(opened.token) is None


def test_revoking_the_key_ends_the_session(keys) -> None:
    db, cache, key = keys
    store = SessionStore(cache)
    opened = store.open(key)
    with db.session() as session:
        accounts.revoke_key(session, key)
    assert store.find(opened.token) is None


def test_the_store_is_bounded_and_drops_the_oldest(keys) -> None:
    _, cache, key = keys
    store = SessionStore(cache, limit=3)
    opened = [store.open(key) for _ in range(5)]
    assert [store.find(s.token) is not None for s in opened] == [False, False, True, True, True]


@pytest.fixture
def users(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'host.db'}")
    with db.session() as session:
        keys = {name: accounts.add_user(session, name)[1] for name in ("alice", "bob", "carol", "eve")}
    yield KeyCache(db, ttl=0.0), keys
    db.close()


def test_one_user_signing_in_again_and_again_ends_only_their_own_sessions(users) -> None:
    """Eve's sign-ins past the host's limit end eve's oldest sessions, never bob's."""
    cache, keys = users
    store = SessionStore(cache, limit=4, per_user=10)
    bob = store.open(keys["bob"])
    eves = [store.open(keys["eve"]) for _ in range(50)]
    assert store.find(bob.token) is bob
    assert [store.find(s.token) is not None for s in eves[-3:]] == [True, True, True]
    assert sum(store.find(s.token) is not None for s in eves) == 3


def test_each_user_holds_at_most_per_user_sessions(users) -> None:
    cache, keys = users
    store = SessionStore(cache, per_user=3)
    eves = [store.open(keys["eve"]) for _ in range(5)]
    bob = store.open(keys["bob"])
    assert [store.find(s.token) is not None for s in eves] == [False, False, True, True, True]
    assert store.find(bob.token) is bob


def test_a_full_host_refuses_a_new_user_rather_than_end_another_users_session(users) -> None:
    cache, keys = users
    store = SessionStore(cache, limit=3)
    held = [store.open(keys[name]) for name in ("alice", "bob", "carol")]
    with pytest.raises(TooManySessions):
        store.open(keys["eve"])
    assert all(store.find(s.token) is s for s in held)
    again = store.open(keys["bob"])  # a user who holds one swaps it for the new one
    assert store.find(again.token) is again and store.find(held[1].token) is None
    assert store.find(held[0].token) is held[0] and store.find(held[2].token) is held[2]
