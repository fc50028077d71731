"""The Connect bridge in-process: the broker's own servicer answers HTTP/1.1 JSON and binary
calls (unary and server streaming) with the same statuses and messages it gives over gRPC."""

from __future__ import annotations

import asyncio
import http.client
import json
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from runtime.connect import ConnectServer, connect_app, mount
from runtime.services.broker.registry import Registry
from runtime.services.broker.servicer import BrokerServicer
from runtime.v1 import broker_pb2

BROKER = broker_pb2.DESCRIPTOR.services_by_name["BrokerService"]


def _post(port: int, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", path, body=body, headers={"content-type": content_type})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _stream_frames(port: int, path: str, request: dict, frames: int) -> list[tuple[int, bytes]]:
    """Open a Connect server stream (JSON) and read ``frames`` enveloped messages."""
    body = json.dumps(request).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", path, body=struct.pack(">BI", 0, len(body)) + body,
                     headers={"content-type": "application/connect+json"})  # fmt: skip
        resp = conn.getresponse()
        assert resp.status == 200
        out = []
        for _ in range(frames):
            flags, size = struct.unpack(">BI", resp.read(5))
            out.append((flags, resp.read(size)))
        return out
    finally:
        conn.close()


def _with_server(scenario: Callable[[int, BrokerServicer], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        servicer = BrokerServicer(Registry())
        server = ConnectServer(mount({"/runtime.v1.BrokerService": connect_app(servicer, BROKER)}))
        port = await server.start()
        try:
            return await scenario(port, servicer)
        finally:
            servicer.close()
            await server.stop()

    return asyncio.run(main())


def _register(port: int, instance: str) -> tuple[int, dict, bytes]:
    req = {"instance": {"serviceName": "calculator", "instanceId": instance, "address": "127.0.0.1:1",
                        "grpcServices": ["calculator.v1.CalculatorService"]}, "ttlMs": 60000}  # fmt: skip
    return _post(port, "/runtime.v1.BrokerService/Register", json.dumps(req).encode())


def test_unary_json_and_binary_reach_the_grpc_servicer() -> None:
    async def scenario(port: int, servicer: BrokerServicer) -> None:
        status, _, body = await asyncio.to_thread(_register, port, "calculator-1")
        assert status == 200, body
        assert json.loads(body)["leaseId"]
        # The same lookup in the binary protobuf encoding.
        req = broker_pb2.LookupServiceRequest(service_name="calculator").SerializeToString()
        status, headers, body = await asyncio.to_thread(
            _post, port, "/runtime.v1.BrokerService/LookupService", req, "application/proto"
        )
        assert status == 200 and headers["content-type"] == "application/proto"
        reply = broker_pb2.LookupServiceResponse.FromString(body)
        assert [i.instance_id for i in reply.instances] == ["calculator-1"]

    _with_server(scenario)


def test_errors_keep_the_servicers_status_and_message() -> None:
    async def scenario(port: int, servicer: BrokerServicer) -> None:
        status, _, body = await asyncio.to_thread(
            _post, port, "/runtime.v1.BrokerService/LookupService", json.dumps({"serviceName": ""}).encode()
        )
        error = json.loads(body)
        assert status == 400 and error["code"] == "invalid_argument", (status, error)
        assert error["message"]  # the servicer's own words
        status, _, body = await asyncio.to_thread(_post, port, "/runtime.v1.Nope/Call", b"{}")
        assert status == 404 and b"runtime.v1.BrokerService" in body
        status, _, body = await asyncio.to_thread(
            _post, port, "/runtime.v1.BrokerService/LookupService", b"{not json"
        )
        assert status == 400 and json.loads(body)["code"] == "invalid_argument"
        status, _, body = await asyncio.to_thread(
            _post, port, "/runtime.v1.BrokerService/LookupService", b'{"service": "calculator"}'
        )
        error = json.loads(body)
        assert status == 400 and error["code"] == "invalid_argument"
        assert "LookupServiceRequest" in error["message"] and "service" in error["message"]

    _with_server(scenario)


def test_server_stream_delivers_registrations_as_they_happen() -> None:
    async def scenario(port: int, servicer: BrokerServicer) -> list[tuple[int, bytes]]:
        watch = asyncio.create_task(
            asyncio.to_thread(_stream_frames, port, "/runtime.v1.BrokerService/WatchServices", {}, 3)
        )
        await asyncio.sleep(0.2)  # the watch opens first; then two registrations follow
        for n in (1, 2):
            status, _, body = await asyncio.to_thread(_register, port, f"calculator-{n}")
            assert status == 200, body
        return await asyncio.wait_for(watch, 10)

    frames = _with_server(scenario)
    events = [json.loads(body) for flags, body in frames]
    assert all(flags == 0 for flags, _ in frames)  # messages, not the end-of-stream frame
    assert events[0]["type"] == "SERVICE_EVENT_TYPE_SNAPSHOT_END"  # an empty registry's snapshot
    assert [(e["type"], e["instance"]["instanceId"]) for e in events[1:]] == [
        ("SERVICE_EVENT_TYPE_ADDED", "calculator-1"),
        ("SERVICE_EVENT_TYPE_ADDED", "calculator-2"),
    ]


def test_server_socket_is_tcp_so_asyncio_sets_nodelay() -> None:
    """asyncio sets TCP_NODELAY only on sockets created as IPPROTO_TCP; without it each Connect
    answer waited ~40 ms for the client's delayed ACK (44 ms p50 vs 0.6 ms, bench_connect.py)."""
    import socket

    async def main() -> tuple[int, int]:
        server = ConnectServer(mount({}))
        port = await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            listening = server._server.servers[0].sockets[0]
            writer.close()
            await writer.wait_closed()
            return listening.proto, listening.family
        finally:
            await server.stop()

    proto, family = asyncio.run(main())
    assert (proto, family) == (socket.IPPROTO_TCP, socket.AF_INET)
