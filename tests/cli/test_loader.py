"""chutes.loader in-process: references to modules, files and attributes, and its errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from chutes.chute import Chute
from chutes.exceptions import ChuteLoadError
from chutes.loader import format_user_traceback, load_chute, source_directory, split_ref
from tests.cli.conftest import FIXTURES


@pytest.fixture
def in_fixtures(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(FIXTURES)
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_split_ref():
    assert split_ref("pkg.mod:app") == ("pkg.mod", "app")
    assert split_ref("mod") == ("mod", "chute")
    assert split_ref("dir/file.py:thing") == ("dir/file.py", "thing")
    with pytest.raises(ChuteLoadError, match="invalid chute reference"):
        split_ref(":chute")


def test_file_reference(in_fixtures):
    chute = load_chute(str(FIXTURES / "cli_reload.py") + ":chute")
    assert isinstance(chute, Chute) and chute.name == "cli-reload"


def test_module_reference_from_the_cwd(in_fixtures):
    assert load_chute("cli_not_chute:other_chute").name == "cli-other"
    assert load_chute("cli_not_chute").name == "cli-not-chute"


def test_file_named_like_an_imported_module_is_refused(tmp_path: Path, in_fixtures):
    (tmp_path / "json.py").write_text("chute = None\n")
    with pytest.raises(ChuteLoadError, match="Rename the file"):
        load_chute(f"{tmp_path / 'json.py'}:chute")


def test_failed_import_leaves_no_half_module(in_fixtures):
    with pytest.raises(ChuteLoadError) as caught:
        load_chute("cli_import_error.py:chute")
    assert "cli_import_error" not in sys.modules
    assert caught.value.user_traceback.startswith("Traceback (most recent call last):")
    assert "importlib" not in caught.value.user_traceback


def test_user_traceback_keeps_frames_of_the_users_other_modules(tmp_path: Path, in_fixtures):
    (tmp_path / "helper_mod_x.py").write_text("def boom():\n    raise ValueError('deep')\n")
    (tmp_path / "main_mod_x.py").write_text("import helper_mod_x\nhelper_mod_x.boom()\n")
    with pytest.raises(ChuteLoadError) as caught:
        load_chute(f"{tmp_path / 'main_mod_x.py'}:chute")
    trace = caught.value.user_traceback
    assert "main_mod_x.py" in trace and "helper_mod_x.py" in trace
    assert "<frozen" not in trace and trace.endswith("ValueError: deep")


def test_format_user_traceback_of_an_error_without_frames():
    assert format_user_traceback(KeyError("x")) == "KeyError: 'x'"


def test_source_directory(in_fixtures):
    assert source_directory("sub/thing.py:chute") == FIXTURES / "sub"
    assert source_directory("cli_basic:chute") == FIXTURES
