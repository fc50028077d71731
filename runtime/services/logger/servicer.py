"""The logger service: every lab process's structured log entries, stored, searchable, tailable.

    python -m runtime.services.logger    # through the agent: binds 127.0.0.1:LAB_PORT (0: any), READY port=N

StreamLogs stores batches (acknowledged only after the SQLite commit), QueryLogs answers from the
ring or SQLite/FTS5, SubscribeLogs is a live tail with a bounded queue per caller. The store lives
in ``$LAB_DIR/logs.sqlite``; without LAB_DIR the logger keeps only its ring (tests, demos).

Settings (environment, read once at start): see runtime/services/logger/settings.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import grpc

from runtime.agent import Agent
from runtime.client.jsonlog import LEVEL_NAMES
from runtime.identity import LOGGER_GRPC_SERVICE, Identity
from runtime.services.logger.filter import Selector
from runtime.services.logger.settings import LoggerSettings
from runtime.services.logger.store import LogStore
from runtime.services.logger.subscribers import Subscribers
from runtime.v1 import logger_pb2, logger_pb2_grpc

SERVICE_NAME = "logger"
# StreamLogs commits in batches of this many entries, with at most this many batches in flight.
INGEST_BATCH = 100  # commit once this many arrived: a call's ack waits only for the rest
INGEST_IN_FLIGHT = 4
QUERY_THREADS = 2
QUERY_CARRIER = 500  # entries per carrier message when a query asks for batched answers


class LoggerService(logger_pb2_grpc.LoggerServiceServicer):
    """StreamLogs / QueryLogs / SubscribeLogs over one LogStore."""

    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.subs = Subscribers()
        # One writer thread: batches commit in the order they arrived.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="log-writer")
        self._readers = ThreadPoolExecutor(QUERY_THREADS, thread_name_prefix="log-query")

    async def StreamLogs(  # noqa: N802 (gRPC method name)
        self, request_iterator: AsyncIterator[logger_pb2.LogEntry], context: grpc.aio.ServicerContext
    ) -> logger_pb2.LogAck:
        """Store a client stream of entries; the ack counts what was committed."""
        loop = asyncio.get_running_loop()
        accepted = truncated = 0
        last_seq = 0
        batch: list[logger_pb2.LogEntry] = []  # numbered and published, not yet committed
        batch_cut = 0
        in_flight: list[tuple[asyncio.Future[None], int, int]] = []
        n = 0

        def submit(entries: list[logger_pb2.LogEntry], cut: int) -> None:
            # Already numbered and published; commit on the writer thread, count as accepted
            # only once committed.
            in_flight.append(
                (loop.run_in_executor(self._writer, self.store.persist, entries), len(entries), cut)
            )

        async def settle(keep: int) -> None:
            nonlocal accepted, truncated
            while len(in_flight) > keep:
                done, count, cut = in_flight.pop(0)
                await done
                accepted += count
                truncated += cut

        try:
            async for message in request_iterator:
                entries = list(message.batch) if message.batch else [message]
                for entry in entries:
                    n += 1
                    problem = entry_problem(entry)
                    if problem:
                        if batch:
                            submit(batch, batch_cut)
                            batch = []
                        await settle(0)
                        await context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"entry {n} of this stream {problem}; {accepted} earlier entries were stored",
                        )
                # Numbered and published on arrival: a shipper keeps one call open for a steady
                # stream (runtime/client/logship.py, SESSION_S), and live tails must not wait for it.
                batch_cut += self.store.number(entries)
                self.subs.publish(entries)
                last_seq = entries[-1].sequence
                batch.extend(entries)
                if len(batch) >= INGEST_BATCH:
                    submit(batch, batch_cut)
                    batch, batch_cut = [], 0
                    await settle(INGEST_IN_FLIGHT)
        except BaseException:
            # The call broke (the sender went away, or cancelled it): what was numbered is in the
            # ring and went to live tails, so it is committed too (the sender, unacknowledged,
            # replays it: at-least-once, as after a logger that dies between commit and ack).
            if batch:
                submit(batch, batch_cut)
            raise
        if batch:
            submit(batch, batch_cut)
        await settle(0)
        return logger_pb2.LogAck(
            accepted=accepted,
            truncated=truncated,
            last_sequence=last_seq,
            message=f"stored {accepted} entries" + (f", {truncated} cut at 64 KiB" if truncated else ""),
        )

    async def QueryLogs(  # noqa: N802
        self, request: logger_pb2.LogQuery, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[logger_pb2.LogEntry]:
        """Stored entries matching the query, in time order (or newest first)."""
        try:
            sel = Selector.from_query(request)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        found, origin = await asyncio.get_running_loop().run_in_executor(self._readers, self.store.query, sel)
        context.set_trailing_metadata((("x-log-source", origin),))
        if request.batched:
            for i in range(0, len(found), QUERY_CARRIER):
                yield logger_pb2.LogEntry(batch=found[i : i + QUERY_CARRIER])
            return
        for entry in found:
            yield entry

    async def SubscribeLogs(  # noqa: N802
        self, request: logger_pb2.LogFilter, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[logger_pb2.LogEntry]:
        """Live tail: every new entry matching the filter, until the caller cancels."""
        try:
            sel = Selector.from_filter(request)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        sub = self.subs.add(sel)
        try:
            # Headers now tell the caller the tail is live: nothing logged after this is missed.
            await context.send_initial_metadata((("x-tail", "live"),))
            while True:
                yield await sub.next()
        finally:
            self.subs.remove(sub)

    def close(self) -> None:
        """Finish pending writes and close the store."""
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.store.close()


def entry_problem(entry: logger_pb2.LogEntry) -> str:
    """Why an incoming entry cannot be stored, or "" when it is fine."""
    if entry.level not in range(len(LEVEL_NAMES)):
        return f"has unknown level {entry.level}; use 0..{len(LEVEL_NAMES) - 1} ({', '.join(LEVEL_NAMES)})"
    if entry.batch:
        return "is a batch inside a batch; carriers hold plain entries only"
    if not entry.service_name.strip():
        return "has an empty service_name; every entry must say which service wrote it"
    return ""


def make_store(identity: Identity, settings: LoggerSettings) -> LogStore:
    """The store for this process: ``$LAB_DIR/logs.sqlite`` plus the ring (sizes from the env)."""
    return LogStore(identity.lab_path(), ring_size=settings.ring_size, retention=settings.retention)


async def main() -> None:
    """Serve the logger through the agent until SIGTERM; pending writes finish before exit."""
    # The process's environment, read once here; the agent gets the identity too.
    identity = Identity.from_env(default_service=SERVICE_NAME)
    service = LoggerService(make_store(identity, LoggerSettings.from_env()))
    try:
        agent = Agent([LOGGER_GRPC_SERVICE], default_service=SERVICE_NAME, identity=identity)
        logger_pb2_grpc.add_LoggerServiceServicer_to_server(service, agent.server)
        agent.http.serve(service, LOGGER_GRPC_SERVICE)  # and over Connect (curl, the web page)
        await agent.run()
    finally:
        service.close()
