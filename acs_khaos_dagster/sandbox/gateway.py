"""A misbehaving reverse proxy to put in front of a simulator, as a load balancer would be.

Real installs reach Khaos Control and ACS through gateways (a reverse proxy, a load
balancer, an API gateway) that can fail *after* the system behind them applied a write:
a 502/503/504 with an HTML page or no body, a SOAP envelope without a fault, a reset, a
reply cut short, a stall past the client's timeout. The simulators' own faults are raised
before applying, so this proxy makes the other half: it forwards the request to the
simulator (which applies it) and then misbehaves, or misbehaves without forwarding.

``Gateway(upstream).start()`` serves on a free loopback port; ``then(operation, move)``
queues what to do with the next matching request (the SOAP action for Khaos, the path for
ACS). Anything not queued passes through unchanged. Plain HTTP from the standard library:
nothing here shares code with the clients under test.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


class Move(StrEnum):
    """What the gateway does with one request."""

    APPLY_THEN_STATUS = "apply_then_status"  # forward (applied), then answer status/body
    STATUS_BEFORE = "status_before"  # answer status/body without forwarding (not applied)
    APPLY_THEN_RESET = "apply_then_reset"  # forward, then reset the connection
    APPLY_THEN_TRUNCATE = "apply_then_truncate"  # forward, then send half the reply and close
    APPLY_THEN_STALL = "apply_then_stall"  # forward, then hold the reply for stall_s
    STALL_THEN_APPLY = "stall_then_apply"  # hold the request stall_s, then forward (late)
    BEFORE_APPLY = "before_apply"  # call the hook (for example move the clock), then forward
    AFTER_APPLY = "after_apply"  # forward, call the hook, then answer: a slow reply


class Body(StrEnum):
    HTML = "html"  # a proxy's error page
    EMPTY = "empty"
    SOAP_WITHOUT_FAULT = "soap_without_fault"  # an envelope that says nothing
    SOAP_SERVER_FAULT = "soap_server_fault"  # a Server.* fault other than Server.Busy
    SOAP_CLIENT_FAULT = "soap_client_fault"  # a Client.* fault: the request is refused
    GARBAGE = "garbage"  # bytes no parser can read
    JSON_ERROR = "json_error"  # {"errors": [...]} as ACS would send


_BODIES: dict[Body, tuple[str, bytes]] = {
    Body.HTML: (
        "text/html",
        b"<html><head><title>502 Bad Gateway</title></head>"
        b"<body><center><h1>Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
    ),
    Body.EMPTY: ("text/plain", b""),
    Body.SOAP_WITHOUT_FAULT: (
        "text/xml; charset=utf-8",
        b'<?xml version="1.0"?><soap:Envelope '
        b'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>',
    ),
    Body.SOAP_SERVER_FAULT: (
        "text/xml; charset=utf-8",
        b'<?xml version="1.0"?><soap:Envelope '
        b'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
        b"<faultcode>Server.Internal</faultcode><faultstring>internal error after commit"
        b"</faultstring></soap:Fault></soap:Body></soap:Envelope>",
    ),
    Body.SOAP_CLIENT_FAULT: (
        "text/xml; charset=utf-8",
        b'<?xml version="1.0"?><soap:Envelope '
        b'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
        b"<faultcode>Client.Validation</faultcode><faultstring>refused: the request is "
        b"invalid</faultstring></soap:Fault></soap:Body></soap:Envelope>",
    ),
    Body.GARBAGE: ("text/xml", b"\x00\xff<<not a reply"),
    Body.JSON_ERROR: (
        "application/json",
        b'{"errors":[{"field":"","code":"GATEWAY","message":"refused at the gateway"}]}',
    ),
}


@dataclass(frozen=True)
class Misbehaviour:
    move: Move
    status: int = 502
    body: Body = Body.HTML
    stall_s: float = 0.0
    hook: Callable[[], None] | None = None
    headers: tuple[tuple[str, str], ...] = ()


def _operation(path: str, headers: Any) -> str:
    """The SOAP action's operation (Khaos), else the request path (ACS)."""
    action = (headers.get("SOAPAction") or "").strip('"')
    if action:
        return action.rsplit("#", 1)[-1].rsplit("/", 1)[-1]
    return path


