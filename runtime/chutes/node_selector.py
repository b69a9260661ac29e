"""The hardware a chute asks its host for."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class NodeSelector(BaseModel):
    """GPUs a chute needs, e.g. `NodeSelector(gpu_count=2, min_vram_gb_per_gpu=48)`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu_count: int = Field(1, ge=1, le=8)
    min_vram_gb_per_gpu: int = Field(16, ge=16, le=140)
    include: list[str] | None = None
    exclude: list[str] | None = None
    max_hourly_price_per_gpu: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check_include_exclude(self) -> NodeSelector:
        both = set(self.include or ()) & set(self.exclude or ())
        if both:
            raise ValueError(f"GPU types both included and excluded: {sorted(both)}")
        return self
