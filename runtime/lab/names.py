"""How a learner may name things in Lab calls, turned into what the services expect.

``lab.kill("calculator", 1)`` and ``lab.chaos.inject(..., instance=1)`` mean ``calculator-1``;
``signal=9`` means ``SIGKILL``. Anything else is a :class:`~runtime.errors.UsageError` that says
what is allowed, raised before a request is sent.

    >>> instance_id("calculator", 1), instance_id("calculator", "calculator-2"), instance_id("x", None)
    ('calculator-1', 'calculator-2', '')
    >>> signal_name(9), signal_name("SIGSTOP")
    ('SIGKILL', 'SIGSTOP')
"""

from __future__ import annotations

import signal

from runtime.errors import UsageError, quote


def instance_id(service: str, instance: str | int | None) -> str:
    """``calculator-1`` for ``("calculator", 1)``; a name passes through; None: every instance ("").

    Raises:
        UsageError: ``instance`` is neither a name nor a number (e.g. ``1.5`` or ``True``).
    """
    if instance is None:
        return ""
    if isinstance(instance, bool) or not isinstance(instance, int | str):
        raise UsageError(
            f"instance must be a name like '{service}-1' or a number like 1, got {quote(instance)}"
        )
    return f"{service}-{instance}" if isinstance(instance, int) else instance


def signal_name(sig: str | int) -> str:
    """``SIGKILL`` for 9 or ``"SIGKILL"`` (the supervisor checks which names it allows).

    Raises:
        UsageError: a number that is no signal, or neither a name nor a number.
    """
    if isinstance(sig, bool) or not isinstance(sig, int | str):
        raise UsageError(f"signal must be a name like 'SIGKILL' or a number like 9, got {quote(sig)}")
    if isinstance(sig, str):
        return sig
    try:
        return signal.Signals(sig).name
    except ValueError:
        raise UsageError(f"{sig} is not a signal number; use a name like 'SIGKILL' or 'SIGTERM'") from None
