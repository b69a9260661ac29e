"""Per-chute secrets: set with the real CLI, stored encrypted, given to the chute's instances only."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chutes_host.store.secrets import SecretBox, SecretError, read_env, read_or_create_key
from tests.conftest import free_port
from tests.host.conftest import CHUTES, Host, cli_env, make_project, wait_for

VALUE = "s3cr3t-Value-4f9a1c"
PIPED = "piped-Value-77e2b0"


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("secrets")
    host = Host(data_dir=base / "data", home=base / "home", port=free_port(), extra_args=["--health-interval", "0.3"])
    host.home.mkdir()
    host.start()
    host.alice = host.add_user("alice")
    host.bob = host.add_user("bob")
    host.project = make_project(base / "project", "host_secret.py")
    yield host
    host.stop()


def pipe_secret(host: Host, key: str, name: str, stdin: str, chute: str = "secret") -> subprocess.CompletedProcess:
    env = cli_env(host.home, CHUTES_API_URL=host.url, CHUTES_API_KEY=key)
    argv = [CHUTES, "secrets", "set", name, "-", "--chute", chute]
    return subprocess.run(argv, input=stdin, env=env, capture_output=True, text=True, timeout=60)


def test_a_secret_set_before_deploying_reaches_the_chute(host: Host) -> None:
    result = host.cli("secrets", "set", "MY_SECRET", VALUE, "--chute", "secret", key=host.alice)
    assert result.returncode == 0, result.stderr
    assert "MY_SECRET" in result.stderr and "next (re)starts" in result.stderr
    piped = pipe_secret(host, host.alice, "FROM_STDIN", PIPED + "\n")
    assert piped.returncode == 0, piped.stderr

    deployed = host.cli("deploy", "host_secret:chute", key=host.alice, cwd=host.project)
    assert deployed.returncode == 0, deployed.stderr
    got = host.call("alice-secret", "/secret", key=host.alice, method="GET").json()
    assert got["my_secret"] == VALUE and got["from_stdin"] == PIPED


def test_values_are_never_listed_logged_or_stored_in_plaintext(host: Host) -> None:
    listed = host.cli("secrets", "list", "--chute", "secret", key=host.alice)
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["FROM_STDIN", "MY_SECRET"]
    answer = host.api("GET", "/chutes/secret/secrets", key=host.alice)
    assert answer.status_code == 200 and {s["name"] for s in answer.json()} == {"FROM_STDIN", "MY_SECRET"}
    assert set(answer.json()[0]) == {"chute", "name", "created_at", "updated_at"}
    for text in (listed.stdout, answer.text, host.log_text()):
        assert VALUE not in text and PIPED not in text
    stored = [p for p in host.data_dir.iterdir() if p.name.startswith("host.db")]
    assert stored
    for path in stored:  # the database and its write-ahead log
        assert VALUE.encode() not in path.read_bytes() and PIPED.encode() not in path.read_bytes()
    key_file = host.data_dir / "secrets.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_another_user_can_neither_list_nor_set_nor_delete(host: Host) -> None:
    for method, path, body in (
        ("GET", "/chutes/alice-secret/secrets", None),
        ("PUT", "/chutes/alice-secret/secrets/MY_SECRET", {"value": "stolen"}),
        ("DELETE", "/chutes/alice-secret/secrets/MY_SECRET", None),
    ):
        resp = host.api(method, path, key=host.bob, json=body)
        assert resp.status_code == 404, (method, resp.text)  # the same answer as for no chute at all
        assert resp.json()["detail"].startswith("no chute 'alice-secret'")
    refused = host.cli("secrets", "list", "--chute", "alice-secret", key=host.bob)
    assert refused.returncode == 1 and "404" in refused.stderr
    assert host.api("GET", "/chutes/secret/secrets", key=None).status_code == 401
    # bob's chute of the same name is bob's own, and holds nothing of alice's
    assert host.api("GET", "/chutes/secret/secrets", key=host.bob).json() == []
    got = host.call("alice-secret", "/secret", key=host.alice, method="GET").json()
    assert got["my_secret"] == VALUE


@pytest.mark.parametrize(
    ("name", "value", "status", "words"),
    [
        ("CHUTES_SLUG", "x", 422, "set by the host"),
        ("chutes_x", "x", 422, "set by the host"),
        ("1ABC", "x", 422, "not starting with a digit"),
        ("A-B", "x", 422, "letters, digits and '_'"),
        ("OK", "", 422, "empty"),
        ("OK", "a\0b", 422, "NUL"),
        ("OK", "x" * (64 * 1024 + 1), 413, "64 KiB"),
    ],
)
def test_bad_names_and_values_are_refused_clearly(host: Host, name: str, value: str, status: int, words: str) -> None:
    resp = host.api("PUT", f"/chutes/secret/secrets/{name}", key=host.alice, json={"value": value})
    assert resp.status_code == status, resp.text
    assert words in resp.json()["detail"]
    names = {s["name"] for s in host.api("GET", "/chutes/secret/secrets", key=host.alice).json()}
    assert names == {"FROM_STDIN", "MY_SECRET"}


def test_cli_refuses_an_empty_piped_value_and_a_bad_name(host: Host) -> None:
    empty = pipe_secret(host, host.alice, "EMPTY", "")
    assert empty.returncode == 2 and "empty" in empty.stderr
    bad = host.cli("secrets", "set", "BAD/NAME", "x", "--chute", "secret", key=host.alice)
    assert bad.returncode == 1 and "invalid secret name 'BAD/NAME'" in bad.stderr


def test_a_changed_secret_reaches_instances_started_afterwards(host: Host) -> None:
    changed = host.cli("secrets", "set", "MY_SECRET", "second-value", "--chute", "secret", key=host.alice)
    assert changed.returncode == 0, changed.stderr
    assert host.cli("chutes", "scale", "secret", "2", key=host.alice).returncode == 0

    def both_instances() -> dict[str, str]:
        seen = {}
        for _ in range(4):
            got = host.call("alice-secret", "/secret", key=host.alice, method="GET")
            if got.status_code == 200:
                seen[got.json()["instance"]] = got.json()["my_secret"]
        return seen if len(seen) == 2 else {}

    seen = wait_for(both_instances, timeout=30, what="two instances answering", host=host)
    assert seen == {"0": VALUE, "1": "second-value"}  # the running one keeps what it started with

    redeployed = host.cli("deploy", "host_secret:chute", key=host.alice, cwd=host.project)
    assert redeployed.returncode == 0, redeployed.stderr
    assert host.cli("secrets", "delete", "FROM_STDIN", "--chute", "secret", key=host.alice).returncode == 0
    got = host.call("alice-secret", "/secret", key=host.alice, method="GET").json()
    assert got["my_secret"] == "second-value" and got["from_stdin"] == PIPED
    missing = host.cli("secrets", "delete", "FROM_STDIN", "--chute", "secret", key=host.alice)
    assert missing.returncode == 1 and "has no secret 'FROM_STDIN'" in missing.stderr


def test_deleting_the_chute_deletes_its_secrets(host: Host) -> None:
    assert host.cli("chutes", "delete", "secret", "--yes", key=host.alice).returncode == 0
    assert host.api("GET", "/chutes/secret/secrets", key=host.alice).json() == []


def test_the_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secrets.key"
    key = read_or_create_key(path)
    assert read_or_create_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secrets.key"]
    box = SecretBox(path)
    token = box.encrypt("hello")
    assert "hello" not in token and box.decrypt(token) == "hello"


def test_a_value_from_another_key_is_a_clear_error(tmp_path: Path) -> None:
    from chutes_host.store.db import Database
    from chutes_host.store.models import User
    from chutes_host.store.secrets import set_secret

    db = Database(f"sqlite:///{tmp_path / 'host.db'}")
    with db.session() as session:
        user = User(name="alice")
        session.add(user)
        session.flush()
        set_secret(session, SecretBox(tmp_path / "old.key"), user, "x", "TOKEN", "v")
    with db.session() as session, pytest.raises(SecretError, match="cannot be decrypted with this host's key file"):
        read_env(session, SecretBox(tmp_path / "new.key"), user.id, "x")
    db.close()


def test_a_replaced_key_file_fails_the_deploy_clearly_and_records_nothing(host_factory, tmp_path: Path) -> None:
    host = host_factory()
    alice = host.add_user("alice")
    project = make_project(tmp_path / "project", "host_secret.py")
    assert host.cli("secrets", "set", "MY_SECRET", VALUE, "--chute", "secret", key=alice).returncode == 0
    assert host.cli("deploy", "host_secret:chute", key=alice, cwd=project).returncode == 0
    host.stop()
    (host.data_dir / "secrets.key").unlink()
    read_or_create_key(host.data_dir / "secrets.key")  # a new key: the stored value no longer decrypts
    host.start()
    wait_for(lambda: "starting alice-secret without its secrets" in host.log_text(), timeout=10, what="the error")
    assert VALUE not in host.log_text()

    refused = host.cli("deploy", "host_secret:chute", key=alice, cwd=project)
    assert refused.returncode != 0
    assert "secret 'MY_SECRET' of chute 'secret' cannot be decrypted" in refused.stderr
    assert host.api("GET", "/chutes/secret", key=alice).json()["version"] == 1
    assert sorted(p.name for p in (host.data_dir / "chutes" / "alice-secret").iterdir()) == ["1", "logs"]

    assert host.cli("secrets", "set", "MY_SECRET", "again", "--chute", "secret", key=alice).returncode == 0
    assert host.cli("deploy", "host_secret:chute", key=alice, cwd=project).returncode == 0
    assert host.call("alice-secret", "/secret", key=alice, method="GET").json()["my_secret"] == "again"
