"""Webhook endpoints (one per integration), the deliveries they received, the refused or repeated
ones (counted, never stored with their body), and the conversation log incoming messages feed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm.extensions import db
from crm.models import new_uuid, utcnow


class WebhookEndpoint(db.Model):
    """Where one integration's CRM calls us, and how we recognise it. Secrets are sealed strings."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), unique=True)
    # The unguessable path segment of the inbound URL (secrets.token_urlsafe(32)); rotating replaces it.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    # Sealed: Chatwoot's webhook secret, Zoho's channel token, Pipedrive's Basic user and password.
    secret: Mapped[str | None] = mapped_column(Text)
    # Sealed: the agent bot's own signing secret (Chatwoot >= 4.13 signs bot events with it).
    bot_secret: Mapped[str | None] = mapped_column(Text)
    auth_user: Mapped[str | None] = mapped_column(Text)
    auth_password: Mapped[str | None] = mapped_column(Text)
    events: Mapped[list] = mapped_column(JSON, default=list)
    remote_id: Mapped[str | None] = mapped_column(String(64))  # the webhook's id in the CRM, once registered
    channel_id: Mapped[str | None] = mapped_column(String(64))  # Zoho's watch channel
    accept_unsigned: Mapped[bool] = mapped_column(default=False)  # Chatwoot older than 4.11
    last_delivery_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(255))
    last_error_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<WebhookEndpoint {self.id}>"  # never the token or a secret


class WebhookDelivery(db.Model):
    """One accepted delivery, stored once: the unique key makes a repeat a no-op."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("integration_id", "delivery_key", name="uq_webhook_deliveries_key"),
        Index("ix_webhook_deliveries_recent", "integration_id", "received_at"),
        Index("ix_webhook_deliveries_pending", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    delivery_key: Mapped[str] = mapped_column(String(128))
    event: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    verified: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued processing done ignored failed
    payload: Mapped[dict | list | None] = mapped_column(JSON)
    claimed_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(255))


class WebhookTally(db.Model):
    """A refused or repeated delivery: counted for the panel; its body is never kept."""

    __tablename__ = "webhook_tallies"
    __table_args__ = (Index("ix_webhook_tallies_recent", "integration_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # rejected | duplicate
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationMessage(db.Model):
    """A message a contact wrote in the CRM (Chatwoot), shown on the Contacts page."""

    __tablename__ = "conversation_messages"
    __table_args__ = (
        UniqueConstraint("integration_id", "remote_message_id", name="uq_conversation_messages_remote"),
        Index("ix_conversation_messages_user_time", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    contact_id: Mapped[str | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    remote_message_id: Mapped[str] = mapped_column(String(64))
    remote_conversation_id: Mapped[str | None] = mapped_column(String(64))
    sender: Mapped[str | None] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text, default="")
    conversation_status: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
