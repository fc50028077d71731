"""A small config editor: namespace / key / value / type + Set, and a live list of changes.

Presentation only: it calls the Lab's public config part (``lab.config.set``,
``lab.config.watch``), typed as ``widgets.sources.ConfigSource``. Values arrive on the watch's thread and are written with
``Output.append_stdout``; widgets are created and displayed on the main thread.

    from widgets.config_view import ConfigEditor
    editor = ConfigEditor(lab, "calculator"); editor.show()
    editor.stop()
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets
import pandas as pd
from IPython.display import display

from widgets.sources import ConfigSource, Stoppable

VALUE_TYPES = ["string", "int", "bool", "json"]


def format_value(v: dict[str, Any]) -> str:
    """One watched value as a line: ``12:00:01.234 calculator/max_connections = 1 (int, v3)``."""
    when = pd.Timestamp(v["updated_at"]).strftime("%H:%M:%S.%f")[:-3] if v.get("updated_at") else "--:--:--"
    return f"{when} {v['namespace']}/{v['key']} = {v['value']} ({v['value_type']}, v{v['version']})\n"


class ConfigEditor:
    """Set config values and watch a namespace change live.

    Args:
        lab: anything with a config part (``ConfigSource``: ``config.set``, ``config.watch``), e.g. the Lab.
        namespace: the namespace to edit and follow, e.g. ``"calculator"``.
    """

    def __init__(
        self, lab: ConfigSource, namespace: str = "calculator", key: str = "", value: str = ""
    ) -> None:
        self.lab = lab
        self.namespace = widgets.Text(value=namespace, description="namespace", continuous_update=False)
        self.key = widgets.Text(value=key, description="key")
        self.value = widgets.Text(value=value, description="value")
        self.value_type = widgets.Dropdown(options=VALUE_TYPES, value="int", description="type")
        self.button = widgets.Button(description="Set", button_style="primary")
        self.status = widgets.HTML()
        self.out = widgets.Output(layout={"height": "200px", "overflow": "auto", "border": "1px solid #ddd"})
        self.box = widgets.VBox(
            [
                widgets.HBox([self.namespace, self.key]),
                widgets.HBox([self.value, self.value_type, self.button]),
                self.status,
                self.out,
            ]
        )
        self.values: dict[str, dict[str, Any]] = {}  # key -> latest value seen by the watch
        self._lock = threading.Lock()
        self._watch: Stoppable | None = None
        self.button.on_click(lambda _b: self.set())
        self.namespace.observe(lambda _change: self.follow(), names="value")
        self.follow()

    def set(self) -> dict[str, Any] | None:
        """Send the form's value (what the Set button does); the status line says how it went."""
        try:
            ack = self.lab.config.set(
                self.namespace.value, self.key.value, self.value.value, self.value_type.value
            )
        except Exception as err:  # noqa: BLE001 - show the service's message to the learner
            self.status.value = f"<span style='color:#c62828'>{_escape(str(err))}</span>"
            return None
        self.status.value = f"<span style='color:#2e7d32'>{_escape(ack['message'])}</span>"
        return ack

    def follow(self) -> None:
        """(Re)start the live list for the current namespace."""
        if self._watch is not None:
            self._watch.stop()
        with self._lock:
            self.values.clear()
        self.out.clear_output()
        self._watch = self.lab.config.watch(self.namespace.value, self._on_value)

    def _on_value(self, v: dict[str, Any]) -> None:  # on the watch thread
        with self._lock:
            self.values[v["key"]] = v
        self.out.append_stdout(format_value(v))

    def show(self) -> None:
        """Display the editor (main thread)."""
        display(self.box)

    def stop(self) -> None:
        """Stop following."""
        if self._watch is not None:
            self._watch.stop()
            self._watch = None


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
