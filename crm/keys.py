"""Encryption-key rotation: re-seal every stored secret under the current key, in batches.

Each batch is its own transaction (rows locked on PostgreSQL), so a run that is killed loses at most
the batch in flight and the next run continues; a value already under the current key is left
alone, so a second run changes nothing. Old keys stay in INTEGRATION_ENCRYPTION_OLD_KEYS, decrypting
only, until `key-status` shows they protect nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from crm import audit
from crm.crypto import Binding, CredentialUnreadable, sealed_kid
from crm.extensions import db
from crm.integrations.service import keyring, provider_of
from crm.models import Integration


@dataclass
class RotationReport:
    rows_changed: int = 0
    values_resealed: int = 0
    batches: int = 0
    finished: bool = False


def sealed_values(integration: Integration) -> list[tuple[str, str]]:
    """(binding field name, sealed value) of every secret stored on the row."""
    values = []
    configuration = integration.configuration or {}
    for spec in provider_of(integration).sensitive_fields():
        stored = configuration.get(spec.name)
        if isinstance(stored, dict):
            values += [(f"{spec.name}.{key}", token) for key, token in stored.items()]
        elif stored is not None:
            values.append((spec.name, stored))
    return values


def key_status() -> dict[str, int]:
    """How many stored values each key id still protects."""
    counts: Counter[str] = Counter()
    for integration in db.session.scalars(select(Integration)):
        counts.update(sealed_kid(token) or "unreadable" for _, token in sealed_values(integration))
    return dict(counts)


def _reseal(integration: Integration) -> int:
    ring = keyring()
    configuration: dict[str, Any] = dict(integration.configuration or {})
    changed = 0
    for spec in provider_of(integration).sensitive_fields():
        stored = configuration.get(spec.name)
        if stored is None:
            continue
        items = stored.items() if isinstance(stored, dict) else [(None, stored)]
        fresh = {}
        for key, token in items:
            name = f"{spec.name}.{key}" if key is not None else spec.name
            if ring.needs_rewrap(token):
                binding = Binding(integration.user_id, integration.id, name)
                try:
                    token = ring.seal(ring.open(token, binding), binding)
                except CredentialUnreadable:
                    continue  # under a key no longer configured: only re-entering it can help
                changed += 1
            fresh[key] = token
        configuration[spec.name] = fresh if isinstance(stored, dict) else fresh[None]
    if changed:
        integration.configuration = configuration
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
            resealed = _reseal(integration)
            if resealed:
                report.rows_changed += 1
                report.values_resealed += resealed
                audit.record(integration.user_id, "key_rotated", integration, detail=f"{resealed} values")
        db.session.commit()
        report.batches += 1
        after = batch[-1].id
    return report
