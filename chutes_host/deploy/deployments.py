"""Deploying and deleting chutes: receiving the bundle, placing it on disk, recording it."""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from chutes_host.config import HostConfig
from chutes_host.deploy.bundle import BundleError, unpack_bundle
from chutes_host.deploy.manifest import Manifest, parse_manifest
from chutes_host.deploy.spec import DeploymentSpec
from chutes_host.errors import DeployError
from chutes_host.executors.base import Executor
from chutes_host.store.db import Database
from chutes_host.store.models import ChuteSecret, Deployment, DeployRecord, User

log = logging.getLogger("chutes.host")
# an engine (and a kubelet's engine) resolves these as image ids, of any image it holds, not as names
IMAGE_ID = re.compile(r"^(?:sha256:)?[0-9a-f]{12,64}$")


async def receive_bundle(chunks: AsyncIterator[bytes], config: HostConfig, *, declared: int | None) -> Path:
    """Streams an upload into a temporary file, refusing more than max_bundle_bytes (413)."""
    limit = config.max_bundle_bytes
    if declared is not None and declared > limit:
        raise BundleError(_too_big(limit), status=413)
    config.tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".tar.gz", dir=config.tmp_dir)
    path, size = Path(name), 0
    try:
        with open(fd, "wb") as f:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise BundleError(_too_big(limit), status=413)
                f.write(chunk)
        if size == 0:
            raise BundleError("the upload is empty; send the bundle `chutes deploy` makes")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def check_image_ref(ref: str, *, own: Sequence[str], reserved: Sequence[str], what: str) -> None:
    """Refuses a reference to another chute's image (its code is another user's), by tag or by image id.

    `reserved` are the repository prefixes under which the host keeps chutes' images (the engine's, the
    registry the cluster pulls from); `own` are the prefixes of this chute's own images there.
    """
    from chutes.image import REF_PATTERN

    if not REF_PATTERN.match(ref):
        raise DeployError(f"{what} {ref!r} is not an image reference (like 'python:3.11-slim')", status=400)
    if IMAGE_ID.match(ref):
        raise DeployError(f"{what} {ref!r} looks like an image id; name it by repository and tag", status=400)
    name = _comparable(ref)
    if any(name.startswith(_comparable(p)) for p in reserved) and not any(name.startswith(_comparable(p)) for p in own):
        raise DeployError(f"{what} {ref!r} belongs to another chute; use your own image", status=403)


