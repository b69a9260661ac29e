"""A tenant's values never reach a privileged process: secrets that change how programs load are refused
(and left out when stored before), bwrap and setpriv never get a chute's environment, and the sandboxed
pip of a build reads none of the operator's pip settings or credentials."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.host.conftest import Host, make_project, run_cli

INDEX_TOKEN = "pip-token-4f7c1e"
CONF_MARK = "pip-conf-mark-91d2"
ETC_MARK = "etc-pip-mark-3b8a"
SECRET_MARK = "tenant-secret-e51d"
EVIL_C = r"""
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) {
    FILE *f = fopen("%s", "a");
    if (f) { fprintf(f, "uid=%%d\n", (int)getuid()); fclose(f); }
}
"""


@pytest.fixture(scope="module")
def etc_pip_conf() -> Iterator[None]:
    """Adds a section of its own to /etc/pip.conf for the module (pip ignores unknown sections), then restores it."""
    path = Path("/etc/pip.conf")
    before = path.read_bytes() if path.exists() else None
    with open(path, "a") as f:
        f.write(f"\n[chutes-test]\nmarker = {ETC_MARK}\n")
    try:
        yield
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_bytes(before)


@pytest.fixture(scope="module")
def host(tmp_path_factory, sandbox_available, etc_pip_conf) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("tenant-env")
    pip_conf = base / "operator-pip.conf"
    pip_conf.write_text(f"[global]\nextra-index-url = https://operator:{CONF_MARK}@index.invalid/simple\n")
    host = Host(
        data_dir=base / "data",
        home=base / "home",
        port=free_port(),
        extra_args=["--sandbox", "bwrap"],
        env={
            "PIP_INDEX_URL": f"https://operator:{INDEX_TOKEN}@index.invalid/simple",
            "PIP_CONFIG_FILE": str(pip_conf),
        },
    )
    host.home.mkdir()
    host.start()
    host.eve = host.add_user("eve")
    host.base = base
    yield host
    host.stop()


def put_secret(host: Host, name: str, value: str = "x"):
    return host.api("PUT", f"/chutes/envy/secrets/{name}", key=host.eve, json={"value": value})


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("LD_PRELOAD", "names starting with LD_ are read by the dynamic loader"),
        ("LD_LIBRARY_PATH", "names starting with LD_"),
        ("ld_audit", "names starting with LD_"),
        ("GCONV_PATH", "GCONV_PATH is read by the C library"),
        ("GLIBC_TUNABLES", "GLIBC_TUNABLES is read by the C library"),
        ("PYTHONSTARTUP", "names starting with PYTHON are read by the Python interpreter"),
        ("PYTHONPATH", "names starting with PYTHON"),
        ("BASH_ENV", "BASH_ENV is read by shells"),
        ("ENV", "ENV is read by shells"),
        ("NVIDIA_DRIVER_CAPABILITIES", "names starting with NVIDIA_ are read by the NVIDIA container runtime"),
    ],
)
def test_secrets_that_change_how_programs_load_are_refused(host: Host, name: str, rule: str) -> None:
    resp = put_secret(host, name, "/tmp/evil.so")
    assert resp.status_code == 422, resp.text
    assert rule in resp.json()["detail"] and "choose a name of your own" in resp.json()["detail"]
    assert name not in {s["name"] for s in host.api("GET", "/chutes/envy/secrets", key=host.eve).json()}


def test_the_cli_says_why_a_loader_secret_is_refused(host: Host) -> None:
    result = host.cli("secrets", "set", "LD_PRELOAD", "./evil.so", "--chute", "envy", key=host.eve)
    assert result.returncode == 1
    assert "invalid secret name 'LD_PRELOAD': names starting with LD_ are read by the dynamic loader" in result.stderr


def plant_secret(host: Host, name: str, value: str) -> None:
    """Stores a secret straight in the host's database, as one stored before such names were refused."""
    from chutes_host.store.db import Database
    from chutes_host.store.models import ChuteSecret, User
    from chutes_host.store.secrets import KEY_FILE, SecretBox

    db = Database(f"sqlite:///{host.data_dir / 'host.db'}")
    try:
        with db.session() as session:
            owner = session.query(User).filter_by(name="eve").one()
            ciphertext = SecretBox(host.data_dir / KEY_FILE).encrypt(value)
            session.query(ChuteSecret).filter_by(owner_id=owner.id, chute="envy", name=name).delete()
            session.add(ChuteSecret(owner_id=owner.id, chute="envy", name=name, ciphertext=ciphertext))
    finally:
        db.close()


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


