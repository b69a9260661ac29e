"""Finds the Chute a reference like 'module:attr' or 'path/to/file.py:attr' points at."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import sysconfig
import traceback
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import CodeType, ModuleType
from typing import TYPE_CHECKING

from chutes.exceptions import ChuteLoadError

if TYPE_CHECKING:
    from chutes.chute import Chute

DEFAULT_ATTR = "chute"
LOADER_FILE = os.path.normcase(os.path.abspath(__file__))
IMPORTLIB_DIR = os.path.normcase(os.path.dirname(os.path.abspath(importlib.__file__)))


def load_chute(ref: str) -> Chute:
    """Takes 'module:attr', 'file.py:attr' or 'module', and returns the Chute it names."""
    from chutes.chute import Chute

    target, attr = split_ref(ref)
    module = import_target(target)
    try:
        value = getattr(module, attr)
    except AttributeError:
        raise ChuteLoadError(f"{target!r} has no attribute {attr!r}. {describe_chutes(module, target)}") from None
    if isinstance(getattr(value, "chute", None), Chute):  # a ChutePack, as the SDK's templates return
        value = value.chute
    if not isinstance(value, Chute):
        kind = type(value).__name__
        raise ChuteLoadError(
            f"{target}:{attr} is a {kind}, not a Chute. Point the reference at a "
            f"Chute object. {describe_chutes(module, target)}"
        )
    return value


def split_ref(ref: str) -> tuple[str, str]:
    """Splits a reference into (module or file, attribute name)."""
    ref = ref.strip()
    target, sep, attr = ref.rpartition(":")
    if not sep:
        target, attr = ref, DEFAULT_ATTR
    if not target or not attr:
        raise ChuteLoadError(
            f"invalid chute reference {ref!r}. Use 'module:attr' (e.g. my_chute:chute) or 'path/to/file.py:attr'."
        )
    if not attr.isidentifier():
        raise ChuteLoadError(
            f"invalid attribute {attr!r} in chute reference {ref!r}: it must be a Python name, e.g. my_chute:chute."
        )
    return target, attr


def is_file_target(target: str) -> bool:
    """Tells whether the target names a file rather than a module."""
    return target.endswith(".py") or "/" in target or os.sep in target


def import_target(target: str) -> ModuleType:
    """Imports a module by dotted name (from the cwd) or by file path."""
    if is_file_target(target):
        return import_file(Path(target))
    return import_module_name(target)


def import_module_name(name: str) -> ModuleType:
    """Imports `name` with the cwd first on sys.path, as uvicorn does."""
    cwd = put_cwd_on_path()
    try:
        spec = importlib.util.find_spec(name)
    except (ModuleNotFoundError, ValueError):
        spec = None
    except Exception as exc:
        raise import_failure(name, name, exc) from None
    if spec is None:
        hint_file = name.replace(".", "/") + ".py"
        raise ChuteLoadError(
            f"cannot find module {name!r} (looked in the current directory {cwd} and on "
            f"sys.path). Run the command from the directory that holds {hint_file}, or pass "
            f"the file's path, e.g. path/to/{hint_file}:chute."
        )
    try:
        return importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise import_failure(name, spec.origin or name, exc) from None


def put_cwd_on_path() -> str:
    """Puts the current directory on sys.path (once), as uvicorn does, and returns it."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return cwd


