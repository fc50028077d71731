"""The notebook API: :class:`Lab`, a synchronous handle on one running lab, and its parts.

    from runtime.lab import Lab
    lab = Lab.up()
"""

from __future__ import annotations

from runtime.lab.lab import Lab

__all__ = ["Lab"]