def manifest_images(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Returns the images a manifest names, each with what it is for: the image to run, the base to build FROM."""
    images = []
    run = manifest.get("deploy_image") or (None if manifest.get("build_image") else manifest.get("image"))
    if isinstance(run, str):
        images.append((run, "the image to run"))
    recipe = manifest.get("image_recipe")
    base = recipe.get("base_image") if isinstance(recipe, dict) and manifest.get("build_image") else None
    if isinstance(base, str):
        images.append((base, "the base image"))
    return images


def check_manifest_images(manifest: Manifest, executor: Executor) -> None:
    """Refuses, before anything is recorded, a deploy that runs or builds FROM another chute's image, on an
    executor that says where it keeps chutes' images (`image_repositories(slug)` -> (own, reserved))."""
    repositories = executor.image_repositories(manifest.slug)
    if repositories is None:
        return
    own, reserved = repositories
    for ref, what in manifest_images(manifest.model_dump(mode="json")):
        check_image_ref(ref, own=own, reserved=reserved, what=what)


def _comparable(ref: str) -> str:
    """Returns a reference as compared with the host's repositories: registry names are case-insensitive."""
    first, slash, rest = ref.partition("/")
    return first.lower() + slash + rest


def _too_big(limit: int) -> str:
    return (
        f"the bundle is larger than {limit // (1024 * 1024)} MiB; leave data and model weights "
        "out of it (list them in .chutesignore) and download them in on_startup"
    )


def install_bundle(
    archive: Path,
    config: HostConfig,
    db: Database,
    user_id: int,
    *,
    public: bool | None,
    read_env: Callable[[Session, int, str], dict[str, str]] | None = None,
    check: Callable[[Manifest], None] | None = None,
    outcome_of: Callable[[str], str] | None = None,
) -> DeploymentSpec:
    """Unpacks a bundle and records its deployment in one transaction; returns the new spec.

    `read_env(session, owner_id, chute_name)` gives the spec's environment (the chute's secrets);
    `check` may refuse the manifest (raising DeployError) before anything is recorded;
    `outcome_of(slug)` says how the version this deploy replaces ended, for the chute's history.
    On any failure nothing is left: no directory, no row.
    """
    config.tmp_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="unpack-", dir=config.tmp_dir))
    shutil.rmtree(staging)
    manifest = unpack_bundle(archive, staging, max_bytes=config.max_unpacked_bytes, max_files=config.max_bundle_files)
    final: Path | None = None
    try:
        with db.session() as session:
            user = session.get(User, user_id)
            if manifest.username != user.name:
                raise DeployError(
                    f"chute {manifest.slug!r} belongs to user {manifest.username!r}, but this key "
                    f"is {user.name!r}'s; set username={user.name!r} in the Chute(...)",
                    status=403,
                )
            row = find_deployment(session, manifest.slug)
            if row is not None and row.owner_id != user.id:
                raise DeployError(
                    f"the name {manifest.slug!r} is already taken on this host by another user; "
                    "choose another chute name",
                    status=409,
                )
            if check is not None:
                check(manifest)
            is_public = manifest.public if public is None else public
            fields = dict(
                name=manifest.name,
                entrypoint=manifest.entrypoint,
                manifest_json=json.dumps(manifest.model_dump(mode="json")),
                public=is_public,
                max_instances=manifest.max_instances,
                image=manifest.image if isinstance(manifest.image, str) else None,
            )
            if row is None:
                row = Deployment(slug=manifest.slug, owner_id=user.id, version=1, **fields)
                session.add(row)
            else:
                row.version += 1
                fields["max_instances"] = row.scaled_to or manifest.max_instances
                for key, value in fields.items():
                    setattr(row, key, value)
            session.flush()
            record_deploy(session, row, outcome_of(row.slug) if outcome_of is not None else "replaced")
            final = config.chutes_dir / row.slug / str(row.version)
            if final.exists():
                shutil.rmtree(final)
            final.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(final)
            spec = DeploymentSpec.from_row(row, config.chutes_dir)
            if read_env is not None:
                spec = replace(spec, env=read_env(session, row.owner_id, row.name))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if final is not None:
            shutil.rmtree(final, ignore_errors=True)
        raise
    return spec


def record_deploy(session: Session, row: Deployment, previous_outcome: str) -> None:
    """Adds the row's new version to its chute's history, closing the version it replaces."""
    open_records = select(DeployRecord).where(DeployRecord.slug == row.slug, DeployRecord.outcome.is_(None))
    for record in session.execute(open_records).scalars():
        record.outcome = previous_outcome
    session.add(
        DeployRecord(owner_id=row.owner_id, slug=row.slug, version=row.version, manifest_json=row.manifest_json)
    )


def deploy_history(session: Session, slug: str, *, limit: int = 20) -> list[DeployRecord]:
    """Returns a chute's deploys, newest first."""
    stmt = select(DeployRecord).where(DeployRecord.slug == slug).order_by(DeployRecord.version.desc()).limit(limit)
    return list(session.execute(stmt).scalars())


def find_record(session: Session, slug: str, version: int) -> DeployRecord | None:
    """Returns the record of one version of a chute (the newest, when a rollback made the number come twice)."""
    stmt = select(DeployRecord).where(DeployRecord.slug == slug, DeployRecord.version == version)
    return session.execute(stmt.order_by(DeployRecord.id.desc()).limit(1)).scalar_one_or_none()


def find_deployment(session: Session, slug: str) -> Deployment | None:
    return session.execute(select(Deployment).where(Deployment.slug == slug)).scalar_one_or_none()


