"""Packing and safe unpacking of deploy bundles, on real files."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from chutes_host.deploy.bundle import BundleError, pack_bundle, unpack_bundle
from chutes_host.gateway.router import slug_from_host
from tests.host.bundles import file_member, header_bomb, hello_bundle, hello_manifest, link_chain, link_member

LIMITS = {"max_bytes": 1 << 20, "max_files": 50}
ROOT = Path(__file__).parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")  # Debian 12's is 3.11.2: tarfile without extraction filters
# extraction in a process of its own, as the host's user: what it answers, and its peak memory
EXTRACT = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from chutes_host.deploy.bundle import BundleError, extract_bundle
try:
    extract_bundle(Path(sys.argv[2]), Path(sys.argv[3]), max_bytes=int(sys.argv[4]), max_files=int(sys.argv[5]))
    result = {"ok": True}
except BundleError as exc:
    result = {"ok": False, "status": exc.status, "error": str(exc)}
# VmHWM, not ru_maxrss: that one keeps the peak of the process that started this one
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
result["peak_mib"] = int(peak.split()[1]) / 1024
print(json.dumps(result))
"""


def test_pack_then_unpack_round_trips(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "host_hello.py").write_text((Path(__file__).parents[1] / "fixtures/chutes/host_hello.py").read_text())
    (src / "pkg" / "util.py").write_text("X = 1\n")
    files = [(src / "host_hello.py", "host_hello.py"), (src / "pkg" / "util.py", "pkg/util.py")]
    pack_bundle(tmp_path / "b.tgz", manifest=hello_manifest(), files=files, requirements="rich\n")
    manifest = unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)
    assert manifest.slug == "alice-hello"
    assert manifest.entrypoint == "host_hello:chute"
    assert (tmp_path / "out" / "app" / "pkg" / "util.py").read_text() == "X = 1\n"
    assert (tmp_path / "out" / "requirements.txt").read_text() == "rich\n"


def test_symlink_inside_app_is_kept(tmp_path: Path) -> None:
    hello_bundle(tmp_path / "b.tgz", None, link_member("app/alias.py", "host_hello.py"))
    unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)
    assert (tmp_path / "out" / "app" / "alias.py").is_symlink()


def test_unpacked_size_limit_catches_a_compression_bomb(tmp_path: Path) -> None:
    bomb = file_member("app/zeros.bin", b"\0" * (2 << 20))
    data = hello_bundle(tmp_path / "b.tgz", None, bomb)
    assert len(data) < 64 * 1024
    with pytest.raises(BundleError, match="more than 1 MiB") as info:
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)
    assert info.value.status == 413
    assert not (tmp_path / "out").exists()


def test_file_count_limit(tmp_path: Path) -> None:
    many = [file_member(f"app/f{i}.py", b"") for i in range(60)]
    hello_bundle(tmp_path / "b.tgz", None, *many)
    with pytest.raises(BundleError, match="more than 50 files"):
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)
    assert not (tmp_path / "out").exists()


def test_device_and_fifo_members_are_refused(tmp_path: Path) -> None:
    fifo = tarfile.TarInfo("app/pipe")
    fifo.type = tarfile.FIFOTYPE
    hello_bundle(tmp_path / "b.tgz", None, (fifo, None))
    with pytest.raises(BundleError, match="not a regular file"):
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)


def test_unexpected_top_level_member_is_refused(tmp_path: Path) -> None:
    hello_bundle(tmp_path / "b.tgz", None, file_member("Dockerfile", b"FROM scratch\n"))
    with pytest.raises(BundleError, match="only manifest.json, requirements.txt and app/"):
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)


def test_slug_must_match_username_and_name(tmp_path: Path) -> None:
    manifest = hello_manifest(slug="alice-other")
    hello_bundle(tmp_path / "b.tgz", manifest)
    with pytest.raises(BundleError, match="should be 'alice-hello'"):
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)


def test_plain_gzip_is_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "b.tgz").write_bytes(gzip.compress(b"hello"))
    with pytest.raises(BundleError, match="not a readable gzip tar"):
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)


