"""The config service: statuses for bad input, versions, watch (in-process, on the local store and on
etcd); persistence (a real process)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import grpc
import pytest
from etcd_cluster import store_backend, unique_prefix  # noqa: F401 (fixture)
from service_process import start_service
from waiting import wait_until

from calculator.v1 import calculator_pb2, calculator_pb2_grpc
from runtime.identity import CONFIG_DB_FILE
from runtime.services.config.etcd_store import EtcdConfig
from runtime.services.config.servicer import ConfigService
from runtime.services.config.store import ConfigStore
from runtime.v1 import config_pb2, config_pb2_grpc, logger_pb2, logger_pb2_grpc

RPC_S = 5.0


@pytest.fixture
def config(store_backend, aio_server):  # noqa: F811 (the imported fixture)
    """The config servicer served in this process (the SIGKILL test runs the real process): on an
    in-memory SQLite store, or on the module's etcd member under a fresh key prefix."""
    services: list[ConfigService] = []

    def add(server) -> None:
        if store_backend.choice is None:
            service = ConfigService(ConfigStore(None))
        else:
            service = ConfigService(EtcdConfig(store_backend.choice, prefix=unique_prefix()))
        services.append(service)
        config_pb2_grpc.add_ConfigServiceServicer_to_server(service, server)

    server = aio_server(add)
    yield server
    server.run(services[0].store.close())


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
        # The current values come once the watch is in place: changes from now on are not missed.
        wait_until(lambda: len(seen) >= 2, 5, "the watch's current values")
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


# -- schemas: a consumer's types and ranges, enforced before a value is stored -----------------


def calculator_schema() -> config_pb2.ConfigSchema:
    from calculator.settings import SCHEMA

    return SCHEMA


def test_schema_refuses_bad_values_before_they_are_stored(config):
    channel, stub = stub_of(config)
    with channel:
        stub.SetConfig(entry(value="8"), timeout=RPC_S)
        ack = stub.RegisterSchema(calculator_schema(), timeout=RPC_S)
        assert ack.ok and not ack.invalid, ack
        for bad in ("abc", "-5", "100001", ""):
            code, details = status_of(stub.SetConfig, entry(value=bad, value_type=""))
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (bad, code)
            assert details == (
                f"calculator/max_connections must be an integer between 1 and 100000; got {bad!r}"
            ), details
        code, details = status_of(stub.SetConfig, entry(value="true", value_type="bool"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "is a int key" in details, details
        # Nothing bad was stored: still the value from before, at its version.
        got = stub.GetConfig(
            config_pb2.ConfigKey(namespace="calculator", key="max_connections"), timeout=RPC_S
        )
        assert (got.value, got.version) == ("8", 1)
        # A good value given as a string takes the schema's type; keys it does not name are free.
        assert stub.SetConfig(entry(value=" 12 ", value_type="string"), timeout=RPC_S).version == 2
        got = stub.GetConfig(
            config_pb2.ConfigKey(namespace="calculator", key="max_connections"), timeout=RPC_S
        )
        assert (got.value, got.value_type) == ("12", "int")
        stub.SetConfig(entry(key="greeting", value="hello", value_type="string"), timeout=RPC_S)
        schema = stub.GetSchema(config_pb2.ConfigNamespace(namespace="calculator"), timeout=RPC_S)
        assert [k.key for k in schema.keys] == ["max_connections", "work_ms", "degraded_p99_ms"]
        assert schema.registered_at > 0
        code, details = status_of(stub.GetSchema, config_pb2.ConfigNamespace(namespace="nobody"))
        assert code == grpc.StatusCode.NOT_FOUND and "'nobody'" in details


def test_registering_a_schema_names_stored_values_that_break_it(config):
    channel, stub = stub_of(config)
    with channel:
        stub.SetConfig(entry(value="abc", value_type="string"), timeout=RPC_S)  # before any schema
        stub.SetConfig(entry(key="work_ms", value="20"), timeout=RPC_S)
        ack = stub.RegisterSchema(calculator_schema(), timeout=RPC_S)
    assert ack.ok and [(v.key, v.value) for v in ack.invalid] == [("max_connections", "abc")], ack
    assert "max_connections" in ack.message


def spec(key="k", value_type="int", **kw) -> config_pb2.ConfigKeySpec:
    return config_pb2.ConfigKeySpec(key=key, value_type=value_type, **kw)


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ([spec(min=5, max=1)], "min 5 is above max 1"),
        ([spec(), spec()], "declared twice"),
        ([spec(value_type="float")], "unknown value_type 'float'"),
        ([spec(value_type="bool", min=1)], "int keys only"),
        ([spec(min=1, max=3, default_value="9")], "must be an integer between 1 and 3; got '9'"),
        ([spec(key="")], "key is empty"),
    ],
)
def test_inconsistent_schemas_are_invalid_argument(config, keys, words):
    channel, stub = stub_of(config)
    with channel:
        code, details = status_of(stub.RegisterSchema, config_pb2.ConfigSchema(namespace="ns", keys=keys))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and words in details, details


