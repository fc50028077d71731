"""The helpers behind the course's drills, on scripted inputs (no lab, no process).

* ``notebooks/fencing.py``: the fenced write refuses a token older than the one the resource has
  seen, also when a newer leader slips in between its read and its write (the CAS retries).
* ``calculator/incident.py``: the grader compares each answer with the drawn truth, and refuses
  to grade an incident that was never started.

Chapters 11 and 13 run both against a real lab under nbval.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from calculator.incident import QUESTIONS, Incident, _Truth

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notebooks"))
from fencing import Refused, fenced_write  # noqa: E402


class Versioned:
    """A key-value store with versions and compare-and-swap, like the state service's."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[str, int]] = {}
        self.before_cas: list[Any] = []  # callables run once before the next CAS (a racing writer)

    def get(self, key: str) -> dict[str, Any]:
        value, version = self.data.get(key, ("", 0))
        return {"key": key, "value": value, "version": version}

    def cas(self, key: str, expected_version: int, value: str) -> dict[str, Any]:
        while self.before_cas:
            self.before_cas.pop(0)()
        _, version = self.data.get(key, ("", 0))
        if version != expected_version:
            return {"swapped": False, **self.get(key)}
        self.data[key] = (value, version + 1)
        return {"swapped": True, **self.get(key)}


def stored(state: Versioned, key: str) -> dict[str, Any]:
    return json.loads(state.get(key)["value"])


def test_fenced_writes_accept_equal_or_newer_tokens_and_count_writes() -> None:
    state = Versioned()
    assert fenced_write(state, "r", 1, "a") == {"token": 1, "owner": "a", "writes": 1}
    assert fenced_write(state, "r", 1, "a")["writes"] == 2
    assert fenced_write(state, "r", 2, "b") == {"token": 2, "owner": "b", "writes": 3}


def test_an_older_token_is_refused_and_the_resource_keeps_the_newer_write() -> None:
    state = Versioned()
    fenced_write(state, "r", 5, "new leader")
    with pytest.raises(Refused, match="token 4 is older than 5 \\(new leader\\)"):
        fenced_write(state, "r", 4, "old leader")
    assert stored(state, "r")["owner"] == "new leader"


def test_a_newer_leader_between_read_and_write_still_wins() -> None:
    state = Versioned()
    fenced_write(state, "r", 1, "old")
    # The old leader reads token 1, then the new leader writes before the old one's CAS.
    state.before_cas.append(lambda: fenced_write(state, "r", 2, "new"))
    with pytest.raises(Refused):
        fenced_write(state, "r", 1, "old")
    assert stored(state, "r") == {"token": 2, "owner": "new", "writes": 2}


def test_grade_marks_each_answer_against_the_truth() -> None:
    drill = Incident(lab=None)
    drill._truth = _Truth("calculator-2", "calculator-3", "calculator-1", "work_ms")
    graded = drill.grade(
        {
            "slow_instance": "calculator-2",
            "failing_instance": "calculator-1",
            "frozen_instance": " calculator-1 ",
            "misconfigured_key": None,
        }
    )
    assert list(graded.question) == list(QUESTIONS)
    assert list(graded.right) == [True, False, True, False]


def test_grading_before_start_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="drill.start"):
        Incident(lab=None).grade({})
