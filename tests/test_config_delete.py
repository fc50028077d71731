"""DeleteConfig (lab.reset()'s way back to defaults), on the local store and on etcd: a key, a
namespace, everything; watchers see each removed key once more as deleted with its schema default."""

from __future__ import annotations

import threading

import grpc
import pytest
from etcd_cluster import store_backend, unique_prefix  # noqa: F401 (fixture)
from waiting import wait_until

from runtime.services.config.etcd_store import EtcdConfig
from runtime.services.config.servicer import ConfigService
from runtime.services.config.store import ConfigStore
from runtime.v1 import config_pb2, config_pb2_grpc

RPC_S = 5.0


@pytest.fixture
def stub(store_backend, aio_server):  # noqa: F811 (the imported fixture)
    services: list[ConfigService] = []

    def add(server) -> None:
        if store_backend.choice is None:
            service = ConfigService(ConfigStore(None))
        else:
            service = ConfigService(EtcdConfig(store_backend.choice, prefix=unique_prefix()))
        services.append(service)
        config_pb2_grpc.add_ConfigServiceServicer_to_server(service, server)

    server = aio_server(add)
    channel = grpc.insecure_channel(server.address)
    yield config_pb2_grpc.ConfigServiceStub(channel)
    channel.close()
    server.run(services[0].store.close())


def put(stub, ns: str, key: str, value: str, value_type: str = "int") -> None:
    stub.SetConfig(
        config_pb2.ConfigEntry(namespace=ns, key=key, value=value, value_type=value_type), timeout=RPC_S
    )


def keys(stub, ns: str = "") -> list[str]:
    reply = stub.ListConfigs(config_pb2.ConfigNamespace(namespace=ns), timeout=RPC_S)
    return [f"{v.namespace}/{v.key}" for v in reply.values]


def test_delete_a_key_a_namespace_and_everything(stub):
    put(stub, "calculator", "max_connections", "4")
    put(stub, "calculator", "work_ms", "10")
    put(stub, "other", "k", "1")
    ack = stub.DeleteConfig(config_pb2.ConfigKey(namespace="calculator", key="work_ms"), timeout=RPC_S)
    assert ack.deleted == 1 and "calculator/work_ms" in ack.message
    assert keys(stub) == ["calculator/max_connections", "other/k"]
    assert (
        stub.DeleteConfig(config_pb2.ConfigKey(namespace="calculator", key="nosuch"), timeout=RPC_S).deleted
        == 0
    )
    assert stub.DeleteConfig(config_pb2.ConfigKey(namespace="calculator"), timeout=RPC_S).deleted == 1
    assert keys(stub) == ["other/k"]
    put(stub, "calculator", "max_connections", "2")
    # Everything only when asked for explicitly: an empty namespace deletes nothing.
    with pytest.raises(grpc.RpcError) as info:
        stub.DeleteConfig(config_pb2.ConfigKey(), timeout=RPC_S)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'*'" in info.value.details()
    assert len(keys(stub)) == 2
    assert stub.DeleteConfig(config_pb2.ConfigKey(namespace="*"), timeout=RPC_S).deleted == 2
    assert keys(stub) == []
    # A key set again after a delete starts over at version 1.
    put(stub, "calculator", "max_connections", "3")
    got = stub.GetConfig(config_pb2.ConfigKey(namespace="calculator", key="max_connections"), timeout=RPC_S)
    assert (got.value, got.version) == ("3", 1)


def test_a_key_without_namespace_is_invalid_argument(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.DeleteConfig(config_pb2.ConfigKey(key="max_connections"), timeout=RPC_S)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs its namespace" in info.value.details()


def test_watchers_see_the_delete_with_the_schema_default(stub):
    schema = config_pb2.ConfigSchema(
        namespace="calculator",
        keys=[
            config_pb2.ConfigKeySpec(
                key="max_connections", value_type="int", min=1, max=100, default_value="64"
            )
        ],
    )
    stub.RegisterSchema(schema, timeout=RPC_S)
    put(stub, "calculator", "max_connections", "4")
    call = stub.WatchConfig(config_pb2.ConfigKey(namespace="calculator"), timeout=10)
    seen: list[config_pb2.ConfigValue] = []
    done = threading.Event()

    def read() -> None:
        for v in call:
            seen.append(v)
            if len(seen) == 2:
                done.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_until(lambda: seen, 5, "the watch's current value")
    stub.DeleteConfig(config_pb2.ConfigKey(namespace="calculator"), timeout=RPC_S)
    assert done.wait(5), seen
    call.cancel()
    reader.join(2)
    assert (seen[0].value, seen[0].deleted) == ("4", False)
    assert (seen[1].key, seen[1].value, seen[1].value_type, seen[1].deleted) == (
        "max_connections",
        "64",
        "int",
        True,
    )
    # The schema stays: a bad value is still refused after the delete.
    with pytest.raises(grpc.RpcError) as info:
        put(stub, "calculator", "max_connections", "0")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
