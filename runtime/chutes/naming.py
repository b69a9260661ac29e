"""How the names users give a chute become one DNS label, its slug: `{username}-{name}`."""

from __future__ import annotations

import hashlib
import re

from chutes.exceptions import ChuteDefinitionError

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# The platform allows '-' in user names and its chute files use them ('your-username'), so a chute
# takes one. A host forbids '-' in the names of its own users, so the slug `{username}-{name}` splits
# at its first '-' there and no user can take another's hostnames (user 'alice' with chute 'x-foo' vs
# user 'alice-x' with chute 'foo'): a chute whose username is not its deployer's is refused at deploy.
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
MAX_LABEL = 63
_FOLDED = re.compile(r"[/.\s]+")
_DASHES = re.compile(r"-{2,}")
_BAD = re.compile(r"[^a-z0-9_-]")


def fold_username(value: object) -> str:
    """Takes a username as written ("MyUser"), and returns it case-folded ("myuser") or raises."""
    if not isinstance(value, str) or not USERNAME_PATTERN.fullmatch(value.lower()):
        raise ChuteDefinitionError(
            f"username {value!r} may hold only letters, digits, '_' and '-', start with a letter or digit and "
            "be at most 63 characters, e.g. 'myuser'"
        )
    return value.lower()


def fold_name(value: object) -> str:
    """Takes a chute name as written ("unsloth/Llama-3.2-1B"), and returns its label form ("unsloth-llama-3-2-1b")."""
    if not isinstance(value, str) or not value.strip():
        raise ChuteDefinitionError(f"name must be a non-empty str, like 'my-chute' or 'org/Model-1B', not {value!r}")
    folded = _DASHES.sub("-", _FOLDED.sub("-", value.strip().lower())).strip("-_")
    bad = sorted(set(_BAD.findall(folded)))
    if bad or not folded:
        shown = ", ".join(repr(c) for c in bad) or "no letter or digit"
        raise ChuteDefinitionError(
            f"name {value!r} cannot be made a hostname label: it holds {shown}; use letters, digits, "
            "'-', '_', '.' and '/' (e.g. 'org/Model-1B' becomes 'org-model-1b')"
        )
    return folded


def derive_slug(username: str, name: str) -> tuple[str, str]:
    """Takes a folded username and a name as written, and returns (label name, slug) within 63 characters.

    A name too long for one label keeps its start and gains a short hash of the whole name, so two
    long names that share a start still get different slugs.
    """
    folded = fold_name(name)
    room = MAX_LABEL - len(username) - 1
    if len(folded) > room:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        keep = room - len(digest) - 1
        if keep < 1:
            raise ChuteDefinitionError(
                f"username {username!r} leaves no room for the chute name in a 63-character hostname; "
                "use a shorter username"
            )
        folded = f"{folded[:keep].rstrip('-_')}-{digest}"
    return folded, f"{username}-{folded}"
