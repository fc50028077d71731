"""The capstone drill (notebook 13): a scripted incident on the calculator, and its grader.

    drill = Incident(lab)          # draws which calculator instance gets which problem
    drill.start()                  # a slow one, a failing one, a frozen one, one bad config value
    ...                            # the learner diagnoses with health, logs, traces and load
    drill.grade(diagnosis)         # a table: question, your answer, right or not
    drill.verify_fixed()           # after the fixes: every check of a healthy calculator
    drill.end()                    # undo whatever is left (safe to call twice, and after a failure)

The problems are real, made with the lab's own tools: a chaos DELAY fault on one instance, an
ERROR_INJECT fault on another, SIGSTOP on the third, and one config value of the namespace
``calculator`` set wrong. Which instance gets which problem, and which value is wrong, is drawn
at random (``seed`` makes it repeatable), so reading the notebook of a neighbour does not help.
Nothing here is a shortcut for the learner: the answer lives in ``_truth`` and only ``grade``
reads it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from calculator.settings import DEFAULTS, NAMESPACE
from runtime.errors import LabError

SERVICE = "calculator"
INSTANCES = 3
DELAY_MS = 300
ERROR_RATE = 0.5
FAULT_TTL_S = 900  # long enough for a workshop; end() clears them sooner
# The wrong values to choose from: each shows up differently (latency everywhere vs. a health
# alarm everywhere while latency is fine).
MISCONFIGS = {"work_ms": 80, "degraded_p99_ms": 1}
QUESTIONS = ("slow_instance", "failing_instance", "frozen_instance", "misconfigured_key")
FROZEN_WAIT_S = 20.0
READY_WAIT_S = 30.0
VERIFY_RPS = 30
VERIFY_S = 3
VERIFY_P99_MS = 250.0


@dataclass
class _Truth:
    slow_instance: str
    failing_instance: str
    frozen_instance: str
    misconfigured_key: str


@dataclass
class Incident:
    """One scripted incident on the running lab's calculators.

    Args:
        lab: a started ``runtime.Lab`` whose lab file runs ``calculator`` (Python) and the
            health, logger, loadgen, chaos and config services (the default lab.yaml does).
        seed: makes the draw repeatable (None: a new draw each time).

    Example:
        >>> drill = Incident(lab, seed=7)          # doctest: +SKIP
        >>> drill.start()                          # doctest: +SKIP
    """

    lab: Any
    seed: int | None = None
    started_at: pd.Timestamp | None = None
    _truth: _Truth | None = field(default=None, repr=False)
    _fault_ids: list[str] = field(default_factory=list, repr=False)
    _restore: dict[str, int] = field(default_factory=dict, repr=False)
    _instances_before: int = 0

    def start(self) -> str:
        """Make the incident happen; returns the pager message the on-call engineer gets."""
        lab = self.lab
        rng = random.Random(self.seed)
        names = [f"{SERVICE}-{i}" for i in range(1, INSTANCES + 1)]
        slow, failing, frozen = rng.sample(names, 3)
        key = rng.choice(sorted(MISCONFIGS))
        self._instances_before = len(lab.status(SERVICE))
        lab.scale(SERVICE, INSTANCES)
        lab.wait_for(
            lambda: sorted(lab.lookup(SERVICE).instance) == names,
            READY_WAIT_S,
            "three calculators registered",
        )
        self._restore = {key: self._current(key)}
        self._truth = _Truth(slow, failing, frozen, key)
        self.started_at = pd.Timestamp.now(tz="UTC")
        self._fault_ids.append(
            lab.chaos.inject(SERVICE, "delay", FAULT_TTL_S, instance=slow, delay_ms=DELAY_MS)
        )
        self._fault_ids.append(
            lab.chaos.inject(SERVICE, "error_inject", FAULT_TTL_S, instance=failing, error_rate=ERROR_RATE)
        )
        lab.config.set(NAMESPACE, key, MISCONFIGS[key], "int")
        lab.kill(SERVICE, frozen, signal="SIGSTOP")
        lab.wait_for(lambda: self._state(frozen) == "UNHEALTHY", FROZEN_WAIT_S, f"{frozen} marked UNHEALTHY")
        return (
            f"PAGER {self.started_at:%H:%M:%S} UTC: users report slow and failing calculations; "
            "some answers take seconds, some fail. Nothing was deployed today."
        )

    def grade(self, diagnosis: dict[str, Any]) -> pd.DataFrame:
        """Compare a diagnosis with the truth: one row per question (question, answer, right).

        Raises:
            RuntimeError: the incident was not started.
        """
        truth = self._require_truth()
        rows = []
        for question in QUESTIONS:
            answer = diagnosis.get(question)
            right = str(answer).strip() == getattr(truth, question)
            rows.append({"question": question, "your answer": answer, "right": right})
        return pd.DataFrame(rows)

    def verify_fixed(self) -> pd.DataFrame:
        """Every check a healthy calculator passes, with what was seen; ``ok`` is all True when fixed.

        Checks: no active fault on the calculator, every instance running, responding and
        HEALTHY, the config value back at its default, and a short load test with no failed call
        and a p99 under 250 ms.
        """
        lab = self.lab
        truth = self._require_truth()
        faults = lab.chaos.faults()
        left = faults[faults.service == SERVICE] if not faults.empty else faults
        status = lab.status(SERVICE)
        health = lab.health().query(f"service == '{SERVICE}'")
        value = self._current(truth.misconfigured_key)
        test = lab.load.start(SERVICE, rps=VERIFY_RPS, duration_s=VERIFY_S, payload={"a": 2, "b": 3})
        summary = test.summary(timeout_s=VERIFY_S + 20)
        checks = [
            ("no fault left on the calculator", left.empty, f"{len(left)} active"),
            ("every instance running and responding", bool((status.state == "RUNNING").all() and status.responding.all()),
             ", ".join(f"{r.instance}: {r.state}{'' if r.responding else ' (not responding)'}" for r in status.itertuples())),
            ("every instance HEALTHY", bool((health.state == "HEALTHY").all()) and len(health) >= INSTANCES,
             ", ".join(f"{r.instance}: {r.state}" for r in health.itertuples())),
            (f"{truth.misconfigured_key} back at its default", value == DEFAULTS[truth.misconfigured_key],
             f"{value} (default {DEFAULTS[truth.misconfigured_key]})"),
            ("a load test without failures", summary.total_failed == 0,
             f"{summary.total_failed} of {summary.total_requests} failed {summary.error_counts}"),
            (f"p99 under {VERIFY_P99_MS:.0f} ms", summary.latency_p99_ms < VERIFY_P99_MS,
             f"p99 {summary.latency_p99_ms:.0f} ms"),
        ]  # fmt: skip
        return pd.DataFrame(checks, columns=["check", "ok", "seen"])

    def end(self) -> None:
        """Undo what is left: resume the frozen instance, clear the faults, restore the value, scale back."""
        lab = self.lab
        if self._truth is not None:
            try:
                lab.kill(SERVICE, self._truth.frozen_instance, signal="SIGCONT")
            except LabError:
                pass  # already restarted, or gone: nothing frozen to resume
        for fault_id in self._fault_ids:
            try:
                lab.chaos.clear(fault_id)
            except LabError:
                pass  # the chaos service does not answer: its faults die with its dead-man switch
        self._fault_ids.clear()
        for key, value in self._restore.items():
            lab.config.set(NAMESPACE, key, value, "int")
        if self._instances_before:
            lab.scale(SERVICE, self._instances_before)
        self._truth = None

    # -- internals ---------------------------------------------------------------------------

    def _require_truth(self) -> _Truth:
        if self._truth is None:
            raise RuntimeError("the incident has not started (or has ended): call drill.start() first")
        return self._truth

    def _current(self, key: str) -> int:
        try:
            return int(self.lab.config.get(NAMESPACE, key)["value"])
        except LabError:  # not set: the calculator runs with its default
            return DEFAULTS[key]

    def _state(self, instance: str) -> str:
        health = self.lab.health()
        row = health[health.instance == instance]
        return str(row.state.iloc[0]) if not row.empty else "UNKNOWN"
