"""The agent every Python lab service embeds, and the client-side discovery helper.

from runtime.agent import Agent, connect
"""

from __future__ import annotations

from runtime.agent.discovery import DiscoveryChannel, connect
from runtime.agent.server import Agent

__all__ = ["Agent", "DiscoveryChannel", "connect"]
