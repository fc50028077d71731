"""Connect beside gRPC: the same servicers answer ``curl`` and browsers over HTTP/1.1.

    from runtime.connect import ConnectServer, connect_app
"""

from __future__ import annotations

from runtime.connect.access import CachedOrigins, guard, web_origins
from runtime.connect.bridge import connect_app, mount
from runtime.connect.server import ConnectServer

# access too: `import runtime.connect` (a service's __main__, so the fork server preloads it) is
# then all a served Connect port needs, nothing left to import after the fork.
__all__ = ["CachedOrigins", "ConnectServer", "connect_app", "guard", "mount", "web_origins"]
