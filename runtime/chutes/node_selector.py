"""The hardware a chute asks its host for, and how GPU type names match the devices a host has."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

TYPE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9 _.-]{0,63}$")
_TOKEN = re.compile(r"[a-z0-9]+")
_VENDOR_WORDS = frozenset({"nvidia", "geforce", "tesla", "quadro"})


class NodeSelector(BaseModel):
    """GPUs a chute needs, e.g. `NodeSelector(gpu_count=2, min_vram_gb_per_gpu=48, include=["a100", "h100"])`.

    `gpu_count=0` makes a CPU chute: it is given no GPU (and sees none), so it runs on any host.
    Keys it does not know are ignored, as the Chutes platform's SDK does, and listed in
    `ignored_keys` so `chutes build` and `chutes deploy` can point out a typo.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    gpu_count: int = Field(default=1, ge=0, le=8)
    min_vram_gb_per_gpu: int = Field(default=16, ge=16, le=140)
    include: list[str] | None = None
    exclude: list[str] | None = None
    max_hourly_price_per_gpu: float | None = Field(default=None, gt=0)
    _ignored: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _note_unknown_keys(cls, data: Any, handler: Any) -> NodeSelector:
        selector = handler(data)
        if isinstance(data, dict):
            unknown = tuple(sorted(str(k) for k in data if k not in cls.model_fields))
            if unknown:
                selector._ignored = unknown
        return selector

    @property
    def ignored_keys(self) -> tuple[str, ...]:
        """The keys given that this host does not know (and ignored)."""
        return self._ignored

    @field_validator("include", "exclude")
    @classmethod
    def _normalise_types(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = [name.strip().lower() for name in value]
        bad = [name for name in names if not TYPE_PATTERN.match(name)]
        if bad:
            raise ValueError(f"GPU type names look like 'a100', 'h100' or 'rtx4090'; got {bad}")
        return names

    @model_validator(mode="after")
    def _check_include_exclude(self) -> NodeSelector:
        both = set(self.include or ()) & set(self.exclude or ())
        if both:
            raise ValueError(f"GPU types both included and excluded: {sorted(both)}")
        if self.gpu_count == 0 and self.include:
            raise ValueError(f"gpu_count=0 asks for no GPU, so include={self.include} can never apply")
        return self

    @property
    def is_cpu(self) -> bool:
        return self.gpu_count == 0

    def accepts(self, device_name: str) -> bool:
        """Returns whether a GPU of this name passes `include` and `exclude`."""
        if self.include and not any(gpu_type_matches(t, device_name) for t in self.include):
            return False
        return not (self.exclude and any(gpu_type_matches(t, device_name) for t in self.exclude))


def gpu_type_matches(wanted: str, device_name: str) -> bool:
    """Returns whether a type as users write it ("a100", "l40s", "rtx4090", "a100-80gb") names this device.

    Every word of `wanted` must be a whole word of the device name (or two adjacent words run together),
    so "a100" matches "NVIDIA A100-SXM4-80GB" and "a10" does not, and "l40" does not match "NVIDIA L40S".
    """
    words = [w for w in _TOKEN.findall(wanted.lower()) if w not in _VENDOR_WORDS]
    if not words:
        return False
    name = _TOKEN.findall(device_name.lower())
    vocabulary = set(name) | {a + b for a, b in zip(name, name[1:], strict=False)}
    return all(w in vocabulary for w in words)
