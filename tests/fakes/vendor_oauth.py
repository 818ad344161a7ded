"""The authorization-server half shared by the Salesforce and Zoho fakes: consent, one-use codes bound
to client, redirect URI and PKCE challenge, access tokens that expire, refresh tokens that may rotate,
and revocation. Each fake wraps it in its vendor's URLs and answer shapes (tests/fakes/salesforce.py,
tests/fakes/zoho.py); only `OAuthVendorFake`, the server base both fakes share, speaks HTTP.

Written from RFC 6749, RFC 7636 and RFC 7009 and the vendors' documented behaviour. A refresh token used
after rotation (or after revocation) is refused, and with `revoke_on_reuse` its whole grant is revoked
as well, as rotating servers do when they detect a replay: two racing refreshes cost the connection.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes.server import FakeHandler, VendorFake


@dataclass
class Grant:
    """One user's consent to one client: the family every token of a connection belongs to."""

    id: int
    client_id: str
    scopes: tuple[str, ...]
    user: str
    refresh_token: str
    revoked: bool = False
    old_refresh_tokens: set[str] = field(default_factory=set)


@dataclass
class PendingConsent:
    id: str
    client_id: str
    redirect_uri: str
    state: str | None
    scopes: tuple[str, ...]
    challenge: str | None
    method: str | None


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    challenge: str | None
    expires_at: float
    used: bool = False
    grant_id: int | None = None


@dataclass
class AccessToken:
    grant_id: int | None
    scopes: tuple[str, ...]
    expires_at: float


