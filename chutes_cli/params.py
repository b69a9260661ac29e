"""Plain-Python coercion of simple CLI parameters, so parsing does not import pydantic.

Typer builds a pydantic TypeAdapter for every parameter it parses; importing pydantic costs
more than the rest of `chutes invoke` together. Strings, numbers (with min/max), paths, enums and
lists of them are coerced here exactly as Typer would; anything else goes to Typer unchanged.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import typer.core
from typer import BadParameter

TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off", ""})
PATH_DEFAULTS = {
    "exists": False,
    "file_okay": True,
    "dir_okay": True,
    "writable": False,
    "readable": True,
    "resolve_path": False,
    "allow_dash": False,
    "path_type": None,
}


@dataclass(frozen=True)
class SimpleRuntimeParam:
    """Coerces one value (or each value of a list) to a plain type, as Typer's RuntimeParam does."""

    parameter_info: Any
    annotation: Any
    leaf: type

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multiple = param.multiple or param.nargs == -1
        if value is None:
            return () if multiple else None
        if multiple and isinstance(value, str):
            raise BadParameter("Value must be an iterable.", ctx=ctx, param=param)
        if isinstance(value, list | tuple):
            return [self.coerce_one(item, param, ctx) for item in value]
        return self.coerce_one(value, param, ctx)

    def coerce_one(self, value: Any, param: Any, ctx: Any) -> Any:
        leaf, info = self.leaf, self.parameter_info
        if leaf is str:
            return value if isinstance(value, str) else str(value)
        if leaf is Path:
            return value if isinstance(value, Path) else Path(value)
        if leaf is bool:
            return coerce_bool(value, param, ctx)
        if issubclass(leaf, Enum):
            return coerce_enum(leaf, value, info.case_sensitive, param, ctx)
        try:
            number = leaf(value)
        except (TypeError, ValueError):
            kind = "integer" if leaf is int else "float"
            raise BadParameter(f"{value!r} is not a valid {kind}.", ctx=ctx, param=param) from None
        if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
            low = "" if info.min is None else f"{info.min}<="
            high = "" if info.max is None else f"<={info.max}"
            raise BadParameter(f"{number} is not in the range {low}x{high}.", ctx=ctx, param=param)
        return number


def coerce_bool(value: Any, param: Any, ctx: Any) -> bool:
    """Reads a flag's value the way click does."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise BadParameter(f"{value!r} is not a valid boolean.", ctx=ctx, param=param)


def coerce_enum(enum: type[Enum], value: Any, case_sensitive: bool, param: Any, ctx: Any) -> Enum:
    """Returns the member whose value is `value`, or fails listing the choices."""
    if isinstance(value, enum):
        return value
    for member in enum:
        if member.value == value or (not case_sensitive and str(member.value).lower() == str(value).lower()):
            return member
    choices = ", ".join(repr(member.value) for member in enum)
    raise BadParameter(f"{value!r} is not one of {choices}.", ctx=ctx, param=param)


def simple_leaf(annotation: Any) -> type | None:
    """Returns the plain type behind str/int/float/bool/Path/Enum, `X | None` and `list[X]`, else None."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        return simple_leaf(rest[0]) if len(rest) == 1 else None
    if origin is list:
        (item,) = get_args(annotation) or (None,)
        return simple_leaf(item) if get_origin(item) is None else None
    if annotation in (str, int, float, Path, bool):
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return annotation
    return None


def is_plain(info: Any, leaf: type) -> bool:
    """Tells whether the parameter has no option this module does not implement."""
    if info.parser is not None or getattr(info, "click_type", None) is not None or getattr(info, "clamp", False):
        return False
    if leaf is Path:
        return all(getattr(info, name, default) == default for name, default in PATH_DEFAULTS.items())
    return True


def install() -> None:
    """Makes Typer parameters use SimpleRuntimeParam where it applies (a no-op on other Typer versions)."""
    parameter_class = getattr(typer.core, "_TyperParameter", None)
    original = getattr(parameter_class, "get_runtime_param", None)
    if original is None or getattr(original, "chutes_fast", False):
        return

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            descriptor = self.type_descriptor
            leaf = simple_leaf(descriptor.annotation) if descriptor.file_annotation is None else None
            if leaf is not None and is_plain(descriptor.parameter_info, leaf):
                self._runtime_param = SimpleRuntimeParam(
                    parameter_info=descriptor.parameter_info, annotation=descriptor.annotation, leaf=leaf
                )
        return original(self)

    get_runtime_param.chutes_fast = True
    parameter_class.get_runtime_param = get_runtime_param
