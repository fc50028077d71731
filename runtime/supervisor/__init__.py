"""The supervisor daemon: launches and supervises the lab's service processes.

Run it with ``python -m runtime.supervisor --lab-dir D --config lab.yaml``; talk to it with
SupervisorService (proto/runtime/v1/supervisor.proto) at the address in ``D/supervisor.json``.

Modules, one noun each:
    config    lab.yaml -> pydantic section models (ConfigError on any problem)
    config_errors  pydantic's errors -> "file: field: what is allowed"
    policy    restart decisions (pure)
    child     the seam: what the lifecycle knows of a child (Child, ChildReport, Spawn)
    clock     the seam: monotonic/wall time and timers (LoopClock)
    instance  the Instance record (state, pid, restarts, ...) and Desired
    process   one real child: spawn, watch output/READY/exit (the real Spawn)
    manager   all instances: lookups and lab-wide commands
    events    the event log with replay and subscribers
    output    captured output lines; OutputTap (the log shipper's seam)
    keeper    kills every lab process group if the daemon is SIGKILLed
    broker_link  ReportExit to the broker
    lifecycle the state machine of one instance, the event queue
    jobs      one-shot jobs (RunJob)
    leases    leases and the linger rule (pure)
    metrics   CPU/RSS per process tree
    service   the gRPC servicer
    daemon    lock, supervisor.json, signals, lifetime
    bytecode  compiles the lab's own packages once it runs (read by the next service starts)
    forkserver  the pre-imported parent that forks Python services (its own process)
    forked    the daemon's side of it: ForkServer, ForkedChild, Spawner (fork or exec)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.identity import INFO_FILE, LOCK_FILE
    from runtime.supervisor.config import (
        JobSpec,
        LabConfig,
        ServiceSpec,
        StartLimit,
        load_config,
        parse_config,
    )
    from runtime.supervisor.daemon import Daemon
    from runtime.supervisor.manager import Manager
    from runtime.supervisor.output import OutputTap

# Lazy, as runtime/__init__.py: the fork server and the group keeper run as modules of this
# package and must not import the whole daemon (pydantic, grpc servers: ~0.4 s) to start.
_HOME = {
    "INFO_FILE": "runtime.identity",
    "LOCK_FILE": "runtime.identity",
    "JobSpec": "runtime.supervisor.config",
    "LabConfig": "runtime.supervisor.config",
    "ServiceSpec": "runtime.supervisor.config",
    "StartLimit": "runtime.supervisor.config",
    "load_config": "runtime.supervisor.config",
    "parse_config": "runtime.supervisor.config",
    "Daemon": "runtime.supervisor.daemon",
    "Manager": "runtime.supervisor.manager",
    "OutputTap": "runtime.supervisor.output",
}


def __getattr__(name: str) -> object:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(name)


__all__ = [
    "INFO_FILE",
    "LOCK_FILE",
    "Daemon",
    "JobSpec",
    "LabConfig",
    "Manager",
    "OutputTap",
    "ServiceSpec",
    "StartLimit",
    "load_config",
    "parse_config",
]
