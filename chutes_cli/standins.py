"""Stand-in modules for a chute's requirements that are not installed here, so deploy can read it.

`chutes deploy` imports the chute only to read its manifest; the host installs the real
requirements. While it imports, a finder placed last on sys.meta_path (so every real module
wins) supplies an empty stand-in for a missing top-level module, but only one that the chute's
requirements.txt names. Any other missing import fails as usual.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FunctionType, MethodType, ModuleType
from typing import Any

# Distributions whose import name is not their normalised name (the usual cases).
IMPORT_NAMES = {
    "attrs": ("attr", "attrs"),
    "beautifulsoup4": ("bs4",),
    "dnspython": ("dns",),
    "faiss-cpu": ("faiss",),
    "faiss-gpu": ("faiss",),
    "ffmpeg-python": ("ffmpeg",),
    "google-cloud-storage": ("google",),
    "llama-cpp-python": ("llama_cpp",),
    "msgpack-python": ("msgpack",),
    "opencv-contrib-python": ("cv2",),
    "opencv-contrib-python-headless": ("cv2",),
    "opencv-python": ("cv2",),
    "opencv-python-headless": ("cv2",),
    "pillow": ("PIL",),
    "protobuf": ("google",),
    "pycryptodome": ("Crypto",),
    "pycryptodomex": ("Cryptodome",),
    "pygithub": ("github",),
    "pyjwt": ("jwt",),
    "pymupdf": ("fitz", "pymupdf"),
    "pyopenssl": ("OpenSSL",),
    "pyserial": ("serial",),
    "python-dateutil": ("dateutil",),
    "python-dotenv": ("dotenv",),
    "python-magic": ("magic",),
    "python-multipart": ("multipart", "python_multipart"),
    "pytorch-lightning": ("pytorch_lightning", "lightning"),
    "pyyaml": ("yaml",),
    "pyzmq": ("zmq",),
    "scikit-image": ("skimage",),
    "scikit-learn": ("sklearn",),
    "tensorflow-cpu": ("tensorflow",),
    "tensorflow-gpu": ("tensorflow",),
}
REQUIREMENT_NAME = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)")
EGG_NAME = re.compile(r"[#&]egg=([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical_name(name: str) -> str:
    """Returns a distribution's normalised name (PEP 503): lowercase, runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(path: Path, seen: set[Path] | None = None) -> list[str]:
    """Returns the distribution names a requirements file lists (following -r includes)."""
    seen = seen if seen is not None else set()
    path = path.resolve()
    if path in seen or not path.is_file():
        return []
    seen.add(path)
    names: list[str] = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()
        include = re.match(r"(?:-r|--requirement)(?:\s+|=)(\S+)", line)
        if include:
            names += requirement_names(path.parent / include.group(1), seen)
            continue
        egg = EGG_NAME.search(line)
        if egg:
            names.append(egg.group(1))
        elif line and not line.startswith(("-", ".", "/")) and "://" not in line.split("@", 1)[0]:
            match = REQUIREMENT_NAME.match(line)
            if match:
                names.append(match.group(1))
    return names


def import_names(distributions: list[str]) -> frozenset[str]:
    """Returns the top-level module names the distributions may provide."""
    from importlib.metadata import packages_distributions

    provided: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            provided.setdefault(canonical_name(dist), set()).add(module)
    names: set[str] = set()
    for dist in distributions:
        key = canonical_name(dist)
        names.update(IMPORT_NAMES.get(key, ()))
        names.update(provided.get(key, ()))
        plain = key.replace("-", "_")
        names.add(plain)
        for prefix in ("python_", "py_"):
            if plain.startswith(prefix):
                names.add(plain.removeprefix(prefix))
        if plain.endswith("_python"):
            names.add(plain.removesuffix("_python"))
    return frozenset(name for name in names if name.isidentifier())


@contextmanager
def stand_ins_for(requirements: Path) -> Iterator[list[str]]:
    """Within the block, missing modules named by `requirements` import as stand-ins.

    Yields the list of top-level names stood in for, filled as they are imported.
    """
    finder = StandInFinder(import_names(requirement_names(requirements)))
    sys.meta_path.append(finder)
    try:
        yield finder.stood_in
    finally:
        sys.meta_path.remove(finder)


class StandInFinder(importlib.abc.MetaPathFinder):
    """Finds a stand-in for a missing module whose top-level name is allowed (asked last)."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self.stood_in: list[str] = []

    def __repr__(self) -> str:
        return f"StandInFinder({sorted(self.names)})"

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        top, dot, _ = fullname.partition(".")
        if top not in self.names:
            return None
        if dot and not isinstance(sys.modules.get(top), StandInModule):
            return None  # a submodule missing from a real package is a real error
        if not dot:
            self.stood_in.append(fullname)
        return importlib.machinery.ModuleSpec(fullname, StandInLoader(), is_package=True)


class StandInLoader(importlib.abc.Loader):
    """Makes an empty stand-in module."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return StandInModule(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        module.__path__ = []


class StandInModule(ModuleType):
    """A module whose every public attribute is a stand-in."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        value = stand_in(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class StandInType(type):
    """The type of stand-ins: any attribute is another stand-in, and calling one decorates or builds."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return stand_in(f"{cls.__qualname__}.{name}")

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if is_decorated(args, kwargs):
            return args[0]
        return super().__call__(*args, **kwargs)

    def __getitem__(cls, item: Any) -> Any:
        return cls

    def __repr__(cls) -> str:
        return f"<stand-in {cls.__qualname__}>"


class StandIn(metaclass=StandInType):
    """An instance made by calling a stand-in: usable as a base class, a decorator or a value."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return stand_in(f"{type(self).__qualname__}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if is_decorated(args, kwargs):
            return args[0]
        return type(self)()

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (type(self),)

    def __getitem__(self, key: Any) -> Any:
        return type(self)()

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __repr__(self) -> str:
        return f"<stand-in {type(self).__qualname__}()>"


def stand_in(qualname: str) -> type:
    """Returns a new stand-in class named after the dotted name it was read as."""
    module = qualname.rpartition(".")[0] or qualname
    return StandInType(qualname.rpartition(".")[2], (StandIn,), {"__module__": module, "__qualname__": qualname})


def is_decorated(args: tuple, kwargs: dict) -> bool:
    """Tells whether a call looks like a bare decorator applied to a function or class."""
    return len(args) == 1 and not kwargs and isinstance(args[0], FunctionType | MethodType | type)
