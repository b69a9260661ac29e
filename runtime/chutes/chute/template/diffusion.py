"""`build_diffusion_chute`: a text-to-image diffusers pipeline behind `POST /generate`, with the SDK's arguments."""

from __future__ import annotations

import io
from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import Response

from chutes.chute.base import Chute, ChutePack
from chutes.image.standard.diffusion import DIFFUSION
from chutes.node_selector import NodeSelector

__all__ = ["build_diffusion_chute", "DiffusionChute", "GenerationInput", "MinifiedGenerationInput"]


class GenerationInput(BaseModel):
    prompt: str = Field(min_length=1)
    negative_prompt: str = ""
    height: int = Field(1024, ge=128, le=2048, multiple_of=8)
    width: int = Field(1024, ge=128, le=2048, multiple_of=8)
    num_inference_steps: int = Field(25, ge=1, le=50)
    guidance_scale: float = Field(7.5, ge=1.0, le=20.0)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)


class MinifiedGenerationInput(BaseModel):
    prompt: str = "a beautiful mountain landscape"


class DiffusionChute(ChutePack):
    generate: Any = None


def build_diffusion_chute(
    username: str,
    name: str,
    model_name_or_url: str,
    node_selector: NodeSelector | dict,
    tagline: str = "",
    readme: str = "",
    concurrency: int = 3,
    version: str | None = None,
    revision: str | None = None,
    image: Any = DIFFUSION,
    pipeline_args: dict | None = None,
    max_instances: int = 1,
    scaling_threshold: float = 0.75,
    shutdown_after_seconds: int = 300,
    tee: bool = False,
) -> DiffusionChute:
    """Returns a chute that loads `model_name_or_url` with diffusers on its GPU and answers JPEG images.

    `version` is the SDK's name for the revision; give one of them.
    """
    if version and revision and version != revision:
        raise ValueError(f"version={version!r} and revision={revision!r} disagree; give the revision once")
    pipeline_options = dict(pipeline_args or {})
    chute = Chute(
        username=username, name=name, image=image, node_selector=node_selector, tagline=tagline, readme=readme,
        concurrency=concurrency, revision=revision or version, max_instances=max_instances,
        scaling_threshold=scaling_threshold, shutdown_after_seconds=shutdown_after_seconds,
        standard_template="diffusion", tee=tee,
    )  # fmt: skip

    @chute.on_startup()
    async def load_pipeline(self) -> None:
        # in the chute's image only (the template's Image installs them)
        import torch  # pyright: ignore[reportMissingImports]
        from diffusers import AutoPipelineForText2Image  # pyright: ignore[reportMissingImports]

        if chute.revision:
            pipeline_options.setdefault("revision", chute.revision)
        loader = AutoPipelineForText2Image.from_pretrained
        if model_name_or_url.startswith(("http://", "https://")) or model_name_or_url.endswith(".safetensors"):
            from diffusers import StableDiffusionXLPipeline  # pyright: ignore[reportMissingImports]

            loader = StableDiffusionXLPipeline.from_single_file
        self.torch = torch
        self.pipeline = loader(model_name_or_url, torch_dtype=torch.float16, **pipeline_options).to("cuda")

    @chute.cord(
        public_api_path="/generate",
        input_schema=GenerationInput,
        minimal_input_schema=MinifiedGenerationInput,
        output_content_type="image/jpeg",
        pass_chute=True,
    )
    def generate(self, params: GenerationInput) -> Response:
        generator = None
        if params.seed is not None:
            generator = self.torch.Generator(device="cuda").manual_seed(params.seed)
        with self.torch.inference_mode():
            result = self.pipeline(
                prompt=params.prompt,
                negative_prompt=params.negative_prompt or None,
                height=params.height,
                width=params.width,
                num_inference_steps=params.num_inference_steps,
                guidance_scale=params.guidance_scale,
                generator=generator,
            )
        buffer = io.BytesIO()
        result.images[0].save(buffer, format="JPEG", quality=85)
        return Response(buffer.getvalue(), media_type="image/jpeg")

    return DiffusionChute(chute=chute, generate=generate)
