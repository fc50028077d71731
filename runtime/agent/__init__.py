"""The agent every Python lab service embeds: serve + READY, registration, health push, faults,
config, log shipping and graceful stop. Callers' helpers (discovery, correlation) live in
:mod:`runtime.client`.

    from runtime.agent import Agent
"""

from __future__ import annotations

from runtime.agent.server import Agent

__all__ = ["Agent"]
