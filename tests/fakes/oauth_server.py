"""A generic OAuth 2.0 authorization server (RFC 6749 authorization code grant, RFC 7636 PKCE S256,
RFC 7009 revocation) with a tiny protected API, for the OAuth flow's tests.

- GET /authorize: a consent page with Approve and Deny; both answer 302 to the redirect URI with
  `code`+`state` or `error=access_denied`+`state`. `consent(url)` does the same without a browser.
- POST /token: authorization_code (code single use and bound to client, redirect_uri and the PKCE
  challenge) and refresh_token (rotating: every refresh answers a new refresh token and burns the
  old one; a burned or revoked one answers 400 invalid_grant). Client auth: Basic or body.
  `refresh_requests` counts refresh grants received; `token_delay` widens a race on purpose.
- POST /revoke: revokes the grant of a token (access or refresh).
- GET /api/me: Bearer; 401 with `WWW-Authenticate: Bearer error="invalid_token"` for an expired,
  revoked or unknown access token.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

from tests.fakes.server import FakeHandler, FakeServer


@dataclass
class Grant:
    client_id: str
    scope: str
    refresh_token: str
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expires at (epoch)
    revoked: bool = False


class FakeOAuthServer(FakeServer):
    def __init__(
        self,
        client_id: str = "platform-client",
        client_secret: str = "platform-secret-0123456789",  # noqa: S107 - a fake's own value
        access_lifetime: int = 3600,
        client_auth: str = "body",
        tls=None,
    ):
        super().__init__(tls)
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_lifetime = access_lifetime
        self.client_auth = client_auth  # "body" or "basic": the one this server accepts
        self.extra_token_answer: dict[str, Any] = {}  # e.g. {"instance_url": ...}
        self.extra_callback_params: dict[str, str] = {}  # e.g. {"accounts-server": ...}
        self.token_delay = 0.0
        self.codes: dict[str, dict[str, Any]] = {}
        self.grants: list[Grant] = []
        self.refresh_requests = 0
        self.token_requests: list[dict[str, str]] = []
        self.revocations: list[str] = []
        self.revoke_status = 200
        self.lock = threading.Lock()

    # --- the consent step ------------------------------------------------------------------

    def consent(self, authorization_url: str, approve: bool = True) -> dict[str, str]:
        """What the user's approval (or refusal) sends back: the callback's query parameters."""
        params = {k: v[0] for k, v in parse_qs(urlsplit(authorization_url).query).items()}
        return self._decide(params, approve)[1]

    def _decide(self, params: dict[str, str], approve: bool) -> tuple[str, dict[str, str]]:
        redirect = params.get("redirect_uri", "")
        answer: dict[str, str] = {}
        if not approve:
            answer = {"error": "access_denied", "error_description": "The user denied access"}
        elif params.get("client_id") != self.client_id or params.get("response_type") != "code":
            answer = {"error": "unauthorized_client"}
        else:
            code = secrets.token_urlsafe(24)
            with self.lock:
                self.codes[code] = {
                    "client_id": params["client_id"],
                    "redirect_uri": redirect,
                    "challenge": params.get("code_challenge"),
                    "method": params.get("code_challenge_method"),
                    "scope": params.get("scope", ""),
                }
            answer = {"code": code, **self.extra_callback_params}
        if "state" in params:
            answer["state"] = params["state"]
        return redirect, answer

    # --- tokens ------------------------------------------------------------------------------

    def _client_of(self, handler: FakeHandler, form: dict[str, str]) -> tuple[str, str] | None:
        header = handler.headers.get("Authorization", "")
        if self.client_auth == "basic":
            if not header.startswith("Basic "):
                return None
            pair = base64.b64decode(header[6:]).decode()
            client_id, _, secret = pair.partition(":")
            return unquote_plus(client_id), unquote_plus(secret)
        if header:
            return None
        return form.get("client_id", ""), form.get("client_secret", "")

    def _issue(self, grant: Grant) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(24)
        grant.access_tokens[access] = time.time() + self.access_lifetime
        answer = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_lifetime,
            "refresh_token": grant.refresh_token,
            "scope": grant.scope,
        }
        answer.update(self.extra_token_answer)
        return answer

    def token(self, handler: FakeHandler, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client = self._client_of(handler, form)
        if client != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client"}
        grant_type = form.get("grant_type")
        with self.lock:
            self.token_requests.append({k: v for k, v in form.items() if k in ("grant_type", "redirect_uri")})
            if grant_type == "authorization_code":
                return self._exchange_code(form)
            if grant_type == "refresh_token":
                self.refresh_requests += 1
                if self.token_delay:
                    time.sleep(self.token_delay)
                return self._refresh(form)
        return 400, {"error": "unsupported_grant_type"}

    def _exchange_code(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        pending = self.codes.pop(form.get("code", ""), None)  # single use
        if pending is None or pending["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant", "error_description": "code or redirect_uri"}
        verifier = form.get("code_verifier", "")
        if pending["challenge"]:
            digest = hashlib.sha256(verifier.encode()).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if pending["method"] != "S256" or expected != pending["challenge"]:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        grant = Grant(pending["client_id"], pending["scope"], "rt-" + secrets.token_urlsafe(24))
        self.grants.append(grant)
        return 200, self._issue(grant)

    def _refresh(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = next((g for g in self.grants if g.refresh_token == form.get("refresh_token")), None)
        if grant is None or grant.revoked:
            return 400, {"error": "invalid_grant", "error_description": "refresh token is invalid"}
        grant.refresh_token = "rt-" + secrets.token_urlsafe(24)  # rotation: the old one is burned
        return 200, self._issue(grant)

    def revoke(self, form: dict[str, str]) -> int:
        token = form.get("token", "")
        with self.lock:
            self.revocations.append(token)
            for grant in self.grants:
                if token == grant.refresh_token or token in grant.access_tokens:
                    grant.revoked = True
        return self.revoke_status

    # --- test helpers --------------------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        with self.lock:
            for grant in self.grants:
                grant.access_tokens = dict.fromkeys(grant.access_tokens, 0.0)

    def revoke_all(self) -> None:
        with self.lock:
            for grant in self.grants:
                grant.revoked = True

    def current_refresh_tokens(self) -> list[str]:
        return [g.refresh_token for g in self.grants if not g.revoked]

    def access_valid(self, token: str) -> bool:
        with self.lock:
            for grant in self.grants:
                if token in grant.access_tokens:
                    return not grant.revoked and grant.access_tokens[token] > time.time()
        return False

    def issued_tokens(self) -> list[str]:
        with self.lock:
            return [t for g in self.grants for t in (g.refresh_token, *g.access_tokens)]

    def dispatch(self, handler: FakeHandler) -> None:
        path = urlsplit(handler.path).path
        query = {k: v[0] for k, v in parse_qs(urlsplit(handler.path).query).items()}
        if handler.command == "GET" and path == "/authorize":
            handler.fake.record(handler, b"")
            return self._consent_page(handler, query)
        if handler.command == "GET" and path == "/authorize/decision":
            handler.fake.record(handler, b"")
            redirect, answer = self._decide(query, query.get("decision") == "approve")
            separator = "&" if "?" in redirect else "?"
            return handler.send_body(302, b"", "text/plain", {"Location": f"{redirect}{separator}{urlencode(answer)}"})
        if handler.command == "POST" and path in ("/token", "/revoke"):
            length = int(handler.headers.get("Content-Length") or 0)
            raw = handler.rfile.read(length) if length else b""
            handler.fake.record(handler, raw)
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            if path == "/revoke":
                return handler.send_body(self.revoke(form), b"", "text/plain")
            status, answer = self.token(handler, form)
            return handler.send_json(status, answer)
        if handler.command == "GET" and path == "/api/me":
            handler.fake.record(handler, b"")
            token = handler.headers.get("Authorization", "").removeprefix("Bearer ")
            if not self.access_valid(token):
                challenge = 'Bearer error="invalid_token", error_description="The access token expired"'
                return handler.send_json(401, {"error": "invalid_token"}, {"WWW-Authenticate": challenge})
            return handler.send_json(200, {"user": "ada@example.com", "org": "Example Org"})
        handler.send_json(404, {"error": "not_found"})

    def _consent_page(self, handler: FakeHandler, query: dict[str, str]) -> None:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in query.items()
        )
        page = f"""<!doctype html><html><head><title>Authorize</title></head><body>
<h1>Allow LocalBoxs to access your account?</h1><p>Scopes: {html.escape(query.get("scope", ""))}</p>
<form action="/authorize/decision" method="get">{hidden}
<button name="decision" value="approve" id="approve">Allow</button>
<button name="decision" value="deny" id="deny">Deny</button></form></body></html>"""
        handler.send_body(200, page.encode(), "text/html; charset=utf-8")
