"""Serve a simulator's ASGI app with uvicorn in a background thread, on loopback.

Tests, the demo and the benchmarks start each simulator on a free port (``port=0``)
and read the bound port back from the server's sockets, so nothing ever collides
with a fixed port.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 10.0


def serve_in_thread(
    app: Any, host: str = "127.0.0.1", port: int = 0
) -> tuple[str, Callable[[], None]]:
    """Start ``app`` under uvicorn in a daemon thread; return ``(base_url, stop)``.

    ``stop()`` asks uvicorn to exit, waits for the thread and is safe to call twice.
    """
    # Bind the socket ourselves: the port is known before uvicorn starts and no
    # other process can take it in between.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]

    config = uvicorn.Config(
        app,
        host=host,
        port=bound_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    # uvicorn installs signal handlers only in the main thread; make that explicit.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"sandbox-http-{bound_port}",
        daemon=True,
    )
    thread.start()

    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError(f"the sandbox server on {host}:{bound_port} failed to start")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the sandbox server on {host}:{bound_port} did not start in time")
        time.sleep(0.01)

    # Prefer what the server reports (it is what clients will reach).
    for srv in getattr(server, "servers", []) or []:
        for s in getattr(srv, "sockets", []) or []:
            bound_port = s.getsockname()[1]
            break

    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)
        if thread.is_alive():
            server.force_exit = True
            thread.join(_STOP_TIMEOUT_S)
        sock.close()

    return f"http://{host}:{bound_port}", stop
