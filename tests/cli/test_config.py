"""The CLI configuration file, its environment overrides and `chutes config show|set`."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import pytest

from chutes_cli import config as config_module
from chutes_cli.config import ConfigError, load_config, mask_secret, render_toml, set_config_value


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CHUTES_CONFIG", "CHUTES_API_URL", "CHUTES_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(config_module, "_chosen_path", None)


def test_default_path_is_in_the_home_directory(tmp_path: Path):
    config = load_config()
    assert config.path == tmp_path / "home" / ".chutes" / "config.toml"
    assert config.api_url is None and config.api_key is None


def test_set_writes_a_private_file_atomically(tmp_path: Path):
    path = set_config_value("api_url", "http://127.0.0.1:8080")
    set_config_value("api_key", "cpk_0123456789abcdef")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tomllib.loads(path.read_text()) == {"api_url": "http://127.0.0.1:8080", "api_key": "cpk_0123456789abcdef"}
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]
    config = load_config()
    assert (config.api_url, config.api_key) == ("http://127.0.0.1:8080", "cpk_0123456789abcdef")


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch):
    set_config_value("api_url", "http://file:1")
    monkeypatch.setenv("CHUTES_API_URL", "http://env:2")
    monkeypatch.setenv("CHUTES_API_KEY", "from-env-key")
    config = load_config()
    assert config.api_url == "http://env:2"
    assert config.api_key == "from-env-key"
    assert config.sources == {"api_url": "env CHUTES_API_URL", "api_key": "env CHUTES_API_KEY"}


def test_chutes_config_env_picks_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    chosen = tmp_path / "team.toml"
    chosen.write_text('api_url = "http://team:8080"\n')
    monkeypatch.setenv("CHUTES_CONFIG", str(chosen))
    assert load_config().api_url == "http://team:8080"
    assert load_config().path == chosen


def test_explicitly_chosen_file_must_exist(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_invalid_toml_is_explained(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("api_url = http://unquoted\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_non_string_value_is_explained(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("api_url = 8080\n")
    with pytest.raises(ConfigError, match="must be a string"):
        load_config(path)


def test_unknown_key_and_bad_url_are_refused():
    with pytest.raises(ConfigError, match="Known keys: api_key, api_url"):
        set_config_value("api_uri", "x")
    with pytest.raises(ConfigError, match="http:// or https://"):
        set_config_value("api_url", "localhost:8080")


def test_toml_writer_round_trips_awkward_strings():
    values = {"api_key": 'quote " backslash \\ tab \t newline \n unicode é ctrl \x01', "api_url": "http://h"}
    assert tomllib.loads(render_toml(values)) == values


def test_secrets_are_masked():
    assert mask_secret("cpk_0123456789abcdefghij") == "cpk_…ghij"
    assert mask_secret("short") == "*****"
    assert "0123456789" not in mask_secret("cpk_0123456789abcdef")


def test_set_then_show_through_the_command(chutes, cli_env):
    assert chutes("config", "set", "api_url", "http://127.0.0.1:8080").returncode == 0
    secret = "cpk_live_0123456789abcdef0123"
    saved = chutes("config", "set", "api_key", secret)
    assert saved.returncode == 0 and secret not in saved.stdout
    shown = chutes("config", "show")
    assert shown.returncode == 0
    assert "api_url = http://127.0.0.1:8080  (from file)" in shown.stdout
    assert secret not in shown.stdout
    as_json = json.loads(chutes("config", "show", "--json").stdout)
    assert as_json["api_url"] == "http://127.0.0.1:8080"
    assert as_json["api_key"] == mask_secret(secret)


def test_config_option_chooses_the_file(chutes, tmp_path: Path):
    path = tmp_path / "alt.toml"
    assert chutes("--config", str(path), "config", "set", "api_url", "http://alt:1").returncode == 0
    shown = chutes("--config", str(path), "config", "show")
    assert "http://alt:1" in shown.stdout
    assert str(path) in shown.stdout


def test_missing_config_file_through_the_command(chutes, tmp_path: Path):
    result = chutes("--config", str(tmp_path / "nope.toml"), "config", "show")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: config file")
    assert "does not exist" in result.stderr and "config set" in result.stderr
    default = chutes("config", "show")
    assert default.returncode == 1
    assert "no configuration" in default.stderr
    assert "Traceback" not in result.stderr + default.stderr


def test_unknown_key_through_the_command(chutes):
    result = chutes("config", "set", "colour", "blue")
    assert result.returncode == 2
    assert "unknown config key 'colour'" in result.stderr
