"""The Chutes platform SDK's own dependencies that a chute's code imports, so its image gets them.

`pip install chutes` on the platform brings loguru, pybase64, aiohttp, orjson, requests, backoff and
huggingface_hub, and chute files written for it import them at module level. Here they are the
`chutes[sdk]` extra: installed where the chute is written, and added to an image whose code imports them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from chutes_build.context import ContextFile

# import name -> distribution name, as `pip install chutes[sdk]` installs them
SDK_PACKAGES = {
    "loguru": "loguru",
    "pybase64": "pybase64",
    "aiohttp": "aiohttp",
    "orjson": "orjson",
    "requests": "requests",
    "backoff": "backoff",
    "huggingface_hub": "huggingface_hub",
}
MAX_SOURCE_BYTES = 2 * 1024 * 1024  # larger .py files are data, not a chute's code


def imported_names(source: bytes) -> set[str]:
    """Takes Python source, and returns the top-level names of the modules it imports (none if it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.partition(".")[0])
    return names


def sdk_requirements(files: Iterable[ContextFile]) -> list[str]:
    """Takes the build context's files, and returns the SDK dependencies their .py files import, sorted."""
    found: set[str] = set()
    for file in files:
        if not file.rel.endswith(".py") or file.link is not None or file.size > MAX_SOURCE_BYTES:
            continue
        found |= imported_names(file.path.read_bytes()) & SDK_PACKAGES.keys()
    return sorted(SDK_PACKAGES[name] for name in found)
