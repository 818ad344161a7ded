"""A tiny SMTP server on 127.0.0.1 that keeps every message it receives (no TLS, no auth): enough
for smtplib's EHLO, MAIL, RCPT, DATA, QUIT."""

from __future__ import annotations

import socketserver
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage


class SMTPHandler(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        self.reply("220 fake-smtp ready")
        sender, recipients = None, []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            command = line.decode("latin-1").strip()
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250-fake-smtp" if verb == "EHLO" else "250 fake-smtp")
                if verb == "EHLO":
                    self.reply("250 8BITMIME")
            elif verb == "MAIL":
                sender, recipients = command.split(":", 1)[1].strip(" <>"), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip(" <>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = bytearray()
                while True:
                    chunk = self.rfile.readline()
                    if chunk in (b".\r\n", b".\n", b""):
                        break
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                self.server.fake.received(sender, recipients, bytes(data))
                self.reply("250 OK: queued")
            elif verb == "RSET":
                sender, recipients = None, []
                self.reply("250 OK")
            elif verb == "NOOP":
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeSMTP:
    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), SMTPHandler)
        self.server.fake = self
        self.port = self.server.server_address[1]

    def received(self, sender: str, recipients: list[str], data: bytes) -> None:
        with self.lock:
            self.envelopes.append((sender, recipients))
            self.messages.append(message_from_bytes(data, policy=policy.default))

    def __enter__(self) -> FakeSMTP:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
