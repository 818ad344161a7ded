"""Servers that hold a client as long as they like: the slow-CRM attacks the deadline must survive."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.fakes.server import FakeHandler, FakeServer

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"


class DripServer:
    """Answers every request one byte every `interval` seconds, forever.

    "body": the headers at once, then the body a byte at a time;
    "headers": the status line and headers themselves a byte at a time (they never end);
    "tls": the TLS handshake's first record a byte at a time."""

    def __init__(self, mode: str = "body", interval: float = 0.5):
        self.mode = mode
        self.interval = interval
        self.connections = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
                self._held.append(conn)
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            conn.recv(65536)
            if self.mode == "body":
                conn.sendall(HEAD)
                stream = b"[" + b"1," * 10_000_000
            elif self.mode == "tls":  # a TLS record header announcing 16 KiB, then its bytes one by one
                conn.sendall(b"\x16\x03\x03\x40\x00")
                stream = b"\x00" * 16384
            else:
                stream = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000_000
            for index in range(len(stream)):
                if self._stop.wait(self.interval):
                    return
                conn.sendall(stream[index : index + 1])
        except OSError:
            pass  # the client gave up: what the deadline is for

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()
        with self._lock:
            for conn in self._held:
                with contextlib.suppress(OSError):
                    conn.close()
        self.sock.close()


class ThrottlingServer(FakeServer):
    """Answers every request 429 with `Retry-After: 3600` (the server never lets up)."""

    def __init__(self, retry_after: str = "3600"):
        super().__init__()
        self.retry_after = retry_after

    def dispatch(self, handler: FakeHandler) -> None:
        handler.read_json()
        handler.send_body(429, b"Retry later\n", "text/plain", {"Retry-After": self.retry_after})
