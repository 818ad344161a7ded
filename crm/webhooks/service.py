"""Webhooks: the endpoint of each integration, receiving (verify → store once → queue), the panel's
figures, and registering with the CRMs. Nothing here reads `request`; the views pass what they got."""

from __future__ import annotations

import contextvars
import hashlib
import ipaddress
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from crm import audit
from crm.crypto import Binding, CredentialUnreadable
from crm.extensions import db
from crm.integrations import service as integrations
from crm.models import Integration, User, utcnow
from crm.net import OutboundError
from crm.providers.base import CRMError
from crm.webhooks.models import ConversationMessage, WebhookDelivery, WebhookEndpoint, WebhookTally

MAX_BODY_BYTES = 2 * 1024 * 1024
RECENT_DELIVERIES = 50
LAST_DELIVERY_STEP = timedelta(seconds=5)
DEFAULT_RETENTION_DAYS = 7
# What each provider's registration subscribes to (Chatwoot's names; the others' equivalents).
CHATWOOT_EVENTS = ("contact_created", "contact_updated", "message_created", "conversation_status_changed")
PIPEDRIVE_EVENTS = ("person.*",)
HUBSPOT_EVENTS = ("contact.creation", "contact.propertyChange")
ZOHO_EVENTS = ("Contacts.all",)
EVENTS = {"CHATWOOT": CHATWOOT_EVENTS, "PIPEDRIVE": PIPEDRIVE_EVENTS, "HUBSPOT": HUBSPOT_EVENTS, "ZOHO": ZOHO_EVENTS}
# Keys whose values are credentials wherever they appear in a payload: never stored, never logged.
SECRET_KEYS = frozenset({"token", "access_token", "sessionid", "session_id", "secret", "hmac_token", "password"})
TEST_EVENT = "localboxs_test"


class WebhookError(ValueError):
    """A management step that cannot be done, with a message for the user."""


@dataclass(frozen=True)
class Received:
    """How a delivery was answered: status code and what happened (for counting, never the body)."""

    status: int
    outcome: str  # accepted duplicate rejected
    delivery_id: int | None = None


# --- endpoints -------------------------------------------------------------------------------------


def supports_webhooks(integration: Integration) -> bool:
    return integration.provider in EVENTS


def new_token() -> str:
    return secrets.token_urlsafe(32)


def endpoint_of(integration: Integration, create: bool = True) -> WebhookEndpoint | None:
    endpoint = db.session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.integration_id == integration.id)
    ).first()
    if endpoint is None and create and supports_webhooks(integration):
        endpoint = WebhookEndpoint(
            user_id=integration.user_id,
            integration_id=integration.id,
            token=new_token(),
            events=list(EVENTS[integration.provider]),
        )
        db.session.add(endpoint)
        db.session.commit()
    return endpoint


def endpoint_url(endpoint: WebhookEndpoint) -> str:
    return f"{current_app.config.get('PUBLIC_BASE_URL', '').rstrip('/')}/webhooks/{endpoint.token}"


def public_base_problem() -> str | None:
    """Why CRMs cannot reach PUBLIC_BASE_URL (None when they can): it must be a public https address."""
    base = (current_app.config.get("PUBLIC_BASE_URL") or "").strip()
    if not base:
        return "PUBLIC_BASE_URL is not set."
    parts = urlsplit(base)
    if parts.scheme != "https":
        return f"PUBLIC_BASE_URL ({base}) is not an https address."
    host = (parts.hostname or "").lower()
    if host in ("localhost", "") or host.endswith((".localhost", ".local", ".internal")):
        return f"PUBLIC_BASE_URL ({base}) is not reachable from the internet."
    try:
        if not ipaddress.ip_address(host).is_global:
            return f"PUBLIC_BASE_URL ({base}) is a private address."
    except ValueError:
        pass
    return None


def inbound_url(integration: Integration) -> str | None:
    """The address this integration's CRM (or its agent bot's outgoing_url) should call, or None when
    PUBLIC_BASE_URL is not a public https address (provisioning then says why: public_base_problem())."""
    if public_base_problem() is not None or not supports_webhooks(integration):
        return None
    endpoint = endpoint_of(integration)
    return endpoint_url(endpoint) if endpoint else None


def set_bot_secret(integration: Integration, secret: str | None) -> None:
    """For provisioning: the agent bot's signing `secret` from Chatwoot's answer (bots created with
    outgoing_url = inbound_url(integration) sign their events with it). Sealed; None forgets it."""
    endpoint = endpoint_of(integration)
    if endpoint is not None:
        endpoint.bot_secret = seal(endpoint, "bot_secret", secret)
        db.session.commit()


