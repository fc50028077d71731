"""Config and state in a real lab: the calculator follows config live; workers count and elect a leader.

The tests about the calculator's config watch run against the Python and the TypeScript calculator
(``[python]``, ``[typescript]``; tests/calculator_languages.py).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from calculator_languages import CALCULATOR_LANGUAGES, calculator_lab
from waiting import wait_until

from calculator.lab import CalculatorLab
from runtime.errors import ClientError
from runtime.identity import CONFIG_GRPC_SERVICE
from runtime.lab import Lab
from runtime.v1 import config_pb2, config_pb2_grpc

WAIT_S = 10.0


@pytest.fixture
def lab(request: pytest.FixtureRequest, lab_factory) -> Lab:
    language = getattr(request, "param", "python")
    return calculator_lab(lab_factory, "config-state", language, typescript_name="config-schema-typescript")


def concurrent_adds(calc, n: int) -> list[str]:
    """``n`` Add calls at once; the gRPC status name (or 'OK') of each."""

    def one(i: int) -> str:
        try:
            calc.add(i, 1)
            return "OK"
        except ClientError as err:
            return err.code
        except Exception as err:  # noqa: BLE001 - report whatever the client raised
            return type(err).__name__

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.parametrize("lab", CALCULATOR_LANGUAGES, indirect=True)
def test_calculator_follows_max_connections_without_restart(lab: Lab):
    pid = int(lab.status("calculator").pid.iloc[0])
    calc = CalculatorLab(lab).client()
    assert concurrent_adds(calc, 4) == ["OK"] * 4
    lab.config.set("calculator", "work_ms", 300)
    lab.config.set("calculator", "max_connections", 1)
    wait_until(
        lambda: "RESOURCE_EXHAUSTED" in concurrent_adds(calc, 4),
        WAIT_S,
        "calls beyond max_connections refused",
        ignore=(Exception,),
    )
    lab.config.set("calculator", "max_connections", 100)
    lab.config.set("calculator", "work_ms", 0)
    wait_until(
        lambda: concurrent_adds(calc, 4) == ["OK"] * 4, WAIT_S, "every call served again", ignore=(Exception,)
    )
    # The calculator's watch reconnects after the config service was killed and restarted.
    old = lab.kill("config")
    lab.wait_restarted("config-1", old["pid"])
    lab.config.set("calculator", "work_ms", 300)
    lab.config.set("calculator", "max_connections", 1)
    wait_until(
        lambda: "RESOURCE_EXHAUSTED" in concurrent_adds(calc, 4),
        WAIT_S,
        "the limit after a config restart",
        ignore=(Exception,),
    )
    lab.config.set("calculator", "max_connections", 100)
    lab.config.set("calculator", "work_ms", 0)
    assert int(lab.status("calculator").pid.iloc[0]) == pid  # same process: no restart
    calc.close()


@pytest.mark.parametrize("language", CALCULATOR_LANGUAGES)
def test_calculator_refuses_a_bad_value_and_keeps_the_last_good_one(lab_factory, language: str):
    lab = calculator_lab(lab_factory, "config-schema", language)
    pid = int(lab.status("calculator").pid.iloc[0])
    calc = CalculatorLab(lab).client()
    config = config_pb2_grpc.ConfigServiceStub(lab._channel(CONFIG_GRPC_SERVICE))
    wait_until(
        lambda: config.GetSchema(config_pb2.ConfigNamespace(namespace="calculator"), timeout=5).keys,
        WAIT_S,
        "the calculator to register its config schema",
        ignore=(Exception,),
    )
    # The calculator registered its schema: the config service itself refuses a bad value.
    with pytest.raises(ClientError) as info:
        lab.config.set("calculator", "max_connections", -5)
    assert info.value.code == "INVALID_ARGUMENT" and "got '-5'" in str(info.value), info.value
    lab.config.set("calculator", "work_ms", 300)
    lab.config.set("calculator", "max_connections", 1)
    wait_until(lambda: "RESOURCE_EXHAUSTED" in concurrent_adds(calc, 4), WAIT_S, "max_connections=1 applied")
    # Another consumer registers a looser schema for the namespace, and a bad value gets stored.
    config.RegisterSchema(config_pb2.ConfigSchema(namespace="calculator"), timeout=5)
    lab.config.set("calculator", "max_connections", -5)

    def refusal() -> str:
        df = lab.logs(service="calculator", level="WARN", search="refused")
        hits = [m for m in df.message if "max_connections must be an integer between 1 and 100000" in m]
        return hits[0] if hits else ""

    message = wait_until(refusal, WAIT_S, "the calculator's refusal of max_connections=-5 in its logs")
    assert "got '-5'; keeping the last good value '1'" in message, message
    # Still 1, not the default 1000: concurrent calls are still refused beyond the first.
    assert "RESOURCE_EXHAUSTED" in concurrent_adds(calc, 4)
    assert int(lab.status("calculator").pid.iloc[0]) == pid  # same process: no restart
    calc.close()


def test_watch_config_and_values_survive_a_killed_config_service(lab: Lab):
    seen: list[dict] = []
    watch = lab.config.watch("demo", seen.append)
    try:
        lab.config.set("demo", "greeting", "hello")
        wait_until(
            lambda: [s["value"] for s in seen] == ["hello"], WAIT_S, "the first value", ignore=(Exception,)
        )
        with pytest.raises(ClientError) as info:
            lab.config.set("demo", "n", "x", "int")
        assert info.value.code == "INVALID_ARGUMENT"
        with pytest.raises(ClientError) as info:
            lab.config.get("demo", "missing")
        assert info.value.code == "NOT_FOUND" and "missing" in str(info.value)
        old = lab.kill("config")
        lab.wait_restarted("config-1", old["pid"])
        wait_until(
            lambda: lab.config.get("demo", "greeting")["version"] == 1,
            WAIT_S,
            "the value after the restart",
            ignore=(Exception,),
        )
        lab.config.set("demo", "greeting", "again")
        wait_until(
            lambda: seen[-1]["value"] == "again",
            WAIT_S,
            "the watch to reconnect and see the change",
            ignore=(Exception,),
        )
        assert watch.reconnects >= 1
    finally:
        watch.stop()
    assert not watch.running
    assert list(lab.config.values("demo").key) == ["greeting"]


def test_workers_count_exactly_and_lead_one_at_a_time(lab: Lab):
    run = lab.state.run_workers(4, increments=25, terms=3, counter="test/counter", lock_name="test-leader")
    workers, terms = run["workers"], run["terms"]
    assert list(workers.exit_code) == [0] * 4, workers
    assert lab.state.get("test/counter")["value"] == "100"
    assert len(terms) == 12 and terms.token.is_monotonic_increasing and terms.token.is_unique
    # One leader at a time: each term ends before the next token's term starts.
    assert (terms.end_ms.shift(1).fillna(0) <= terms.start_ms).all(), terms
    grant = lab.state.lock("test-leader", "notebook", ttl_ms=200)
    assert grant["acquired"] and grant["fencing_token"] == terms.token.max() + 1
    time.sleep(0.3)
    with pytest.raises(ClientError) as info:
        lab.state.unlock(grant["lock_id"])
    assert info.value.code == "FAILED_PRECONDITION" and "expired" in str(info.value)


def test_serving_workers_elect_one_leader_and_fail_over(lab: Lab):
    def record():
        value = lab.state.get("leader/fenced")["value"]
        return json.loads(value) if value else None

    first = wait_until(
        lambda: (r := record()) and r["writes"] >= 3 and r,
        WAIT_S,
        "a leader's fenced writes",
        ignore=(Exception,),
    )
    wait_until(
        lambda: record()["writes"] >= first["writes"] + 3,
        WAIT_S,
        "the leader to keep writing",
        ignore=(Exception,),
    )
    assert record()["token"] == first["token"]  # one leader, one token, while nobody fails
    leader = first["owner"]
    lab.kill("worker", leader.split()[0])  # owner: "worker-2 pid 4242"
    after = wait_until(
        lambda: (r := record()) and r["owner"] != leader and r,
        WAIT_S,
        "another worker to take over",
        ignore=(Exception,),
    )
    assert after["token"] > first["token"]
