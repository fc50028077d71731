"""Closed-loop sending for a load test (``LoadConfig.mode = LOAD_MODE_CLOSED_LOOP``): what it hides.

    pacer = Pacer(rps=100, start_s=10.0, end_s=13.0)
    pacer.take(now_s=10.0)            # (0, 10.0): request 0, sent at 10.0
    await ClosedLoop(run).dispatch()  # inside LoadRun.run(), instead of the open-loop schedule

``concurrency`` workers, each a virtual user: take a slot from the shared :class:`Pacer`, wait
for it, send, wait for the answer, repeat until the duration is over (or stop()). The pacer
hands out at most ``rps`` slots per second in total and never catches up after a pause, so the
rate is a ceiling, never a burst. Latency counts from the actual send, as closed-loop tools
(wrk, ab, k6's constant VUs) measure it.

That is the point of the mode: while the target stalls, every worker waits on it and nothing
else is sent. The requests a real user would have sent meanwhile are never sent and never
measured, so a one-second freeze is a handful of slow calls among many fast ones and slips
below the p99 (coordinated omission). The open loop (runner.py) sends them on schedule and
counts their wait. Both modes feed the same LoadRecorder: the same metrics stream, the same
HDR histograms, the same bounds.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from runtime.services.load.schedule import MAX_SLEEP_S, nap

if TYPE_CHECKING:
    from runtime.services.load.runner import LoadRun

NO_INSTANCE = "UNAVAILABLE"


class Pacer:
    """Send slots for the workers of a closed loop: at most ``rps`` per second, none after ``end_s``.

    A slot is never earlier than the previous one plus ``1 / rps``, nor earlier than the moment
    it is taken: a worker back from a long call gets a slot *now*, not a backlog of missed ones.

    Example:
        >>> p = Pacer(rps=10, start_s=0.0, end_s=1.0)
        >>> p.take(0.0), p.take(0.0), p.take(0.5), p.take(2.0)
        ((0, 0.0), (1, 0.1), (2, 0.5), None)
    """

    def __init__(self, rps: int, start_s: float, end_s: float) -> None:
        self.period = 1.0 / rps
        self.end_s = end_s
        self.next_s = start_s
        self.taken = 0

    def take(self, now_s: float) -> tuple[int, float] | None:
        """The next slot (request number, send time), or None once the duration is over."""
        slot = max(self.next_s, now_s)
        if slot >= self.end_s:
            return None
        i = self.taken
        self.taken += 1
        self.next_s = slot + self.period
        return i, slot


class ClosedLoop:
    """The workers of one closed-loop test, sending through ``run`` (a LoadRun) and recording in it.

    A friend of LoadRun: it uses the run's instance pick, call (stubs, metadata, error counting),
    recorder, stop flag and in-flight set, so both modes call and count the same way.
    """

    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.pacer = Pacer(run.plan.rps, run._start_s, run._start_s + run.plan.duration_s)

    async def dispatch(self) -> bool:
        """Run the workers until the duration is over or the test is stopped.

        Returns True when the whole duration was sent. Workers still in a call when the test
        stops are handed to the run's in-flight set, which drains (then cancels) them.
        """
        run = self.run
        workers = [
            asyncio.create_task(self._worker(), name=f"{run.test_id} client {k + 1}")
            for k in range(run.plan.concurrency)
        ]
        try:
            pending = set(workers)
            while pending and not run._stopping:
                _, pending = await asyncio.wait(pending, timeout=MAX_SLEEP_S)
            return not pending
        finally:
            run._in_flight.update(w for w in workers if not w.done())

    async def _worker(self) -> None:
        run, clock, rec = self.run, self.run.clock, self.run.recorder
        task = asyncio.current_task()
        while not run._stopping:
            taken = self.pacer.take(clock())
            if taken is None:
                return
            i, slot = taken
            while (wait := slot - clock()) > 0:
                await nap(wait)
                if run._stopping:
                    return
            member = run._pick()
            sent_s = clock()
            rec.sent(sent_s - slot)  # the pacer's slot: a closed loop has no schedule to fall behind
            if member is None:
                rec.done(0.0, NO_INSTANCE)  # nobody to send to right now: a failure, and on we go
                continue
            await run._call(member, i, sent_s)  # latency and deadline count from the actual send
            if task is not None and task.cancelling():
                return  # cancelled mid-call (stop's drain): the call was counted CANCELLED
