"""What the API shows of an integration: never a secret, never a ciphertext."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm.integrations import service
from crm.models import Contact, Integration
from crm.providers import get_provider


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
        "configuration": configuration,
        "lastTest": last_test,
        "createdAt": timestamp(integration.created_at),
        "updatedAt": timestamp(integration.updated_at),
    }


def contact_json(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "name": contact.name,
        "email": contact.email,
        "phone": contact.phone,
        "syncError": contact.sync_error,
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
