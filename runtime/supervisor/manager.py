"""All instances of the lab: lookups and the lab-wide commands (start, stop, scale, shutdown).

Commands run on the manager's event queue (``await manager.call(manager.stop, insts)``); those
that wait for processes return futures that resolve once each instance has settled.

Example (inside the daemon's event loop, on the main thread):
    manager = Manager(load_config("lab.yaml"), lab_dir="/tmp/lab")
    loop_task = asyncio.create_task(manager.run())
    await manager.call(manager.start_all)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from runtime.errors import ServiceNotFound, quote
from runtime.supervisor.config import ServiceSpec, resolve_command
from runtime.supervisor.instance import Desired, Instance
from runtime.supervisor.lifecycle import BROKER_SERVICE, Lifecycle
from runtime.v1 import supervisor_pb2 as pb

SETTLE_TASKS_S = 1.0
_K = pb
_STARTABLE = (
    pb.PROCESS_STATE_STOPPED,
    pb.PROCESS_STATE_EXITED,
    pb.PROCESS_STATE_FATAL,
    pb.PROCESS_STATE_SKIPPED,
)

__all__ = ["BROKER_SERVICE", "Manager"]


class Manager(Lifecycle):
    """Runs every instance of every service in the config; the single owner of their state."""

    # -- lookups -----------------------------------------------------------------------------

    def spec(self, service: str) -> ServiceSpec:
        """The spec of ``service``; ServiceNotFound lists the known names."""
        if service not in self.config.services:
            known = ", ".join(self.config.services) or "(none)"
            raise ServiceNotFound(f"unknown service {quote(service)}; known services: {known}")
        return self.config.services[service]

    def select(self, service: str = "", instance_id: str = "") -> list[Instance]:
        """Instances by service and/or instance id; ServiceNotFound when nothing matches a name."""
        if instance_id:
            for group in self.instances.values():
                if instance_id in group and (not service or group[instance_id].service == service):
                    return [group[instance_id]]
            known = ", ".join(i for g in self.instances.values() for i in g) or "(none)"
            raise ServiceNotFound(f"unknown instance {quote(instance_id)}; known instances: {known}")
        if service:
            self.spec(service)
            return sorted(self.instances[service].values(), key=lambda i: i.index)
        return [
            i
            for name in self.config.services
            for i in sorted(self.instances[name].values(), key=lambda i: i.index)
        ]

    def info(self, insts: list[Instance]) -> list[pb.ProcessInfo]:
        """ProcessInfo messages for ``insts``."""
        return [i.to_info(resolve_command(i.spec.command, self.config.project_root)) for i in insts]

    def find_pid(self, pid: int) -> Instance | None:
        """The live instance whose process is ``pid``."""
        for inst in self.select():
            if inst.alive and inst.pid == pid:
                return inst
        return None

    # -- commands (run them through call()) --------------------------------------------------

    def start_all(self) -> None:
        """Start every instance, dependencies first (dependents wait in WAITING)."""
        for name in self.config.start_order():
            for inst in self.select(name):
                self._request_start(inst, manual=False)

    def start(self, insts: list[Instance]) -> None:
        """Start stopped/exited/fatal/skipped instances (a manual start forgets the failure history).

        A skipped instance is checked again: its requirement may be installed by now.
        """
        for inst in insts:
            if inst.state in _STARTABLE:
                self._request_start(inst, manual=True)

    def stop(self, insts: list[Instance], desired: Desired = Desired.STOP) -> list[asyncio.Future[None]]:
        """Stop instances (SIGTERM, grace, SIGKILL); futures resolve when each has settled."""
        waits = []
        for inst in insts:
            inst.desired = desired
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            inst.settled.append(fut)
            waits.append(fut)
            if inst.state in (_K.PROCESS_STATE_STARTING, _K.PROCESS_STATE_RUNNING):
                self._terminate(inst, "stop requested")
            elif inst.state != _K.PROCESS_STATE_STOPPING:
                if inst.state in (_K.PROCESS_STATE_STOPPED, _K.PROCESS_STATE_SKIPPED):
                    inst.settle()  # nothing runs; a skipped one stays SKIPPED (it says why)
                else:
                    self._stopped(
                        inst, "stopped before it ran" if inst.state == _K.PROCESS_STATE_WAITING else "stopped"
                    )
                if desired is Desired.REMOVE:
                    self.instances[inst.service].pop(inst.instance_id, None)
        return waits

    def restart(self, insts: list[Instance]) -> list[asyncio.Future[None]]:
        """Restart instances: running ones are stopped, then started again at once."""
        waits = []
        for inst in insts:
            if inst.alive:
                waits += self.stop([inst], desired=Desired.RESTART)
            else:
                inst.cancel_timer()
                self._request_start(inst, manual=True)
        return waits

    def scale(self, service: str, count: int) -> list[asyncio.Future[None]]:
        """Run ``count`` instances of ``service``: add new ones or stop and drop the highest."""
        spec = self.spec(service)
        current = self.select(service)
        self.events.emit(
            service=service,
            instance_id="",
            kind=_K.PROCESS_EVENT_KIND_SCALED,
            reason=f"scaled from {len(current)} to {count}",
        )
        if count > len(current):
            used = {i.index for i in current}
            index = 1
            for _ in range(count - len(current)):
                while index in used:
                    index += 1
                used.add(index)
                self._request_start(self._add_instance(spec, index), manual=True)
            return []
        return self.stop(current[count:], desired=Desired.REMOVE)

    def signal(self, inst: Instance, sig: signal.Signals) -> int:
        """Send ``sig`` to the instance's process; returns the pid."""
        if not inst.alive:
            raise ProcessLookupError(
                f"{inst.instance_id} has no running process (state {pb.ProcessState.Name(inst.state)})"
            )
        os.kill(inst.pid, sig)
        self.events.emit(
            service=inst.service,
            instance_id=inst.instance_id,
            kind=_K.PROCESS_EVENT_KIND_SIGNALED,
            pid=inst.pid,
            signal=int(sig),
            reason=f"sent {sig.name} to pid {inst.pid}",
        )
        return inst.pid

    async def shutdown(self) -> None:
        """Stop every service in reverse dependency order and wait for each level to settle."""
        self.shutting_down = True
        # Dependents first; services of one dependency level stop together.
        for level in reversed(self.config.start_levels()):
            insts = [inst for name in level for inst in self.select(name)]
            waits = await self.call(self.stop, insts)
            if waits:
                await asyncio.gather(*waits)
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), SETTLE_TASKS_S)
        await self._broker.close()
