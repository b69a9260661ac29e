"""The Chutes platform SDK's own dependencies that a chute's code imports, so its image gets them.

`pip install chutes` on the platform brings loguru, pybase64, aiohttp, orjson, requests, backoff and
huggingface_hub, and chute files written for it import them at module level. Here they are the
`chutes[sdk]` extra: installed where the chute is written, and added to an image whose code imports them.
"""

from __future__ import annotations

import re
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


# An import statement's start: `from NAME` (not relative) or `import A, B.C as D` up to a comment or `;`.
IMPORT_STATEMENT = re.compile(rb"^[ \t]*(?:from[ \t]+([A-Za-z_]\w*)|import[ \t]+([^\n#;]+))", re.M)


def imported_names(source: bytes) -> set[str]:
    """Takes Python source, and returns the top-level names of the modules its import lines name.

    A scan of lines, not a parse: linear in the source, so a host can run it on a tenant's files. A
    line inside a string that looks like an import counts too, which at worst adds a package.
    """
    names: set[str] = set()
    for found in IMPORT_STATEMENT.finditer(source):
        if found.group(1):
            names.add(found.group(1).decode())
            continue
        for part in found.group(2).decode("latin-1").split(","):
            words = part.split()
            if words and (name := words[0].split(".", 1)[0]).isidentifier():
                names.add(name)
    return names


def sdk_requirements(files: Iterable[ContextFile]) -> list[str]:
    """Takes the build context's files, and returns the SDK dependencies their .py files import, sorted."""
    found: set[str] = set()
    for file in files:
        if not file.rel.endswith(".py") or file.link is not None or file.size > MAX_SOURCE_BYTES:
            continue
        found |= imported_names(file.path.read_bytes()) & SDK_PACKAGES.keys()
    return sorted(SDK_PACKAGES[name] for name in found)
