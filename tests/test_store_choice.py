"""Choosing the store (lab.yaml ``store:`` -> LAB_STORE -> a service's backend), and the messages a
learner reads when the choice is wrong, etcd is missing or the cluster cannot answer. No processes."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from runtime.client.store_choice import StoreChoice, outage_message, parse_store, store_from_env
from runtime.errors import ConfigError
from runtime.identity import ETCD_CLUSTER_FILE, EXIT_USAGE
from runtime.services.etcd_member import member
from runtime.supervisor.config import parse_config

SERVICES = {"broker": {"command": ["python", "-m", "runtime.services.broker"]}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_local_is_the_default_and_etcd_endpoints_are_read() -> None:
    assert parse_store("").kind == "local" and parse_store("local").kind == "local"
    choice = parse_store("etcd:127.0.0.1:2379, 127.0.0.1:22379")
    assert choice.is_etcd and choice.endpoints == ("127.0.0.1:2379", "127.0.0.1:22379")
    assert store_from_env({}).kind == "local"


def test_the_labs_own_cluster_comes_from_the_cluster_file(tmp_path: Path) -> None:
    members = [{"name": f"etcd-{i}", "client_port": 40000 + i, "peer_port": 41000 + i} for i in (1, 2, 3)]
    (tmp_path / ETCD_CLUSTER_FILE).write_text(json.dumps({"owner": "1", "members": members}))
    choice = store_from_env({"LAB_STORE": "etcd", "LAB_DIR": str(tmp_path)})
    assert choice.endpoints == ("127.0.0.1:40001", "127.0.0.1:40002", "127.0.0.1:40003")
    assert choice.names["127.0.0.1:40002"] == "etcd-2"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("sqlite", "is not a store; use 'local', 'etcd'"),
        ("etcd:", "is not a store"),
        ("etcd:localhost:1,localhost:2", "several endpoints must be IPv4"),
    ],
)
def test_a_bad_store_value_says_what_to_write(value: str, words: str) -> None:
    with pytest.raises(ValueError, match="LAB_STORE") as info:
        parse_store(value)
    assert words in str(info.value)


def test_etcd_without_members_says_to_start_them(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        parse_store("etcd", str(tmp_path))
    assert ETCD_CLUSTER_FILE in str(info.value) and "start the etcd service first" in str(info.value)


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("local", "local"),
        ("etcd", "etcd"),
        (
            {"etcd": {"endpoints": ["127.0.0.1:2379", "127.0.0.1:22379"]}},
            "etcd:127.0.0.1:2379,127.0.0.1:22379",
        ),
    ],
)
def test_the_lab_file_hands_the_store_to_every_service(store: object, expected: str) -> None:
    config = parse_config({"store": store, "services": SERVICES}, "lab.yaml")
    assert config.store == expected
    env = dict(config.services["broker"].env)
    assert env == ({} if expected == "local" else {"LAB_STORE": expected})


@pytest.mark.parametrize(
    "store", ["consul", {"etcd": {"endpoint": ["x:1"]}}, {"etcd": {"endpoints": ["a:1", "b:2"]}}, 3]
)
def test_a_bad_store_in_the_lab_file_names_the_field(store: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"store": store, "services": SERVICES}, "lab.yaml")
    assert "lab.yaml: store:" in str(info.value) and "not allowed" in str(info.value)


def test_an_outage_names_the_members_that_are_down() -> None:
    with socket.socket() as up:
        up.bind(("127.0.0.1", 0))
        up.listen()
        live = f"127.0.0.1:{up.getsockname()[1]}"
        dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
        choice = StoreChoice("etcd", (live, *dead), {live: "etcd-1", dead[0]: "etcd-2", dead[1]: "etcd-3"})
        text = outage_message(choice, "Deadline Exceeded")
    assert text.startswith("etcd store unavailable: 2 of 3 members are down (etcd-2 at 127.0.0.1:")
    assert "etcd-3 at" in text and "etcd-1" not in text and "need 2 of 3 (a quorum)" in text


def test_a_member_without_etcd_installed_exits_2_with_the_install_hint(monkeypatch, capsys) -> None:
    monkeypatch.setattr(member, "etcd_binary", lambda: None)
    assert member.main([]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "etcd is not installed" in err and "apt-get install etcd-server" in err
