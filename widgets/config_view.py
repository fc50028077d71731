"""A small config editor: namespace / key / value / type + Set, and a live list of changes.

Presentation only: it calls the Lab's public config part (``lab.config.set``,
``lab.config.watch``), typed as ``widgets.sources.ConfigSource``. Values arrive on the watch's
thread into a bounded buffer; the view base (``widgets.view_base``) redraws the list, throttled.

    from widgets.config_view import ConfigEditor
    editor = ConfigEditor(lab, "calculator"); editor.show()
    editor.stop()
"""

from __future__ import annotations

from collections import deque
from typing import Any

import ipywidgets as widgets
import pandas as pd

from widgets.sources import ConfigSource, Stoppable
from widgets.view_base import ViewBase, bounded, stream_output

VALUE_TYPES = ["string", "int", "bool", "json"]
MAX_LINES = 200  # changes kept in the live list


def format_value(v: dict[str, Any]) -> str:
    """One watched value as a line: ``12:00:01.234 calculator/max_connections = 1 (int, v3)``."""
    when = pd.Timestamp(v["updated_at"]).strftime("%H:%M:%S.%f")[:-3] if v.get("updated_at") else "--:--:--"
    return f"{when} {v['namespace']}/{v['key']} = {v['value']} ({v['value_type']}, v{v['version']})\n"


class ConfigEditor(ViewBase):
    """Set config values and watch a namespace change live.

    Args:
        lab: anything with a config part (``ConfigSource``: ``config.set``, ``config.watch``), e.g. the Lab.
        namespace: the namespace to edit and follow, e.g. ``"calculator"``.
    """

    def __init__(
        self, lab: ConfigSource, namespace: str = "calculator", key: str = "", value: str = ""
    ) -> None:
        super().__init__("config-editor")
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
                self.errors,
                self.out,
            ]
        )
        self.widget = self.box
        self.values: dict[str, dict[str, Any]] = {}  # key -> latest value seen by the watch
        self.lines: deque[str] = bounded(MAX_LINES)
        self._appended = 0
        self._drawn = 0
        self._watch: Stoppable | None = None
        self.button.on_click(self.guarded(lambda _b: self.set(), "set"))
        self.namespace.observe(self.guarded(lambda _change: self.follow(), "namespace"), names="value")
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
        self.release(self._watch)
        self._watch = None
        with self._lock:
            self.values.clear()
        self.lines.clear()
        self._appended += 1
        self._watch = self.keep(
            self.lab.config.watch(self.namespace.value, self.guarded(self._on_value, "watch"))
        )
        self.start_redraws()

    def _on_value(self, v: dict[str, Any]) -> None:  # on the watch thread
        with self._lock:
            self.values[v["key"]] = v
        self.lines.append(format_value(v).rstrip("\n"))
        self._appended += 1
        self.mark_dirty()

    def redraw(self) -> None:
        """Rewrite the live list from the bounded buffer when values arrived since the last redraw."""
        appended = self._appended
        if appended != self._drawn:
            self.out.outputs = (stream_output(list(self.lines)),)
            self._drawn = appended

    def stop(self) -> None:
        """Stop following (and the redraws); same as ``close()``."""
        self.close()
        self._watch = None


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