@pytest.mark.parametrize(
    ("host", "slug"),
    [
        ("alice-hello.localhost:8080", "alice-hello"),
        ("ALICE-hello.LocalHost", "alice-hello"),
        ("alice-hello.localhost.", "alice-hello"),
        ("localhost:8080", None),
        ("127.0.0.1:8080", None),
        ("a.b.localhost", None),
        (".localhost", None),
        ("alice-hello.example.com", None),
        (None, None),
    ],
)
def test_slug_from_host(host: str | None, slug: str | None) -> None:
    assert slug_from_host(host, ".localhost") == slug


def test_unpacked_files_lose_set_id_bits_and_foreign_owners(tmp_path: Path) -> None:
    setuid, shared = file_member("app/run.sh", b"#!/bin/sh\n"), tarfile.TarInfo("app/shared")
    setuid[0].mode, setuid[0].uid, setuid[0].gid, setuid[0].uname = 0o6777, 4242, 4242, "nobody-here"
    shared.type, shared.mode, shared.uid = tarfile.DIRTYPE, 0o1777, 4242
    hello_bundle(tmp_path / "b.tgz", None, setuid, (shared, None))
    unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)
    script, folder = (tmp_path / "out" / "app" / "run.sh").stat(), (tmp_path / "out" / "app" / "shared").stat()
    assert oct(script.st_mode & 0o7777) == oct(0o755)
    assert folder.st_mode & 0o7022 == 0
    assert (script.st_uid, script.st_gid, folder.st_uid) == (os.getuid(), os.getgid(), os.getuid())


@pytest.fixture(params=["this Python", "Debian's python3"])
def python(request: pytest.FixtureRequest) -> str:
    """Each Python that unpacks bundles in these tests; Debian's own skips where it is missing, but fails under CI."""
    if request.param == "this Python":
        return sys.executable
    if not SYSTEM_PYTHON.exists():
        reason = f"{SYSTEM_PYTHON} does not exist, so bundles are not checked on the system's Python"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so these tests must run")
        pytest.skip(reason)
    return str(SYSTEM_PYTHON)


