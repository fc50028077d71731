"""Find one instance of a platform service (health, chaos, ...) through the broker, or wait for one.

An agent needs the address of one health service or one chaos service. When none is registered
yet (starting, restarting, or not part of this lab) it waits on the broker's watch stream for one
to appear instead of asking again and again, so a lab without that service costs nothing.
"""

from __future__ import annotations

import grpc

from runtime.client import auth
from runtime.v1 import broker_pb2, broker_pb2_grpc

LOOKUP_TIMEOUT_S = 1.0
_APPEARS = (broker_pb2.SERVICE_EVENT_TYPE_ADDED, broker_pb2.SERVICE_EVENT_TYPE_UPDATED)


async def find_or_wait(broker_address: str, grpc_service: str, wait_s: float) -> str:
    """The address of one instance of ``grpc_service``; "" if none registered within ``wait_s``.

    Raises:
        grpc.aio.AioRpcError: the broker could not be asked (the caller retries with backoff).
    """
    async with auth.aio_insecure_channel(broker_address) as channel:
        stub = broker_pb2_grpc.BrokerServiceStub(channel)
        reply = await stub.LookupService(
            broker_pb2.LookupServiceRequest(service_name=grpc_service), timeout=LOOKUP_TIMEOUT_S
        )
        if reply.instances:
            return reply.instances[0].address
        watch = stub.WatchServices(
            broker_pb2.WatchServicesRequest(service_name=grpc_service, from_revision=reply.revision),
            timeout=wait_s,
        )
        try:
            async for event in watch:
                if event.type in _APPEARS and event.instance.address:
                    return event.instance.address
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        finally:
            watch.cancel()
    return ""
