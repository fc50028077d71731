"""A server-streaming watch followed from a named background thread, for notebook callbacks.

The Lab's lab.health.watch, lab.config.watch and lab.state.watch use it: reconnect when the service
restarts, never let a bug in the learner's callback end the watch, stop() from any thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import grpc

log = logging.getLogger("runtime.lab.stream_watch")

WATCH_RECONNECT_S = 0.2
WATCH_STOP_TIMEOUT_S = 2.0


class StreamWatch:
    """Calls ``callback(convert(message))`` for every message of a watch stream, from a named thread.

    First the current value(s), then every change; reconnects when the service restarts (and
    then delivers the current values again). ``stop()`` ends it. ``connected`` is set once the
    stream is open (or, with ``connected_on_first``, once its first message arrived).

    Example:
        >>> w = lab.config.watch("calculator", print)   # doctest: +SKIP
        >>> w.stop()                                   # doctest: +SKIP
    """

    def __init__(
        self,
        channel_factory: Callable[[], Any],
        open_stream: Callable[[Any], Any],
        convert: Callable[[Any], Any],
        callback: Callable[[Any], object],
        name: str,
        *,
        connected_on_first: bool = False,
    ) -> None:
        self._channel_factory = channel_factory
        self._open = open_stream
        self._convert = convert
        self._callback = callback
        self._connected_on_first = connected_on_first
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self.connected = threading.Event()
        self.events = 0
        self.reconnects = 0
        self.callback_errors = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except grpc.RpcError as err:
                # The service went away (or we cancelled): reconnect below, unless the error says
                # that trying again cannot help.
                if not self._stop.is_set() and not self._may_retry(err):
                    return
            except Exception as exc:  # noqa: BLE001 - e.g. not registered yet: keep trying until stopped
                log.debug("%s could not connect: %r", self._thread.name, exc)
            self.connected.clear()
            if self._stop.wait(WATCH_RECONNECT_S):
                break
            self.reconnects += 1

    def _follow(self) -> None:
        """Open the stream once and deliver its messages until it ends (raises RpcError)."""
        call = self._open(self._channel_factory())
        self._opened(call)
        for value in call:
            self.connected.set()
            self.events += 1
            self._deliver(self._convert(value))

    def _opened(self, call: Any) -> None:
        """Keep ``call`` so stop() can cancel it; mark the watch connected (unless on first message)."""
        with self._lock:
            self._call = call
        if self._stop.is_set():
            call.cancel()
        if not self._connected_on_first:
            self.connected.set()

    def _may_retry(self, err: grpc.RpcError) -> bool:
        """After the stream broke with ``err``: True to reconnect, False to end the watch."""
        return True

    def _deliver(self, value: Any) -> None:
        try:
            self._callback(value)
        except Exception:  # a bug in the notebook's callback must not end the watch
            self.callback_errors += 1
            log.exception("%s: callback failed on %s", self._thread.name, value)

    def stop(self, timeout_s: float = WATCH_STOP_TIMEOUT_S) -> None:
        """Stop watching; returns once the thread has ended (or ``timeout_s`` passed)."""
        self._stop.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()
        self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        """True while the background thread runs."""
        return self._thread.is_alive()
