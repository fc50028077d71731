"""The agent's side of chaos: follow the faults aimed at this instance and apply them.

    faults = FaultAgent(identity)
    server_interceptors += faults.interceptors()     # before the server is created
    await faults.start(broker_address)               # follows WatchFaults in the background
    await faults.close()                             # drops every fault, stops the follower

The follower finds the chaos service through the broker (``runtime.v1.ChaosService``) and keeps
one ``WatchFaults(service, instance)`` stream open; every message is the complete list of faults
for this instance and replaces the previous one.

Two rules make sure a dead chaos service never leaves a service broken:

* **TTL**: a fault with ``expires_at`` is dropped here when that time comes, whatever the chaos
  service says (or does not say) by then.
* **Dead-man switch**: when the stream breaks (the chaos service crashed or stopped), every fault
  is dropped at once; the follower then looks the chaos service up again.

What each fault does (only to unary calls of the instance's own services; grpc.health.v1,
reflection and the chaos service's own API are never touched, and streams are left alone so that
registration, health reports and watches keep working):

=============  ============================================================================
DELAY          sleep ``delay_ms`` before the handler runs
ERROR_INJECT   with probability ``error_rate``: UNAVAILABLE "injected fault <id>" (logged)
PACKET_LOSS    with probability ``packet_loss_pct``/100: the call is dropped (UNAVAILABLE), so
               a client retry shows
CPU_HOG        ``cpu_threads`` busy Python threads in this process (they compete with the
               service for the GIL and the CPU), at most ``MAX_CPU_THREADS`` in all
MEMORY_LEAK    ``memory_mb`` MiB allocated and written (so RSS grows), at most
               ``MAX_MEMORY_MB`` in all; released when the fault goes
=============  ============================================================================

CRASH is not applied here: the chaos service asks the supervisor to SIGKILL the instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time

import grpc

from runtime.agent.lookup import find_or_wait
from runtime.client import auth
from runtime.identity import CHAOS_GRPC_SERVICE, Identity
from runtime.v1 import chaos_pb2, chaos_pb2_grpc

log = logging.getLogger("runtime.agent.faults")

# Named caps, shared with the chaos service (which rejects anything above them).
MAX_DELAY_MS = 10_000
MAX_CPU_THREADS = 4
MAX_MEMORY_MB = 256
MEMORY_CHUNK_MB = 16  # allocate in steps, yielding to the event loop in between
# With no chaos service registered, wait this long for one (WatchServices), then look again.
CHAOS_WAIT_S = 30.0
RECONNECT_INITIAL_S = 0.05
RECONNECT_MAX_S = 1.0
TTL_CHECK_S = 0.05
# Never touched: the platform's calls and the chaos API itself (so a fault can always be cleared).
UNTOUCHED_PREFIXES = ("/grpc.", f"/{CHAOS_GRPC_SERVICE}/")
MIB = 1024 * 1024


def kind_name(kind: int) -> str:
    """``DELAY`` for 1."""
    try:
        return chaos_pb2.FaultType.Name(kind)
    except ValueError:
        return f"TYPE_{kind}"


class _CpuHog:
    """``n`` busy threads until ``stop()``."""

    def __init__(self, fault_id: str, n: int) -> None:
        self._stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._spin, name=f"chaos-cpu-hog-{fault_id}-{i}", daemon=True)
            for i in range(n)
        ]
        for t in self.threads:
            t.start()

    def _spin(self) -> None:
        x = 0
        while not self._stop.is_set():
            for _ in range(10_000):  # pure Python work: holds the GIL between checks
                x += 1

    def stop(self) -> None:
        self._stop.set()


class FaultSet:
    """The active faults of this instance and the resources (threads, memory) they hold.

    Example:
        >>> fs = FaultSet()
        >>> f = chaos_pb2.ActiveFault(fault_id="f1", config=chaos_pb2.FaultConfig(type=chaos_pb2.DELAY))
        >>> fs.replace([f]); sorted(fs.faults)
        ['f1']
        >>> fs.clear("test"); fs.faults
        {}
    """

    def __init__(self) -> None:
        self.faults: dict[str, chaos_pb2.ActiveFault] = {}
        self._deadlines: dict[str, float] = {}
        self._hogs: dict[str, _CpuHog] = {}
        self._memory: dict[str, list[bytes]] = {}
        self.injected = 0  # calls failed or dropped on purpose
        self.delayed = 0

    # -- the list ------------------------------------------------------------------------

    def replace(self, faults: list[chaos_pb2.ActiveFault]) -> None:
        """Make ``faults`` the active set: start what is new, release what went."""
        now_ms = time.time() * 1000
        wanted = {f.fault_id: f for f in faults if not (f.expires_at and f.expires_at <= now_ms)}
        for fault_id in [i for i in self.faults if i not in wanted]:
            self._drop(fault_id, "cleared")
        for fault_id, fault in wanted.items():
            if fault_id in self.faults:
                continue
            self.faults[fault_id] = fault
            if fault.expires_at:
                self._deadlines[fault_id] = time.monotonic() + (fault.expires_at - now_ms) / 1000
            self._start(fault)

    def clear(self, reason: str) -> int:
        """Drop every fault (dead-man switch, stop); returns how many there were."""
        n = len(self.faults)
        for fault_id in list(self.faults):
            self._drop(fault_id, reason)
        return n

    def expire(self, now: float | None = None) -> list[str]:
        """Drop the faults whose TTL has passed; returns their ids."""
        now = time.monotonic() if now is None else now
        gone = [i for i, deadline in self._deadlines.items() if deadline <= now]
        for fault_id in gone:
            self._drop(fault_id, "its duration is over")
        return gone

    @property
    def cpu_threads(self) -> int:
        """Busy threads running now."""
        return sum(len(h.threads) for h in self._hogs.values())

    @property
    def memory_mb(self) -> int:
        """MiB held by memory leaks now."""
        return sum(len(chunks) for chunks in self._memory.values()) * MEMORY_CHUNK_MB

    def _start(self, fault: chaos_pb2.ActiveFault) -> None:
        cfg = fault.config
        log.warning("fault %s active: %s %s", fault.fault_id, kind_name(cfg.type), _params_text(cfg))
        if cfg.type == chaos_pb2.CPU_HOG:
            n = max(0, min(cfg.params.cpu_threads, MAX_CPU_THREADS - self.cpu_threads))
            if n < cfg.params.cpu_threads:
                log.warning(
                    "fault %s: only %d busy threads (cap %d in all)", fault.fault_id, n, MAX_CPU_THREADS
                )
            if n:
                self._hogs[fault.fault_id] = _CpuHog(fault.fault_id, n)
        elif cfg.type == chaos_pb2.MEMORY_LEAK:
            self._memory[fault.fault_id] = []  # filled by grow_memory() on the event loop

    async def grow_memory(self) -> None:
        """Allocate what the memory leaks ask for, one chunk at a time (the loop keeps serving)."""
        for fault_id, chunks in list(self._memory.items()):
            fault = self.faults.get(fault_id)
            if fault is None:
                continue
            want = min(fault.config.params.memory_mb, MAX_MEMORY_MB)
            while len(chunks) * MEMORY_CHUNK_MB < want and self.memory_mb + MEMORY_CHUNK_MB <= MAX_MEMORY_MB:
                chunks.append(b"\x5a" * (MEMORY_CHUNK_MB * MIB))  # written, so it counts in RSS
                await asyncio.sleep(0)
                if fault_id not in self._memory:
                    break

    def _drop(self, fault_id: str, reason: str) -> None:
        fault = self.faults.pop(fault_id, None)
        self._deadlines.pop(fault_id, None)
        hog = self._hogs.pop(fault_id, None)
        if hog is not None:
            hog.stop()
        self._memory.pop(fault_id, None)
        if fault is not None:
            log.warning("fault %s (%s) removed: %s", fault_id, kind_name(fault.config.type), reason)

    # -- per call ------------------------------------------------------------------------

    async def apply(self, context: grpc.aio.ServicerContext, method: str) -> None:
        """Delay, fail or drop one call as the active faults say (aborts the call to fail it)."""
        for fault in list(self.faults.values()):
            cfg = fault.config
            if cfg.type == chaos_pb2.DELAY and cfg.params.delay_ms > 0:
                self.delayed += 1
                await asyncio.sleep(min(cfg.params.delay_ms, MAX_DELAY_MS) / 1000)
            elif cfg.type == chaos_pb2.PACKET_LOSS and random.random() * 100 < cfg.params.packet_loss_pct:
                self.injected += 1
                log.warning("dropped %s (packet loss fault %s)", method, fault.fault_id)
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"injected packet loss: call dropped (fault {fault.fault_id})",
                )
            elif cfg.type == chaos_pb2.ERROR_INJECT and random.random() < cfg.params.error_rate:
                self.injected += 1
                log.error("injected error into %s (fault %s)", method, fault.fault_id)
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"injected fault {fault.fault_id}")


def _params_text(cfg: chaos_pb2.FaultConfig) -> str:
    p = cfg.params
    return {
        chaos_pb2.DELAY: f"delay_ms={p.delay_ms}",
        chaos_pb2.PACKET_LOSS: f"packet_loss_pct={p.packet_loss_pct:g}",
        chaos_pb2.CPU_HOG: f"cpu_threads={p.cpu_threads}",
        chaos_pb2.MEMORY_LEAK: f"memory_mb={p.memory_mb}",
        chaos_pb2.ERROR_INJECT: f"error_rate={p.error_rate:g}",
    }.get(cfg.type, "")


class FaultAgent:
    """Follows ``WatchFaults`` for this instance and applies the faults (see module docstring).

    Args:
        identity: this instance (service name and instance id are what the chaos service targets).
        chaos_address: skip the broker and follow this chaos service (tests).
    """

    def __init__(self, identity: Identity, *, chaos_address: str = "") -> None:
        self.identity = identity
        self.chaos_address = chaos_address
        self.broker_address = ""
        self.set = FaultSet()
        self.connected_to = ""
        self.connects = 0
        self.dead_man_drops = 0
        self._task: asyncio.Task[None] | None = None
        self._ttl_task: asyncio.Task[None] | None = None

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """A server interceptor that applies the faults (the agent's ``CallPath`` does more)."""
        from runtime.agent.call_path import CallPath  # it imports this module

        return [CallPath(faults=self.set)]

    async def start(self, broker_address: str) -> None:
        """Follow the chaos service in the background (found through ``broker_address``)."""
        if self._task is not None:
            return
        self.broker_address = broker_address
        if not (self.broker_address or self.chaos_address):
            return  # outside a lab: nothing to follow
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="chaos fault follower")
        self._ttl_task = loop.create_task(self._expire_loop(), name="chaos fault ttl")

    async def close(self) -> None:
        """Stop following and drop every fault (threads stopped, memory released)."""
        for task in (self._task, self._ttl_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._ttl_task = None
        self.set.clear("the service is stopping")

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(TTL_CHECK_S)
            self.set.expire()

    async def _run(self) -> None:
        backoff = RECONNECT_INITIAL_S
        while True:
            try:
                address = await self._find_chaos_service()
                if address:
                    await self._follow(address)
                    backoff = RECONNECT_INITIAL_S
            except grpc.aio.AioRpcError as err:
                log.debug("chaos follower: %s %s", err.code().name, err.details())
            finally:
                if self.connected_to:
                    self.connected_to = ""
                    dropped = self.set.clear("the chaos service stream broke (dead-man switch)")
                    if dropped:
                        self.dead_man_drops += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    async def _follow(self, address: str) -> None:
        async with auth.aio_insecure_channel(address) as channel:
            request = chaos_pb2.WatchFaultsRequest(
                service_name=self.identity.service_name, instance_id=self.identity.instance_id
            )
            call = chaos_pb2_grpc.ChaosServiceStub(channel).WatchFaults(request)
            try:
                async for update in call:
                    if not self.connected_to:
                        self.connected_to = address
                        self.connects += 1
                    self.set.replace(list(update.faults))
                    await self.set.grow_memory()
            finally:
                call.cancel()

    async def _find_chaos_service(self) -> str:
        if self.chaos_address:
            return self.chaos_address
        return await find_or_wait(self.broker_address, CHAOS_GRPC_SERVICE, CHAOS_WAIT_S)
