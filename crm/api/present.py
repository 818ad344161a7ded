"""What the API shows of an integration: never a secret, never a ciphertext."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm.integrations import service
from crm.models import Integration
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
        "configuration": configuration,
        "lastTest": last_test,
        "createdAt": timestamp(integration.created_at),
        "updatedAt": timestamp(integration.updated_at),
    }


def test_result_json(result) -> dict[str, Any]:
    return {
        "success": result.success,
        "outcome": result.outcome,
        "message": result.message,
        "verified": result.verified,
        "details": result.details,
    }
