"""The `Image` DSL and its directives, at the import path of the Chutes platform's SDK."""

from __future__ import annotations

from chutes.image.base import (
    PIP_PATTERN,
    REF_PATTERN,
    Add,
    AptInstall,
    Directive,
    Entrypoint,
    Env,
    Image,
    Label,
    PipInstall,
    RunCommand,
    User,
    Workdir,
)

__all__ = [
    "Add",
    "AptInstall",
    "Directive",
    "Entrypoint",
    "Env",
    "Image",
    "Label",
    "PIP_PATTERN",
    "PipInstall",
    "REF_PATTERN",
    "RunCommand",
    "User",
    "Workdir",
]