def _binding(endpoint: WebhookEndpoint, field: str) -> Binding:
    return Binding(endpoint.user_id, endpoint.integration_id, f"webhook.{field}")


def seal(endpoint: WebhookEndpoint, field: str, value: str | None) -> str | None:
    return integrations.keyring().seal(value, _binding(endpoint, field)) if value else None


def opened(endpoint: WebhookEndpoint, field: str) -> str | None:
    sealed = getattr(endpoint, field)
    if not sealed:
        return None
    try:
        return integrations.keyring().open(sealed, _binding(endpoint, field))
    except CredentialUnreadable:
        return None  # refuses every delivery until the secret is set again


# --- receiving -------------------------------------------------------------------------------------


def _tally(endpoint: WebhookEndpoint, kind: str, error: str | None = None) -> None:
    db.session.add(WebhookTally(integration_id=endpoint.integration_id, kind=kind))
    if error:
        endpoint.last_error, endpoint.last_error_at = error, utcnow()
    db.session.commit()


def _verify(endpoint: WebhookEndpoint, provider_id: str, method: str, path: str, query: str, headers, body: bytes):
    """(accepted, verified, delivery key) from the provider's own verifier."""
    from crm.providers import get_provider

    provider = get_provider(provider_id)
    if provider_id == "CHATWOOT":
        # The account webhook's secret, else the agent bot's: both may call this URL.
        verdict = (False, False, None)
        for field in ("secret", "bot_secret"):
            verdict = provider.verify_webhook(
                opened(endpoint, field), headers, body, accept_unsigned=endpoint.accept_unsigned
            )
            if verdict[0]:
                return verdict
        return verdict
    if provider_id == "HUBSPOT":
        base = urlsplit(current_app.config.get("PUBLIC_BASE_URL", ""))
        uri = f"{base.scheme}://{base.netloc}{base.path.rstrip('/')}{path}" + (f"?{query}" if query else "")
        return provider.verify_webhook(current_app.config.get("HUBSPOT_CLIENT_SECRET"), method, uri, headers, body)
    if provider_id == "PIPEDRIVE":
        return provider.verify_webhook(opened(endpoint, "auth_user"), opened(endpoint, "auth_password"), headers, body)
    if provider_id == "ZOHO":
        return provider.verify_webhook(opened(endpoint, "secret"), endpoint.channel_id, body)
    return False, False, None


def redacted(value: Any) -> Any:
    """The payload without credentials (Zoho's token, Salesforce session ids, bot tokens)."""
    if isinstance(value, dict):
        return {k: ("[redacted]" if str(k).lower() in SECRET_KEYS else redacted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value


def delivery_key_and_event(provider_id: str, key: str | None, payload: Any, body: bytes) -> tuple[str, str | None]:
    """The key that makes a repeat recognisable, and the event's name."""
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if provider_id == "CHATWOOT":
        event = payload.get("event") if isinstance(payload, dict) else None
        return (key or digest), _short(event)
    if provider_id == "HUBSPOT":
        events = payload if isinstance(payload, list) else []
        ids = sorted(str(e.get("eventId")) for e in events if isinstance(e, dict) and e.get("eventId") is not None)
        kind = events[0].get("subscriptionType") if events and isinstance(events[0], dict) else None
        joined = ",".join(ids)
        return (("events:" + joined) if ids and len(joined) <= 120 else digest), _short(kind)
    if provider_id == "PIPEDRIVE":
        meta = payload.get("meta") if isinstance(payload, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        event = f"{meta.get('entity', '')}.{meta.get('action', '')}".strip(".") or None
        return (f"meta:{meta['id']}" if meta.get("id") else digest), _short(event)
    return digest, _short(payload.get("operation") if isinstance(payload, dict) else None)


def _short(value: Any) -> str | None:
    return str(value)[:64] if value not in (None, "") else None


def receive(token: str, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> Received:
    """Verify, store once, queue. A refusal says nothing about why (401), runs nothing and keeps no body."""
    endpoint = db.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.token == token)).first()
    if endpoint is None or len(token) > 64:
        return Received(401, "rejected")
    integration = db.session.get(Integration, endpoint.integration_id)
    if integration is None or not integration.is_active:
        _tally(endpoint, "rejected", "A delivery arrived while the integration was inactive.")
        return Received(401, "rejected")
    accepted, verified, key = _verify(endpoint, integration.provider, method, path, query, headers, body)
    if not accepted:
        _tally(endpoint, "rejected", "A delivery failed verification (signature, timestamp or credentials).")
        return Received(401, "rejected")
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    delivery_key, event = delivery_key_and_event(integration.provider, key, payload, body)
    delivery = WebhookDelivery(
        user_id=endpoint.user_id,
        integration_id=endpoint.integration_id,
        delivery_key=delivery_key,
        event=event,
        verified=verified,
        payload=redacted(payload),
        status="queued" if payload is not None else "ignored",
        error=None if payload is not None else "The body is not JSON.",
    )
    db.session.add(delivery)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        _tally(endpoint, "duplicate")
        return Received(200, "duplicate")
    if endpoint.last_delivery_at is None or delivery.received_at - endpoint.last_delivery_at > LAST_DELIVERY_STEP:
        endpoint.last_delivery_at = delivery.received_at  # not on every delivery: one row all senders share
        db.session.commit()
    if delivery.status == "queued":
        from crm.webhooks import jobs

        jobs.enqueue(delivery.id)
    return Received(200, "accepted", delivery.id)


# --- the panel -------------------------------------------------------------------------------------


def status_of(integration: Integration) -> dict[str, Any]:
    """The panel's figures: counts of the last 24 h and the last deliveries, newest first."""
    since = utcnow() - timedelta(hours=24)
    received = db.session.scalar(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(WebhookDelivery.integration_id == integration.id, WebhookDelivery.received_at >= since)
    )
    tallies = dict(
        db.session.execute(
            select(WebhookTally.kind, func.count())
            .where(WebhookTally.integration_id == integration.id, WebhookTally.created_at >= since)
            .group_by(WebhookTally.kind)
        ).all()
    )
    deliveries = db.session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.integration_id == integration.id)
        .order_by(WebhookDelivery.received_at.desc(), WebhookDelivery.id.desc())
        .limit(RECENT_DELIVERIES)
    ).all()
    return {
        "received": received or 0,
        "duplicate": tallies.get("duplicate", 0),
        "rejected": tallies.get("rejected", 0),
        "deliveries": list(deliveries),
    }


