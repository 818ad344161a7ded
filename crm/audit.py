"""The audit log: create, update, delete, activation, connection tests and every outbound use of a
secret, with user, integration, time and client address. Never a secret: only names and codes."""

from __future__ import annotations

from flask import has_request_context, request
from sqlalchemy import select

from crm.extensions import db
from crm.models import AuditEvent, Integration, User


def client_address() -> str:
    if has_request_context():
        return (request.remote_addr or "unknown")[:64]
    return "cli/job"


def record(
    user_id: int | None,
    action: str,
    integration: Integration | None = None,
    outcome: str | None = None,
    detail: str | None = None,
    provider: str | None = None,
) -> None:
    """Add an event to the current transaction; the caller's commit writes it with the change."""
    db.session.add(
        AuditEvent(
            user_id=user_id,
            integration_id=integration.id if integration is not None else None,
            provider=integration.provider if integration is not None else provider,
            action=action,
            outcome=outcome,
            detail=(detail or "")[:255] or None,
            client=client_address(),
        )
    )


def history(owner: User, integration_id: str | None = None, limit: int = 200) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.user_id == owner.id)
    if integration_id is not None:
        query = query.where(AuditEvent.integration_id == integration_id)
    return list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)))


def all_events(limit: int = 1000) -> list[AuditEvent]:
    """For the operator's `flask crm audit`."""
    return list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)))