def import_file(path: Path) -> ModuleType:
    """Imports a Python file as a top-level module named after its stem."""
    resolved = path.expanduser().resolve()
    if resolved.suffix != ".py":
        raise ChuteLoadError(f"{path} is not a Python file; a chute reference names a .py file.")
    if not resolved.is_file():
        raise ChuteLoadError(
            f"file {str(path)!r} does not exist (looked relative to {os.getcwd()}). "
            "Check the path, or run the command from the directory that holds it."
        )
    name = resolved.stem
    directory = str(resolved.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    existing = sys.modules.get(name)
    if existing is not None:
        existing_file = getattr(existing, "__file__", None)
        if existing_file and Path(existing_file).resolve() == resolved:
            return existing
        raise ChuteLoadError(
            f"{path} would be imported as module {name!r}, but another module of that name "
            f"is already imported ({existing_file or 'built in'}). Rename the file."
        )
    loader = SourceOnlyLoader(name, str(resolved)) if compiles_from_source(resolved) else None
    spec = importlib.util.spec_from_file_location(name, resolved, loader=loader)
    if spec is None or spec.loader is None:
        raise ChuteLoadError(f"cannot import {path} as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise import_failure(name, str(resolved), exc) from None
    return module


class SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles a module from its source at every import: never reads or writes `__pycache__`.

    A timestamp .pyc is trusted while its source has the recorded mtime, in whole seconds, and
    size; an edit of the same length within the second of an import (an editor's format on save,
    a second edit during a restart) would be served stale from it after a reload.
    """

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


class SourceDirectoryFinder:
    """A meta path finder that gives modules found under `directories` a SourceOnlyLoader."""

    def __init__(self) -> None:
        self.directories: list[Path] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if (
            spec is not None
            and type(spec.loader) is importlib.machinery.SourceFileLoader
            and spec.origin
            and compiles_from_source(Path(spec.origin))
        ):
            spec.loader = SourceOnlyLoader(fullname, spec.origin)
        return spec


SOURCE_FINDER = SourceDirectoryFinder()
INSTALLED = {Path(sysconfig.get_path(name)).resolve() for name in ("stdlib", "platstdlib", "purelib", "platlib")}


def compile_from_source(directory: Path) -> None:
    """Makes later imports of the .py files under `directory` compile them from source (see
    SourceOnlyLoader): what a reloading server must serve is the file as it is now."""
    SOURCE_FINDER.directories.append(directory.resolve())
    if SOURCE_FINDER not in sys.meta_path:
        # Just before the path finder, so built-in and frozen modules are found as ever.
        index = next(
            (i for i, finder in enumerate(sys.meta_path) if finder is importlib.machinery.PathFinder),
            len(sys.meta_path),
        )
        sys.meta_path.insert(index, SOURCE_FINDER)


def compiles_from_source(path: Path) -> bool:
    """True for the user's own files under a `compile_from_source` directory, not for installed
    packages there (a project's .venv): those keep their bytecode."""
    if not SOURCE_FINDER.directories:
        return False
    path = path.resolve()
    if any(path.is_relative_to(prefix) for prefix in INSTALLED) or {"site-packages", "dist-packages"} & set(path.parts):
        return False
    return any(path.is_relative_to(directory) for directory in SOURCE_FINDER.directories)


# what `pip install chutes` brings on the Chutes platform: here the `chutes[sdk]` extra
SDK_DEPENDENCIES = frozenset({"loguru", "pybase64", "aiohttp", "orjson", "requests", "backoff", "huggingface_hub"})


def import_failure(name: str, origin: str, exc: BaseException) -> ChuteLoadError:
    """Builds the error for a module that raised on import, with the user's traceback."""
    user_traceback = format_user_traceback(exc)
    fix = "Fix the error below in your code and run the command again."
    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    if missing in SDK_DEPENDENCIES:
        fix = (
            f"{missing!r} comes with the Chutes platform's SDK, which chute files written for it import: "
            "install it with `pip install 'chutes[sdk]'` (chutes build adds it to the image)."
        )
    what = f"importing module {name!r} ({origin}) raised {type(exc).__name__}"
    error = ChuteLoadError(f"{what}. {fix}\n\n{user_traceback}")
    error.user_traceback = user_traceback
    return error


def format_user_traceback(exc: BaseException) -> str:
    """Formats the traceback of `exc` without the frames of importlib and of this loader."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if not is_machinery_frame(frame.filename)]
    lines = []
    if frames:
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.StackSummary.from_list(frames).format())
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines).rstrip()


def is_machinery_frame(filename: str) -> bool:
    """Tells whether a frame belongs to the import machinery rather than the user's code."""
    if filename.startswith("<frozen importlib"):
        return True
    normalized = os.path.normcase(os.path.abspath(filename))
    return normalized == LOADER_FILE or normalized.startswith(IMPORTLIB_DIR + os.sep)


def describe_chutes(module: ModuleType, target: str) -> str:
    """Names the Chute objects a module defines, for error messages."""
    from chutes.chute import Chute

    names = [name for name, value in vars(module).items() if isinstance(value, Chute)]
    if not names:
        return (
            f"{target} defines no Chute object; create one at module level, e.g. "
            "chute = Chute(username=..., name=..., image=...)."
        )
    listed = ", ".join(names)
    return f"Chute objects in {target}: {listed}. Use e.g. {target}:{names[0]}."


def source_directory(ref: str) -> Path:
    """Returns the directory whose files make up the chute: the file's, or the cwd."""
    target, _ = split_ref(ref)
    if is_file_target(target):
        return Path(target).expanduser().resolve().parent
    return Path.cwd()


def check_ref(ref: str) -> None:
    """Raises ChuteLoadError if the reference's file or module cannot be found; imports nothing."""
    target, _ = split_ref(ref)
    if is_file_target(target):
        path = Path(target).expanduser()
        if not path.is_file():
            raise ChuteLoadError(
                f"file {target!r} does not exist (looked relative to {os.getcwd()}). "
                "Check the path, or run the command from the directory that holds it."
            )
        return
    top = target.split(".")[0]
    cwd = put_cwd_on_path()
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise ChuteLoadError(
            f"cannot find module {top!r} (looked in the current directory {cwd} and on sys.path). "
            f"Run the command from the directory that holds {top}.py, or pass the file's path, "
            f"e.g. path/to/{top}.py:chute."
        )