class OAuthError(Exception):
    """A refusal of the token endpoint; each fake renders it in its vendor's shape."""

    def __init__(self, error: str, description: str = "", status: int = 400):
        super().__init__(error)
        self.error, self.description, self.status = error, description, status


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class AuthorizationServer:
    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uris: tuple[str, ...] = (),  # empty: any redirect URI is registered
        token_prefix: str = "",
        access_token_ttl: float = 7200.0,
        code_ttl: float = 120.0,
        rotate_refresh_tokens: bool = True,
        revoke_on_reuse: bool = True,
        require_pkce: bool = True,
        clock: Callable[[], float] = time.time,
    ):
        self.client_id, self.client_secret = client_id, client_secret
        self.redirect_uris = tuple(redirect_uris)
        self.prefix = token_prefix
        self.access_token_ttl, self.code_ttl = access_token_ttl, code_ttl
        self.rotate, self.revoke_on_reuse, self.require_pkce = rotate_refresh_tokens, revoke_on_reuse, require_pkce
        self.clock = clock
        self.lock = threading.RLock()
        self.grant_ids = itertools.count(1)
        self.grants: dict[int, Grant] = {}
        self.by_refresh: dict[str, int] = {}  # every refresh token ever issued -> its grant
        self.pending: dict[str, PendingConsent] = {}
        self.codes: dict[str, Code] = {}
        self.access: dict[str, AccessToken] = {}
        self.user = "ann@example.com"
        self.counts: Counter[str] = Counter()  # "authorize", "approve", "deny", "code", "refresh", "revoke", "refused"

    def token(self, kind: str) -> str:
        return f"{self.prefix}{kind}.{secrets.token_urlsafe(24)}"

    # --- consent --------------------------------------------------------------------------------

    def start(self, client_id: str, redirect_uri: str, state, scopes, challenge, method) -> PendingConsent:
        """Check an authorization request; the consent page shows the returned pending request.
        Raises OAuthError for what the page itself refuses (unknown client, unregistered redirect)."""
        with self.lock:
            self.counts["authorize"] += 1
            if client_id != self.client_id:
                raise OAuthError("invalid_client_id", "client identifier invalid")
            if not redirect_uri or (self.redirect_uris and redirect_uri not in self.redirect_uris):
                raise OAuthError("redirect_uri_mismatch", "redirect_uri must match configuration")
            consent = PendingConsent(
                secrets.token_urlsafe(12), client_id, redirect_uri, state, tuple(scopes), challenge, method
            )
            self.pending[consent.id] = consent
            return consent

    def answer(self, consent_id: str, approve: bool, **extra: str) -> str | None:
        """The redirect after the user pressed Allow or Deny (None for an unknown consent id)."""
        with self.lock:
            consent = self.pending.pop(consent_id, None)
            if consent is None:
                return None
            params: dict[str, str] = {}
            if not approve:
                self.counts["deny"] += 1
                params = {"error": "access_denied", "error_description": "end-user denied authorization"}
            elif self.require_pkce and not consent.challenge:
                params = {"error": "invalid_request", "error_description": "missing required code challenge"}
            elif consent.challenge and consent.method != "S256":
                params = {"error": "invalid_request", "error_description": "invalid code challenge method"}
            else:
                self.counts["approve"] += 1
                code = self.token("code")
                self.codes[code] = Code(
                    consent.client_id,
                    consent.redirect_uri,
                    consent.scopes,
                    consent.challenge,
                    self.clock() + self.code_ttl,
                )
                params = {"code": code, **extra}
            if consent.state is not None:
                params["state"] = consent.state
            separator = "&" if "?" in consent.redirect_uri else "?"
            return consent.redirect_uri + separator + urlencode(params)

    # --- the token endpoint ----------------------------------------------------------------------

    def authenticate(self, client_id: str | None, client_secret: str | None) -> None:
        if client_id != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not client_secret or not secrets.compare_digest(client_secret, self.client_secret):
            raise OAuthError("invalid_client", "invalid client credentials")

    def exchange(self, code: str, redirect_uri: str | None, verifier: str | None) -> tuple[Grant, str]:
        """A code for tokens: (grant, access token). A replayed code revokes what it gave."""
        with self.lock:
            self.counts["code"] += 1
            found = self.codes.get(code or "")
            if found is None or found.expires_at < self.clock():
                raise OAuthError("invalid_grant", "authentication failure")
            if found.used:
                if found.grant_id is not None:
                    self._revoke_grant(found.grant_id)
                raise OAuthError("invalid_grant", "authentication failure")
            if redirect_uri != found.redirect_uri:
                raise OAuthError("redirect_uri_mismatch", "redirect_uri must match configuration")
            if found.challenge and (not verifier or s256(verifier) != found.challenge):
                raise OAuthError("invalid_grant", "invalid code verifier")
            if not found.challenge and verifier:
                raise OAuthError("invalid_grant", "invalid code verifier")
            found.used = True
            grant = self._new_grant(found.scopes)
            found.grant_id = grant.id
            return grant, self._new_access(grant)

    def refresh(self, refresh_token: str) -> tuple[Grant, str, str | None]:
        """(grant, new access token, new refresh token or None when not rotating)."""
        with self.lock:
            self.counts["refresh"] += 1
            grant_id = self.by_refresh.get(refresh_token or "")
            grant = self.grants.get(grant_id) if grant_id is not None else None
            if grant is None or grant.revoked:
                self.counts["refused"] += 1
                raise OAuthError("invalid_grant", "expired access/refresh token")
            if refresh_token != grant.refresh_token:  # an old token of a rotated family: a replay
                self.counts["refused"] += 1
                if self.revoke_on_reuse:
                    self._revoke_grant(grant.id)
                raise OAuthError("invalid_grant", "expired access/refresh token")
            rotated = None
            if self.rotate:
                grant.old_refresh_tokens.add(grant.refresh_token)
                rotated = grant.refresh_token = self.token("refresh")
                self.by_refresh[rotated] = grant.id
            return grant, self._new_access(grant), rotated

    def revoke(self, token: str) -> bool:
        """RFC 7009: a refresh token revokes its grant (and every access token of it); an access
        token only itself. False for a token this server never issued."""
        with self.lock:
            self.counts["revoke"] += 1
            if token in self.by_refresh:
                self._revoke_grant(self.by_refresh[token])
                return True
            return self.access.pop(token, None) is not None

    # --- the resource server's view ----------------------------------------------------------------

    def check_access(self, token: str) -> tuple[str, AccessToken | None]:
        """("ok", token) | ("expired", token) | ("invalid", None)."""
        with self.lock:
            found = self.access.get(token or "")
            if found is None:
                return "invalid", None
            grant = self.grants.get(found.grant_id) if found.grant_id is not None else None
            if grant is not None and grant.revoked:
                return "invalid", None
            if found.expires_at <= self.clock():
                return "expired", found
            return "ok", found

    # --- test setup ---------------------------------------------------------------------------------

    def issue(self, scopes: tuple[str, ...]) -> tuple[Grant, str]:
        """A grant as if the user had consented: (grant, access token)."""
        with self.lock:
            grant = self._new_grant(scopes)
            return grant, self._new_access(grant)

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.access.values():
                token.expires_at = min(token.expires_at, self.clock() - 1)

    def revoke_all(self) -> None:
        with self.lock:
            for grant in self.grants.values():
                self._revoke_grant(grant.id)

    def current_refresh_tokens(self) -> list[str]:
        with self.lock:
            return [g.refresh_token for g in self.grants.values() if not g.revoked]

    def _new_grant(self, scopes: tuple[str, ...]) -> Grant:
        grant = Grant(next(self.grant_ids), self.client_id, tuple(scopes), self.user, self.token("refresh"))
        self.grants[grant.id] = grant
        self.by_refresh[grant.refresh_token] = grant.id
        return grant

    def _new_access(self, grant: Grant) -> str:
        token = self.token("access")
        self.access[token] = AccessToken(grant.id, grant.scopes, self.clock() + self.access_token_ttl)
        return token

    def _revoke_grant(self, grant_id: int) -> None:
        grant = self.grants.get(grant_id)
        if grant is None:
            return
        grant.revoked = True
        for token in [t for t, a in self.access.items() if a.grant_id == grant_id]:
            del self.access[token]


