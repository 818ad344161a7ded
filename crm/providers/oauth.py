"""OAuth 2.0 for providers that connect with "Connect with ...": the provider-side interface, and
the token keeping every outbound call goes through (`ensure_fresh`, `refresh_after_401`).

A provider with "oauth" in `features` declares:

    oauth_app: ClassVar[OAuthApp]                      # which operator settings hold its client id/secret
    authorize_url(settings, values) -> str             # the consent page (values: the non-secret fields)
    token_url(settings, values) -> str                 # code exchange and refresh
    revoke_url(settings, values) -> str | None         # RFC 7009 revocation, None when unsupported
    accept_token_answer(settings, values, answer, callback_params) -> dict
        # NON-secret values to store from the token answer / callback query (instance_url, api_domain,
        # accounts server...), after checking them: raise CRMError("invalid_url", ...) for a forged one.
        # On refresh it is called again with callback_params={} (values = stored non-secret values).

and two sensitive fields `access_token`, `refresh_token` (`Field(..., sensitive=True, oauth_token=True)`:
sealed like every secret, never shown in a form, never accepted from the API), plus the non-sensitive
`token_expires_at` (epoch seconds) and `token_lifetime` (seconds) which this module fills in (declared
with `oauth_token=True` too, so no form shows them). Append `*oauth_token_fields()` to `config_fields`.
Non-secret values that `accept_token_answer` returns (instance_url...) must be `config_fields` too,
declared with `oauth_token=True` when the user must not type them.

`settings` is the Flask config mapping (current_app.config); `values` the integration's non-secret values.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import current_app

from crm.net import OutboundError, Response
from crm.providers.base import CRMError, Field


@dataclass(frozen=True)
class OAuthApp:
    client_id_setting: str  # e.g. "SALESFORCE_CLIENT_ID"
    client_secret_setting: str  # e.g. "SALESFORCE_CLIENT_SECRET"
    scopes: tuple[str, ...] = ()
    pkce: bool = True  # S256 always when True
    client_auth: str = "body"  # "body" (client_secret_post) or "basic" (client_secret_basic)
    extra_authorize_params: dict[str, str] = field(default_factory=dict)  # e.g. {"access_type": "offline"}
    scope_separator: str = " "  # Zoho uses ","
    # Seconds an access token lives when the token answer has no expires_in (Salesforce: set by the
    # org's session timeout; 2 hours by default). None: never refreshed ahead, only after a 401.
    default_token_lifetime: int | None = None


def oauth_token_fields() -> tuple[Field, ...]:
    """The three stored token fields every OAuth provider appends to its `config_fields`."""
    return (
        Field("access_token", "Access token", type="password", sensitive=True, oauth_token=True),
        Field("refresh_token", "Refresh token", type="password", sensitive=True, oauth_token=True),
        Field("token_expires_at", "Token expires at", type="number", oauth_token=True),
        Field("token_lifetime", "Token lifetime", type="number", oauth_token=True),  # seconds, for the margin
    )


class NeedsReconnect(CRMError):
    """The provider refused our refresh token (invalid_grant, revoked): the user must reconnect."""

    def __init__(self, provider_name: str):
        super().__init__(
            "auth_failed",
            f"The connection to {provider_name} has expired or was revoked. "
            f"Reconnect {provider_name} on Dashboard → Integrations.",
        )
        self.provider_name = provider_name


class RenewsOnce:
    """For a provider's `Connection` whose access token may expire during a run: `renew` (when the
    caller can, refresh_after_401 bound to the integration) gives a live configuration with a new one."""

    token: str
    renew: Callable[[], Mapping[str, Any]] | None = None
    renewed: bool = False

    def renew_token(self) -> bool:
        """After a 401 for an expired token: take a refreshed one (True: send again). False when the
        caller cannot renew, or this connection did already: a second 401 is not an expiry."""
        if self.renew is None or self.renewed:
            return False
        self.renewed = True
        self.token = str(self.renew()["access_token"])
        return True


# --- the platform's app, and the protocol (Authlib builds the requests, crm.net sends them) -------

REDIRECT_PATH = "/integrations/oauth/callback"
REFRESH_MARGIN_SECONDS = 15 * 60  # refresh this long before expiry at most (half the lifetime at least)
LOCK_WAIT_SECONDS = 15.0
LEASE_SECONDS = 30
NEEDS_RECONNECT = "needs_reconnect"
# Token-endpoint errors that mean "this refresh token is dead": only a new sign-in helps. Zoho answers
# invalid_code (with HTTP 200) for a revoked or expired refresh token.
REFUSED_GRANT_ERRORS = frozenset(
    {"invalid_grant", "invalid_token", "invalid_code", "unauthorized_client", "access_denied"}
)
RELEASE_LEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def is_oauth(provider: Any) -> bool:
    return "oauth" in getattr(provider, "features", ())


def uses_oauth(provider: Any, values: Mapping[str, Any]) -> bool:
    """Whether an integration with these values connects with OAuth: always for an OAuth provider,
    unless it says otherwise per values (Custom CRM: only with the Authorization code grant)."""
    per_values = getattr(provider, "uses_oauth", None)
    return is_oauth(provider) and (per_values is None or per_values(values))


def redirect_uri(settings: Mapping[str, Any]) -> str:
    return f"{str(settings.get('PUBLIC_BASE_URL') or '').rstrip('/')}{REDIRECT_PATH}"


def client_credentials(provider: Any, settings: Mapping[str, Any], values: Mapping[str, Any]) -> tuple[str, str] | None:
    """(client id, client secret) of the app the user authorizes: the operator's app, or for a
    provider with `oauth_client` (Custom CRM) the user's own. None when not configured."""
    own = getattr(provider, "oauth_client", None)
    if own is not None:
        return own(settings, values)
    app = provider.oauth_app
    client_id = str(settings.get(app.client_id_setting) or "").strip()
    client_secret = str(settings.get(app.client_secret_setting) or "").strip()
    return (client_id, client_secret) if client_id and client_secret else None


