"""The kernel-scoped lifeline: a lease on the lab, renewed from a background thread.

While a lease is renewed the lab lives. When its holder dies (kernel restart SIGKILLs the
kernel) renewals stop, the lease lapses after its TTL, and the daemon stops the lab after its
linger, unless someone attaches again.
"""

from __future__ import annotations

import os
import threading

import grpc

from runtime.v1 import supervisor_pb2, supervisor_pb2_grpc

LEASE_TTL_MS = 10_000
PERSISTENT_TTL_MS = 2**31 - 1  # `runtime-lab up`: held until `runtime-lab down`
RENEW_FRACTION = 3  # renew three times per TTL, so one lost renewal never lapses the lease
RPC_TIMEOUT_S = 2.0


class LeaseKeeper:
    """Holds one lease on a lab and renews it until ``stop()``.

    Example:
        >>> keeper = LeaseKeeper(stub, holder="kernel 1234")   # doctest: +SKIP
        >>> keeper.stop(release=True)                           # doctest: +SKIP
    """

    def __init__(
        self, stub: supervisor_pb2_grpc.SupervisorServiceStub, *, holder: str = "", ttl_ms: int = LEASE_TTL_MS
    ) -> None:
        self._stub = stub
        self._holder = holder or f"pid {os.getpid()}"
        self._ttl_ms = ttl_ms
        self._stop = threading.Event()
        self.lease_id = self._acquire()
        self._thread: threading.Thread | None = None
        if ttl_ms < PERSISTENT_TTL_MS:
            self._thread = threading.Thread(target=self._run, name="lab-lease-keeper", daemon=True)
            self._thread.start()

    def _acquire(self) -> str:
        req = supervisor_pb2.AcquireLeaseRequest(holder=self._holder, ttl_ms=self._ttl_ms)
        return self._stub.AcquireLease(req, timeout=RPC_TIMEOUT_S).lease_id

    def _run(self) -> None:
        interval = self._ttl_ms / 1000 / RENEW_FRACTION
        while not self._stop.wait(interval):
            try:
                self._stub.RenewLease(
                    supervisor_pb2.RenewLeaseRequest(lease_id=self.lease_id), timeout=RPC_TIMEOUT_S
                )
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    try:  # the lease lapsed (e.g. the machine slept): take a new one
                        self.lease_id = self._acquire()
                    except grpc.RpcError:
                        pass
                # UNAVAILABLE: the lab is gone or going; nothing to keep alive.

    def stop(self, *, release: bool) -> None:
        """Stop renewing; with ``release`` hand the lease back at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=RPC_TIMEOUT_S + 1)
        if release:
            try:
                self._stub.ReleaseLease(
                    supervisor_pb2.ReleaseLeaseRequest(lease_id=self.lease_id), timeout=RPC_TIMEOUT_S
                )
            except grpc.RpcError:
                pass
