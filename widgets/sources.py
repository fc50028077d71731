"""What each widget uses of a lab, as typed protocols: the views depend on these, not on ``Lab``.

A widget takes "anything with these methods". ``runtime.lab.Lab`` is one (mypy checks it at the
bottom of this file); a test can hand a widget a small fake instead, with no lab running.

=================  ===========================  =============================================
widget             takes                        uses
=================  ===========================  =============================================
LabBoard           ``ProcessSource``            status(), kill(), restart()
HealthBoard        ``HealthSource``             lab.health(), .history(), .watch()
LogTail            ``LogSource``                status() (for the service list), logs.tail()
LoadView           ``LoadSource``               load.start() and the LoadTest it returns
ChaosPanel         ``ChaosSource`` + ProbeCall  status(), chaos.inject(), chaos.clear(); the probe calls
ConfigEditor       ``ConfigSource``             config.set(), config.watch()
MissionControl     ``MissionSource`` + probe    all of the above, watch_events(), reset()
=================  ===========================  =============================================

The chaos panel's probe is a :class:`ProbeCall` passed in by the notebook (the calculator's is
``calculator.lab.CalculatorLab.latency_probe()``): widgets never import the demo application.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from runtime.lab.health import HealthChange
from runtime.lab.load import LoadTest


class Stoppable(Protocol):
    """A background watch or tail: ``stop()`` ends it."""

    def stop(self) -> None: ...


class ProcessSource(Protocol):
    """The lab's processes: what LabBoard shows and acts on."""

    def status(self, service: str | None = None) -> pd.DataFrame: ...
    def kill(
        self, service: str, instance: str | int | None = None, signal: str | int = "SIGKILL"
    ) -> dict[str, Any]: ...
    def restart(self, service: str, instance: str | int | None = None) -> pd.DataFrame: ...


class HealthPart(Protocol):
    """``lab.health``: current states (by calling it), transitions, a live watch."""

    def __call__(self) -> pd.DataFrame: ...
    def history(self, service: str | None = None, instance: str | None = None) -> pd.DataFrame: ...
    def watch(self, callback: Callable[[HealthChange], object]) -> Stoppable: ...


class HealthSource(Protocol):
    """What HealthBoard uses: a lab with a health part."""

    @property
    def health(self) -> HealthPart: ...


class LogsPart(Protocol):
    """``lab.logs``: a live tail with filters (service, instance, level, search, correlation_id)."""

    def tail(self, callback: Callable[[dict[str, Any]], Any], **filters: Any) -> Stoppable: ...


class LogSource(Protocol):
    """What LogTail uses: the services of the lab (for its filter) and the log part."""

    def status(self, service: str | None = None) -> pd.DataFrame: ...
    @property
    def logs(self) -> LogsPart: ...


class LoadPart(Protocol):
    """``lab.load``: start a test; the LoadTest handle fills its frame live."""

    def start(self, target: str, rps: int = ..., duration_s: int = ..., method: str = ...) -> LoadTest: ...


class LoadSource(Protocol):
    """What LoadView uses: a lab with a load part."""

    @property
    def load(self) -> LoadPart: ...


class ChaosPart(Protocol):
    """``lab.chaos``: inject a fault, clear faults."""

    def inject(
        self,
        service: str,
        kind: str | int,
        duration_s: int = 0,
        instance: str | int | None = None,
        **params: Any,
    ) -> str: ...
    def clear(self, fault_id: str | None = None) -> int: ...


class ChaosSource(Protocol):
    """What ChaosPanel uses: the instances (for its picker) and the chaos part."""

    def status(self, service: str | None = None) -> pd.DataFrame: ...
    @property
    def chaos(self) -> ChaosPart: ...


class ProbeCall(Protocol):
    """One probe request as a client would make it; returns the instance that answered.

    Raises a ``LabError`` (``ClientError`` with ``code``, or ``DiscoveryError``) when it fails;
    ``label`` names the call on the chart ("Add(1, 2)"); ``close()`` frees its channels.
    """

    label: str

    def __call__(self) -> str: ...
    def close(self) -> None: ...


class ConfigPart(Protocol):
    """``lab.config``: set a value, watch a namespace."""

    def set(self, namespace: str, key: str, value: Any, value_type: str = "string") -> dict[str, Any]: ...
    def watch(self, namespace: str, callback: Callable[[dict[str, Any]], object]) -> Stoppable: ...


class ConfigSource(Protocol):
    """What ConfigEditor uses: a lab with a config part."""

    @property
    def config(self) -> ConfigPart: ...


class MissionChaosPart(ChaosPart, Protocol):
    """``lab.chaos`` as MissionControl uses it: inject, clear and list the active faults."""

    def faults(self) -> pd.DataFrame: ...


class MissionLoadPart(Protocol):
    """``lab.load`` as MissionControl uses it: the tests running now (current_rps, p99_ms)."""

    def tests(self) -> pd.DataFrame: ...


class MissionSource(Protocol):
    """What MissionControl uses: processes, the event and health streams, logs, chaos, load, reset."""

    def status(self, service: str | None = None) -> pd.DataFrame: ...
    def kill(
        self, service: str, instance: str | int | None = None, signal: str | int = "SIGKILL"
    ) -> dict[str, Any]: ...
    def restart(self, service: str, instance: str | int | None = None) -> pd.DataFrame: ...
    def start(self, service: str, instance: str | int | None = None) -> pd.DataFrame: ...
    def reset(self, timeout_s: float = ...) -> Any: ...
    def watch_events(
        self, callback: Callable[[dict[str, Any]], object], replay: int = ..., service: str | None = ...
    ) -> Stoppable: ...
    @property
    def health(self) -> HealthPart: ...
    @property
    def logs(self) -> LogsPart: ...
    @property
    def chaos(self) -> MissionChaosPart: ...
    @property
    def load(self) -> MissionLoadPart: ...


if TYPE_CHECKING:  # mypy proves here that the real Lab is every source the widgets take
    from runtime.lab import Lab

    def _lab_is_every_source(lab: Lab) -> None:
        sources: tuple[
            ProcessSource, HealthSource, LogSource, LoadSource, ChaosSource, ConfigSource, MissionSource
        ]
        sources = (lab, lab, lab, lab, lab, lab, lab)
        del sources
