"""The host's GPU inventory: read through NVML, or declared with `--gpus`, or restricted by it."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from chutes_host.errors import GpuSpecError, NvmlUnavailable

GB = 10**9  # decimal, as GPU sizes are sold: an "L4 24 GB" reports 23,034 MiB
_DECLARED = re.compile(
    r"^(?:(?P<count>\d+)\s*x\s*)?(?P<name>[^:]+?)\s*:\s*(?P<memory>\d+(?:\.\d+)?)\s*(?:gb)?(?:\s*@\s*(?P<id>[\w:.-]+))?$",
    re.I,
)
SPEC_HELP = (
    "'all' (every GPU NVML sees), 'none', indices like '0,1', or declared devices like "
    "'4xNVIDIA A100 80GB:80,2xNVIDIA L4:24' (COUNTx NAME:MEMORY_GB[@ID], comma-separated; ID is what "
    "CUDA_VISIBLE_DEVICES should name, default the device's position)"
)


@dataclass(frozen=True)
class Gpu:
    """One device an instance can be given: a whole GPU or a MIG slice."""

    index: int
    uuid: str
    name: str
    memory_bytes: int
    mig: bool | None = None

    @property
    def memory_gb(self) -> float:
        return self.memory_bytes / GB

    def label(self) -> str:
        """Returns e.g. 'NVIDIA L4 24 GB'."""
        return f"{self.name} {self.memory_gb:.0f} GB"

    def describe(self) -> dict[str, Any]:
        return {"index": self.index, "uuid": self.uuid, "name": self.name, "memory_gb": round(self.memory_gb, 1)}

    def __repr__(self) -> str:
        return f"Gpu({self.index}, {self.name!r}, {self.memory_gb:.0f} GB, uuid={self.uuid!r})"


@dataclass(frozen=True)
class Inventory:
    """The GPUs a host may place instances on, where that list came from, and why it may be empty."""

    gpus: tuple[Gpu, ...]
    source: str
    note: str = ""

    def summary(self) -> str:
        """Returns one line for the host's start-up message."""
        if not self.gpus:
            return f"no GPUs ({self.note or self.source}); only chutes with gpu_count=0 can be deployed"
        return f"{len(self.gpus)} GPU(s) from {self.source}: " + ", ".join(f"{g.index}: {g.label()}" for g in self.gpus)


def load_inventory(spec: str | None) -> Inventory:
    """Takes the `--gpus` value (None means 'all'), and returns the inventory; raises GpuSpecError."""
    text = (spec or "all").strip()
    if text.lower() == "all":
        return read_nvml()
    if text.lower() == "none":
        return Inventory((), "--gpus none", "declared with --gpus none")
    if re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
        return restrict(read_nvml(), [int(i) for i in text.split(",")])
    return Inventory(parse_declared(text), "--gpus (declared)")


def parse_declared(text: str) -> tuple[Gpu, ...]:
    """Reads declared devices, e.g. '4xNVIDIA A100 80GB:80,NVIDIA L4:24@MIG-5c1f...', numbered from 0."""
    gpus: list[Gpu] = []
    for item in (part.strip() for part in text.split(",")):
        found = _DECLARED.match(item)
        if not item or found is None:
            raise GpuSpecError(f"--gpus: cannot read {item!r}; use {SPEC_HELP}")
        count, memory = int(found["count"] or 1), float(found["memory"])
        if not 1 <= count <= 256 or not 0 < memory <= 4096:
            raise GpuSpecError(f"--gpus: {item!r} needs a count of 1-256 and a memory of 1-4096 GB")
        if found["id"] and count > 1:
            raise GpuSpecError(f"--gpus: {item!r} gives one @ID to {count} devices; declare each one with its own")
        for _ in range(count):
            index = len(gpus)
            gpus.append(Gpu(index, found["id"] or str(index), found["name"].strip(), int(memory * GB)))
    return tuple(gpus)


def restrict(inventory: Inventory, indices: Sequence[int]) -> Inventory:
    """Keeps only the GPUs with these indices; raises GpuSpecError for one the machine lacks."""
    have = {g.index: g for g in inventory.gpus}
    missing = sorted(set(indices) - set(have))
    if missing:
        seen = ", ".join(str(i) for i in sorted(have)) or f"none: {inventory.note}"
        raise GpuSpecError(f"--gpus names GPU(s) {missing} that this machine does not have (it has {seen})")
    return Inventory(tuple(have[i] for i in sorted(set(indices))), f"{inventory.source}, --gpus restricted")


def read_nvml() -> Inventory:
    """Returns every GPU (and every MIG slice of a GPU in MIG mode) that NVML reports; none without NVML."""
    try:
        with nvml() as lib:
            return Inventory(tuple(_nvml_devices(lib)), "NVML")
    except NvmlUnavailable as exc:
        return Inventory((), "NVML", str(exc))


@contextmanager
def nvml() -> Iterator[Any]:
    """Yields the initialised `pynvml` module and shuts NVML down after; raises NvmlUnavailable."""
    try:
        import pynvml
    except ImportError:
        raise NvmlUnavailable("the nvidia-ml-py package is not installed") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML is not available: {exc}") from None
    try:
        yield pynvml
    finally:
        pynvml.nvmlShutdown()


def usage(lib: Any, uuid: str) -> tuple[int, int, int] | None:
    """Returns (memory used, memory total, utilisation %) of one device, or None if NVML cannot say."""
    try:
        handle = lib.nvmlDeviceGetHandleByUUID(uuid)
        memory = lib.nvmlDeviceGetMemoryInfo(handle)
        try:
            busy = lib.nvmlDeviceGetUtilizationRates(handle).gpu
        except lib.NVMLError:  # MIG slices report no utilisation
            busy = 0
        return int(memory.used), int(memory.total), int(busy)
    except lib.NVMLError:
        return None


def _nvml_devices(lib: Any) -> Iterator[Gpu]:
    for index in range(lib.nvmlDeviceGetCount()):
        handle = lib.nvmlDeviceGetHandleByIndex(index)
        mig = _mig_enabled(lib, handle)
        name = _text(lib.nvmlDeviceGetName(handle))
        if not mig:
            total = lib.nvmlDeviceGetMemoryInfo(handle).total
            yield Gpu(index, _text(lib.nvmlDeviceGetUUID(handle)), name, int(total), mig)
            continue
        # a GPU in MIG mode runs CUDA only in its slices, each with its own UUID (MIG-...)
        for slot in range(lib.nvmlDeviceGetMaxMigDeviceCount(handle)):
            try:
                part = lib.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except lib.NVMLError:
                continue
            total = lib.nvmlDeviceGetMemoryInfo(part).total
            yield Gpu(index, _text(lib.nvmlDeviceGetUUID(part)), _text(lib.nvmlDeviceGetName(part)), int(total), True)


def _mig_enabled(lib: Any, handle: Any) -> bool | None:
    try:
        current, _pending = lib.nvmlDeviceGetMigMode(handle)
    except lib.NVMLError:  # not a MIG-capable GPU
        return None
    return current == lib.NVML_DEVICE_MIG_ENABLE


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def gpu_env(gpus: Sequence[Gpu]) -> dict[str, str]:
    """Returns the environment that limits an instance to its GPUs (by UUID); a CPU chute gets none.

    It replaces whatever CUDA_VISIBLE_DEVICES or NVIDIA_VISIBLE_DEVICES the host itself runs with.
    """
    ids = ",".join(g.uuid for g in gpus)
    return {"CUDA_VISIBLE_DEVICES": ids, "NVIDIA_VISIBLE_DEVICES": ids or "void"}