def summary_json(integration: Integration, endpoint: WebhookEndpoint) -> dict[str, Any]:
    figures = status_of(integration)
    return {
        "integrationId": integration.id,
        "url": endpoint_url(endpoint),
        "publicUrlProblem": public_base_problem(),
        "events": list(endpoint.events or []),
        "registered": bool(endpoint.remote_id),
        "secretConfigured": bool(endpoint.secret or endpoint.auth_password),
        "acceptUnsigned": endpoint.accept_unsigned,
        "lastDeliveryAt": _iso(endpoint.last_delivery_at),
        "lastError": endpoint.last_error,
        "lastErrorAt": _iso(endpoint.last_error_at),
        "last24h": {k: figures[k] for k in ("received", "duplicate", "rejected")},
        "deliveries": [
            {
                "id": d.id,
                "event": d.event,
                "receivedAt": _iso(d.received_at),
                "verified": d.verified,
                "status": d.status,
                "error": d.error,
            }
            for d in figures["deliveries"]
        ],
    }


def _iso(moment) -> str | None:
    return moment.isoformat() + "Z" if moment else None


def recent_messages(owner: User, limit: int = 20) -> list[ConversationMessage]:
    return list(
        db.session.scalars(
            select(ConversationMessage)
            .where(ConversationMessage.user_id == owner.id)
            .order_by(ConversationMessage.created_at.desc(), ConversationMessage.id.desc())
            .limit(limit)
        )
    )


# --- managing --------------------------------------------------------------------------------------


def _owned(owner: User, integration_id: object) -> tuple[Integration, WebhookEndpoint]:
    integration = integrations.get_integration(owner, integration_id)  # IntegrationNotFound for others'
    endpoint = endpoint_of(integration)
    if endpoint is None:
        raise WebhookError(f"{integrations.provider_of(integration).name} does not send webhooks here.")
    return integration, endpoint


def panel(owner: User, integration_id: object) -> tuple[Integration, WebhookEndpoint]:
    return _owned(owner, integration_id)


def rotate(owner: User, integration_id: object) -> WebhookEndpoint:
    """A new inbound URL; the old one stops working at once."""
    integration, endpoint = _owned(owner, integration_id)
    endpoint.token = new_token()
    audit.record(owner.id, "webhook_rotated", integration)
    db.session.commit()
    return endpoint


