"""The CLI configuration: a small TOML file, overridden by environment variables."""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from chutes_cli.errors import CLIError

DEFAULT_PATH = Path("~/.chutes/config.toml")
ENV_PATH = "CHUTES_CONFIG"
ENV_VARS = {"api_url": "CHUTES_API_URL", "api_key": "CHUTES_API_KEY"}
KEYS = {
    "api_url": "base URL of the chutes host, e.g. http://127.0.0.1:8080",
    "api_key": "API key sent to the host (never printed in full)",
}
SECRET_KEYS = frozenset({"api_key"})
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

_chosen_path: Path | None = None


class ConfigError(CLIError):
    """The config file is missing, unreadable or holds a bad value."""


@dataclass(frozen=True)
class Config:
    """Settings in effect: file values, with CHUTES_API_URL / CHUTES_API_KEY on top."""

    api_url: str | None = None
    api_key: str | None = None
    path: Path = field(default_factory=lambda: DEFAULT_PATH.expanduser())
    sources: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        key = mask_secret(self.api_key) if self.api_key else None
        return f"Config(api_url={self.api_url!r}, api_key={key!r}, path='{self.path}')"


def use_config_path(path: Path | None) -> None:
    """Makes `path` the config file for this process (the global `--config` option)."""
    global _chosen_path
    _chosen_path = path


def resolve_config_path(path: Path | None = None) -> tuple[Path, bool]:
    """Returns the config file to use and whether the user chose it explicitly."""
    if path is not None:
        return path.expanduser(), True
    if _chosen_path is not None:
        return _chosen_path.expanduser(), True
    if os.environ.get(ENV_PATH):
        return Path(os.environ[ENV_PATH]).expanduser(), True
    return DEFAULT_PATH.expanduser(), False


def load_config(path: Path | None = None) -> Config:
    """Reads the config file (which must exist if chosen explicitly) and applies the env vars."""
    config_path, explicit = resolve_config_path(path)
    if not config_path.exists() and explicit:
        raise ConfigError(
            f"config file {config_path} does not exist. Create it with "
            f"`chutes --config {config_path} config set api_url URL`, or point --config "
            f"(or {ENV_PATH}) at an existing file."
        )
    values = read_config_file(config_path)
    sources = {key: "file" for key in values}
    for key, env_name in ENV_VARS.items():
        if os.environ.get(env_name):
            values[key] = os.environ[env_name]
            sources[key] = f"env {env_name}"
    return Config(
        api_url=values.get("api_url"),
        api_key=values.get("api_key"),
        path=config_path,
        sources=sources,
    )


def read_config_file(path: Path) -> dict[str, str]:
    """Returns the known string settings of `path`, or {} if it does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}.") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML ({exc}). Fix it by hand, or delete it and "
            "run `chutes config set KEY VALUE` again."
        ) from None
    values: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(value, str):
            raise ConfigError(
                f"config file {path}: {key} must be a string, got {type(value).__name__}. "
                f'Write it quoted, e.g. {key} = "...".'
            )
        values[key] = value
    return values


def set_config_value(key: str, value: str, path: Path | None = None) -> Path:
    """Validates and stores one setting, rewriting the file atomically; returns the file."""
    validate_setting(key, value)
    config_path, _ = resolve_config_path(path)
    values = read_config_file(config_path)
    values[key] = value
    write_config_file(config_path, values)
    return config_path


def validate_setting(key: str, value: str) -> None:
    """Raises ConfigError for an unknown key or a value that cannot work."""
    if key not in KEYS:
        known = ", ".join(sorted(KEYS))
        raise ConfigError(f"unknown config key {key!r}. Known keys: {known}.", exit_code=2)
    if key == "api_url" and not re.match(r"^https?://[^/\s]+", value):
        raise ConfigError(
            f"api_url must be an http:// or https:// URL, got {value!r}. "
            "Example: chutes config set api_url http://127.0.0.1:8080",
            exit_code=2,
        )
    if not value.strip():
        raise ConfigError(f"{key} must not be empty.", exit_code=2)


def write_config_file(path: Path, values: dict[str, str]) -> None:
    """Writes `values` as TOML to a temp file beside `path`, mode 0600, then renames it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = render_toml(values)
    fd, tmp_name = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def render_toml(values: dict[str, str]) -> str:
    """Renders flat string settings as TOML."""
    lines = []
    for key in sorted(values):
        name = key if BARE_KEY.match(key) else quote_toml(key)
        lines.append(f"{name} = {quote_toml(values[key])}")
    return "\n".join(lines) + "\n"


def quote_toml(text: str) -> str:
    """Returns `text` as a TOML basic string."""
    out = []
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def mask_secret(value: str) -> str:
    """Shows a few characters of a secret, enough to tell keys apart, never all of it."""
    if len(value) <= 8:
        return "*" * len(value)
    shown = min(4, len(value) // 6)
    return f"{value[:shown]}…{value[-shown:]}"
