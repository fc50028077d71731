"""The config service: statuses for bad input, versions, watch (in-process); persistence (a real process)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import grpc
import pytest
from service_process import start_service

from runtime.services.config.servicer import ConfigService
from runtime.services.config.store import ConfigStore
from runtime.v1 import config_pb2, config_pb2_grpc

RPC_S = 5.0


@pytest.fixture
def config(aio_server):
    """The config servicer served in this process, in memory (the SIGKILL test runs the real process)."""
    return aio_server(
        lambda server: config_pb2_grpc.add_ConfigServiceServicer_to_server(
            ConfigService(ConfigStore(None)), server
        )
    )


def stub_of(proc) -> tuple[grpc.Channel, config_pb2_grpc.ConfigServiceStub]:
    channel = grpc.insecure_channel(proc.address)
    return channel, config_pb2_grpc.ConfigServiceStub(channel)


def entry(ns="calculator", key="max_connections", value="4", value_type="int", expected_version=0):
    return config_pb2.ConfigEntry(
        namespace=ns, key=key, value=value, value_type=value_type, expected_version=expected_version
    )


def status_of(call, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=RPC_S)
    return info.value.code(), info.value.details()


def test_set_get_versions_and_list(config):
    channel, stub = stub_of(config)
    with channel:
        assert stub.SetConfig(entry(value="4"), timeout=RPC_S).version == 1
        assert stub.SetConfig(entry(value=" 8 "), timeout=RPC_S).version == 2
        got = stub.GetConfig(
            config_pb2.ConfigKey(namespace="calculator", key="max_connections"), timeout=RPC_S
        )
        assert (got.value, got.value_type, got.version) == ("8", "int", 2)
        assert got.updated_at > 0
        stub.SetConfig(entry(key="debug", value="TRUE", value_type="bool"), timeout=RPC_S)
        stub.SetConfig(entry(ns="other", key="x", value="hello", value_type=""), timeout=RPC_S)
        listed = stub.ListConfigs(config_pb2.ConfigNamespace(namespace="calculator"), timeout=RPC_S).values
        assert [(v.key, v.value) for v in listed] == [("debug", "true"), ("max_connections", "8")]
        everything = stub.ListConfigs(config_pb2.ConfigNamespace(), timeout=RPC_S).values
        assert {(v.namespace, v.key, v.value_type) for v in everything} >= {("other", "x", "string")}


@pytest.mark.parametrize(
    ("request_", "code", "words"),
    [
        (entry(value="four"), grpc.StatusCode.INVALID_ARGUMENT, "not an int"),
        (entry(value="maybe", value_type="bool"), grpc.StatusCode.INVALID_ARGUMENT, "not a bool"),
        (entry(value="{oops", value_type="json"), grpc.StatusCode.INVALID_ARGUMENT, "not valid JSON"),
        (entry(value_type="float"), grpc.StatusCode.INVALID_ARGUMENT, "unknown value_type"),
        (entry(ns=""), grpc.StatusCode.INVALID_ARGUMENT, "namespace is empty"),
        (entry(key="k" * 129), grpc.StatusCode.INVALID_ARGUMENT, "at most 128"),
        (entry(value="x" * 70_000, value_type="string"), grpc.StatusCode.INVALID_ARGUMENT, "bytes"),
    ],
)
def test_bad_values_are_invalid_argument(config, request_, code, words):
    channel, stub = stub_of(config)
    with channel:
        got_code, details = status_of(stub.SetConfig, request_)
    assert got_code == code and words in details, details


def test_unknown_key_is_not_found_and_stale_version_is_failed_precondition(config):
    channel, stub = stub_of(config)
    with channel:
        code, details = status_of(stub.GetConfig, config_pb2.ConfigKey(namespace="calculator", key="nope"))
        assert code == grpc.StatusCode.NOT_FOUND
        assert "'nope'" in details and "'calculator'" in details
        stub.SetConfig(entry(), timeout=RPC_S)
        stub.SetConfig(entry(expected_version=1), timeout=RPC_S)  # right version: ok, now 2
        code, details = status_of(stub.SetConfig, entry(expected_version=1))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "version 2" in details, details


def test_watch_sends_current_values_then_changes(config):
    channel, stub = stub_of(config)
    with channel:
        stub.SetConfig(entry(value="4"), timeout=RPC_S)
        stub.SetConfig(entry(key="work_ms", value="0"), timeout=RPC_S)
        stub.SetConfig(entry(ns="elsewhere", key="k", value="1"), timeout=RPC_S)
        call = stub.WatchConfig(config_pb2.ConfigKey(namespace="calculator"), timeout=10)
        seen: list[tuple[str, str, int]] = []
        done = threading.Event()

        def read():
            for v in call:
                seen.append((v.key, v.value, v.version))
                if len(seen) == 4:
                    done.set()
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        stub.SetConfig(entry(ns="elsewhere", key="k", value="2"), timeout=RPC_S)  # not watched
        stub.SetConfig(entry(value="1"), timeout=RPC_S)
        stub.SetConfig(entry(key="work_ms", value="50"), timeout=RPC_S)
        assert done.wait(5), seen
        call.cancel()
        reader.join(2)
    assert seen[:2] == [("max_connections", "4", 1), ("work_ms", "0", 1)]
    assert seen[2:] == [("max_connections", "1", 2), ("work_ms", "50", 2)]


def test_values_survive_sigkill_and_restart(lab_dir: Path):
    first = start_service("runtime.services.config", lab_dir, service="config", instance="config-1")
    try:
        channel, stub = stub_of(first)
        with channel:
            stub.SetConfig(entry(value="3"), timeout=RPC_S)
            stub.SetConfig(entry(value="5"), timeout=RPC_S)
        first.signal(signal.SIGKILL)
        first.wait()
    finally:
        first.stop()
    assert (lab_dir / "config.sqlite").exists()
    second = start_service("runtime.services.config", lab_dir, service="config", instance="config-1")
    try:
        channel, stub = stub_of(second)
        with channel:
            got = stub.GetConfig(
                config_pb2.ConfigKey(namespace="calculator", key="max_connections"), timeout=RPC_S
            )
            assert (got.value, got.version) == ("5", 2)
            assert stub.SetConfig(entry(value="6"), timeout=RPC_S).version == 3
    finally:
        second.stop()
