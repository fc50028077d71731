"""Correlation ids through real gRPC: interceptors, the log handler, and req-123 across services."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time

import grpc
import pytest
from logprocs import Child, wait_for

from runtime.agent import log_handler
from runtime.client import correlation
from runtime.client.logship import LogShipper
from runtime.lab import logs as lab_logs
from runtime.v1 import broker_pb2, broker_pb2_grpc, logger_pb2, logger_pb2_grpc

TIMEOUT_S = 10.0


class Echo(broker_pb2_grpc.BrokerServiceServicer, logger_pb2_grpc.LoggerServiceServicer):
    """Answers with the correlation id the handler saw (unary, server-stream, client-stream)."""

    async def LookupService(self, request, context):  # noqa: N802
        await asyncio.sleep(0)  # the id must survive awaits inside the handler
        return broker_pb2.LookupServiceResponse(
            instances=[broker_pb2.ServiceInstance(service_name=correlation.current())]
        )

    async def QueryLogs(self, request, context):  # noqa: N802
        for _ in range(2):
            await asyncio.sleep(0)
            yield logger_pb2.LogEntry(correlation_id=correlation.current())

    async def StreamLogs(self, request_iterator, context):  # noqa: N802
        n = 0
        async for _ in request_iterator:
            n += 1
        return logger_pb2.LogAck(accepted=n, message=correlation.current())


@pytest.fixture
def echo_address():
    """A grpc.aio server with the correlation interceptor, on its own loop in a thread."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, object] = {}

    async def serve() -> None:
        server = grpc.aio.server(
            interceptors=[correlation.server_interceptor()], options=[("grpc.so_reuseport", 0)]
        )
        broker_pb2_grpc.add_BrokerServiceServicer_to_server(Echo(), server)
        logger_pb2_grpc.add_LoggerServiceServicer_to_server(Echo(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        assert port
        await server.start()
        state.update(server=server, port=port, stop=asyncio.Event())
        started.set()
        await state["stop"].wait()  # type: ignore[attr-defined]
        await server.stop(None)

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), name="echo-server")
    thread.start()
    assert started.wait(TIMEOUT_S)
    yield f"127.0.0.1:{state['port']}"
    loop.call_soon_threadsafe(state["stop"].set)  # type: ignore[attr-defined]
    thread.join(TIMEOUT_S)
    loop.close()


def test_sync_client_sends_the_current_id_for_every_call_shape(echo_address):
    with grpc.insecure_channel(echo_address) as raw:
        ch = grpc.intercept_channel(raw, *correlation.client_interceptors())
        broker, logs = broker_pb2_grpc.BrokerServiceStub(ch), logger_pb2_grpc.LoggerServiceStub(ch)
        with correlation.use("req-123"):
            unary = broker.LookupService(broker_pb2.LookupServiceRequest(service_name="x"), timeout=TIMEOUT_S)
            streamed = [e.correlation_id for e in logs.QueryLogs(logger_pb2.LogQuery(), timeout=TIMEOUT_S)]
            ack = logs.StreamLogs(iter([logger_pb2.LogEntry()] * 3), timeout=TIMEOUT_S)
        assert unary.instances[0].service_name == "req-123"
        assert streamed == ["req-123", "req-123"]
        assert (ack.accepted, ack.message) == (3, "req-123")
        # No id set: each call gets a fresh req-... id.
        a = broker.LookupService(broker_pb2.LookupServiceRequest(service_name="x"), timeout=TIMEOUT_S)
        b = broker.LookupService(broker_pb2.LookupServiceRequest(service_name="x"), timeout=TIMEOUT_S)
        ids = [a.instances[0].service_name, b.instances[0].service_name]
        assert all(i.startswith("req-") and len(i) == 12 for i in ids) and ids[0] != ids[1]
        # An id the caller put in the metadata itself wins.
        own = broker.LookupService(
            broker_pb2.LookupServiceRequest(service_name="x"),
            metadata=[("x-correlation-id", "req-own")],
            timeout=TIMEOUT_S,
        )
        assert own.instances[0].service_name == "req-own"


