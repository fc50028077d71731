"""What any caller of the lab uses: discovery through the broker, round-robin rotation, correlation ids
and log shipping. Services (through the agent), the Lab API and the calculator all build on it.

    from runtime.client import connect
    channel = connect("calculator")      # follows the broker's registrations and removals
"""

from __future__ import annotations

from runtime.client.discovery import DiscoveryChannel, connect
from runtime.client.discovery_aio import AioDiscoveryChannel, connect_aio

__all__ = ["AioDiscoveryChannel", "DiscoveryChannel", "connect", "connect_aio"]
