"""Encryption-key rotation: re-seal every stored secret under the current key, in batches.

Each batch is its own transaction (rows locked on PostgreSQL), so a run that is killed loses at most
the batch in flight and the next run continues; a value already under the current key is left
alone, so a second run changes nothing. Old keys stay in INTEGRATION_ENCRYPTION_OLD_KEYS, decrypting
only, until `key-status` shows they protect nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from crm import audit, sealing
from crm.crypto import Binding, CredentialUnreadable, Keyring, is_sealed, sealed_kid
from crm.extensions import db
from crm.integrations.service import keyring, provider_of
from crm.models import Integration
from crm.providers.registry import UnknownProvider
from crm.webhooks.models import WebhookEndpoint

# The webhook endpoint's sealed columns (crm.webhooks.service seals them bound as `webhook.<column>`).
WEBHOOK_SEALED_COLUMNS = ("secret", "bot_secret", "auth_user", "auth_password")


@dataclass(frozen=True)
class UnreadableValue:
    """A stored value no configured key opens: rotation leaves it exactly as it is."""

    integration_id: str
    field: str
    kid: str  # the key id it names, or "malformed" when it is not a sealed value at all


@dataclass
class RotationReport:
    rows_changed: int = 0
    values_resealed: int = 0
    batches: int = 0
    finished: bool = False
    unreadable: list[UnreadableValue] = field(default_factory=list)


def _sensitive_names(integration: Integration) -> list[str]:
    """The configuration keys holding secrets; for a provider no longer installed, every key whose
    value looks sealed (so its secrets are still counted and never rewritten blindly)."""
    configuration = integration.configuration or {}
    try:
        return [spec.name for spec in provider_of(integration).sensitive_fields()]
    except UnknownProvider:
        return [
            name
            for name, stored in configuration.items()
            if is_sealed(stored) or (isinstance(stored, dict) and any(map(is_sealed, stored.values())))
        ]


def sealed_values(integration: Integration) -> list[tuple[str, str]]:
    """(binding field name, sealed value) of every secret stored for the integration: its
    configuration's, and its webhook endpoint's (bound as `webhook.<column>`)."""
    values = sealing.stored_items(integration.configuration or {}, _sensitive_names(integration))
    endpoint = _endpoint(integration)
    if endpoint is not None:
        values += [(f"webhook.{column}", getattr(endpoint, column)) for column in _endpoint_columns(endpoint)]
    return values


def _endpoint(integration: Integration) -> WebhookEndpoint | None:
    return db.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.integration_id == integration.id)).first()


def _endpoint_columns(endpoint: WebhookEndpoint) -> list[str]:
    return [column for column in WEBHOOK_SEALED_COLUMNS if getattr(endpoint, column)]


def _opens(ring: Keyring, integration: Integration, name: str, token: str) -> bool:
    try:
        ring.open(token, Binding(integration.user_id, integration.id, name))
    except CredentialUnreadable:
        return False
    return True


def key_status() -> dict[str, int]:
    """How many stored values each key id still protects; values no configured key opens (an
    unknown key, tampered, moved, malformed) count as "unreadable"."""
    ring = keyring()
    counts: Counter[str] = Counter()
    for integration in db.session.scalars(select(Integration)):
        for name, token in sealed_values(integration):
            counts[sealed_kid(token) if _opens(ring, integration, name, token) else "unreadable"] += 1
    return dict(counts)


def _reseal(integration: Integration, unreadable: list[UnreadableValue]) -> int:
    """Re-seal the integration's values under the current key. A value that does not open (whatever
    its key) is kept as it is, byte for byte, and listed in `unreadable`: only re-entering it can help."""
    ring = keyring()
    configuration: dict[str, Any] = dict(integration.configuration or {})
    changed = 0

    def rewrapped(binding_name: str, token: str) -> str:
        nonlocal changed
        binding = Binding(integration.user_id, integration.id, binding_name)
        try:
            plaintext = ring.open(token, binding)
        except CredentialUnreadable:
            unreadable.append(UnreadableValue(integration.id, binding_name, sealed_kid(token) or "malformed"))
            return token
        if not ring.needs_rewrap(token):
            return token
        changed += 1
        return ring.seal(plaintext, binding)

    for name in _sensitive_names(integration):
        if configuration.get(name) is not None:
            configuration[name] = sealing.walk(name, configuration[name], rewrapped)
    if changed:
        integration.configuration = configuration
    endpoint = _endpoint(integration)
    for column in _endpoint_columns(endpoint) if endpoint is not None else ():
        setattr(endpoint, column, rewrapped(f"webhook.{column}", getattr(endpoint, column)))
    return changed


def rotate(batch_size: int = 100, stop_after_batches: int | None = None) -> RotationReport:
    report = RotationReport()
    after = ""
    while stop_after_batches is None or report.batches < stop_after_batches:
        query = select(Integration).where(Integration.id > after).order_by(Integration.id).limit(batch_size)
        if db.engine.dialect.name == "postgresql":
            query = query.with_for_update()  # a concurrent edit of the same row waits for this batch
        batch = list(db.session.scalars(query))
        if not batch:
            report.finished = True
            break
        for integration in batch:
            resealed = _reseal(integration, report.unreadable)
            if resealed:
                report.rows_changed += 1
                report.values_resealed += resealed
                audit.record(integration.user_id, "key_rotated", integration, detail=f"{resealed} values")
        db.session.commit()
        report.batches += 1
        after = batch[-1].id
    return report
