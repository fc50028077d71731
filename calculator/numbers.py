"""How the calculator writes numbers in logs: 2 not 2.0, 2.5 stays 2.5 (the same in every language).

Example:
    >>> fmt(2.0), fmt(2.5), fmt(-0.0)
    ('2', '2.5', '0')
    >>> call_text("Add", 2.0, 3.0)
    'Add(2,3)'
"""

from __future__ import annotations

import math

OPERATIONS = ("Add", "Subtract", "Multiply", "Divide")


def fmt(value: float) -> str:
    """A number as the lab's logs show it: integral values without a trailing ``.0``."""
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return repr(float(value))


def call_text(operation: str, a: float, b: float) -> str:
    """``Add(2,3)``: the operation and its operands as logs show them."""
    return f"{operation}({fmt(a)},{fmt(b)})"


def compute(operation: str, a: float, b: float) -> float:
    """The result of one operation. Raises ZeroDivisionError for a division by zero."""
    if operation == "Add":
        return a + b
    if operation == "Subtract":
        return a - b
    if operation == "Multiply":
        return a * b
    if operation == "Divide":
        if b == 0:
            raise ZeroDivisionError("division by zero")
        return a / b
    raise ValueError(f"unknown operation {operation!r}; use one of {', '.join(OPERATIONS)}")