def extract_with(python: str, archive: Path, target: Path, *, max_bytes: int = 1 << 20) -> dict:
    """Extracts archive with python (isolated: the standard library and this checkout only)."""
    args = [python, "-I", "-c", EXTRACT, str(ROOT), str(archive), str(target), str(max_bytes), "50"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def tree(root: Path) -> dict[str, bytes | str]:
    """Every path under root: a file's bytes, a link's target, or "dir"."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        found[rel] = os.readlink(path) if path.is_symlink() else "dir" if path.is_dir() else path.read_bytes()
    return found


def test_a_bundle_with_links_inside_app_extracts(python: str, tmp_path: Path) -> None:
    long_name = "app/" + "d" * 120 + "/" + "m" * 200 + ".py"  # past ustar's 100 bytes: a PAX record
    hello_bundle(
        tmp_path / "b.tgz",
        None,
        file_member(long_name, b"X = 1\n"),
        link_member("app/lib/alias.py", "../host_hello.py"),
        link_member("app/lib/same", "."),
    )
    assert extract_with(python, tmp_path / "b.tgz", tmp_path / "out")["ok"]
    assert (tmp_path / "out" / long_name).read_bytes() == b"X = 1\n"
    assert os.readlink(tmp_path / "out" / "app" / "lib" / "alias.py") == "../host_hello.py"
    assert (tmp_path / "out" / "app" / "lib" / "same" / "alias.py").read_text().startswith('"""')


def test_a_chain_of_links_writes_nothing_outside_the_bundle(python: str, tmp_path: Path) -> None:
    victim = tmp_path / "data" / "chutes" / "bob-vault" / "1" / "app" / "main.py"
    victim.parent.mkdir(parents=True)
    victim.write_text("SECRET = 'bob'\n")
    (tmp_path / "data" / "tmp").mkdir()
    hello_bundle(tmp_path / "chain.tgz", None, *link_chain("chutes/bob-vault/1/app/main.py"))
    before = tree(tmp_path / "data")
    result = extract_with(python, tmp_path / "chain.tgz", tmp_path / "data" / "tmp" / "unpack")
    assert victim.read_text() == "SECRET = 'bob'\n"
    assert tree(tmp_path / "data") == before
    assert not result["ok"] and result["status"] == 400
    assert "bundle member 'app/a/b/c/d/up/esc' goes through 'app/a/b/c/d/up', which is a link" in result["error"]


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[bytes, Path]:
    """Gzip tars of about 300 KiB whose first header holds 300 MiB, by header type: made once, as each takes seconds."""
    made = {}
    for kind in (tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE):
        made[kind] = tmp_path_factory.mktemp("bomb") / "bomb.tgz"
        assert header_bomb(made[kind], payload_mib=300, kind=kind) < 320 * 1024
    return made


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE], ids=["gnu-long-name", "pax"])
def test_a_header_bomb_is_refused_before_it_is_read(python: str, tmp_path: Path, bombs: dict, kind: bytes) -> None:
    result = extract_with(python, bombs[kind], tmp_path / "out", max_bytes=1 << 30)
    assert not result["ok"] and result["status"] == 413
    assert "headers (at the start) take more than 16 KiB" in result["error"]
    assert result["peak_mib"] < 48, f"extraction peaked at {result['peak_mib']:.0f} MiB"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "members",
    [
        # t is checked on paper when it comes; only s, after it, makes it lead out of app/
        [link_member("app/a/b/t", "s/.."), link_member("app/a/b/s", "../..")],
        [link_member("app/x/y/up", ".."), link_member("app/esc", "x/y/up/../../..")],
        [link_member("app/l1", "l2"), link_member("app/l2", "l1")],
    ],
    ids=["later-link", "through-link", "loop"],
)
def test_links_leading_out_through_other_links_are_refused(tmp_path: Path, members: list) -> None:
    hello_bundle(tmp_path / "b.tgz", None, *members)
    with pytest.raises(BundleError, match=r"bundle member 'app/.*' is a link to .*leads outside app/") as info:
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)
    assert info.value.status == 400
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([link_member("app/lib", "pkg"), file_member("app/lib/x.py", b"")], "goes through 'app/lib', which is a link"),
        ([file_member("app/f", b""), file_member("app/f/x.py", b"")], "goes through 'app/f', which is a file"),
        ([file_member("app/x.py", b"1"), file_member("app/x.py", b"2")], "'app/x.py' is in the bundle twice"),
        ([file_member("app/x.py", b"1"), link_member("app/x.py", "y.py")], "'app/x.py' is in the bundle twice"),
        ([file_member("app/" + "n" * 1100, b"")], "has a name of more than 1024 bytes"),
        ([file_member("app/x/../y.py", b"")], "member paths must be relative, without '..'"),
        ([link_member("app", "elsewhere")], "is a link to 'elsewhere', outside app/"),
        ([file_member("manifest.json/x", b"")], "app/ is a directory, manifest.json and requirements.txt are files"),
    ],
    ids=["through-link", "through-file", "twice", "file-then-link", "long-name", "dotdot-inside", "app-link", "dir"],
)
def test_members_the_host_cannot_write_safely_are_refused(tmp_path: Path, members: list, message: str) -> None:
    hello_bundle(tmp_path / "b.tgz", None, *members)
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)
    assert info.value.status == 400
    assert not (tmp_path / "out").exists()


def test_headers_count_against_the_unpacked_size(tmp_path: Path) -> None:
    padded = []
    for i in range(30):  # each within one member's header allowance, together past the budget
        info, data = file_member(f"app/f{i}.py", b"")
        info.pax_headers = {"comment": "c" * 12_000}
        padded.append((info, data))
    hello_bundle(tmp_path / "b.tgz", None, file_member("app/big.bin", b"\0" * ((1 << 20) - 8192)), *padded)
    with pytest.raises(BundleError, match="more than 1 MiB, its tar headers included") as info:
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)
    assert info.value.status == 413
