"""A generic CRM API for the Custom CRM provider: API key, Bearer, Basic and OAuth 2.0 client credentials."""

from __future__ import annotations

import base64
import re
import secrets
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeHandler, FakeServer


class FakeCustomCRM(FakeServer):
    def __init__(self, tls=None):
        super().__init__(tls)
        self.api_key_header = "X-API-Key"
        self.api_key = "key-" + secrets.token_hex(8)
        self.bearer = "bearer-" + secrets.token_hex(8)
        self.username, self.password = "crm-user", "pw-" + secrets.token_hex(8)
        self.client_id, self.client_secret = "client-" + secrets.token_hex(4), "secret-" + secrets.token_hex(8)
        self.allowed_scopes = {"", "contacts.read"}
        self.issued_tokens: set[str] = set()
        self.faults: list[tuple[str, str, int, object]] = []

    def fail_next(self, method: str, path: str, status: int, body=None) -> None:
        self.faults.append((method, path, status, body))

    def authorized(self, h: FakeHandler) -> bool:
        header = h.headers.get("Authorization", "")
        if h.headers.get(self.api_key_header) == self.api_key:
            return True
        if header == f"Bearer {self.bearer}" or header.removeprefix("Bearer ") in self.issued_tokens:
            return True
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return header == f"Basic {basic}"

    def dispatch(self, h: FakeHandler) -> None:
        raw = h.read_json()
        path = urlsplit(h.path).path
        for fault in list(self.faults):
            method, pattern, status, payload = fault
            if method == h.command and re.fullmatch(pattern, path):
                self.faults.remove(fault)
                if isinstance(payload, bytes):
                    return h.send_body(status, payload, "text/html")
                return h.send_json(status, payload or {"error": "boom"})
        if path == "/oauth/token" and h.command == "POST":
            return self.token(h, raw if isinstance(raw, str) else "")
        if path.startswith("/v1"):
            if not self.authorized(h):
                return h.send_json(401, {"error": "unauthorized"})
            if path not in ("/v1", "/v1/me", "/v1/health"):
                return h.send_json(404, {"error": "not found"})
            return h.send_json(200, {"ok": True, "path": path})
        return h.send_json(404, {"error": "not found"})

    def token(self, h: FakeHandler, raw: str) -> None:
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        header = h.headers.get("Authorization", "")
        if header.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return h.send_json(400, {"error": "unsupported_grant_type"})
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return h.send_json(401, {"error": "invalid_client"}, {"WWW-Authenticate": 'Basic realm="token"'})
        if form.get("scope", "") not in self.allowed_scopes:
            return h.send_json(400, {"error": "invalid_scope"})
        token = "at-" + secrets.token_hex(12)
        self.issued_tokens.add(token)
        return h.send_json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})
