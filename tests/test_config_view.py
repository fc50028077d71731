"""The config editor widget against a fake config part (no processes): Set, errors, live list."""

from __future__ import annotations

from typing import Any

import pandas as pd

from runtime.errors import ClientError
from widgets.config_view import ConfigEditor, format_value


class FakeWatch:
    def __init__(self, callback) -> None:
        self.callback = callback
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


class FakeConfig:
    """What ConfigEditor uses of ``lab.config`` (widgets.sources.ConfigPart)."""

    def __init__(self) -> None:
        self.watches: list[tuple[str, FakeWatch]] = []
        self.version = 0

    def set(self, ns: str, key: str, value: Any, value_type: str = "string") -> dict[str, Any]:
        if value_type == "int" and not str(value).isdigit():
            raise ClientError(f"{ns}/{key}: value {value!r} is not an int", "INVALID_ARGUMENT")
        self.version += 1
        item = {"namespace": ns, "key": key, "value": str(value), "value_type": value_type,
                "version": self.version, "updated_at": pd.Timestamp("2026-01-01 12:00:01", tz="UTC")}  # fmt: skip
        for watched_ns, w in self.watches:
            if watched_ns == ns and not w.stopped:
                w.callback(item)
        return {"ok": True, "version": self.version, "message": f"{ns}/{key} is at version {self.version}"}

    def watch(self, ns: str, callback) -> FakeWatch:
        w = FakeWatch(callback)
        self.watches.append((ns, w))
        return w


class FakeLab:
    """A ConfigSource: a lab with only a config part."""

    def __init__(self) -> None:
        self.config = FakeConfig()


def test_set_shows_status_and_the_live_list_follows():
    fake = FakeLab()
    lab = fake.config
    editor = ConfigEditor(fake, "calculator", key="max_connections", value="1")
    assert editor.set()["version"] == 1
    assert "version 1" in editor.status.value
    assert editor.values["max_connections"]["value"] == "1"
    editor.value.value = "many"
    assert editor.set() is None and "not an int" in editor.status.value
    editor.namespace.value = "other"  # follows the new namespace, stops the old watch
    assert lab.watches[0][1].stopped and lab.watches[-1][0] == "other" and not editor.values
    editor.stop()
    assert lab.watches[-1][1].stopped


def test_format_value():
    v = {"namespace": "calculator", "key": "work_ms", "value": "50", "value_type": "int", "version": 3,
         "updated_at": pd.Timestamp("2026-01-01 12:00:01.5", tz="UTC")}  # fmt: skip
    assert format_value(v) == "12:00:01.500 calculator/work_ms = 50 (int, v3)\n"
