"""Connect beside gRPC in a real lab: curl-style HTTP/1.1 calls to the health, logger and
supervisor services (unary, server streaming, JSON and binary, errors, the token), answered by
the same handlers that answer gRPC."""

from __future__ import annotations

import http.client
import json
import queue
import struct
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pandas as pd
import pytest

from runtime.client import auth
from runtime.lab import Lab
from runtime.v1 import health_pb2, health_pb2_grpc, supervisor_pb2

HEALTH = "/runtime.v1.HealthService"
LOGGER = "/runtime.v1.LoggerService"
SUPERVISOR = "/runtime.v1.SupervisorService"


def _port(lab: Lab, service: str) -> int:
    row = lab.status().set_index("instance").loc[f"{service}-1"]
    assert pd.notna(row.http_port) and int(row.http_port) > 0, row
    return int(row.http_port)


def _supervisor_port(lab: Lab) -> int:
    info = lab._call("GetLabInfo", supervisor_pb2.GetLabInfoRequest())
    return int(info.connect_address.rpartition(":")[2])


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _json(lab: Lab, port: int, path: str, request: dict[str, Any], token: str | None = "") -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token or lab.token}"
    status, _, body = _post(port, path, json.dumps(request).encode(), headers)
    return status, json.loads(body)


def _frames(lab: Lab, port: int, path: str, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A Connect server stream (JSON): yields each message as it arrives."""
    body = json.dumps(request).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=struct.pack(">BI", 0, len(body)) + body,
                     headers={"content-type": "application/connect+json",
                              "authorization": f"Bearer {lab.token}"})  # fmt: skip
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        while True:
            flags, size = struct.unpack(">BI", resp.read(5))
            message = json.loads(resp.read(size))
            if flags & 0x02:  # end of stream: an error or trailers
                assert "error" not in message, message
                return
            yield message
    finally:
        conn.close()


@pytest.fixture
def lab(lab_factory: Any) -> Lab:
    lab: Lab = lab_factory("connect")
    lab.wait_for(lambda: (lab.health().state == "HEALTHY").sum() >= 5, 20, "every instance HEALTHY")
    return lab


def test_the_same_call_over_grpc_and_over_connect(lab: Lab) -> None:
    port = _port(lab, "health")
    status, reply = _json(lab, port, f"{HEALTH}/CheckHealth", {"serviceName": "calculator"})
    assert status == 200 and reply["state"] == "HEALTHY", reply
    row = lab.status().set_index("instance").loc["health-1"]
    with auth.insecure_channel(f"127.0.0.1:{int(row.port)}", token=lab.token) as channel:
        over_grpc = health_pb2_grpc.HealthServiceStub(channel).CheckHealth(
            health_pb2.ServiceKey(service_name="calculator"), timeout=5
        )
    assert health_pb2.HealthState.Name(over_grpc.state) == reply["state"]
    # Binary protobuf on the same port.
    body = health_pb2.ServiceKey(service_name="calculator").SerializeToString()
    status, headers, raw = _post(port, f"{HEALTH}/CheckHealth", body,
                                 {"content-type": "application/proto", "authorization": f"Bearer {lab.token}"})  # fmt: skip
    assert status == 200 and headers["content-type"] == "application/proto"
    assert health_pb2.HealthStatus.FromString(raw).state == health_pb2.HEALTHY


def test_errors_have_the_grpc_status_and_message(lab: Lab) -> None:
    port = _port(lab, "health")
    status, reply = _json(lab, port, f"{HEALTH}/CheckHealth", {"serviceName": "nosuch"})
    row = lab.status().set_index("instance").loc["health-1"]
    with auth.insecure_channel(f"127.0.0.1:{int(row.port)}", token=lab.token) as channel:
        with pytest.raises(grpc.RpcError) as err:
            health_pb2_grpc.HealthServiceStub(channel).CheckHealth(
                health_pb2.ServiceKey(service_name="nosuch"), timeout=5
            )
    assert reply["code"] == err.value.code().name.lower() and reply["message"] == err.value.details()
    assert status == {"not_found": 404, "invalid_argument": 400}[reply["code"]]


def test_the_token_is_required_here_too(lab: Lab) -> None:
    for port, path in (
        (_port(lab, "health"), f"{HEALTH}/CheckHealth"),
        (_supervisor_port(lab), f"{SUPERVISOR}/ListProcesses"),
    ):
        status, reply = _json(lab, port, path, {}, token=None)
        assert status == 401 and reply["code"] == "unauthenticated"
        assert str(lab.lab_dir / "token") in reply["message"]
        status, reply = _json(lab, port, path, {}, token="not-the-token")
        assert status == 401 and "does not match" in reply["message"]


def test_watch_health_streams_a_kill_and_the_recovery(lab: Lab) -> None:
    stream = _frames(lab, _port(lab, "health"), f"{HEALTH}/WatchHealth", {})
    snapshot = [next(stream) for _ in range(5)]
    assert {e["instanceId"] for e in snapshot} >= {"calculator-1", "calculator-2", "health-1"}
    killed = lab.kill("calculator", "calculator-1")
    seen = []
    for event in stream:
        if event.get("instanceId") == "calculator-1":
            seen.append(event["newState"])
            if seen[-1] == "HEALTHY" and "UNHEALTHY" in seen:
                break
    assert "UNHEALTHY" in seen and seen[-1] == "HEALTHY", (killed, seen)


def test_subscribe_logs_and_supervisor_over_connect(lab: Lab) -> None:
    from calculator.client import CalculatorClient

    # SubscribeLogs is a live tail: only what is logged after the stream opened reaches it. The
    # HTTP request goes out from the reader thread, so calls are repeated until one line arrives
    # (a call made before the subscription was in place is, rightly, never delivered) and read until
    # the calculator's own line is there.
    got: queue.Queue[dict[str, Any] | BaseException] = queue.Queue(maxsize=1)
    seen: list[dict[str, Any]] = []

    def read() -> None:
        try:
            stream = _frames(
                lab, _port(lab, "logger"), f"{LOGGER}/SubscribeLogs", {"correlationId": "req-connect-1"}
            )
            for entry in stream:  # the broker's lookup line, the client's, the server's: in any order
                seen.append(entry)
                if entry["serviceName"] == "calculator":
                    got.put(entry)
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            got.put(exc)

    reader = threading.Thread(target=read, name="connect-log-tail", daemon=True)
    reader.start()
    entry: dict[str, Any] | BaseException | None = None
    with CalculatorClient(lab.broker_address, token=lab.token) as calc:
        for _ in range(10):
            calc.add(2, 3, correlation_id="req-connect-1")
            try:
                entry = got.get(timeout=1.0)
                break
            except queue.Empty:
                continue
    reader.join(15)
    assert entry is not None, "no log line of req-connect-1 reached the Connect subscriber after 10 calls"
    assert not isinstance(entry, BaseException), entry
    assert entry["correlationId"] == "req-connect-1" and entry["serviceName"] == "calculator"
    assert {e["correlationId"] for e in seen} == {"req-connect-1"}, seen  # the filter held
    status, reply = _json(lab, _supervisor_port(lab), f"{SUPERVISOR}/ListProcesses", {})
    assert status == 200
    assert {p["instanceId"] for p in reply["processes"]} >= {"calculator-1", "health-1", "logger-1"}
