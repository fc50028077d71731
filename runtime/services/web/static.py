"""The web page's files and ``/lab.json`` as a small ASGI app (served by runtime.connect's server).

Only the files the page build writes are served, by exact name: no directory listing, no path
that could climb out of ``dist/``. ``/lab.json`` tells the page where the lab's Connect endpoints
are; it holds no secret (the token reaches the page in the URL fragment, never from here).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

PAGE_FILES = {"/": "index.html", "/index.html": "index.html", "/main.js": "main.js", "/style.css": "style.css"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}
# The page and its data may only be used by the page itself: no framing by other origins, no
# sniffing, and a tight content security policy (scripts and connections to loopback only).
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'self'; connect-src 'self' http://127.0.0.1:*"),
]


async def _respond(send: Any, status: int, content_type: str, body: bytes) -> None:
    headers = [(b"content-type", content_type.encode()), (b"cache-control", b"no-store"), *SECURITY_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def page_app(dist: Path, lab_json: Callable[[], Awaitable[dict[str, Any]]]) -> Callable[..., Awaitable[None]]:
    """The ASGI app: GET the page's files from ``dist``, GET /lab.json from ``lab_json()``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope.get("path", "/")
        if scope.get("method") not in ("GET", "HEAD"):
            await _respond(send, 405, "text/plain", b"only GET is served here")
            return
        if path == "/lab.json":
            await _respond(send, 200, "application/json", json.dumps(await lab_json()).encode())
            return
        name = PAGE_FILES.get(path)
        file = dist / name if name else None
        if file is None or not file.is_file():
            hint = b"" if (dist / "index.html").is_file() else b" (the page is not built: run `make web`)"
            await _respond(send, 404, "text/plain", b"not found" + hint)
            return
        await _respond(send, 200, CONTENT_TYPES[file.suffix], file.read_bytes())

    return app
