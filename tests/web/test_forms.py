"""The sign-in form's tokens: made by the host only, each taken once."""

from __future__ import annotations

from chutes_host.web.forms import SignInTokens


def test_a_token_is_good_for_one_sign_in() -> None:
    tokens = SignInTokens()
    token = tokens.issue()
    assert tokens.take(token) is True
    assert tokens.take(token) is False


def test_a_made_up_or_altered_or_foreign_token_is_refused() -> None:
    tokens = SignInTokens()
    token = tokens.issue()
    expires, nonce, mac = token.split(".")
    assert not tokens.take("guess")
    assert not tokens.take(f"{int(expires) + 9999}.{nonce}.{mac}")
    assert not tokens.take(SignInTokens().issue())
    assert tokens.take(token)


def test_an_expired_token_is_refused() -> None:
    tokens = SignInTokens(ttl=-1)
    assert not tokens.take(tokens.issue())


def test_spent_tokens_are_bounded() -> None:
    tokens = SignInTokens(remembered=5)
    for _ in range(50):
        assert tokens.take(tokens.issue())
    assert len(tokens._spent) <= 5
