"""Serving a service whose data lives in a store (config, state): one ``main`` shape for both.

Each reads its identity once, opens the store ``LAB_STORE`` names (SQLite in the lab dir or etcd),
serves through the agent with the store-status interceptor (StoreUnavailable -> UNAVAILABLE) and
closes the store when the agent stops (SIGTERM).

Example (``runtime/services/config/servicer.py``):
    >>> async def main() -> None:  # doctest: +SKIP
    ...     await serve_with_store(CONFIG_GRPC_SERVICE, "config", make_store,
    ...                            lambda store, server: add_ConfigServiceServicer_to_server(ConfigService(store), server))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import grpc

from runtime.agent import Agent
from runtime.agent.store_status import StoreStatusInterceptor
from runtime.identity import Identity


class Closable(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=Closable)


async def serve_with_store(
    grpc_service: str,
    service_name: str,
    make_store: Callable[[Identity], S],
    add_servicer: Callable[[S, grpc.aio.Server], Any],
) -> None:
    """Serve ``grpc_service`` over the store ``make_store`` opens, through the agent, until SIGTERM."""
    identity = Identity.from_env(default_service=service_name)  # read once; the agent gets it too
    store = make_store(identity)
    try:
        agent = Agent(
            [grpc_service],
            default_service=service_name,
            identity=identity,
            interceptors=[StoreStatusInterceptor()],
        )
        add_servicer(store, agent.server)
        await agent.run()
    finally:
        await store.close()
