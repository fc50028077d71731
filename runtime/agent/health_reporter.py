"""Pushes this instance's health to the health service (ReportHealth stream).

INTERFACE STUB (owned by the health issue, #3): the agent calls exactly these; the health work
fills in the bodies (find the HealthService through the broker, keep one ReportHealth stream,
reconnect when it breaks, DEGRADED by the instance's own latency / in-flight rule).

    reporter = HealthReporter(identity, address="127.0.0.1:PORT", broker_address=...)
    server_interceptors += reporter.interceptors()   # before the server is created
    await reporter.start()          # reports STARTING, keeps reporting in the background
    reporter.set(HealthState.HEALTHY, "serving")
    await reporter.close("shutting down")   # final report (final=True), then closes
"""

from __future__ import annotations

import grpc

from runtime.identity import Identity


class HealthReporter:
    """Reports STARTING / HEALTHY / DEGRADED / final states of one instance."""

    def __init__(self, identity: Identity, *, address: str, broker_address: str) -> None:
        self.identity = identity
        self.address = address
        self.broker_address = broker_address
        self.state = 0
        self.message = ""

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """Server interceptors that feed the DEGRADED rule (stub: none)."""
        return []

    async def start(self) -> None:
        """Begin reporting (stub: nothing is sent)."""

    def set(self, state: int, message: str = "") -> None:
        """Record a new state; it is pushed in the background."""
        self.state = state
        self.message = message

    async def close(self, message: str = "shutting down") -> None:
        """Send the final state and stop (stub: nothing is sent)."""
