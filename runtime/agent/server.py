"""The agent every Python service embeds: serve, READY, register, report health, stop gracefully.

    async def main() -> None:
        agent = Agent(["calculator.v1.CalculatorService"], default_service="calculator")
        calculator_pb2_grpc.add_CalculatorServiceServicer_to_server(Calculator(agent.identity), agent.server)
        await agent.run()

    asyncio.run(main())

Every RPC but grpc.health.v1 and reflection needs the lab's token (runtime/client/auth.py).

Start: bind 127.0.0.1:LAB_PORT (0 = any port), serve grpc.health.v1 and server reflection (and
the servicers given to ``agent.http`` over Connect on a second port), register with the broker
(lease + keepalive in the background), print ``READY port=N`` (``http=M`` with Connect), start
the health reporter, report HEALTHY. Stop (SIGTERM/SIGINT): NOT_SERVING, final health report, deregister,
drain for STOP_GRACE_S, detach the log handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping, Sequence

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from runtime.agent import log_handler
from runtime.agent.call_path import CallPath
from runtime.agent.faults import FaultAgent
from runtime.agent.health_reporter import HealthReporter
from runtime.agent.http import AgentHttp
from runtime.agent.profiler import Profile
from runtime.agent.registration import Registration
from runtime.agent.settings import AgentSettings
from runtime.client import malformed
from runtime.identity import (
    BROKER_GRPC_SERVICE,
    ENV_PORT_STRICT,
    HTTP_METADATA_KEY,
    LOOPBACK,
    Identity,
    ready_line,
)
from runtime.v1 import broker_pb2, health_pb2

log = logging.getLogger("runtime.agent")

STOP_GRACE_S = 1.0
CLOSE_STEP_TIMEOUT_S = 1.0
LOG_FLUSH_TIMEOUT_S = 0.5
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Never share a port with another process: a second server on the same port would steal calls.
SERVER_OPTIONS = [("grpc.so_reuseport", 0)]


class Agent:
    """Serves one lab instance: gRPC server, READY line, health, broker registration.

    Example:
        >>> agent = Agent(["calculator.v1.CalculatorService"], default_service="calculator")  # doctest: +SKIP
        >>> port = await agent.start()  # doctest: +SKIP
    """

    def __init__(
        self,
        grpc_services: Sequence[str],
        *,
        default_service: str,
        role: str = "",
        metadata: Mapping[str, str] | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        identity: Identity | None = None,
    ) -> None:
        # The process's one read of its environment: who it is, and its DEGRADED thresholds.
        self.identity = identity or Identity.from_env(default_service=default_service)
        self.settings = AgentSettings.from_env()
        self.grpc_services = list(grpc_services)
        self.role = role
        self.metadata = dict(metadata or {})
        self.port = 0
        self.address = ""
        self._exit_if_orphaned()  # before any thread or channel exists: nothing to clean up yet
        self._log_handler = log_handler.install(self.identity)
        malformed.install()  # an undecodable request is one log line, not a traceback
        # The reporter learns our address once we are bound (start()).
        self.health = HealthReporter(
            self.identity,
            address="",
            broker_address=self.identity.broker_address,
            rule=self.settings.degraded_rule(),
        )
        self.faults = FaultAgent(self.identity)
        self.http = AgentHttp(self.identity)  # Connect beside gRPC, for the servicers given to it
        # One interceptor for the whole per-call path (runtime/agent/call_path.py): a call without
        # the lab's token is refused before it is timed, faulted or logged; injected delays count
        # in the DEGRADED rule's latency. A service's own interceptors run after it.
        self.call_path = CallPath.for_lab(
            self.identity.lab_dir or None, rule=self.health.rule, faults=self.faults.set, cache=not interceptors
        )
        chain: list[grpc.aio.ServerInterceptor] = [self.call_path, *interceptors]
        self.server: grpc.aio.Server = grpc.aio.server(interceptors=chain, options=SERVER_OPTIONS)
        self._grpc_health = grpc_health.aio.HealthServicer()
        self._registration: Registration | None = None
        self._state: health_pb2.HealthState = health_pb2.STARTING
        self._stop_requested = asyncio.Event()
        self._started = False
        self._stopped = False
        self._signals_caught = False
        self._profile = Profile.from_env(name=self.identity.instance_id)  # LAB_CPROFILE_DIR: benchmarks

    def _exit_if_orphaned(self) -> None:
        # The supervisor (or its fork server) arms the parent-death signal, but it may have died
        # before we were started.
        pid = self.identity.parent_pid
        if pid and os.getppid() != pid:
            raise SystemExit(f"{self.identity.instance_id}: the supervisor (pid {pid}) is gone; not starting")

    def instance(self, health: health_pb2.HealthState | None = None) -> broker_pb2.ServiceInstance:
        """This instance as the broker lists it."""
        return broker_pb2.ServiceInstance(
            service_name=self.identity.service_name,
            instance_id=self.identity.instance_id,
            address=self.address,
            grpc_services=self.grpc_services,
            role=self.role,
            metadata=self.metadata,
            pid=os.getpid(),
            language=self.identity.language or "python",
            health=self._state if health is None else health,
        )

    def bind(self) -> int:
        """Bind 127.0.0.1:LAB_PORT (or any free port) and add health + reflection; returns the port."""
        if self.port:
            return self.port
        wanted = self.identity.port
        port = self._add_port(wanted)
        if not port and wanted and not self.identity.port_strict:
            log.warning("port %d is taken; serving on a free port instead", wanted)
            port = self._add_port(0)
        if not port:
            strict = f" ({ENV_PORT_STRICT}=1: it must be this port)" if self.identity.port_strict else ""
            raise SystemExit(
                f"{self.identity.instance_id}: cannot bind {LOOPBACK}:{wanted}{strict}; "
                "the port is in use by another process: stop it or pick another port"
            )
        self.port = port
        self.address = f"{LOOPBACK}:{port}"
        grpc_health_pb2_grpc.add_HealthServicer_to_server(self._grpc_health, self.server)
        served = [
            *self.grpc_services,
            grpc_health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ]
        reflection.enable_server_reflection(served, self.server)
        return port

    def _add_port(self, port: int) -> int:
        try:
            return self.server.add_insecure_port(f"{LOOPBACK}:{port}")
        except RuntimeError:
            return 0

    async def start(self) -> int:
        """Serve, register with the broker, print READY, start health reporting; returns the port."""
        self._exit_if_orphaned()
        port = self.bind()
        self._catch_signals()
        self.health.address = self.address
        if not self.health.broker_address and BROKER_GRPC_SERVICE in self.grpc_services:
            self.health.broker_address = self.address  # the broker finds the health service through itself
        for name in ("", *self.grpc_services):
            await self._grpc_health.set(name, grpc_health_pb2.HealthCheckResponse.SERVING)
        await self.server.start()
        self._started = True
        self._state = health_pb2.HEALTHY  # we serve from here on; the broker lists us as such
        http_port = await self.http.start()
        if http_port:
            self.metadata[HTTP_METADATA_KEY] = f"{LOOPBACK}:{http_port}"
        if self.identity.broker_address:
            # Register before READY, so "RUNNING" at the supervisor means "discoverable" too:
            # a client that calls right after Lab.up() returns finds this instance.
            self._registration = Registration(self.identity.broker_address, self.instance)
            await self._registration.start()
        print(ready_line(port, http_port), flush=True)
        await self.health.start()
        self.health.set(health_pb2.HEALTHY, "serving")
        await self.faults.start(self.health.broker_address)
        log.info("%s serving on %s", self.identity.instance_id, self.address)
        if self._profile is not None:
            self._profile.start()
        return port

    def request_stop(self) -> None:
        """Make wait_for_stop() return (what SIGTERM/SIGINT do)."""
        self._stop_requested.set()

    async def wait_for_stop(self) -> None:
        """Wait until SIGTERM or SIGINT (or request_stop())."""
        self._catch_signals()
        await self._stop_requested.wait()

    def _catch_signals(self) -> None:
        # This is the service's own process, so it owns the signals. Installed before READY: a
        # SIGTERM that comes right after READY must still mean "stop gracefully", not "die".
        if self._signals_caught:
            return
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.request_stop)
        self._signals_caught = True

    def _release_signals(self) -> None:
        if self._signals_caught:
            loop = asyncio.get_running_loop()
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
            self._signals_caught = False

    async def stop(self, reason: str = "shutting down") -> None:
        """NOT_SERVING, final health report, deregister, drain, detach logging. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        log.info("%s stopping: %s", self.identity.instance_id, reason)
        self._state = health_pb2.UNHEALTHY
        if self._profile is not None:
            self._profile.stop(calls=self.health.rule.calls)
        await self.faults.close()  # no injected delay or error while draining
        steps = []
        if self._started:
            await self._grpc_health.enter_graceful_shutdown()
            steps.append(self._bounded(self.health.close(reason), "final health report"))
        if self._registration is not None:
            steps.append(self._bounded(self._registration.close(reason), "deregistration"))
        # Side by side: the whole stop must fit in the supervisor's stop grace (lab.yaml stop_grace_s).
        await asyncio.gather(*steps)
        await self.server.stop(grace=STOP_GRACE_S)
        await self.http.stop()
        self._release_signals()
        log_handler.uninstall(self._log_handler, timeout_s=LOG_FLUSH_TIMEOUT_S)

    async def _bounded(self, step: object, what: str) -> None:
        # A stuck peer must not keep the process from exiting within its stop grace.
        try:
            await asyncio.wait_for(step, CLOSE_STEP_TIMEOUT_S)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - stopping goes on whatever failed
            log.warning("%s failed while stopping: %r", what, exc)

    async def run(self) -> None:
        """start() + wait_for_stop() + stop()."""
        try:
            await self.start()
            await self.wait_for_stop()
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await self.stop()