def app_configured(provider: Any, settings: Mapping[str, Any]) -> bool:
    """Whether the operator configured this provider's app (a user's own app is checked on start)."""
    if getattr(provider, "oauth_client", None) is not None:
        return True
    return client_credentials(provider, settings, {}) is not None


def new_code_verifier() -> str:
    return generate_token(64)  # RFC 7636: 43 to 128 characters of the unreserved set


def authorization_url(
    provider: Any, settings: Mapping[str, Any], values: Mapping[str, Any], state: str, code_verifier: str
) -> str:
    app = provider.oauth_app
    client_id, _ = client_credentials(provider, settings, values) or ("", "")
    params: dict[str, Any] = dict(app.extra_authorize_params)
    if app.pkce:
        params.update(code_challenge=create_s256_code_challenge(code_verifier), code_challenge_method="S256")
    scope = app.scope_separator.join(scopes_of(provider, values)) or None
    return prepare_grant_uri(
        provider.authorize_url(settings, values),
        client_id,
        "code",
        redirect_uri=redirect_uri(settings),
        scope=scope,
        state=state,
        **params,
    )


def scopes_of(provider: Any, values: Mapping[str, Any]) -> tuple[str, ...]:
    own = getattr(provider, "oauth_scopes", None)
    return tuple(own(values)) if own is not None else tuple(provider.oauth_app.scopes)


