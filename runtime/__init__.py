"""Service Runtime Lab: a local, polyglot service runtime you can watch from a notebook.

    from runtime import Lab
    lab = Lab.up()          # starts (or attaches to) the lab of this project
    lab.status()            # pandas DataFrame of every process
"""

from __future__ import annotations

__all__ = ["Lab"]


def __getattr__(name: str) -> object:
    # Lazy: services import runtime.* and must not pay for pandas and the Lab API.
    if name == "Lab":
        from runtime.lab import Lab

        return Lab
    raise AttributeError(name)
