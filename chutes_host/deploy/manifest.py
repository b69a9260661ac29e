"""The manifest a deploy bundle carries: what the host needs to know about a chute."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,126}$"
ENTRYPOINT_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"


class ManifestError(ValueError):
    """A manifest that cannot be deployed, with a message saying what to fix."""


class Manifest(BaseModel):
    """`chute.manifest()` plus the deploy-time fields `entrypoint` and `public`."""

    model_config = ConfigDict(extra="allow")

    slug: str = Field(pattern=SLUG_PATTERN)
    username: str = Field(pattern=NAME_PATTERN)
    name: str = Field(pattern=NAME_PATTERN)
    entrypoint: str = Field(pattern=ENTRYPOINT_PATTERN)
    public: bool = False
    image: Any = None
    node_selector: dict[str, Any] | None = None
    concurrency: int = Field(1, ge=1)
    max_instances: int = Field(1, ge=1, le=64)
    shutdown_after_seconds: int | None = Field(None, ge=1)
    scaling_threshold: float = Field(0.75, gt=0, le=1)
    cords: list[dict[str, Any]] = Field(default_factory=list)
    allow_external_egress: bool = False
    read_only_root: bool = True
    build_image: bool = False
    image_recipe: dict[str, Any] | None = None
    deploy_image: str | None = None

    @property
    def module_path(self) -> str:
        """Returns the file the entrypoint's module lives in, relative to app/ (e.g. pkg/mod.py)."""
        return self.entrypoint.split(":", 1)[0].replace(".", "/") + ".py"


def parse_manifest(data: Any) -> Manifest:
    """Takes decoded manifest.json, and returns a Manifest or raises ManifestError naming the field."""
    if not isinstance(data, dict):
        raise ManifestError("manifest.json must hold a JSON object")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"invalid manifest.json: {_problems(exc, 'manifest')}") from None
    if manifest.node_selector is not None:
        from chutes.node_selector import NodeSelector

        try:
            NodeSelector(**manifest.node_selector)
        except ValidationError as exc:
            raise ManifestError(f"invalid manifest.json: node_selector: {_problems(exc, 'value')}") from None
        except TypeError as exc:  # e.g. a key that is not a string
            raise ManifestError(f"invalid manifest.json: node_selector: {exc}") from None
    expected = f"{manifest.username}-{manifest.name}"
    if manifest.slug != expected:
        raise ManifestError(f"manifest slug {manifest.slug!r} should be {expected!r}")
    check_images(manifest)
    check_job_schemas(manifest)
    return manifest


def check_job_schemas(manifest: Manifest) -> None:
    """Checks that each job's `args_schema` (what start requests are validated against) is a JSON schema."""
    for job in getattr(manifest, "jobs", None) or []:
        schema = job.get("args_schema") if isinstance(job, dict) else None
        if schema is None:
            continue
        name = job.get("name")
        if not isinstance(schema, dict):
            raise ManifestError(f"invalid manifest.json: jobs: {name!r}: args_schema must be a JSON object")
        from chutes.schema import schema_problem

        problem = schema_problem(schema)
        if problem is not None:
            raise ManifestError(f"invalid manifest.json: jobs: {name!r}: args_schema is not a JSON schema: {problem}")


def check_images(manifest: Manifest) -> None:
    """Checks the image fields as data (a host builds from `image_recipe`, never by importing the chute)."""
    from chutes.image import REF_PATTERN
    from chutes_build.recipe import RecipeError, image_from_data

    if manifest.deploy_image is not None and not REF_PATTERN.match(manifest.deploy_image):
        raise ManifestError(
            f"deploy_image {manifest.deploy_image!r} is not an image reference (like 'registry:5000/me/chute:1')"
        )
    if manifest.image_recipe is not None:
        try:
            image_from_data(manifest.image_recipe)
        except RecipeError as exc:
            raise ManifestError(f"invalid manifest.json: image_recipe: {exc}") from None


def _problems(exc: ValidationError, whole: str) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or whole}: {err['msg']}" for err in exc.errors())
