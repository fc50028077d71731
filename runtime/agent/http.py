"""The agent's second port: the service's servicers over Connect (HTTP/1.1), beside gRPC.

    agent.http.serve(servicer, HEALTH_GRPC_SERVICE)   # "runtime.v1.HealthService"

Same handlers, same token rule, no proxy (runtime/connect). The port is announced in the READY
line (``READY port=N http=M``) and in the broker registration's metadata (``http``), so
``lab.status()`` and the web page find it. CORS is allowed for the lab's own web page only; its
origins come from the broker (the ``web`` service's registrations).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pool

from runtime.client import auth
from runtime.identity import HTTP_METADATA_KEY, WEB_SERVICE, Identity
from runtime.v1 import broker_pb2, broker_pb2_grpc

if TYPE_CHECKING:
    from runtime.connect import ConnectServer

# runtime.connect (uvicorn, connectrpc) is imported by serve() and start() only: a service that
# serves nothing over Connect (the calculators, config, state) never loads it, which spares each
# such process ~90 ms of start-up and ~6 MB of memory. A service that does serve Connect imports
# it in its __main__, so the daemon's fork server preloads it (a forked child that imported it
# here, after the fork, paid ~0.1 s CPU of its start-up for it).

log = logging.getLogger("runtime.agent.http")

LOOKUP_TIMEOUT_S = 1.0


def http_port_of(instance: broker_pb2.ServiceInstance) -> int:
    """The Connect port an instance registered (0 when it serves none)."""
    address = instance.metadata.get(HTTP_METADATA_KEY, "")
    _, _, port = address.rpartition(":")
    return int(port) if port.isdigit() else 0


class AgentHttp:
    """Connect apps of one service process, served on a loopback port of their own once started."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.apps: dict[str, Any] = {}
        self.fallback: Any = None  # an ASGI app for paths that are no RPC (the web page's files)
        self.port = 0
        self._server: ConnectServer | None = None

    def serve(self, servicer: Any, grpc_service: str) -> None:
        """Also answer ``grpc_service`` (its full name) over Connect with ``servicer``, the one gRPC serves."""
        from runtime.connect import connect_app

        service = descriptor_pool.Default().FindServiceByName(grpc_service)
        self.apps[f"/{service.full_name}"] = connect_app(servicer, service)

    async def start(self) -> int:
        """Serve, if there is anything to serve; returns the port (0: no Connect here)."""
        if not self.apps and self.fallback is None:
            return 0
        from runtime.connect import ConnectServer, mount
        from runtime.connect.access import CachedOrigins, guard

        token = auth.resolve_token(lab_dir=self.identity.lab_dir or None)
        app = guard(
            mount(self.apps, self.fallback),
            token=token,
            lab_dir=self.identity.lab_dir,
            origins=CachedOrigins(self._web_origins),
        )
        self._server = ConnectServer(app)
        self.port = await self._server.start()
        return self.port

    async def _web_origins(self) -> set[str]:
        if not self.identity.broker_address:
            return set()
        request = broker_pb2.LookupServiceRequest(service_name=WEB_SERVICE, include_unhealthy=True)
        async with auth.aio_insecure_channel(self.identity.broker_address) as channel:
            try:
                reply = await broker_pb2_grpc.BrokerServiceStub(channel).LookupService(
                    request, timeout=LOOKUP_TIMEOUT_S
                )
            except grpc.aio.AioRpcError:
                return set()  # no web service in this lab (NOT_FOUND), or no broker: no origin
        from runtime.connect.access import web_origins

        return web_origins(http_port_of(i) for i in reply.instances)

    async def stop(self) -> None:
        """Stop serving (open streams are cut after the server's short grace)."""
        if self._server is not None:
            await self._server.stop()
            self._server = None
