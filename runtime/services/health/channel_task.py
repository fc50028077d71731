"""One background task that talks to one peer over one channel (a follower or a pusher).

The health service keeps three of these (broker follower, broker health pusher, supervisor
follower); each only writes ``_run``, the loop with its own reconnect policy.
"""

from __future__ import annotations

import asyncio
import contextlib

from runtime.client import auth


class ChannelTask:
    """A grpc.aio channel to ``address`` plus the task that uses it; ``start()`` / ``close()``."""

    TASK_NAME = "channel task"

    def __init__(self, address: str) -> None:
        self._channel = auth.aio_insecure_channel(address)  # with the lab's token ($LAB_TOKEN)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start ``_run`` in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.TASK_NAME)

    async def close(self) -> None:
        """Stop the task and close the channel."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._channel.close()

    async def _run(self) -> None:
        raise NotImplementedError