def save_settings(owner: User, integration_id: object, secret: str | None, accept_unsigned: bool | None):
    """A Chatwoot secret pasted by the user (blank keeps the stored one), and the unsigned-events switch."""
    integration, endpoint = _owned(owner, integration_id)
    if secret:
        if len(secret) > 255 or not secret.isprintable():
            raise WebhookError("Paste the secret exactly as Chatwoot shows it (at most 255 characters).")
        endpoint.secret = seal(endpoint, "secret", secret.strip())
    if accept_unsigned is not None and integration.provider == "CHATWOOT":
        endpoint.accept_unsigned = accept_unsigned
    audit.record(owner.id, "webhook_settings", integration)
    db.session.commit()
    return endpoint


def _callable_url(endpoint: WebhookEndpoint) -> str:
    """The URL to give a CRM: public https, or (for a self-hosted CRM the operator allows over plain
    http) whatever PUBLIC_BASE_URL says."""
    problem = public_base_problem()
    if problem and not current_app.config.get("CRM_ALLOW_INSECURE_HTTP"):
        raise WebhookError(f"Your CRM could not reach this app: {problem}")
    return endpoint_url(endpoint)


def register(owner: User, integration_id: object) -> WebhookEndpoint:
    """Create the webhook in the CRM (Chatwoot, Pipedrive), importing what it answers."""
    integration, endpoint = _owned(owner, integration_id)
    url = _callable_url(endpoint)
    config = integrations.live_configuration(owner, integration, purpose="webhook registration")
    try:
        if integration.provider == "CHATWOOT":
            _register_chatwoot(endpoint, config, url)
        elif integration.provider == "PIPEDRIVE":
            _register_pipedrive(endpoint, config, url)
        else:
            raise WebhookError(
                "Register this URL in your HubSpot app's settings (Webhooks), with the app's client secret."
                if integration.provider == "HUBSPOT"
                else "Registering with this CRM from here is not available yet."
            )
    except (CRMError, OutboundError) as exc:
        db.session.rollback()
        raise WebhookError(f"Not registered: {_failure(exc, integration)}") from None
    audit.record(owner.id, "webhook_registered", integration)
    db.session.commit()
    return endpoint


def _failure(exc: Exception, integration: Integration) -> str:
    from crm.operations.failures import describe_failure

    return describe_failure(exc, integrations.provider_of(integration).name)


def _chatwoot_api(config: Mapping[str, Any]):
    from crm.providers.chatwoot import ChatwootAPI

    return ChatwootAPI(
        integrations.outbound_client(),
        config["base_url"],
        config["account_id"],
        config["api_key"],
        integrations.web_deadline(),
    )


def _register_chatwoot(endpoint: WebhookEndpoint, config: Mapping[str, Any], url: str) -> None:
    api = _chatwoot_api(config)
    if endpoint.remote_id:  # registered before: replace it, so a rotated URL is what Chatwoot calls
        api.patient_call("DELETE", api.account_path("webhooks", endpoint.remote_id))
    body = {"url": url, "name": "LocalBoxs CRM", "subscriptions": list(CHATWOOT_EVENTS)}
    answer = api.account_call("POST", "webhooks", json=body)
    webhook = answer if isinstance(answer, dict) else {}
    webhook = (webhook.get("payload") or {}).get("webhook", webhook) if "payload" in webhook else webhook
    secret, remote_id = webhook.get("secret"), webhook.get("id")
    if remote_id is None:
        raise CRMError("not_a_crm", "Chatwoot did not answer with the new webhook.")
    endpoint.remote_id = str(remote_id)[:64]
    endpoint.events = list(CHATWOOT_EVENTS)
    if isinstance(secret, str) and secret:
        endpoint.secret = seal(endpoint, "secret", secret)
    else:
        endpoint.last_error = "Chatwoot sent no signing secret (older than 4.11): paste one or accept unsigned events."
        endpoint.last_error_at = utcnow()


def _register_pipedrive(endpoint: WebhookEndpoint, config: Mapping[str, Any], url: str) -> None:
    from crm.providers.pipedrive import Pipedrive

    api = Pipedrive.connect(config, integrations.outbound_client(), integrations.web_deadline())
    if endpoint.remote_id:
        api.call("DELETE", f"v1/webhooks/{endpoint.remote_id}")
    user, password = secrets.token_urlsafe(12), secrets.token_urlsafe(32)
    body = {
        "subscription_url": url,
        "event_action": "*",
        "event_object": "person",
        "version": "2.0",
        "http_auth_user": user,
        "http_auth_password": password,
    }
    response = api.call("POST", "v1/webhooks", json=body)
    data = api.expect(response, 200, 201) or {}
    if not isinstance(data, dict) or data.get("id") is None:
        raise CRMError("not_a_crm", "Pipedrive did not answer with the new webhook.")
    endpoint.remote_id = str(data["id"])[:64]
    endpoint.events = list(PIPEDRIVE_EVENTS)
    endpoint.auth_user = seal(endpoint, "auth_user", user)
    endpoint.auth_password = seal(endpoint, "auth_password", password)