def test_a_stored_loader_secret_reaches_neither_bwrap_nor_the_chute(host: Host) -> None:
    if subprocess.run(["which", "cc"], capture_output=True).returncode != 0:
        pytest.skip("no C compiler to build the tenant's library")
    pwned = host.base / "pwned"
    library = host.base / "evil.so"
    source = host.base / "evil.c"
    source.write_text(EVIL_C % pwned)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    assert put_secret(host, "MARK_SECRET", SECRET_MARK).status_code == 200  # also makes the key file
    plant_secret(host, "LD_PRELOAD", str(library))
    plant_secret(host, "GCONV_PATH", str(host.base))

    project = make_project(host.base / "project", "tenant_env.py")
    deployed = host.cli("deploy", "tenant_env:chute", key=host.eve, cwd=project)
    assert deployed.returncode == 0, deployed.stderr + host.log_text()

    assert not pwned.exists(), f"the tenant's library ran outside the sandbox: {pwned.read_text()}"
    seen = host.call("eve-envy", "/environ", key=host.eve, method="GET").json()
    assert seen["uid"] != 0
    assert seen["environ"]["MARK_SECRET"] == SECRET_MARK  # the chute still gets its secrets
    assert "LD_PRELOAD" not in seen["environ"] and "GCONV_PATH" not in seen["environ"]

    instance = host.api("GET", "/chutes/envy", key=host.eve).json()["instances"][0]["pid"]
    bwrap = parent_of(instance)
    assert Path(f"/proc/{bwrap}/cmdline").read_bytes().split(b"\0")[0].endswith(b"bwrap")
    outside = environ_of(bwrap)
    assert SECRET_MARK not in json.dumps(outside) and "MARK_SECRET" not in outside
    assert "LD_PRELOAD" not in outside and "GCONV_PATH" not in outside
    assert SECRET_MARK not in Path(f"/proc/{bwrap}/cmdline").read_text(errors="replace")

    log = host.log_text()
    assert "secret 'LD_PRELOAD' of chute 'envy'" in log and "is not passed on" in log
    assert SECRET_MARK not in log and str(library) not in log


PROBE_BACKEND = '''
"""An sdist's build code, as a tenant writes it: records what it can see of the build's host."""
import base64, hashlib, json, os, sys, zipfile
from pathlib import Path

SEEN = [
    "/etc/pip.conf", "/etc/xdg/pip/pip.conf", os.path.expanduser("~/.netrc"),
    os.path.expanduser("~/.config/pip/pip.conf"), os.path.expanduser("~/.pip/pip.conf"),
    os.environ.get("PIP_CONFIG_FILE") or "/dev/null", OPERATOR_CONF,
]


def record():
    files = {}
    for path in SEEN:
        try:
            files[path] = open(path).read()
        except OSError:
            files[path] = None
    out = Path(sys.executable).parents[2] / "build-record.json"  # the chute's own version directory
    out.write_text(json.dumps({"environ": dict(os.environ), "files": files}))


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    record()
    name = "recorder_probe-1.0-py3-none-any.whl"
    members = {
        "recorder_probe/__init__.py": b"",
        "recorder_probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: recorder-probe\\nVersion: 1.0\\n",
        "recorder_probe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    lines = []
    for path, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{path},sha256={digest},{len(data)}")
    lines.append("recorder_probe-1.0.dist-info/RECORD,,")
    members["recorder_probe-1.0.dist-info/RECORD"] = ("\\n".join(lines) + "\\n").encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for path, data in members.items():
            zf.writestr(path, data)
    return name
'''


def write_probe_sdist(folder: Path, operator_conf: Path) -> None:
    source = folder / "src" / "recorder_probe-1.0"
    source.mkdir(parents=True)
    (source / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: recorder-probe\nVersion: 1.0\n")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "probe_backend"\nbackend-path = ["."]\n'
    )
    (source / "probe_backend.py").write_text(f"OPERATOR_CONF = {str(operator_conf)!r}\n" + PROBE_BACKEND)
    sdists = folder / "sdists"
    sdists.mkdir()
    with tarfile.open(sdists / "recorder_probe-1.0.tar.gz", "w:gz") as tar:
        tar.add(source, arcname="recorder_probe-1.0")