def find_own_deployment(session: Session, user: User, ref: str) -> Deployment:
    """Finds a chute of this user by slug or by name; raises DeployError 404 when there is none."""
    rows = [find_deployment(session, s) for s in (f"{user.name}-{ref}", ref)]
    for row in rows:
        if row is not None and row.owner_id == user.id:
            return row
    # another user's chute gets the same answer as none: slugs of other users stay unknown
    raise DeployError(f"no chute {ref!r}; list yours with `chutes chutes list`", status=404)


def delete_deployment(config: HostConfig, db: Database, user: User, ref: str) -> str:
    """Deletes a chute's row and its secrets; returns its slug (the caller stops it and removes its files)."""
    with db.session() as session:
        row = find_own_deployment(session, user, ref)
        slug = row.slug
        session.execute(delete(ChuteSecret).where(ChuteSecret.owner_id == row.owner_id, ChuteSecret.chute == row.name))
        session.execute(delete(DeployRecord).where(DeployRecord.slug == slug))
        session.delete(row)
    return slug


def record_ready(db: Database, spec: DeploymentSpec) -> None:
    """Records that a version of a chute had a ready instance: the version a restarted host serves."""
    with db.session() as session:
        row = find_deployment(session, spec.slug)
        if row is not None and spec.version <= row.version and (row.ready_version or 0) < spec.version:
            row.ready_version = spec.version


def load_specs(
    config: HostConfig, db: Database, *, read_env: Callable[[Session, int, str], dict[str, str]] | None = None
) -> list[DeploymentSpec]:
    """Returns every recorded deployment whose files are present, to bring back after a restart.

    A chute comes back at the last version that was ready: a newer one that never was (the host
    stopped while it started) is dropped, as are the files of every other version. What it comes back
    as (name, entrypoint, cords, egress) is the manifest the host recorded at that version's deploy.
    `read_env(session, owner_id, chute_name)` gives each spec's environment (the chute's secrets).
    """
    specs = []
    with db.session() as session:
        for row in session.execute(select(Deployment).order_by(Deployment.id)).scalars():
            keep_manifest(session, row)
            if row.ready_version is not None and row.ready_version != row.version:
                _roll_back(session, row, config)
            spec = DeploymentSpec.from_row(row, config.chutes_dir)
            if spec.directory.is_dir():
                remove_other_versions(spec)
                specs.append(replace(spec, env=read_env(session, row.owner_id, row.name)) if read_env else spec)
    return specs


def keep_manifest(session: Session, row: Deployment) -> None:
    """Records the manifest of a chute's current version in its history, where an older host left none."""
    record = find_record(session, row.slug, row.version)
    if record is not None and record.manifest_json is None:
        record.manifest_json = row.manifest_json


def _roll_back(session: Session, row: Deployment, config: HostConfig) -> None:
    if not (config.chutes_dir / row.slug / str(row.ready_version)).is_dir():
        return  # its files are gone: the newer version is all there is
    record = find_record(session, row.slug, row.ready_version)
    if record is None or record.manifest_json is None:
        # the version's manifest.json is the chute's to rewrite, so it is never read back
        log.warning(
            "%s: version %d was never ready, but version %d is not served again: it was deployed by an older "
            "host, which kept no record of its manifest; version %d starts again (deploy again to replace it)",
            row.slug,
            row.version,
            row.ready_version,
            row.version,
        )
        return
    manifest = parse_manifest(json.loads(record.manifest_json))
    log.warning(
        "%s: version %d was never ready, so version %d is served again; deploy again to retry",
        row.slug,
        row.version,
        row.ready_version,
    )
    row.version = row.ready_version
    row.name = manifest.name
    row.entrypoint = manifest.entrypoint
    row.manifest_json = json.dumps(manifest.model_dump(mode="json"))
    row.image = manifest.image if isinstance(manifest.image, str) else None


def remove_other_versions(spec: DeploymentSpec) -> None:
    """Removes the unpacked files of every version of the chute but `spec`'s (left by a crash)."""
    for child in spec.directory.parent.iterdir():
        if child.name.isdigit() and child != spec.directory:
            shutil.rmtree(child, ignore_errors=True)