def unregister(owner: User, integration_id: object) -> WebhookEndpoint:
    integration, endpoint = _owned(owner, integration_id)
    if not endpoint.remote_id:
        raise WebhookError("No webhook is registered in the CRM.")
    config = integrations.live_configuration(owner, integration, purpose="webhook removal")
    try:
        if integration.provider == "CHATWOOT":
            api = _chatwoot_api(config)
            response = api.patient_call("DELETE", api.account_path("webhooks", endpoint.remote_id))
            if response.status not in (200, 204, 404):
                api.expect_json(response)
        elif integration.provider == "PIPEDRIVE":
            from crm.providers.pipedrive import Pipedrive

            api = Pipedrive.connect(config, integrations.outbound_client(), integrations.web_deadline())
            response = api.call("DELETE", f"v1/webhooks/{endpoint.remote_id}")
            if response.status not in (200, 204, 404):
                api.expect(response, 200)
    except (CRMError, OutboundError) as exc:
        db.session.rollback()
        raise WebhookError(f"Not removed: {_failure(exc, integration)}") from None
    endpoint.remote_id = None
    if integration.provider == "PIPEDRIVE":
        endpoint.auth_user = endpoint.auth_password = None
    audit.record(owner.id, "webhook_unregistered", integration)
    db.session.commit()
    return endpoint


def signed_test_request(integration: Integration, endpoint: WebhookEndpoint) -> tuple[bytes, dict[str, str]]:
    """A sample event signed as the CRM would sign it, for the real verification path."""
    import base64
    import hmac

    body = json.dumps({"event": TEST_EVENT, "id": secrets.token_hex(8), "sent_at": int(time.time())}).encode()
    headers = {"Content-Type": "application/json"}
    if integration.provider == "CHATWOOT":
        secret = opened(endpoint, "secret")
        if not secret:
            raise WebhookError("No signing secret yet: register in Chatwoot, or paste the webhook's secret.")
        stamp = str(int(time.time()))
        digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers |= {
            "X-Chatwoot-Signature": f"sha256={digest}",
            "X-Chatwoot-Timestamp": stamp,
            "X-Chatwoot-Delivery": f"test-{secrets.token_hex(8)}",
        }
    elif integration.provider == "PIPEDRIVE":
        user, password = opened(endpoint, "auth_user"), opened(endpoint, "auth_password")
        if not (user and password):
            raise WebhookError("Register in Pipedrive first: it creates the webhook's credentials.")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    elif integration.provider == "HUBSPOT":
        secret = current_app.config.get("HUBSPOT_CLIENT_SECRET")
        if not secret:
            raise WebhookError("HUBSPOT_CLIENT_SECRET is not set on this server.")
        body = json.dumps([{"eventId": secrets.randbelow(10**12), "subscriptionType": TEST_EVENT}]).encode()
        stamp = str(int(time.time() * 1000))
        uri = endpoint_url(endpoint)
        signed = b"POST" + uri.encode() + body + stamp.encode()
        headers |= {
            "X-HubSpot-Signature-v3": base64.b64encode(
                hmac.new(secret.encode(), signed, hashlib.sha256).digest()
            ).decode(),
            "X-HubSpot-Request-Timestamp": stamp,
        }
    else:
        raise WebhookError("A test event for this CRM is not available yet.")
    return body, headers


def send_test(owner: User, integration_id: object) -> Received:
    """Send a signed sample to our own endpoint through the real route and verification."""
    integration, endpoint = _owned(owner, integration_id)
    body, headers = signed_test_request(integration, endpoint)
    path = urlsplit(endpoint_url(endpoint)).path
    client = current_app.test_client()
    # In an empty context, as a CRM's request would arrive: its own app context and database session.
    answer = contextvars.Context().run(client.post, path, data=body, headers=headers)
    return Received(answer.status_code, "accepted" if answer.status_code == 200 else "rejected")


# --- retention -------------------------------------------------------------------------------------


def retention_days() -> int:
    return max(1, int(current_app.config.get("WEBHOOK_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)))


def purge(days: int | None = None) -> int:
    """Delete deliveries (payloads included) and tallies older than the retention; how many deliveries."""
    cutoff = utcnow() - timedelta(days=days or retention_days())
    removed = db.session.execute(delete(WebhookDelivery).where(WebhookDelivery.received_at < cutoff)).rowcount
    db.session.execute(delete(WebhookTally).where(WebhookTally.created_at < cutoff))
    db.session.commit()
    return removed or 0