def consent_page(vendor: str, consent: PendingConsent, base: str, allow: str = "Allow", deny: str = "Deny") -> bytes:
    """A minimal consent page: the vendor, the scopes asked for, and two links (ids approve, deny)."""
    from html import escape

    scopes = "".join(f"<li>{escape(s)}</li>" for s in consent.scopes)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(vendor)}: allow access?</title>"
        f"</head><body><h1>Allow access to your {escape(vendor)} account?</h1><ul>{scopes}</ul>"
        f"<a id='approve' href='{base}/__consent/{consent.id}/approve'>{escape(allow)}</a> "
        f"<a id='deny' href='{base}/__consent/{consent.id}/deny'>{escape(deny)}</a></body></html>"
    ).encode()


class OAuthVendorFake(VendorFake):
    """A vendor fake that is its vendor's authorization server too (`oauth`). A subclass defines
    `token_answer(scopes, access, refresh)` and `token_refused(h, exc)`; `callback_extra(approve)` adds
    to the callback's query, `scope_separator` splits the scope parameter (None: whitespace)."""

    scope_separator: str | None = None

    def __init__(self, tls: Any, oauth: AuthorizationServer):
        super().__init__(tls)
        self.oauth = oauth
        self.auto_consent: str | None = None  # "approve" / "deny": skip the page, redirect at once
        self.token_requests: Counter[str] = Counter()

    def consent(self, authorize_url: str, approve: bool = True) -> dict[str, str]:
        """The callback's query parameters after pressing Allow (or Deny) on the consent page of
        `authorize_url` (as tests/fakes/oauth_server.py answers); `consent_redirect` gives the URL."""
        location = self.consent_redirect(authorize_url, approve)
        return {k: v[-1] for k, v in parse_qs(urlsplit(location or "").query).items()}

    def consent_redirect(self, authorize_url: str, approve: bool = True) -> str | None:
        query = {k: v[-1] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        consent = self._start(query)
        return self.oauth.answer(consent.id, approve, **self.callback_extra(approve))

    def callback_extra(self, approve: bool) -> dict[str, str]:
        return {}

    def expire_access_tokens(self) -> None:
        self.oauth.expire_access_tokens()

    def revoke_all(self) -> None:
        self.oauth.revoke_all()

    def reset_counters(self) -> None:
        with self.lock:
            super().reset_counters()
            self.token_requests.clear()
            self.oauth.counts.clear()

    def read_request(self, h: FakeHandler) -> tuple[bytes, str, dict[str, str]]:
        """The raw body (recorded), the path without a trailing slash, and the query's last values."""
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        self.record(h, raw)
        parts = urlsplit(h.path)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        return raw, path, query

    def _start(self, query: dict[str, str]) -> PendingConsent:
        """The pending consent an authorize URL's query asks for (OAuthError when refused)."""
        return self.oauth.start(
            query.get("client_id", ""),
            query.get("redirect_uri", ""),
            query.get("state"),
            [s for s in (query.get("scope") or "").split(self.scope_separator) if s],
            query.get("code_challenge"),
            query.get("code_challenge_method"),
        )

    def redirect(self, h: FakeHandler, location: str) -> None:
        with self.lock:
            self.statuses[302] += 1
        h.send_body(302, b"", "text/html", {"Location": location})

    def grant_tokens(self, h: FakeHandler, form: dict[str, str]) -> None:
        """The token endpoint: authorization_code and refresh_token grants, the client authenticated
        by the form or by HTTP Basic."""
        grant_type = form.get("grant_type", "")
        with self.lock:
            self.token_requests[grant_type] += 1
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = h.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            try:
                client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                client_id = client_secret = None
        try:
            self.oauth.authenticate(client_id, client_secret)
            if grant_type == "authorization_code":
                grant, access = self.oauth.exchange(
                    form.get("code", ""), form.get("redirect_uri"), form.get("code_verifier")
                )
                return self.send(h, 200, self.token_answer(grant.scopes, access, grant.refresh_token))
            if grant_type == "refresh_token":
                grant, access, rotated = self.oauth.refresh(form.get("refresh_token", ""))
                return self.send(h, 200, self.token_answer(grant.scopes, access, rotated))
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        except OAuthError as exc:
            return self.token_refused(h, exc)

    def token_answer(self, scopes: tuple[str, ...], access: str, refresh: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def token_refused(self, h: FakeHandler, exc: OAuthError) -> None:
        raise NotImplementedError