def test_a_100_kb_name_or_value_is_invalid_argument_with_a_short_message(config):
    # Echoed whole, a 100 KB name made the status message too big for the Python client, which
    # then reported RESOURCE_EXHAUSTED instead of the real INVALID_ARGUMENT.
    huge = "k" * 100_000
    channel, stub = stub_of(config)
    with channel:
        stub.RegisterSchema(calculator_schema(), timeout=RPC_S)
        for call, request in [
            (stub.SetConfig, entry(key=huge)),
            (stub.SetConfig, entry(ns=huge)),
            (stub.GetConfig, config_pb2.ConfigKey(namespace="calculator", key=huge)),
            (stub.SetConfig, entry(value="9" * 60_000, value_type="")),
            (stub.SetConfig, entry(key="other", value="x" * 60_000, value_type="int")),
            (stub.GetSchema, config_pb2.ConfigNamespace(namespace=huge)),
        ]:
            code, details = status_of(call, request)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details[:300])
            assert len(details) < 600, details[:300]


def test_schema_survives_sigkill_and_restart(lab_dir: Path):
    first = start_service("runtime.services.config", lab_dir, service="config", instance="config-1")
    try:
        channel, stub = stub_of(first)
        with channel:
            stub.RegisterSchema(calculator_schema(), timeout=RPC_S)
        first.signal(signal.SIGKILL)
        first.wait()
    finally:
        first.stop()
    second = start_service("runtime.services.config", lab_dir, service="config", instance="config-1")
    try:
        channel, stub = stub_of(second)
        with channel:
            code, details = status_of(stub.SetConfig, entry(value="-5"))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and "between 1 and 100000" in details
    finally:
        second.stop()


# -- the consumer: a calculator that meets a bad value keeps its last good one -------------------


def lab_metadata(lab_dir: Path) -> list[tuple[str, str]]:
    """The lab's token as call metadata, when the lab has one (<lab dir>/token)."""
    token = lab_dir / "token"
    return [("authorization", f"Bearer {token.read_text().strip()}")] if token.exists() else []


def refusals(channel: grpc.Channel, metadata) -> list[str]:
    query = logger_pb2.LogQuery(service_names=["calculator"], search_text="refused")
    return [
        e.message
        for e in logger_pb2_grpc.LoggerServiceStub(channel).QueryLogs(query, timeout=RPC_S, metadata=metadata)
    ]


def concurrent_adds(channel: grpc.Channel, metadata, n: int = 4) -> list[str]:
    stub = calculator_pb2_grpc.CalculatorServiceStub(channel)
    calls = [
        stub.Add.future(calculator_pb2.AddRequest(a=i, b=1), timeout=RPC_S, metadata=metadata)
        for i in range(n)
    ]
    codes = []
    for call in calls:
        try:
            call.result()
            codes.append("OK")
        except grpc.RpcError as err:
            codes.append(err.code().name)
    return codes


def test_calculator_keeps_its_last_good_value_and_logs_why(lab_factory, lab_dir: Path):
    # Stored before any schema existed: the calculator refuses it and keeps its default.
    early = ConfigStore(str(lab_dir / CONFIG_DB_FILE))
    early.set("calculator", "work_ms", "abc", "string")
    early.close()
    lab = lab_factory("config-schema")
    md = lab_metadata(lab_dir)
    ports = {row.instance: int(row.port) for row in lab.status().itertuples()}
    with (
        grpc.insecure_channel(f"127.0.0.1:{ports['config-1']}") as config_ch,
        grpc.insecure_channel(f"127.0.0.1:{ports['logger-1']}") as logger_ch,
        grpc.insecure_channel(f"127.0.0.1:{ports['calculator-1']}") as calc_ch,
    ):
        config = config_pb2_grpc.ConfigServiceStub(config_ch)
        wait_until(
            lambda: refusals(logger_ch, md), 15, "the calculator's refusal of work_ms='abc' in the logs"
        )
        assert (
            "calculator/work_ms must be an integer between 0 and 10000; got 'abc'; keeping the default '0'"
            in (refusals(logger_ch, md)[0])
        ), refusals(logger_ch, md)
        # The calculator registered its schema: the service itself now refuses bad values.
        code, details = status_of(
            lambda r, timeout: config.SetConfig(r, timeout=timeout, metadata=md), entry(value="-5")
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "got '-5'" in details, details
        config.SetConfig(entry(value="1"), timeout=RPC_S, metadata=md)
        config.SetConfig(entry(key="work_ms", value="300"), timeout=RPC_S, metadata=md)
        wait_until(
            lambda: "RESOURCE_EXHAUSTED" in concurrent_adds(calc_ch, md), 15, "max_connections=1 applied"
        )
        # Another consumer registers a looser schema for the namespace, and a bad value gets in.
        config.RegisterSchema(config_pb2.ConfigSchema(namespace="calculator"), timeout=RPC_S, metadata=md)
        config.SetConfig(entry(value="-5", value_type="int"), timeout=RPC_S, metadata=md)
        wait_until(lambda: len(refusals(logger_ch, md)) >= 2, 15, "the refusal of max_connections=-5")
        assert any(
            "calculator/max_connections must be an integer between 1 and 100000; got '-5'; "
            "keeping the last good value '1'" in m
            for m in refusals(logger_ch, md)
        ), refusals(logger_ch, md)
        # Still 1, not the default 1000: concurrent calls are still refused beyond the first.
        assert "RESOURCE_EXHAUSTED" in concurrent_adds(calc_ch, md)
