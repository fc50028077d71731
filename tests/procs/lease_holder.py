"""Acquires a supervisor lease (ttl from argv[2] ms), prints LEASED, renews it until killed.

The lab's token comes from $LAB_TOKEN, as for any lab process.
"""

from __future__ import annotations

import sys
import time

from runtime.client import auth
from runtime.v1 import supervisor_pb2 as pb
from runtime.v1 import supervisor_pb2_grpc as pb_grpc


def main() -> int:
    address, ttl_ms = sys.argv[1], int(sys.argv[2])
    with auth.insecure_channel(address) as channel:
        stub = pb_grpc.SupervisorServiceStub(channel)
        lease = stub.AcquireLease(
            pb.AcquireLeaseRequest(holder="lease_holder test", ttl_ms=ttl_ms), timeout=5
        )
        print("LEASED", lease.lease_id, flush=True)
        while True:
            time.sleep(ttl_ms / 3000)
            stub.RenewLease(pb.RenewLeaseRequest(lease_id=lease.lease_id), timeout=5)


if __name__ == "__main__":
    sys.exit(main())
