"""The host's database tables: users, their API keys, their deployed chutes and the chutes' secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    keys: Mapped[list[ApiKey]] = relationship(back_populates="user", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"User(name={self.name!r})"


class ApiKey(Base):
    """An API key; only its SHA-256 digest and a short public prefix are stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True, index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    user: Mapped[User] = relationship(back_populates="keys")

    def __repr__(self) -> str:
        return f"ApiKey(prefix={self.prefix!r}, revoked={self.revoked_at is not None})"


class Deployment(Base):
    """One deployed chute: its current version, manifest and desired scale."""

    __tablename__ = "chutes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(128), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # the newest version that had a ready instance: what a restarted host serves
    ready_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    entrypoint: Mapped[str] = mapped_column(String(256))
    manifest_json: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    max_instances: Mapped[int] = mapped_column(Integer, default=1)
    # set by `chutes chutes scale`: a redeploy keeps it rather than the manifest's max_instances
    scaled_to: Mapped[int | None] = mapped_column(Integer, nullable=True)
    image: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    owner: Mapped[User] = relationship()

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_json)

    def __repr__(self) -> str:
        return f"Deployment(slug={self.slug!r}, version={self.version}, public={self.public})"


class DeployRecord(Base):
    """One version of a chute as it was deployed, kept for the chute's history.

    `outcome` is None for the version deployed last; a later deploy sets it to how this one ended
    (`replaced` once it had served, `failed`, or the phase it was still in).
    """

    __tablename__ = "deploys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    outcome: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the version's manifest as deployed: what a rollback serves again (never the chute's own manifest.json,
    # which its code can rewrite); None in records made before hosts kept it
    manifest_json: Mapped[str | None] = mapped_column(Text, nullable=True)

    def __repr__(self) -> str:
        return f"DeployRecord(slug={self.slug!r}, version={self.version}, outcome={self.outcome!r})"


class ChuteSecret(Base):
    """A secret of one user's chute, given to its instances as an environment variable; the value is encrypted.

    Keyed by the chute's name, not its row, so a secret can be set before the chute's first deploy.
    """

    __tablename__ = "chute_secrets"
    __table_args__ = (UniqueConstraint("owner_id", "chute", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    chute: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"ChuteSecret(chute={self.chute!r}, name={self.name!r})"


class JobRecord(Base):
    """One run of a chute's job: what was asked, where it ran, how it ended; its files are in DATA/jobs/{id}.

    `status` is queued, running, succeeded, failed, cancelled, timed_out or lost (the host stopped
    while it ran); `reason` says why it is queued, or why it did not succeed.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    args_json: Mapped[str] = mapped_column(Text, default="{}")
    result_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    timeout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    container_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    gpus_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    output_bytes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    @property
    def short(self) -> str:
        """Returns the id's first 10 hex digits: what the job's host name and listings show."""
        return self.id[:10]

    def __repr__(self) -> str:
        return f"JobRecord(id={self.short!r}, slug={self.slug!r}, name={self.name!r}, status={self.status!r})"
