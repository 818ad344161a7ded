"""Database models. Sensitive values are stored only as sealed strings (see crm.crypto)."""

from __future__ import annotations

import re
import secrets
import unicodedata
import uuid
from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from crm.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_uuid() -> str:
    return str(uuid.uuid4())


DIGIT_RUN = re.compile(r"[0-9]+")
SORT_KEY_LENGTH = 255


def _without_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def natural_sort_key(name: str) -> str:
    """A key that sorts names as people read them ("Contact 2" before "Contact 10", "Émile" beside "Emil")
    with a plain string ORDER BY, on SQLite and PostgreSQL alike: accents dropped, case folded, each run of
    digits zero-padded to 20."""
    padded = DIGIT_RUN.sub(lambda run: run.group().lstrip("0").rjust(20, "0"), _without_accents(name or "").casefold())
    return padded[:SORT_KEY_LENGTH]


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased; the unique index then makes addresses unique case-insensitively.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    # What the session cookie names instead of the id; a new one at logout makes every earlier
    # cookie of this user worthless (Flask's signed cookies cannot be revoked otherwise).
    session_token: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: secrets.token_hex(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    integrations: Mapped[list[Integration]] = relationship(
        back_populates="owner", cascade="all, delete-orphan", passive_deletes=True
    )

    def get_id(self) -> str:
        return self.session_token

    def end_sessions(self) -> None:
        self.session_token = secrets.token_hex(16)

    def __repr__(self) -> str:
        return f"<User {self.id}>"


class Integration(db.Model):
    __tablename__ = "integrations"
    # One integration per create form (or API Idempotency-Key): a double click or a replay finds it.
    __table_args__ = (UniqueConstraint("user_id", "creation_key", name="uq_integrations_user_creation_key"),)

    # Random, so ids in URLs can be neither guessed nor counted.
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(20), default="CRM")
    provider: Mapped[str] = mapped_column(String(32))
    # Non-sensitive values in clear; sensitive ones as `enc:v1:...` strings only.
    configuration: Mapped[dict] = mapped_column(JSON, default=dict)
    # The last four characters of long secrets, kept at save time so pages never decrypt.
    secret_hints: Mapped[dict] = mapped_column(JSON, default=dict)
    is_active: Mapped[bool] = mapped_column(default=True)
    # The one the platform acts through when the user has several (the first saved, by default).
    is_primary: Mapped[bool] = mapped_column(default=False)
    # Ids of what provisioning found or created in the CRM, e.g. {"inbox_id": 3, "agent_bot_id": 7}.
    remote: Mapped[dict] = mapped_column(JSON, default=dict)
    provision_message: Mapped[str | None] = mapped_column(Text)
    last_test_outcome: Mapped[str | None] = mapped_column(String(32))
    last_test_message: Mapped[str | None] = mapped_column(Text)
    last_tested_at: Mapped[datetime | None]
    creation_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship(back_populates="integrations")

    def __repr__(self) -> str:
        # Never the configuration: it holds sealed secrets.
        return f"<Integration {self.id} {self.provider}>"


class Contact(db.Model):
    __tablename__ = "contacts"
    # The contacts page reads one user's contacts in name order, a page at a time.
    __table_args__ = (Index("ix_contacts_user_sort", "user_id", "sort_key", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    sort_key: Mapped[str] = mapped_column(String(SORT_KEY_LENGTH), default="")  # natural_sort_key(name)
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Sync state: where it was last sent, its id there, and a hash of what was sent.
    sync_target: Mapped[str | None] = mapped_column(String(64))
    remote_id: Mapped[int | None]
    synced_hash: Mapped[str | None] = mapped_column(String(64))
    sync_error: Mapped[str | None] = mapped_column(Text)

    @validates("name")
    def _keep_sort_key(self, _key: str, name: str) -> str:
        self.sort_key = natural_sort_key(name)
        return name

    def __repr__(self) -> str:
        return f"<Contact {self.id}>"


class SyncRun(db.Model):
    """One contact sync; its state lives here so that any web process can show its progress."""

    __tablename__ = "sync_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued running done failed interrupted
    total: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    @property
    def done_count(self) -> int:
        return self.created + self.updated + self.unchanged + self.failed

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "interrupted")


class AuditEvent(db.Model):
    """Who did what to which integration, from where, and how it went. Never a secret."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # No foreign key: the history of a deleted integration stays readable.
    integration_id: Mapped[str | None] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(255))
    client: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


def find_owned(model: type[db.Model], owner: User, object_id: object):
    """The `model` row with this id *and* this owner, or None. Every load of user data goes
    through here (or filters on user_id itself), so no path reaches another user's row."""
    try:
        key = str(uuid.UUID(str(object_id)))
    except ValueError:
        return None
    return db.session.scalars(select(model).where(model.id == key, model.user_id == owner.id)).first()
