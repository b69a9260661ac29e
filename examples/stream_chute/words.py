"""A helper module, to show that the chute's whole folder is copied into the image."""

from __future__ import annotations


def split_words(text: str) -> list[str]:
    """Returns the words of `text`, split on whitespace."""
    return text.split()
