"""The lab's web page as a lab service: ``python -m runtime.services.web``.

It serves the built page (``page/dist``, made by ``make web``) and ``/lab.json`` on its Connect
port, and nothing over gRPC but health and reflection: the page talks to the supervisor, health
and logger services itself, over Connect, with the token from its URL fragment. ``lab.json``
says where those services listen; it is computed on each request, so a restarted service's new
port is found at the next page load.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grpc

from runtime.agent import Agent
from runtime.agent.http import http_port_of
from runtime.client import auth
from runtime.identity import HEALTH_GRPC_SERVICE, LOGGER_GRPC_SERVICE, LOOPBACK, WEB_SERVICE
from runtime.services.web.static import page_app
from runtime.v1 import broker_pb2, broker_pb2_grpc, supervisor_pb2, supervisor_pb2_grpc

log = logging.getLogger("runtime.services.web")

PAGE_DIST = Path(__file__).resolve().parent / "page" / "dist"
LOOKUP_TIMEOUT_S = 1.0


async def _connect_url(broker: broker_pb2_grpc.BrokerServiceStub, grpc_service: str) -> str:
    try:
        reply = await broker.LookupService(
            broker_pb2.LookupServiceRequest(service_name=grpc_service), timeout=LOOKUP_TIMEOUT_S
        )
    except grpc.aio.AioRpcError:
        return ""
    ports = [p for p in (http_port_of(i) for i in reply.instances) if p]
    return f"http://{LOOPBACK}:{ports[0]}" if ports else ""


def lab_json_source(agent: Agent) -> Any:
    """The ``/lab.json`` coroutine for this agent's lab: where the page's services listen."""
    identity = agent.identity

    async def lab_json() -> dict[str, str]:
        answer = {"lab_dir": identity.lab_dir, "supervisor": "", "health": "", "logger": ""}
        if identity.supervisor_address:
            async with auth.aio_insecure_channel(identity.supervisor_address) as channel:
                try:
                    info = await supervisor_pb2_grpc.SupervisorServiceStub(channel).GetLabInfo(
                        supervisor_pb2.GetLabInfoRequest(), timeout=LOOKUP_TIMEOUT_S
                    )
                    answer["supervisor"] = f"http://{info.connect_address}" if info.connect_address else ""
                except grpc.aio.AioRpcError as exc:
                    log.warning("the supervisor did not answer GetLabInfo: %s", exc.code().name)
        if identity.broker_address:
            async with auth.aio_insecure_channel(identity.broker_address) as channel:
                broker = broker_pb2_grpc.BrokerServiceStub(channel)
                answer["health"] = await _connect_url(broker, HEALTH_GRPC_SERVICE)
                answer["logger"] = await _connect_url(broker, LOGGER_GRPC_SERVICE)
        return answer

    return lab_json


async def main() -> None:
    """Serve the page until SIGTERM."""
    agent = Agent([], default_service=WEB_SERVICE)
    if not (PAGE_DIST / "index.html").is_file():
        log.warning("the web page is not built (%s missing): run `make web`", PAGE_DIST / "index.html")
    agent.http.fallback = page_app(PAGE_DIST, lab_json_source(agent))
    await agent.run()
