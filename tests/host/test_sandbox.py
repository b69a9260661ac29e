"""The sandbox's pure parts: uid allocation, the environment it passes, GPU device nodes, build paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from chutes_host.sandbox.bubblewrap import SandboxUnavailable, UidRegistry, env_file, nvidia_devices, sandbox_env
from chutes_host.sandbox.pipconfig import IndexUrlError, build_pip_env, build_read_only, check_index_url


def test_uids_are_one_per_slug_remembered_and_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "uids.json"
    uids = UidRegistry(path, range(5000, 5002))
    assert uids.uid_for("alice-a") == 5000
    assert uids.uid_for("bob-b") == 5001
    assert uids.uid_for("alice-a") == 5000
    again = UidRegistry(path, range(5000, 5002))  # after a restart
    assert again.uid_for("bob-b") == 5001
    with pytest.raises(SandboxUnavailable, match="every sandbox uid of 5000-5001 is taken; .* --sandbox-uids"):
        again.uid_for("carol-c")


def test_the_environment_has_no_host_secrets() -> None:
    host = {
        "PATH": "/host/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "CUDA_VISIBLE_DEVICES": "1",
        "HF_HOME": "/models",
        "HF_TOKEN": "hf_secret",
        "DATABASE_URL": "postgresql://u:pw@db/x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "PIP_INDEX_URL": "https://pypi.example/simple",
        "PIP_PASSWORD": "x",
        "https_proxy": "http://proxy:3128",
    }
    env = sandbox_env(host)
    assert env == {
        "LANG": "C.UTF-8",
        "CUDA_VISIBLE_DEVICES": "1",
        "HF_HOME": "/models",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "USER": "chute",
    }
    build = sandbox_env(host, build=True, network=True)
    assert build["https_proxy"] == "http://proxy:3128"
    assert not any(name.startswith("PIP_") for name in build)  # pip's settings come from pipconfig alone
    assert "HF_TOKEN" not in build and "DATABASE_URL" not in build


def test_gpu_nodes_are_only_those_placed_and_present(tmp_path: Path) -> None:
    dev, driver = tmp_path / "dev", tmp_path / "driver"
    for name in ("nvidiactl", "nvidia-uvm", "nvidia0", "nvidia1", "nvidia2"):
        (dev / name).parent.mkdir(exist_ok=True)
        (dev / name).touch()
    (driver / "0000:65:00.0").mkdir(parents=True)
    (driver / "0000:65:00.0" / "information").write_text(
        "Model: \t\t NVIDIA A100\nGPU UUID: \t GPU-1a2b3c4d-0000-1111-2222-333344445555\nDevice Minor: \t 2\n"
    )
    assert nvidia_devices([], dev=dev, driver=driver) == []
    assert nvidia_devices(["0", "GPU-1A2B3C4D-0000-1111-2222-333344445555"], dev=dev, driver=driver) == [
        str(dev / "nvidiactl"),
        str(dev / "nvidia-uvm"),
        str(dev / "nvidia0"),
        str(dev / "nvidia2"),
    ]
    with pytest.raises(SandboxUnavailable, match="no GPU with UUID 'GPU-ffff'"):
        nvidia_devices(["GPU-ffff"], dev=dev, driver=driver)


def test_builds_get_a_clean_pip_configuration_and_only_the_operators_index() -> None:
    assert build_pip_env(None) == {
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_NO_INPUT": "1",
        "PIP_KEYRING_PROVIDER": "disabled",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "NETRC": "/dev/null",
    }
    assert build_pip_env("https://mirror.example/simple")["PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert build_pip_env("none")["PIP_NO_INDEX"] == "1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://alice:s3cret@pypi.example/simple", "'https://***@pypi.example/simple' carries credentials"),
        ("https://token@pypi.example/simple", "carries credentials"),
        ("ftp://pypi.example/simple", "is not an index URL"),
        ("pypi.example/simple", "is not an index URL"),
        ("https://pypi.example:port/simple", "is not a URL"),
    ],
)
def test_an_index_url_with_credentials_or_of_no_index_is_refused(url: str, message: str) -> None:
    with pytest.raises(IndexUrlError, match=message.replace("*", r"\*")) as caught:
        check_index_url(url)
    assert "s3cret" not in str(caught.value)


def test_index_urls_without_credentials_are_kept() -> None:
    for url in (None, "none", "https://pypi.org/simple", "http://10.0.0.5:3141/root/pypi/+simple/", "file:///srv/idx"):
        assert check_index_url(url) == url


def test_builds_read_a_local_index_and_the_hosts_ca_certificates(tmp_path: Path) -> None:
    index = tmp_path / "pypi" / "simple"
    index.mkdir(parents=True)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    host = {"REQUESTS_CA_BUNDLE": str(ca), "PIP_CERT": "/etc/other.pem", "SSL_CERT_DIR": str(tmp_path / "none")}
    paths = build_read_only(host, f"file://{index}")
    assert paths == [str(ca), str(tmp_path / "pypi")]  # a local index's parent: its links are relative
    assert build_read_only(host, "https://pypi.org/simple") == [str(ca)]


def test_an_environment_travels_in_a_file_and_malformed_names_are_refused() -> None:
    import os

    fd = env_file({"A": "1", "B": "x=y"})
    try:
        assert os.read(fd, 100) == b"A=1\0B=x=y\0"
    finally:
        os.close(fd)
    for bad in ({"A=B": "1"}, {"A": "1\0LD_PRELOAD=/x.so"}, {"": "1"}):
        with pytest.raises(ValueError, match="cannot be passed"):
            env_file(bad)


def test_a_data_dir_inside_a_system_directory_is_hidden(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess

    from chutes_host.sandbox.bubblewrap import Sandbox, SandboxUnavailable

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (run `bash .ci/sandbox.sh` as root)")
    tmp_path.chmod(0o755)  # like /usr/local/var: readable by everyone
    data = tmp_path / "data"
    (data / "chutes" / "a" / "1").mkdir(parents=True)
    (data / "host.db").write_text("secret rows")
    try:
        sandbox = Sandbox.detect(data)
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))
    version = data / "chutes" / "a" / "1"
    uid = sandbox.uid_for("a")
    if uid is not None:
        os.chown(version, uid, uid)
    argv = sandbox.wrap(
        ["ls", "-A", str(data)], directory=version, uid=uid, network=False, read_only=[str(tmp_path)]
    )  # as if the data dir lived under a directory every chute reads, e.g. /usr/local/var
    listed = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["chutes"]


def test_unsandboxed_instances_get_none_of_the_hosts_pip_settings() -> None:
    from chutes_host.executors.process import instance_env

    host = {"PIP_INDEX_URL": "https://ci:t0ken@pypi.example/simple", "PIP_CERT": "/etc/ca.pem", "LANG": "C.UTF-8"}
    assert instance_env(host) == {"LANG": "C.UTF-8"}
