"""What the API shows of an integration: never a secret, never a ciphertext."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm.integrations import service
from crm.models import Contact, Integration
from crm.providers import get_provider
from crm.providers.base import Provider
from crm.providers.contract import CAPABILITIES


def timestamp(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def integration_json(integration: Integration) -> dict[str, Any]:
    provider = get_provider(integration.provider)
    configuration = provider.values_to_api(
        integration.configuration or {}, lambda spec: service.secret_summary(integration, spec)
    )
    last_test = None
    if integration.last_tested_at:
        last_test = {
            "outcome": integration.last_test_outcome,
            "message": integration.last_test_message,
            "testedAt": timestamp(integration.last_tested_at),
        }
    return {
        "id": integration.id,
        "name": integration.name,
        "type": integration.type,
        "isActive": integration.is_active,
        # The service keeps this flag on the one integration service.primary_of names (or on none).
        "isPrimary": integration.is_primary,
        # "needs_reconnect" once an OAuth provider refused our refresh token (Reconnect on the card).
        "status": "needs_reconnect" if integration.auth_state == "needs_reconnect" else "connected",
        "configuration": configuration,
        "lastTest": last_test,
        "health": integration_health(integration),
        "createdAt": timestamp(integration.created_at),
        "updatedAt": timestamp(integration.updated_at),
    }


def contact_json(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "name": contact.name,
        "email": contact.email,
        "phone": contact.phone,
        "sync": [
            {"integrationId": link.integration_id, "synced": bool(link.remote_id), "error": link.sync_error}
            for link in contact.links
        ],
        "createdAt": timestamp(contact.created_at),
        "updatedAt": timestamp(contact.updated_at),
    }


def test_result_json(result) -> dict[str, Any]:
    return {
        "success": result.success,
        "outcome": result.outcome,
        "message": result.message,
        "verified": result.verified,
        "details": result.details,
    }


def provider_json(provider: type[Provider]) -> dict[str, Any]:
    """A provider's schema and availability, and what it can do in words (`features` holds the ids)."""
    capabilities = [{"id": name, "label": CAPABILITIES[name]} for name in provider.features if name in CAPABILITIES]
    return {**provider.describe(), "capabilities": capabilities}


def integration_health(integration: Integration) -> dict[str, Any]:
    """The card's health badge (crm.schedules.health): green, amber, red or grey, with since when."""
    from crm.schedules import health

    return health.health_json(integration, health.health_rows(integration.owner).get(integration.id))
