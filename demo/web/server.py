"""Serving the app with waitress, set so that idle, slow and blocking clients cannot lock the others out.

`python -m demo` serves with these settings; `waitress-serve` takes the same as flags (docs/deployment.md):

    waitress-serve --threads=16 --connection-limit=1000 --channel-timeout=60 --asyncore-use-poll \\
        --channel-request-lookahead=1 --host 0.0.0.0 --port 8000 --call demo.app:create_app
"""

from __future__ import annotations

from typing import Any

import waitress
from flask import Flask

WAITRESS: dict[str, Any] = {
    # Threads answer requests; at most CLIENT_API_CALLS (6) of them wait on generations for API clients.
    "threads": 16,
    # Open connections, idle ones included (waitress's default, 100, let 100 slow sockets lock everyone out).
    "connection_limit": 1000,
    # poll(), not select(): select() cannot watch sockets numbered over 1023.
    "asyncore_use_poll": True,
    # Seconds before an idle connection is closed (waitress's default: 120).
    "channel_timeout": 60,
    # Read ahead of a request being answered, so a blocking call learns that its client hung up.
    "channel_request_lookahead": 1,
}


def serve(app: Flask, host: str, port: int, **overrides: Any) -> None:
    """Serve `app` until interrupted (logs "Serving on http://HOST:PORT")."""
    waitress.serve(app, host=host, port=port, **(WAITRESS | overrides))


def create_server(app: Flask, host: str = "127.0.0.1", port: int = 0, **overrides: Any):
    """A waitress server not yet running (`.run()`, `.close()`; `.effective_port`), for tests and benchmarks."""
    return waitress.create_server(app, host=host, port=port, **(WAITRESS | overrides))
