"""Per-chute secrets: checked names, values encrypted at rest with the host's key, given to instances as env vars."""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
from pathlib import Path

import anyio
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session

from chutes.chute import NAME_PATTERN as CHUTE_NAME
from chutes_host.config import HostConfig
from chutes_host.deploy.deployments import find_deployment, find_own_deployment
from chutes_host.errors import DeployError, SecretError
from chutes_host.store.db import Database
from chutes_host.store.models import ChuteSecret, User

log = logging.getLogger("chutes_host.store.secrets")
KEY_FILE = "secrets.key"
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
RESERVED_PREFIX = "CHUTES_"
# Variables read as a program starts, before any of the chute's code: by the dynamic loader and the C
# library (glibc ignores these same names in setuid programs), by shells, and by Python, which reads
# every PYTHON* variable before the runtime runs. A chute's secrets hold data for its code, not these.
LOADER_PREFIXES = {
    "LD_": "the dynamic loader",
    "PYTHON": "the Python interpreter as it starts",
    # the NVIDIA container runtime's hook, which runs privileged on the host as a container starts
    "NVIDIA_": "the NVIDIA container runtime, with the host's privileges",
}
LOADER_NAMES = {
    **dict.fromkeys(
        ("GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH", "MALLOC_TRACE")
        + ("NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR"),
        "the C library",
    ),
    **dict.fromkeys(("BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "CDPATH"), "shells"),
    "PATH": "shells and the C library (to find which program a name starts)",
}
MAX_VALUE_BYTES = 64 * 1024
MAX_SECRETS = 100


class SecretBox:
    """Encrypts and decrypts values with Fernet (AES-128-CBC and HMAC-SHA256) and the host's key file.

    The key file is made on first use, readable by the host's user only.
    """

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file

    def __repr__(self) -> str:
        return f"SecretBox(key_file={str(self.key_file)!r})"

    def encrypt(self, value: str) -> str:
        return self._fernet().encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Returns the value of a token; raises InvalidToken when another key made it."""
        return self._fernet().decrypt(token.encode()).decode()

    @functools.cached_property
    def _key(self) -> bytes:
        key = read_or_create_key(self.key_file)
        try:
            Fernet(key)
        except ValueError:
            raise SecretError(
                f"the host's secrets key file {self.key_file} is damaged; restore it from a backup "
                "(without it, stored secrets cannot be read)",
                status=500,
            ) from None
        return key

    def _fernet(self) -> Fernet:
        return Fernet(self._key)


def read_or_create_key(path: Path) -> bytes:
    """Returns the key in `path`, first writing a new one there (mode 0600) when there is none."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".secrets-", dir=path.parent)  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # never replaces a key another process wrote meanwhile
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return path.read_bytes().strip()


@functools.cache
def _box_at(key_file: Path) -> SecretBox:
    return SecretBox(key_file)


def secret_box(config: HostConfig) -> SecretBox:
    """Returns the box of this host's data dir (one per key file, so the key is read once)."""
    return _box_at(config.data_dir / KEY_FILE)


def check_name(name: str) -> str:
    """Returns a valid secret name, or raises SecretError (422) saying what a name may be."""
    reason = refusal(name)
    if reason is not None:
        raise SecretError(f"invalid secret name {name!r}: {reason}", status=422)
    return name


def refusal(name: str) -> str | None:
    """Returns why `name` cannot be a secret's name (the rule it breaks), or None when it can."""
    if not NAME_PATTERN.fullmatch(name):
        return (
            "it becomes an environment variable, so use letters, digits and '_', not starting with a digit, "
            "at most 128 characters (e.g. HF_TOKEN)"
        )
    upper = name.upper()
    if upper.startswith(RESERVED_PREFIX):
        return f"names starting with {RESERVED_PREFIX} are set by the host; choose another"
    for prefix, reader in LOADER_PREFIXES.items():
        if upper.startswith(prefix):
            return (
                f"names starting with {prefix} are read by {reader}, before the chute's code runs, so they are "
                "refused; choose a name of your own (e.g. MY_SETTING) and read it in the chute"
            )
    if upper in LOADER_NAMES:
        return (
            f"{upper} is read by {LOADER_NAMES[upper]} as a program starts, before the chute's code runs, so it "
            "is refused; choose a name of your own (e.g. MY_SETTING) and read it in the chute"
        )
    return None


def check_value(value: str) -> str:
    if not value:
        raise SecretError("the secret's value is empty; to remove a secret, delete it", status=422)
    if "\0" in value:
        raise SecretError("the secret's value holds a NUL character, which an environment variable cannot", status=422)
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise SecretError(f"the secret's value is over {MAX_VALUE_BYTES // 1024} KiB; keep secrets small", status=413)
    return value


def own_chute_name(session: Session, user: User, ref: str) -> str:
    """Returns the name of the user's chute `ref` (a name or slug; it may not be deployed yet).

    Raises SecretError 404 when `ref` is another user's chute (as for none), 422 when it is no chute name.
    """
    try:
        return find_own_deployment(session, user, ref).name
    except DeployError as exc:
        if exc.status != 404:
            raise SecretError(str(exc), status=exc.status) from None
        if find_deployment(session, ref) is not None:  # another user's slug: the same answer as no chute
            raise SecretError(str(exc), status=404) from None
    if not CHUTE_NAME.fullmatch(ref):
        raise SecretError(f"{ref!r} is not a chute name (lowercase letters, digits, '-' and '_')", status=422)
    return ref


def set_secret(session: Session, box: SecretBox, user: User, chute: str, name: str, value: str) -> ChuteSecret:
    """Stores (or replaces) one secret of a chute, encrypted; returns its row."""
    check_name(name)
    check_value(value)
    row = find_secret(session, user.id, chute, name)
    if row is None:
        count = len(list_secrets(session, user.id, chute))
        if count >= MAX_SECRETS:
            raise SecretError(f"chute {chute!r} already has {MAX_SECRETS} secrets; delete some first", status=409)
        row = ChuteSecret(owner_id=user.id, chute=chute, name=name, ciphertext=box.encrypt(value))
        session.add(row)
    else:
        row.ciphertext = box.encrypt(value)
    session.flush()
    return row


def find_secret(session: Session, owner_id: int, chute: str, name: str) -> ChuteSecret | None:
    query = select(ChuteSecret).where(
        ChuteSecret.owner_id == owner_id, ChuteSecret.chute == chute, ChuteSecret.name == name
    )
    return session.execute(query).scalar_one_or_none()


def list_secrets(session: Session, owner_id: int, chute: str) -> list[ChuteSecret]:
    query = select(ChuteSecret).where(ChuteSecret.owner_id == owner_id, ChuteSecret.chute == chute)
    return list(session.execute(query.order_by(ChuteSecret.name)).scalars())


def delete_secret(session: Session, user: User, chute: str, name: str) -> None:
    row = find_secret(session, user.id, chute, name)
    if row is None:
        raise SecretError(
            f"chute {chute!r} has no secret {name!r}; list them with `chutes secrets list --chute {chute}`",
            status=404,
        )
    session.delete(row)


def read_env(session: Session, box: SecretBox, owner_id: int, chute: str) -> dict[str, str]:
    """Returns a chute's secrets as environment variables; raises SecretError when one cannot be decrypted.

    A secret stored before its name or value was refused is left out, with a warning in the host's log.
    """
    env = {}
    for row in list_secrets(session, owner_id, chute):
        reason = refusal(row.name)
        if reason is not None:
            log.warning("secret %r of chute %r (user id %d) is not passed on: %s", row.name, chute, owner_id, reason)
            continue
        try:
            value = box.decrypt(row.ciphertext)
        except InvalidToken:
            raise SecretError(
                f"secret {row.name!r} of chute {chute!r} cannot be decrypted with this host's key file "
                f"({box.key_file}); was it replaced? Set the secret again with `chutes secrets set`",
                status=500,
            ) from None
        if "\0" in value:
            log.warning("secret %r of chute %r (user id %d) holds a NUL: not passed on", row.name, chute, owner_id)
            continue
        env[row.name] = value
    return env


async def secret_env(db: Database, config: HostConfig, *, owner_id: int, chute: str) -> dict[str, str]:
    """Returns the environment variables a chute's instances get from its secrets (read off the event loop)."""

    def read() -> dict[str, str]:
        with db.session() as session:
            return read_env(session, secret_box(config), owner_id, chute)

    return await anyio.to_thread.run_sync(read)