def test_aio_client_sends_the_current_id(echo_address):
    async def calls() -> tuple[str, list[str], str]:
        async with grpc.aio.insecure_channel(
            echo_address, interceptors=correlation.aio_client_interceptors()
        ) as ch:
            broker, logs = broker_pb2_grpc.BrokerServiceStub(ch), logger_pb2_grpc.LoggerServiceStub(ch)
            with correlation.use("req-aio"):
                unary = await broker.LookupService(
                    broker_pb2.LookupServiceRequest(service_name="x"), timeout=TIMEOUT_S
                )
                streamed = [
                    e.correlation_id async for e in logs.QueryLogs(logger_pb2.LogQuery(), timeout=TIMEOUT_S)
                ]
                ack = await logs.StreamLogs(iter([logger_pb2.LogEntry()]), timeout=TIMEOUT_S)
            return unary.instances[0].service_name, streamed, ack.message

    assert asyncio.run(calls()) == ("req-aio", ["req-aio", "req-aio"], "req-aio")


def test_a_server_without_an_id_sees_none(echo_address):
    with grpc.insecure_channel(echo_address) as ch:
        unary = broker_pb2_grpc.BrokerServiceStub(ch).LookupService(
            broker_pb2.LookupServiceRequest(service_name="x"), timeout=TIMEOUT_S
        )
    assert unary.instances[0].service_name == ""


def test_log_records_carry_the_id_level_and_extra_fields():
    record = logging.LogRecord(
        "calculator.client", logging.WARNING, __file__, 1, "Calling %s", ("Add(2,3)",), None
    )
    record.peer = "calculator-2"
    record.lab_fields = {"result": 5}
    with correlation.use("req-9"):
        e = log_handler.entry_from_record(record, "notebook", "notebook")
    assert (e.message, e.level, e.correlation_id) == ("Calling Add(2,3)", logger_pb2.WARN, "req-9")
    assert e.metadata["peer"] == "calculator-2" and e.metadata["result"] == "5"
    assert e.metadata["logger"] == "calculator.client"
    assert e.timestamp_us // 1000 == e.timestamp


def test_req_123_is_traced_through_client_broker_and_server(lab_dir):
    """The seed's Log Correlation scenario, with real processes and the supervisor's forwarding."""
    # The broker has no broker address, so it logs JSON lines on stderr; forward them as the
    # supervisor does (on_output -> entry_from_output -> shipper).
    forward: list[LogShipper] = []
    broker = Child(
        "runtime.services.broker", lab_dir, service="broker",
        on_line=lambda stream, line: forward and forward[0].on_output(
            "broker", "broker-1", broker_pid[0], stream, int(time.time() * 1000), line
        ),
    )  # fmt: skip
    broker_pid = [broker.proc.pid]
    logger = server = None
    shipper = LogShipper(broker.address, name="supervisor")
    forward.append(shipper)
    handler = None
    try:
        logger = Child("runtime.services.logger", lab_dir, service="logger", broker=broker.address)
        server = Child("calculator.server", lab_dir, service="calculator", broker=broker.address)
        handler = log_handler.install_for_client("notebook", broker.address)
        assert log_handler.install_for_client("notebook", broker.address) is handler  # re-run cell
        from calculator.client import CalculatorClient

        with CalculatorClient(broker.address, timeout_s=TIMEOUT_S) as calc:
            assert calc.add(2, 3, correlation_id="req-123") == 5
        handler.flush()
        # The seed's flow, in order (the broker names the service as the client asked for it,
        # "CalculatorService" or "calculator.v1.CalculatorService"; clients may add lines).
        wanted = [
            ("notebook", r"Calling Add\(2,3\)"),
            ("broker", r"Lookup CalculatorService"),
            ("calculator", r"Add\(2,3\) = 5"),
            ("notebook", r"Result: 5"),
        ]
        with grpc.insecure_channel(logger.address) as ch:

            def in_order() -> bool:
                rows = lab_logs.trace_frame(ch, "req-123")[["service", "message"]].values.tolist()
                it = iter(rows)
                return all(any(s == svc and re.fullmatch(rx, m) for s, m in it) for svc, rx in wanted)

            wait_for(in_order, TIMEOUT_S, f"the req-123 flow {wanted}")
            frame = lab_logs.trace_frame(ch, "req-123")
        assert (frame["correlation_id"] == "req-123").all()
        assert frame["time"].is_monotonic_increasing
        assert set(frame["service"]) == {"notebook", "broker", "calculator"}
    finally:
        if handler is not None:
            log_handler.uninstall_for_client(handler)
        shipper.close(timeout_s=2)
        for child in (server, logger, broker):
            if child is not None:
                child.stop()