def test_a_requirements_build_sees_none_of_the_operators_pip_settings(host: Host) -> None:
    project = host.base / "builder"
    project.mkdir()
    source = (Path(__file__).parents[1] / "fixtures" / "chutes" / "tenant_env.py").read_text()
    (project / "tenant_env.py").write_text(source.replace('name="envy"', 'name="builder"'))
    write_probe_sdist(project, host.base / "operator-pip.conf")
    (project / "requirements.txt").write_text("--no-index\n--find-links sdists\nrecorder-probe==1.0\n")
    deployed = host.cli("deploy", "tenant_env:chute", key=host.eve, cwd=project)
    assert deployed.returncode == 0, deployed.stderr

    (record_file,) = (host.data_dir / "chutes" / "eve-builder").glob("**/build-record.json")
    record = json.loads(record_file.read_text())
    text = json.dumps(record)
    assert INDEX_TOKEN not in text and CONF_MARK not in text and ETC_MARK not in text
    assert record["files"]["/etc/pip.conf"] is None and record["files"]["/etc/xdg/pip/pip.conf"] is None
    environ = record["environ"]
    from chutes_host.sandbox.pipconfig import CLEAN_PIP_ENV

    host_pip = {k: v for k, v in os.environ.items() if k.startswith("PIP_") and k not in CLEAN_PIP_ENV}
    assert not {k for k, v in host_pip.items() if environ.get(k) == v}, "the host's PIP_* reached the build"
    assert "PIP_INDEX_URL" not in environ and environ["PIP_CONFIG_FILE"] == os.devnull


def test_a_build_index_url_with_credentials_is_refused_at_start(tmp_path: Path) -> None:
    argv = ["host", "serve", "--data-dir", str(tmp_path / "data"), "--port", str(free_port())]
    result = run_cli(*argv, "--build-index-url", "https://ci:hunter2@pypi.example/simple", home=tmp_path)
    assert result.returncode == 2
    assert "--build-index-url 'https://***@pypi.example/simple' carries credentials" in result.stderr
    assert "hunter2" not in result.stderr


def test_builds_install_from_the_index_the_operator_names(tmp_path: Path, sandbox_available) -> None:
    project = tmp_path / "project"
    project.mkdir()
    source = (Path(__file__).parents[1] / "fixtures" / "chutes" / "tenant_env.py").read_text()
    (project / "tenant_env.py").write_text(source.replace('name="envy"', 'name="indexed"'))
    write_probe_sdist(tmp_path / "dist", tmp_path / "none.conf")
    index = tmp_path / "pypi"  # a PEP 503 index on disk: simple/<name>/ links to ../../files/<sdist>
    (index / "files").mkdir(parents=True)
    (tmp_path / "dist" / "sdists" / "recorder_probe-1.0.tar.gz").rename(index / "files" / "recorder_probe-1.0.tar.gz")
    (index / "simple" / "recorder-probe").mkdir(parents=True)
    (index / "simple" / "recorder-probe" / "index.html").write_text(
        '<a href="../../files/recorder_probe-1.0.tar.gz">recorder_probe-1.0.tar.gz</a>\n'
    )
    (project / "requirements.txt").write_text("recorder-probe==1.0\n")
    url = f"file://{index}/simple"
    host = Host(
        data_dir=tmp_path / "data",
        home=tmp_path / "home",
        port=free_port(),
        extra_args=["--sandbox", "bwrap", "--build-index-url", url],
        env={"PIP_INDEX_URL": f"https://operator:{INDEX_TOKEN}@index.invalid/simple"},
    )
    host.home.mkdir()
    host.start()
    try:
        eve = host.add_user("eve")
        deployed = host.cli("deploy", "tenant_env:chute", key=eve, cwd=project)
        assert deployed.returncode == 0, deployed.stderr
    finally:
        host.stop()
    (record_file,) = (host.data_dir / "chutes" / "eve-indexed").glob("**/build-record.json")
    environ = json.loads(record_file.read_text())["environ"]
    assert environ["PIP_INDEX_URL"] == url and INDEX_TOKEN not in record_file.read_text()
