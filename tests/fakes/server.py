"""A small threaded HTTP(S) server base for the fakes, plus raw-socket misbehavers."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):  # a client hanging up is not a test failure
        pass


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    server_version = "Fake/1.0"
    # Headers and body leave in separate writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK stall every keep-alive answer by ~40 ms, which no real server does.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        pass

    @property
    def fake(self):
        return self.server.fake

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.fake.record(self, raw)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("latin-1")

    def send_body(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send_body(status, json.dumps(payload).encode(), "application/json; charset=utf-8", headers)

    def do_GET(self):
        self.fake.dispatch(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET


class FakeServer:
    """Runs `handler_class` on 127.0.0.1 in a thread; optionally TLS with a given server context."""

    handler_class = FakeHandler

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.httpd = QuietServer(("127.0.0.1", 0), self.handler_class)
        self.httpd.fake = self
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}"

    def record(self, handler: FakeHandler, body: bytes) -> None:
        with self._lock:
            self.requests.append(
                {"method": handler.command, "path": handler.path, "headers": dict(handler.headers), "body": body}
            )

    def dispatch(self, handler: FakeHandler) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Forced:
    """A canned answer for the next `count` requests that match `method` and `path` (None = any)."""

    status: int
    count: int
    method: str | None
    path: str | None
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or re.fullmatch(self.path, path) is not None
        )


class VendorFake(FakeServer):
    """What the vendor fakes (HubSpot, Pipedrive, Salesforce, Zoho) share: a lock, forced answers,
    an answer `delay`, counters by route and status, and a quick stop. A subclass defines `send(h,
    status, payload, headers)` and `default_body(status)` (the vendor's body for a forced status)."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        super().__init__(tls)
        # Stop within 50 ms instead of serve_forever's default 0.5 s poll: tests start many servers.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.lock = threading.RLock()
        self._stopping = threading.Event()
        self.delay = 0.0  # seconds added to every answer (interrupted when the server stops)
        self.forced: list[Forced] = []
        self.requests_by_path: Counter[str] = Counter()  # "PATCH /api/v2/persons/{id}" -> n
        self.statuses: Counter[int] = Counter()

    def force_status(
        self,
        status: int,
        count: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `count` matching requests (`path` is a regex on the path) with `status`.
        The body defaults to the vendor's shape for that status; bytes are sent as text/html."""
        with self.lock:
            self.forced.append(Forced(status, count, method, path, body, dict(headers or {})))

    def calls(self, method: str, path: str) -> int:
        """How many requests were answered for this route ("{id}" stands for any id)."""
        with self.lock:
            return self.requests_by_path[f"{method} {path}"]

    def reset_counters(self) -> None:
        with self.lock:
            self.requests.clear()
            self.requests_by_path.clear()
            self.statuses.clear()

    def take_forced(self, method: str, path: str, route: str) -> Forced | None:
        """Counts a request for `route` (its path with ids as "{id}") and takes one use of the first
        forced answer that matches it, if any."""
        with self.lock:
            self.requests_by_path[f"{method} {route}"] += 1
            forced = next((f for f in self.forced if f.matches(method, path)), None)
            if forced:
                forced.count -= 1
                if forced.count <= 0:
                    self.forced.remove(forced)
        return forced

    def pause(self) -> None:
        """Take `delay` seconds to answer, as a real server does; cut short when the server stops."""
        if self.delay:
            self._stopping.wait(self.delay)

    def send_forced(self, h: FakeHandler, forced: Forced) -> None:
        body = forced.body if forced.body is not None else self.default_body(forced.status)
        return self.send(h, forced.status, body, forced.headers)

    def send(self, h: FakeHandler, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        raise NotImplementedError

    def default_body(self, status: int) -> Any:
        raise NotImplementedError

    def __exit__(self, *exc):
        self._stopping.set()
        super().__exit__(*exc)


def serve_for_benchmark(server: FakeServer, *credentials: Any) -> None:
    """Serve `server` in this process until interrupted, after printing `port` and `credentials`
    (what the benchmark needs to call it) on one line."""
    print(server.port, *credentials, flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


def vendor_benchmark_args(window_seconds: float, seeded: str) -> Any:
    """The command line of a vendor fake run for the benchmark."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--delay-ms", type=float, default=0.0, help="time each answer takes, like a real server")
    parser.add_argument("--burst-limit", type=int, default=None, help="requests per window (default: unlimited)")
    parser.add_argument("--window-seconds", type=float, default=window_seconds)
    parser.add_argument("--seed", type=int, default=0, help=f"{seeded} that exist before the run")
    return parser.parse_args()


class RawListener:
    """A TCP listener on 127.0.0.1 that counts connections and then misbehaves in a chosen way:
    "silent" accepts and never answers; "endless" answers 200 and streams forever;
    "redirect" answers 302 to `location`."""

    def __init__(self, mode: str = "silent", location: str = ""):
        self.mode = mode
        self.location = location
        self.connections = 0
        self.bytes_sent = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._held.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            if self.mode == "silent":
                self._stop.wait(30)
                return
            conn.recv(65536)
            if self.mode == "redirect":
                conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {self.location}\r\nContent-Length: 0\r\n\r\n".encode())
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
            chunk = b"[" + b"1," * 32767
            while not self._stop.is_set():
                conn.sendall(chunk)
                self.bytes_sent += len(chunk)
        except OSError:
            pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self.sock.close()
