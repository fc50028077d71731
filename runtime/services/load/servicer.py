"""The load generator service: reproducible load against a service found through the broker.

    python -m runtime.services.load    # through the agent: binds 127.0.0.1:LAB_PORT (0: any), READY port=N

StartLoad validates the LoadConfig (every number bounded: INVALID_ARGUMENT names the limit),
looks the target up (NOT_FOUND "no instances of X" when the broker has none on 127.0.0.1),
sends the test id as the ``x-test-id`` response header, then streams one LoadMetrics per second
and a last one with ``final=True``. The test ends at its duration, on StopLoad, or when the
StartLoad caller goes away.

Open loop is the default; ``LoadConfig.mode = LOAD_MODE_CLOSED_LOOP`` runs ``concurrent_clients``
workers that each wait for their answer (closed_loop.py), to show what such a test hides. An
unknown mode number is refused with INVALID_ARGUMENT quoting it.

StopLoad stops the test named by the ``x-test-id`` request header, or every running test when
there is none; it answers the LoadSummary (of the named test, or of the last one started). Asked
for a test that already ended, it answers that test's summary (the last ``KEPT_SUMMARIES`` are
kept). GetActiveTests lists the running tests with their latest metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator

import grpc

from runtime.agent import Agent
from runtime.client import auth
from runtime.client.discovery_aio import connect_aio
from runtime.errors import DiscoveryError
from runtime.identity import ENV_LOAD_MAX_ACTIVE_TESTS, LOADGEN_GRPC_SERVICE
from runtime.services.load.runner import LoadRun, is_loopback
from runtime.services.load.schedule import LoadPlan, PlanError
from runtime.services.load.settings import LoadSettings
from runtime.services.load.targets import TargetUnreachable, reflect_target
from runtime.v1 import broker_pb2, broker_pb2_grpc, common_pb2, load_pb2, load_pb2_grpc

log = logging.getLogger("runtime.services.load")

SERVICE_NAME = "loadgen"
TEST_ID_HEADER = "x-test-id"
KEPT_SUMMARIES = 16
LOOKUP_TIMEOUT_S = 2.0
GIL_SWITCH_S = 0.0005


def new_test_id() -> str:
    """``load-3f9a1c``: a short id for one test."""
    return f"load-{secrets.token_hex(3)}"


def _header(context: grpc.aio.ServicerContext, key: str) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v.decode() if isinstance(v, bytes) else str(v)
    return ""


class LoadGenerator(load_pb2_grpc.LoadGeneratorServiceServicer):
    """StartLoad / StopLoad / GetActiveTests over the tests running in this process."""

    def __init__(self, broker_address: str, settings: LoadSettings | None = None) -> None:
        self.broker_address = broker_address
        self.settings = settings or LoadSettings()
        self.active: dict[str, tuple[LoadRun, load_pb2.LoadConfig]] = {}
        self.finished: OrderedDict[str, load_pb2.LoadSummary] = OrderedDict()

    async def StartLoad(  # noqa: N802 (gRPC method name)
        self, request: load_pb2.LoadConfig, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[load_pb2.LoadMetrics]:
        """Run one test; stream its metrics."""
        try:
            plan = LoadPlan.from_config(request, self.settings)
        except PlanError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        limit = self.settings.max_active_tests
        if len(self.active) >= limit:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{len(self.active)} load tests are running, the most allowed "
                f"({ENV_LOAD_MAX_ACTIVE_TESTS}={limit}); stop one with StopLoad first",
            )
        target = await self._target(plan, context)
        try:
            method = target.method(plan.method)
            target.check_payload(plan.payload, plan.method)
            method.request(plan.payload)  # a value of the wrong type is refused here, not mid-test
        except PlanError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            channel = await connect_aio(plan.target, self.broker_address)
        except DiscoveryError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        test_id = new_test_id()
        run = LoadRun(test_id, plan, method, channel)
        self.active[test_id] = (run, request)
        task = asyncio.create_task(run.run(), name=f"load test {test_id}")
        log.info(
            "load test %s started: %d rps for %d s against %s %s (%s)",
            test_id, plan.rps, plan.duration_s, target.grpc_service, method.path.rsplit("/", 1)[-1],
            f"closed loop, {plan.concurrency} clients" if plan.closed_loop
            else f"open loop, at most {plan.concurrency} in flight",
        )  # fmt: skip
        try:
            await context.send_initial_metadata(((TEST_ID_HEADER, test_id),))
            while True:
                metrics = await run.metrics.get()
                yield metrics
                if metrics.final:
                    break
        finally:
            if not run.done.is_set():
                await run.stop()  # the caller went away: the test ends with it
            await asyncio.gather(task, return_exceptions=True)
            await run.close()
            await channel.close()
            self._retire(run)

    def _retire(self, run: LoadRun) -> None:
        self.active.pop(run.test_id, None)
        if run.summary is None:
            return
        self.finished[run.test_id] = run.summary
        while len(self.finished) > KEPT_SUMMARIES:
            self.finished.popitem(last=False)
        s = run.summary
        log.info(
            "load test %s ended: %d sent, %d failed, %.0f rps achieved, p99 %.1f ms",
            run.test_id, s.total_requests, s.total_failed, s.achieved_rps, s.latency_p99_ms,
        )  # fmt: skip

    async def _target(self, plan: LoadPlan, context: grpc.aio.ServicerContext):  # noqa: ANN202
        async with auth.aio_insecure_channel(self.broker_address) as ch:
            try:
                reply = await broker_pb2_grpc.BrokerServiceStub(ch).LookupService(
                    broker_pb2.LookupServiceRequest(service_name=plan.target), timeout=LOOKUP_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as exc:
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the broker at {self.broker_address} did not answer the lookup of {plan.target} "
                    f"({exc.code().name}); is the lab running?",
                )
        found = [i for i in reply.instances if not plan.role or i.role == plan.role]
        local = [i for i in found if is_loopback(i.address)]
        if not local:
            role = f" with role {plan.role!r}" if plan.role else ""
            elsewhere = f" ({len(found)} elsewhere; only 127.0.0.1 is ever loaded)" if found else ""
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"no instances of {plan.target}{role} on 127.0.0.1{elsewhere}"
            )
        try:
            target = await reflect_target(
                local[0].address, local[0].grpc_services, metadata=auth.metadata(auth.resolve_token())
            )
        except TargetUnreachable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot learn what {plan.target} serves: {exc}")
        except PlanError as exc:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"the load generator cannot call {plan.target}: {exc}"
            )
        return target

    async def StopLoad(  # noqa: N802 (gRPC method name)
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> load_pb2.LoadSummary:
        """Stop the test named by ``x-test-id`` (or every running one); its summary."""
        test_id = _header(context, TEST_ID_HEADER)
        if test_id:
            if test_id in self.active:
                return await self.active[test_id][0].stop()
            if test_id in self.finished:
                return self.finished[test_id]
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no load test {test_id} is running or among the last {KEPT_SUMMARIES} that ended",
            )
        runs = [run for run, _ in self.active.values()]
        if not runs:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no load test is running")
        summaries = await asyncio.gather(*(run.stop() for run in runs))
        return summaries[-1]

    async def GetActiveTests(  # noqa: N802 (gRPC method name)
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> load_pb2.ActiveLoadTests:
        """The running tests, each with its config and latest metrics."""
        tests = []
        for run, config in self.active.values():
            test = run.active_test()
            test.config.CopyFrom(config)
            tests.append(test)
        return load_pb2.ActiveLoadTests(tests=tests)


async def main() -> None:
    """Serve the load generator through the agent until SIGTERM."""
    agent = Agent([LOADGEN_GRPC_SERVICE], default_service=SERVICE_NAME)
    service = LoadGenerator(agent.identity.broker_address, LoadSettings.from_env())
    load_pb2_grpc.add_LoadGeneratorServiceServicer_to_server(service, agent.server)
    agent.http.serve(service, LOADGEN_GRPC_SERVICE)  # and over Connect
    try:
        await agent.start()
        # What exists now (modules, the server) lives as long as the process: keep it out of the
        # collector's way, so full collections stay short and do not stall the send schedule.
        gc.freeze()
        # gRPC's completion-queue thread shares the GIL with the send loop: hand it over more
        # often than the default 5 ms, so a due request is not kept waiting for the switch.
        sys.setswitchinterval(GIL_SWITCH_S)
        await agent.wait_for_stop()
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await agent.stop()