class TokenRefused(Exception):
    """The token endpoint answered with an OAuth error (`code`: invalid_grant, access_denied...)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def token_request(
    provider: Any,
    settings: Mapping[str, Any],
    values: Mapping[str, Any],
    http: Any,
    grant_type: str,
    deadline: float | None = None,
    **params: str,
) -> dict[str, Any]:
    """POST one grant to the token endpoint through the guarded client; the token answer, checked.

    Raises TokenRefused (an OAuth error answer), CRMError (not a token answer), OutboundError."""
    app = provider.oauth_app
    credentials = client_credentials(provider, settings, values)
    if credentials is None:
        raise CRMError("auth_failed", f"The {provider.name} app is not configured. Ask your administrator.")
    client_id, client_secret = credentials
    body = prepare_token_request(grant_type, **params)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    client_auth = provider.oauth_client_auth(values) if hasattr(provider, "oauth_client_auth") else app.client_auth
    if client_auth == "basic":  # RFC 6749 §2.3.1: each part form-encoded, then Basic
        pair = f"{_form_quote(client_id)}:{_form_quote(client_secret)}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        body = f"{body}&{urlencode({'client_id': client_id, 'client_secret': client_secret})}"
    url = provider.token_url(settings, values)
    response = http.request("POST", url, headers=headers, data=body.encode(), deadline=deadline)
    return _token_answer(provider, response)


def _form_quote(text: str) -> str:
    return urlencode({"": text})[1:]


def _token_answer(provider: Any, response: Response) -> dict[str, Any]:
    answer = response.json()
    if not isinstance(answer, dict):
        if response.status >= 500:
            raise CRMError("server_error", f"{provider.name} answered with a server error. Try again later.")
        raise CRMError("not_a_crm", f"{provider.name}'s token endpoint did not answer as expected.")
    # Zoho answers 200 with {"error": ...}: an error key means an error whatever the status.
    error = answer.get("error")
    if error or response.status >= 400:
        code = error if isinstance(error, str) and error.isascii() and len(error) <= 64 else "server_error"
        if response.status >= 500 and not error:
            raise CRMError("server_error", f"{provider.name} answered with a server error. Try again later.")
        raise TokenRefused(code)
    if not isinstance(answer.get("access_token"), str) or not answer["access_token"]:
        raise CRMError("not_a_crm", f"{provider.name}'s token endpoint answered without an access token.")
    return answer


# --- storing tokens ----------------------------------------------------------------------------


def token_values(provider: Any, answer: Mapping[str, Any], previous_refresh: str | None, now: float) -> dict[str, Any]:
    """What to store from a token answer: tokens (a missing refresh token keeps the old one), expiry."""
    lifetime = answer.get("expires_in")
    if isinstance(lifetime, str) and lifetime.isdigit():
        lifetime = int(lifetime)
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = provider.oauth_app.default_token_lifetime
    values: dict[str, Any] = {"access_token": answer["access_token"]}
    refresh = answer.get("refresh_token")
    values["refresh_token"] = refresh if isinstance(refresh, str) and refresh else previous_refresh
    values["token_expires_at"] = int(now + lifetime) if lifetime else None
    values["token_lifetime"] = int(lifetime) if lifetime else None
    return values


def sealed_tokens(user_id: int, integration_id: str, tokens: Mapping[str, Any]) -> dict[str, Any]:
    """The token values as stored: both tokens sealed, bound to user, integration and field."""
    from crm.crypto import Binding
    from crm.integrations.service import keyring

    stored: dict[str, Any] = {}
    for name, value in tokens.items():
        if value is None:
            continue
        if name in ("access_token", "refresh_token"):
            value = keyring().seal(value, Binding(user_id, integration_id, name))
        stored[name] = value
    return stored


def refresh_due(config: Mapping[str, Any], now: float) -> bool:
    expires_at = config.get("token_expires_at")
    if not isinstance(expires_at, int | float):
        return False  # no known expiry: refreshed only after a 401
    lifetime = config.get("token_lifetime")
    margin = REFRESH_MARGIN_SECONDS
    if isinstance(lifetime, int | float) and lifetime > 0:
        margin = min(REFRESH_MARGIN_SECONDS, lifetime / 2)
    return now >= expires_at - margin


# --- one refresh per connection at a time ------------------------------------------------------

_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def _process_lock(integration_id: str) -> threading.Lock:
    with _process_locks_guard:
        return _process_locks.setdefault(integration_id, threading.Lock())


@contextlib.contextmanager
def _redis_lease(url: str, integration_id: str) -> Iterator[None]:
    """SET NX PX lease; released only by its holder (compare-and-delete)."""
    import redis

    client = redis.Redis.from_url(url)
    key, token = f"crm:oauth-refresh:{integration_id}", uuid.uuid4().hex
    give_up = time.monotonic() + LOCK_WAIT_SECONDS
    while not client.set(key, token, nx=True, px=LEASE_SECONDS * 1000):
        if time.monotonic() > give_up:
            raise CRMError("rate_limited", "Another refresh of this connection is taking long. Try again in a minute.")
        time.sleep(0.05)
    try:
        yield
    finally:
        client.eval(RELEASE_LEASE, 1, key, token)


@contextlib.contextmanager
def _locked_row(integration_id: str) -> Iterator[tuple[Any, Any]]:
    """(connection, row) with the integration's row locked for this transaction: a row lock on
    PostgreSQL, an exclusive (IMMEDIATE) transaction on SQLite; with REDIS_URL a Redis lease
    instead (no database connection pinned across processes for the lock). Commit on exit."""
    from crm.extensions import db
    from crm.models import Integration

    redis_url = current_app.config.get("REDIS_URL")
    lease = _redis_lease(redis_url, integration_id) if redis_url else contextlib.nullcontext()
    with _process_lock(integration_id), lease, db.engine.connect() as connection:
        query = sa.select(Integration.configuration, Integration.auth_state, Integration.user_id).where(
            Integration.id == integration_id
        )
        if not redis_url:
            if connection.dialect.name == "sqlite":
                _begin_immediate(connection)
            else:
                query = query.with_for_update()
        row = connection.execute(query).first()
        try:
            yield connection, row
            connection.commit()
        except BaseException:
            connection.rollback()
            raise


def _begin_immediate(connection: Any) -> None:
    """SQLite's write lock, waited for up to LOCK_WAIT_SECONDS (busy_timeout alone is 5 s)."""
    give_up = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except sa.exc.OperationalError:
            connection.rollback()
            if time.monotonic() > give_up:
                raise CRMError("rate_limited", "The connection is busy refreshing. Try again in a minute.") from None
            time.sleep(0.05)


# --- the outbound path -------------------------------------------------------------------------


