"""Connect beside gRPC: the same servicers answer ``curl`` and browsers over HTTP/1.1.

    from runtime.connect import ConnectServer, connect_app
"""

from __future__ import annotations

from runtime.connect.bridge import connect_app, mount
from runtime.connect.server import ConnectServer

__all__ = ["ConnectServer", "connect_app", "mount"]
