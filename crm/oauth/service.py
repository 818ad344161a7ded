"""The authorization-code flow: start (state + PKCE kept server-side), callback (checks, code
exchange, save), and revocation on delete. Plain functions: they take the owner, never `request`;
the session nonce the state is bound to is handed in by the route."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete

from crm import audit
from crm.crypto import Binding, CredentialUnreadable
from crm.extensions import db
from crm.integrations import service
from crm.models import Integration, OAuthState, User, utcnow
from crm.net import OutboundError
from crm.providers import oauth
from crm.providers.base import CRMError, Provider, network_message

STATE_LIFETIME = timedelta(minutes=10)
VERIFIER_FIELD = "code_verifier"
# In a pending state: the user's own app's secrets (Custom CRM's client secret), each sealed and
# bound to the user and the state like the PKCE verifier; opened only for the code exchange.
SEALED_KEY = "_sealed"

# What the dashboard says for each ?oauth_error= code.
ERROR_MESSAGES = {
    "access_denied": "You did not allow access on the {provider} page, so nothing was saved.",
    "invalid_state": "This sign-in has expired or was already used. Start again with Add Integration.",
    "token_error": "{provider} did not accept the sign-in. Start again; if it persists, ask your administrator.",  # nosec B105  # words, not a password
    "invalid_url": "{provider} answered with an address we do not trust, so nothing was saved.",
    "not_configured": "Ask your administrator to configure the {provider} app.",
    "unreachable": "{provider} could not be reached to finish the sign-in. Try again in a few minutes.",
    "provider_error": "{provider} refused the sign-in. Start again; if it persists, ask your administrator.",
}


class OAuthFlowError(Exception):
    """The flow stops here; `code` goes into ?oauth_error=, `message` to the user."""

    def __init__(self, code: str, provider_name: str = "the CRM"):
        self.code = code if code in ERROR_MESSAGES else "provider_error"
        self.message = ERROR_MESSAGES[self.code].format(provider=provider_name)
        super().__init__(self.message)


def error_message(code: str, provider_id: str | None = None) -> str:
    name = "the CRM"
    if provider_id:
        with contextlib.suppress(LookupError):
            name = service.get_provider(provider_id).name
    return OAuthFlowError(code, name).message


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def oauth_provider(provider_id: object) -> type[Provider]:
    provider = service.available_provider(provider_id)
    if not oauth.is_oauth(provider):
        raise service.ValidationFailed({"provider": [f"{provider.name} connects with a token, not with OAuth."]})
    return provider


def start(
    owner: User,
    session_nonce: str,
    provider_id: object,
    raw: Mapping[str, Any],
    integration_id: object | None = None,
) -> str:
    """The authorization URL to send the user's browser to. `raw`: the non-secret fields typed in
    the modal (ignored on Reconnect, which keeps the integration's values)."""
    settings = current_app.config
    if integration_id is not None:
        integration = service.get_integration(owner, integration_id)
        provider = service.provider_of(integration)
        if not oauth.is_oauth(provider):
            raise service.ValidationFailed({"integrationId": [f"{provider.name} does not connect with OAuth."]})
        user_fields = {spec.name for spec in provider.fields()}
        values = {k: v for k, v in (integration.configuration or {}).items() if k in user_fields}
        values = {**values, "name": integration.name}
        values = {k: v for k, v in values.items() if not _is_secret(provider, k)}
        if getattr(provider, "oauth_client", None) is not None:  # the user's own app: its secret, opened
            live = service.live_configuration(owner, integration, "oauth reconnect")
            values = {**values, **{k: live[k] for k in _own_app_secrets(provider) if k in live}}
    else:
        provider = oauth_provider(provider_id)
        values = service._validated(provider, {"name": provider.name, **{k: v for k, v in raw.items() if v}})
    if not oauth.uses_oauth(provider, values):
        message = "Choose the Authorization code grant to connect; client credentials use Test Connection and Save."
        raise service.ValidationFailed({"grant": [message]}, message)
    if oauth.client_credentials(provider, settings, values) is None:
        raise OAuthFlowError("not_configured", provider.name)
    state, verifier = secrets.token_urlsafe(32), oauth.new_code_verifier()
    state_hash = _digest(state)
    try:
        url = oauth.authorization_url(provider, settings, values, state, verifier)
    except CRMError as exc:  # a user-entered Authorization URL that is not https
        raise service.ValidationFailed({"authorize_url": [exc.message]}, exc.message) from None
    pending = {k: v for k, v in values.items() if not _is_secret(provider, k)}
    own_secrets = {k: values[k] for k in _own_app_secrets(provider) if k in values}
    if own_secrets:
        ring = service.keyring()
        pending[SEALED_KEY] = {
            k: ring.seal(json.dumps(v), _state_binding(owner, state_hash, k)) for k, v in own_secrets.items()
        }
    db.session.execute(delete(OAuthState).where(OAuthState.created_at < utcnow() - STATE_LIFETIME))
    db.session.add(
        OAuthState(
            state_hash=state_hash,
            user_id=owner.id,
            session_hash=_digest(session_nonce),
            provider=provider.id,
            integration_id=str(integration_id) if integration_id is not None else None,
            pending=pending,
            code_verifier=service.keyring().seal(verifier, _verifier_binding(owner, state_hash)),
        )
    )
    db.session.commit()
    return url


def _own_app_secrets(provider: type[Provider]) -> list[str]:
    """The secret fields of a provider whose users bring their own app (Custom CRM's credentials)."""
    if getattr(provider, "oauth_client", None) is None:
        return []
    return [spec.name for spec in provider.sensitive_fields() if not spec.oauth_token]


def _state_binding(owner: User, state_hash: str, name: str) -> Binding:
    return Binding(owner.id, f"oauth:{state_hash}", name)


def _opened_pending(owner: User, pending: OAuthState) -> dict[str, Any]:
    """The pending values, with the sealed secrets of the user's own app opened."""
    values = {k: v for k, v in (pending.pending or {}).items() if k != SEALED_KEY}
    for name, sealed in ((pending.pending or {}).get(SEALED_KEY) or {}).items():
        try:
            values[name] = json.loads(service.keyring().open(sealed, _state_binding(owner, pending.state_hash, name)))
        except CredentialUnreadable:
            raise OAuthFlowError("invalid_state") from None
    return values


def _verifier_binding(owner: User, state_hash: str) -> Binding:
    return Binding(owner.id, f"oauth:{state_hash}", VERIFIER_FIELD)


def _is_secret(provider: type[Provider], name: str) -> bool:
    return any(spec.name == name and spec.sensitive for spec in provider.sensitive_fields())


def _take_state(owner: User, session_nonce: str | None, state: str) -> tuple[OAuthState, str]:
    """The pending request of this state, deleted (single use), and its PKCE verifier. Refuses a
    state unknown, expired, of another user, or started in another browser session."""
    if not state or len(state) > 200:
        raise OAuthFlowError("invalid_state")
    state_hash = _digest(state)
    pending = db.session.get(OAuthState, state_hash)
    if pending is None:
        raise OAuthFlowError("invalid_state")
    db.session.delete(pending)  # single use, whatever happens next
    db.session.commit()
    fresh = pending.created_at >= utcnow() - STATE_LIFETIME
    same_session = session_nonce is not None and secrets.compare_digest(pending.session_hash, _digest(session_nonce))
    if pending.user_id != owner.id or not same_session or not fresh:
        audit.record(owner.id, "oauth_refused", provider=pending.provider, outcome="failed", detail="state")
        db.session.commit()
        raise OAuthFlowError("invalid_state")
    try:
        binding = _verifier_binding(owner, state_hash)
        verifier = service.keyring().open(pending.code_verifier, binding)
    except CredentialUnreadable:
        raise OAuthFlowError("invalid_state") from None
    return pending, verifier


def finish(owner: User, session_nonce: str | None, params: Mapping[str, str]) -> Integration:
    """The callback: check the state, exchange the code, save the tokens, test the connection."""
    pending, verifier = _take_state(owner, session_nonce, str(params.get("state") or ""))
    provider = service.get_provider(pending.provider)
    if params.get("error") or not params.get("code"):
        code = "access_denied" if params.get("error") == "access_denied" else "provider_error"
        audit.record(owner.id, "oauth_denied", provider=provider.id, outcome="failed", detail=code)
        db.session.commit()
        raise OAuthFlowError(code, provider.name)
    settings = current_app.config
    values = _opened_pending(owner, pending)
    try:
        answer = oauth.token_request(
            provider,
            settings,
            values,
            service.outbound_client(),
            "authorization_code",
            deadline=service.web_deadline(),
            code=str(params["code"]),
            redirect_uri=oauth.redirect_uri(settings),
            **({"code_verifier": verifier} if provider.oauth_app.pkce else {}),
        )
        extra = provider.accept_token_answer(settings, values, answer, dict(params)) or {}
    except oauth.TokenRefused as exc:
        _record_failure(owner, provider, f"token endpoint: {exc.code}")
        raise OAuthFlowError("token_error", provider.name) from None
    except CRMError as exc:
        _record_failure(owner, provider, exc.outcome)
        raise OAuthFlowError("invalid_url" if exc.outcome == "invalid_url" else "token_error", provider.name) from None
    except OutboundError as exc:
        _record_failure(owner, provider, exc.outcome)
        raise OAuthFlowError("unreachable", provider.name) from None
    tokens = oauth.token_values(provider, answer, None, _now())
    integration = _save(owner, provider, pending, values, {**extra, **tokens})
    _test(owner, integration)
    return integration


def _now() -> float:
    return time.time()


def _record_failure(owner: User, provider: type[Provider], detail: str) -> None:
    audit.record(owner.id, "oauth_failed", provider=provider.id, outcome="failed", detail=detail)
    db.session.commit()


def _save(
    owner: User, provider: type[Provider], pending: OAuthState, values: dict[str, Any], obtained: dict[str, Any]
) -> Integration:
    """Create the integration, or on Reconnect replace the tokens of the same one (same id)."""
    if pending.integration_id is not None:
        try:
            integration = service.get_integration(owner, pending.integration_id)
        except service.IntegrationNotFound:
            raise OAuthFlowError("invalid_state", provider.name) from None
        stored = dict(integration.configuration or {})
        integration.configuration = {**stored, **oauth.sealed_tokens(owner.id, integration.id, obtained)}
        integration.auth_state = None
        integration.updated_at = utcnow()
        audit.record(owner.id, "oauth_reconnect", integration, outcome="ok")
        db.session.commit()
        return integration
    integration = Integration(
        id=str(uuid.uuid4()), user_id=owner.id, type=service.INTEGRATION_TYPE, provider=provider.id, is_active=True
    )
    service._apply(integration, provider, service._validated(provider, values))
    integration.configuration = {
        **integration.configuration,
        **oauth.sealed_tokens(owner.id, integration.id, obtained),
    }
    existing = service.list_integrations(owner)
    db.session.add(integration)
    service._settle_primary([*existing, integration])
    audit.record(owner.id, "create", integration, detail="connected with OAuth")
    db.session.commit()
    return integration


def _test(owner: User, integration: Integration) -> None:
    """Test Connection right away, so the card lands green (or says what is wrong)."""
    provider = service.provider_of(integration)
    try:
        live = oauth.ensure_fresh(owner, integration, purpose="connection test")
    except CRMError as exc:
        service.record_test_result(owner, integration.id, exc.outcome, exc.message)
        return
    except OutboundError as exc:
        message = network_message(exc.outcome, provider.name, exc.detail)
        service.record_test_result(owner, integration.id, exc.outcome, message)
        return
    result = provider.run_test(live, service.outbound_client())
    audit.record(owner.id, "test", integration, result.outcome)
    service.record_test_result(owner, integration.id, result.outcome, result.message)


def revoke(owner: User, integration: Integration) -> None:
    """Revoke the tokens at the provider when it supports it. Called before a delete: a failure is
    recorded and never stops the delete."""
    provider = service.provider_of(integration)
    if not oauth.is_oauth(provider) or not (integration.configuration or {}).get("refresh_token"):
        return
    settings = current_app.config
    stored = integration.configuration or {}
    values = {k: v for k, v in stored.items() if k not in ("access_token", "refresh_token")}
    url = provider.revoke_url(settings, values)
    if not url:
        return
    outcome = "ok"
    try:
        token = service.keyring().open(stored["refresh_token"], Binding(owner.id, integration.id, "refresh_token"))
        credentials = oauth.client_credentials(provider, settings, values) or ("", "")
        body = {"token": token, "token_type_hint": "refresh_token", "client_id": credentials[0]}  # nosec B105  # a hint's name
        if credentials[1]:
            body["client_secret"] = credentials[1]
        response = service.outbound_client().request("POST", url, data=body, deadline=service.web_deadline())
        if response.status >= 400:
            outcome = "failed"
    except (OutboundError, CredentialUnreadable):
        outcome = "failed"
    audit.record(owner.id, "oauth_revoke", integration, outcome=outcome)
    db.session.commit()