def ensure_fresh(owner: Any, integration: Any, purpose: str = "outbound call") -> dict[str, Any]:
    """The live configuration with an access token that is not about to expire. Refreshes (once,
    for every thread and process) when it is due. Raises NeedsReconnect when the provider refused."""
    from crm.integrations import service

    provider = service.provider_of(integration)
    _refuse_when_disconnected(provider, integration)
    if refresh_due(integration.configuration or {}, time.time()):
        try:
            _refresh(owner, integration, provider, seen_access=None)
        except NeedsReconnect:
            raise
        except (CRMError, OutboundError):
            # Refreshing ahead failed for a passing reason (timeout, 5xx): a token that has not
            # expired yet still serves; the next call tries again.
            expires_at = (integration.configuration or {}).get("token_expires_at")
            if not isinstance(expires_at, int | float) or expires_at <= time.time():
                raise
    return service.live_configuration(owner, integration, purpose)


def refresh_after_401(owner: Any, integration: Any, purpose: str = "outbound call") -> dict[str, Any]:
    """After a 401 saying the access token expired: refresh, unless another caller already did
    since `integration` was read, and answer the live configuration to retry once with."""
    from crm.integrations import service

    provider = service.provider_of(integration)
    _refuse_when_disconnected(provider, integration)
    seen = (integration.configuration or {}).get("access_token")
    _refresh(owner, integration, provider, seen_access=seen or "")
    return service.live_configuration(owner, integration, purpose)


def _refuse_when_disconnected(provider: Any, integration: Any) -> None:
    if integration.auth_state == NEEDS_RECONNECT:
        raise NeedsReconnect(provider.name)


def _refresh(owner: Any, integration: Any, provider: Any, seen_access: str | None) -> None:
    """Refresh under the lock. `seen_access` (a sealed access token) forces a refresh unless the
    stored one changed since; None refreshes only while one is still due."""
    from crm import audit
    from crm.crypto import Binding
    from crm.extensions import db
    from crm.integrations import service
    from crm.models import Integration

    settings = current_app.config
    with _locked_row(integration.id) as (connection, row):
        if row is None or row.user_id != owner.id:
            raise service.IntegrationNotFound(integration.id)
        stored = dict(row.configuration or {})
        if row.auth_state == NEEDS_RECONNECT:
            refused = True
        else:
            refused = False
            if seen_access is None:
                still_due = refresh_due(stored, time.time())
            else:
                still_due = stored.get("access_token") == seen_access
            if not still_due:
                _reload(integration)  # another caller refreshed: use what it stored
                return
            if not stored.get("refresh_token"):
                refused = True
        tokens = None
        if not refused:
            binding = Binding(owner.id, integration.id, "refresh_token")
            refresh_token = service.keyring().open(stored["refresh_token"], binding)
            values = {k: v for k, v in stored.items() if k not in ("access_token", "refresh_token")}
            if getattr(provider, "oauth_client", None) is not None and "credentials" in stored:
                from crm import sealing  # the user's own app (Custom CRM): its client secret opened

                values["credentials"] = sealing.open_value(
                    service.keyring(), owner.id, integration.id, "credentials", stored["credentials"]
                )
            try:
                answer = token_request(
                    provider, settings, values, service.outbound_client(), "refresh_token", refresh_token=refresh_token
                )
            except TokenRefused as exc:
                refused = exc.code in REFUSED_GRANT_ERRORS
                if not refused:
                    message = f"{provider.name} refused to refresh the connection ({exc.code})."
                    raise CRMError("auth_failed", message) from None
            else:
                extra = provider.accept_token_answer(settings, values, answer, {}) or {}
                tokens = {**extra, **token_values(provider, answer, refresh_token, time.time())}
        table = Integration.__table__
        if refused:
            connection.execute(sa.update(table).where(table.c.id == integration.id).values(auth_state=NEEDS_RECONNECT))
        else:
            # The rotated refresh token is saved (committed on leaving the lock) before any use
            # of the new access token: the old one may already be burned at the provider.
            configuration = {**stored, **sealed_tokens(owner.id, integration.id, tokens)}
            connection.execute(
                sa.update(table).where(table.c.id == integration.id).values(configuration=configuration)
            )
    _reload(integration)
    if refused:
        audit.record(owner.id, "oauth_refresh", integration, outcome="auth_failed", detail="needs reconnect")
        db.session.commit()
        raise NeedsReconnect(provider.name)
    audit.record(owner.id, "oauth_refresh", integration, outcome="ok")
    db.session.commit()


def _reload(integration: Any) -> None:
    """The caller's object reads the row again on next access (it was written on another connection)."""
    from crm.extensions import db

    if sa.inspect(integration).persistent:
        db.session.expire(integration)

