"""Stand-ins for a chute's missing requirements: which names qualify, and what a stand-in can do."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from chutes_cli.standins import import_names, requirement_names, stand_ins_for


def test_requirement_names_skip_options_comments_and_follow_includes(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("numpy>=1.26\n")
    (tmp_path / "requirements.txt").write_text(
        "# models\n-r base.txt\n--index-url https://example.com/simple\nsix>=1.16  # old\n"
        "Pillow[avif]==10.0 ; python_version > '3.8'\ntorch @ https://example.com/torch.whl\n"
        "git+https://example.com/repo.git#egg=my_lib\n./local/pkg\n\n"
    )
    assert requirement_names(tmp_path / "requirements.txt") == ["numpy", "six", "Pillow", "torch", "my_lib"]


@pytest.mark.parametrize(
    ("distribution", "module"),
    [
        ("PyYAML", "yaml"),
        ("Pillow", "PIL"),
        ("opencv-python-headless", "cv2"),
        ("scikit-learn", "sklearn"),
        ("python-dateutil", "dateutil"),
        ("sentence-transformers", "sentence_transformers"),
        ("Flash.Attn", "flash_attn"),
        ("python-foo", "foo"),
    ],
)
def test_distribution_names_map_to_import_names(distribution: str, module: str) -> None:
    assert module in import_names([distribution])


def test_a_missing_module_is_stood_in_only_when_the_requirements_name_it(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("chutes-missing-dist\n")
    with stand_ins_for(tmp_path / "requirements.txt") as stood_in:
        import chutes_missing_dist.sub as sub
        from chutes_missing_dist import Model, decorate

        with pytest.raises(ModuleNotFoundError):
            import chutes_unlisted_dist  # noqa: F401
        import json  # a real module is never stood in

    class Net(Model):
        pass

    @decorate
    def keep() -> str:
        return "kept"

    assert stood_in == ["chutes_missing_dist"]
    assert keep() == "kept" and isinstance(Net(), Model)
    assert repr(sub.thing) == "<stand-in chutes_missing_dist.sub.thing>"
    assert json.dumps([]) == "[]"
    assert sys.meta_path[-1].__class__.__name__ != "StandInFinder"
    for name in ("chutes_missing_dist", "chutes_missing_dist.sub"):
        sys.modules.pop(name, None)
