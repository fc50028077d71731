"""The agent every Python lab service embeds, and the client-side discovery helper.

from runtime.agent import Agent, connect
"""

from __future__ import annotations

from runtime.agent.discovery import DiscoveryChannel, connect
from runtime.agent.discovery_aio import AioDiscoveryChannel, connect_aio
from runtime.agent.server import Agent

__all__ = ["Agent", "AioDiscoveryChannel", "DiscoveryChannel", "connect", "connect_aio"]