class Gateway:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._queue: list[tuple[str, Misbehaviour]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._late = 0  # late applies still to land
        self._settled = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self.url = ""
        self.misbehaved: list[tuple[str, Move]] = []

    # -- scripting ----------------------------------------------------------------------

    def then(self, operation: str, misbehaviour: Misbehaviour) -> None:
        """Misbehave so on the next request whose operation (or path) contains ``operation``."""
        with self._lock:
            self._queue.append((operation, misbehaviour))

    def _take(self, operation: str) -> Misbehaviour | None:
        with self._lock:
            for index, (wanted, misbehaviour) in enumerate(self._queue):
                if wanted in operation:
                    del self._queue[index]
                    self.misbehaved.append((operation, misbehaviour.move))
                    if misbehaviour.move is Move.STALL_THEN_APPLY:
                        self._late += 1
                    return misbehaviour
        return None

    def wait_for_late_applies(self, timeout_s: float = 30.0) -> None:
        """Block until every request held for a late apply has been forwarded."""
        with self._settled:
            if not self._settled.wait_for(lambda: self._late == 0, timeout_s):
                raise TimeoutError("a late apply did not land in time")

    # -- serving ------------------------------------------------------------------------

    def start(self) -> Gateway:
        gateway = self

        class Handler(_Handler):
            pass

        Handler.gateway = gateway
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.timeout = 0.1  # handle_request() returns this often to look at _stopping
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._serve, args=(server,), name="sandbox-gateway", daemon=True
        )
        self._thread.start()
        return self

    def _serve(self, server: ThreadingHTTPServer) -> None:
        # Our own loop rather than serve_forever()/shutdown(): stopping must never wait on
        # an event a serving thread may not have reached.
        while not self._stopping.is_set():
            server.handle_request()

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        self._server.server_close()
        self._server = None

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _forward(self, method: str, path: str, headers: Any, body: bytes) -> httpx.Response:
        keep = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        with httpx.Client(timeout=120) as client:
            return client.request(method, self.upstream + path, headers=keep, content=body)

    def _landed(self) -> None:
        with self._settled:
            self._late -= 1
            self._settled.notify_all()


class _Handler(BaseHTTPRequestHandler):
    gateway: Gateway
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            return  # the connection was dropped on purpose: nothing left to flush

    def do_GET(self) -> None:
        self._proxy("GET")

    def do_POST(self) -> None:
        self._proxy("POST")

    def do_PUT(self) -> None:
        self._proxy("PUT")

    def _proxy(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        gateway = self.gateway
        misbehaviour = gateway._take(_operation(self.path, self.headers))
        if misbehaviour is None:
            self._relay(gateway._forward(method, self.path, self.headers, body))
            return
        move = misbehaviour.move
        if move is Move.STATUS_BEFORE:
            self._answer(misbehaviour.status, misbehaviour.body, misbehaviour.headers)
            return
        if move is Move.STALL_THEN_APPLY:
            # The client gives up meanwhile; the write still lands, late.
            time.sleep(misbehaviour.stall_s)
            try:
                gateway._forward(method, self.path, self.headers, body)
            finally:
                gateway._landed()
            self._reset()
            return
        if move is Move.BEFORE_APPLY and misbehaviour.hook is not None:
            misbehaviour.hook()
        reply = gateway._forward(method, self.path, self.headers, body)
        if move is Move.AFTER_APPLY and misbehaviour.hook is not None:
            misbehaviour.hook()
        if move in (Move.BEFORE_APPLY, Move.AFTER_APPLY):
            self._relay(reply)
        elif move is Move.APPLY_THEN_STATUS:
            self._answer(misbehaviour.status, misbehaviour.body, misbehaviour.headers)
        elif move is Move.APPLY_THEN_RESET:
            self._reset()
        elif move is Move.APPLY_THEN_TRUNCATE:
            self._truncate(reply)
        elif move is Move.APPLY_THEN_STALL:
            time.sleep(misbehaviour.stall_s)
            self._reset()

    def _relay(self, reply: httpx.Response) -> None:
        self.send_response(reply.status_code)
        for name in ("Content-Type", "Retry-After"):
            if name in reply.headers:
                self.send_header(name, reply.headers[name])
        self.send_header("Content-Length", str(len(reply.content)))
        self.end_headers()
        self.wfile.write(reply.content)

    def _answer(self, status: int, body: Body, headers: tuple[tuple[str, str], ...]) -> None:
        content_type, content = _BODIES[body]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def _truncate(self, reply: httpx.Response) -> None:
        content = reply.content
        self.send_response(reply.status_code)
        self.send_header("Content-Type", reply.headers.get("Content-Type", "text/xml"))
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content[: len(content) // 2])
        self.wfile.flush()
        # A clean close (FIN) part-way through the body: the reply is cut off, not reset.
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _reset(self) -> None:
        """Drop the connection with a TCP reset, answering nothing more."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass  # the client has already gone: nothing left to drop
