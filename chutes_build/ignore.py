"""Ignore rules for the build context: defaults plus `.chutesignore`, in dockerignore-like syntax."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".chutesignore"
# Never useful inside an image, and often large.
DEFAULT_PATTERNS = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "__pycache__",
    "*.pyc",
    "*.pyo",
    "*.egg-info",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    ".DS_Store",
    IGNORE_FILE,
)


@dataclass(frozen=True)
class IgnoreRule:
    """One pattern line; `negated` re-includes what earlier lines excluded."""

    pattern: str
    negated: bool
    regex: re.Pattern[str]

    def __repr__(self) -> str:
        return f"IgnoreRule({'!' if self.negated else ''}{self.pattern!r})"


def translate_glob(pattern: str) -> str:
    """Turns a glob with `*`, `?`, `[...]` and `**` into a regex over '/'-separated paths."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def parse_rules(lines: list[str]) -> list[IgnoreRule]:
    """Parses ignore lines: '#' comments, '!' negation, a leading '/' anchors at the root.

    A pattern without an inner '/' matches a name at any depth (as in .gitignore); one with a '/'
    is relative to the context root. A matched directory excludes everything below it.
    """
    rules = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        body = line[1:].strip() if negated else line
        body = body.rstrip("/")
        if not body:
            continue
        anchored = "/" in body
        body = body.lstrip("/")
        prefix = "" if anchored else "(?:.*/)?"
        regex = re.compile(f"^{prefix}{translate_glob(body)}(?:/.*)?$")
        rules.append(IgnoreRule(line, negated, regex))
    return rules


def load_rules(root: Path) -> list[IgnoreRule]:
    """Returns the default rules followed by those of `root/.chutesignore`, if it exists."""
    lines = list(DEFAULT_PATTERNS)
    path = root / IGNORE_FILE
    if path.is_file():
        lines += path.read_text(encoding="utf-8").splitlines()
    return parse_rules(lines)


def is_ignored(rel: str, rules: list[IgnoreRule]) -> bool:
    """Tells whether a '/'-separated path relative to the root is excluded; the last match wins."""
    ignored = False
    for rule in rules:
        if rule.regex.match(rel):
            ignored = not rule.negated
    return ignored


def has_negations(rules: list[IgnoreRule]) -> bool:
    """Tells whether any rule re-includes paths, so excluded directories must still be walked."""
    return any(rule.negated for rule in rules)
