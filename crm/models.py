"""Database models. Sensitive values are stored only as sealed strings (see crm.crypto)."""

from __future__ import annotations

import re
import secrets
import unicodedata
import uuid
from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, select
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
    # An IANA zone name (zoneinfo), chosen on the settings page: daily and cron schedules run in it.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
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
    # OAuth connections: "needs_reconnect" once the provider refused our refresh token; else None.
    auth_state: Mapped[str | None] = mapped_column(String(20))
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
    # Where it was sent: one link per CRM account (see ContactLink).
    links: Mapped[list[ContactLink]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", passive_deletes=True, lazy="selectin"
    )

    @validates("name")
    def _keep_sort_key(self, _key: str, name: str) -> str:
        self.sort_key = natural_sort_key(name)
        return name

    def __repr__(self) -> str:
        return f"<Contact {self.id}>"


class ContactLink(db.Model):
    """One contact in one CRM account: its id there, a hash of what was sent, and the last problem.
    An unchanged contact is not sent again; a new CRM account gets every contact once."""

    __tablename__ = "contact_links"
    __table_args__ = (UniqueConstraint("contact_id", "target", name="uq_contact_links_contact_target"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    # Provider.account_key of the CRM account (integration or the operator's shared Chatwoot).
    target: Mapped[str] = mapped_column(String(64), index=True)
    # The integration it was last sent through (None: the operator's Chatwoot); for the contacts page.
    integration_id: Mapped[str | None] = mapped_column(String(36))
    remote_id: Mapped[str | None] = mapped_column(String(64))
    synced_hash: Mapped[str | None] = mapped_column(String(64))
    sync_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    contact: Mapped[Contact] = relationship(back_populates="links")


class SyncRun(db.Model):
    """One contact sync; its state lives here so that any web process can show its progress."""

    __tablename__ = "sync_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued running done failed interrupted
    # One integration, or None: every integration that syncs contacts (or the operator's Chatwoot).
    integration_id: Mapped[str | None] = mapped_column(String(36))
    trigger: Mapped[str] = mapped_column(String(16), default="manual", server_default="manual")  # manual schedule cli
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


class OAuthState(db.Model):
    """One pending "Connect with ..." between the start and the callback: single use, 10 minutes,
    bound to the user and to the browser session that started it. Nothing secret in clear."""

    __tablename__ = "oauth_states"

    # SHA-256 of the random `state` sent to the provider: a leaked table row cannot finish a flow.
    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of a nonce kept in the session
    provider: Mapped[str] = mapped_column(String(32))
    # The integration a Reconnect replaces the tokens of; None creates a new one.
    integration_id: Mapped[str | None] = mapped_column(String(36))
    pending: Mapped[dict] = mapped_column(JSON, default=dict)  # the non-secret values typed in the modal
    code_verifier: Mapped[str] = mapped_column(Text)  # sealed (PKCE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SyncSchedule(db.Model):
    """When an integration's contacts sync runs by itself. `next_run_at` (UTC) is also the claim:
    a scheduler wins a slot by moving it forward with a compare-and-set, so one instance runs it."""

    __tablename__ = "sync_schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="off")  # off every_15_minutes hourly daily cron
    cron: Mapped[str | None] = mapped_column(String(100))
    time_of_day: Mapped[str | None] = mapped_column(String(5))  # "09:00", in the owner's time zone
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    last_slot_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(String(16))  # enqueued skipped failed
    last_message: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ScheduledSlot(db.Model):
    """One due slot a scheduler claimed, and what became of it. Unique per (integration, slot): a
    second claim of the same slot cannot be written, whatever happened to the compare-and-set."""

    __tablename__ = "scheduled_slots"
    __table_args__ = (UniqueConstraint("integration_id", "slot_at", name="uq_scheduled_slots_integration_slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)
    slot_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="claimed")  # claimed enqueued skipped failed
    sync_run_id: Mapped[str | None] = mapped_column(String(36))
    instance: Mapped[str | None] = mapped_column(String(64))  # which scheduler claimed it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IntegrationHealth(db.Model):
    """The scheduled connection checks of one integration: its badge, since when, and when next."""

    __tablename__ = "integration_health"

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(8), default="grey")  # grey green amber red
    since: Mapped[datetime | None]  # when the current status began (for red: failing since)
    failures: Mapped[int] = mapped_column(default=0)  # consecutive failed checks
    last_outcome: Mapped[str | None] = mapped_column(String(32))
    last_message: Mapped[str | None] = mapped_column(Text)
    last_checked_at: Mapped[datetime | None]
    next_check_at: Mapped[datetime] = mapped_column(index=True)
    notified_status: Mapped[str | None] = mapped_column(String(8))  # the status last emailed about


def find_owned(model: type[db.Model], owner: User, object_id: object):
    """The `model` row with this id *and* this owner, or None. Every load of user data goes
    through here (or filters on user_id itself), so no path reaches another user's row."""
    try:
        key = str(uuid.UUID(str(object_id)))
    except ValueError:
        return None
    return db.session.scalars(select(model).where(model.id == key, model.user_id == owner.id)).first()


# --- analytics (crm/analytics): what each integration did, kept short (events) and long (rollups) ---

LATENCY_BUCKETS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)  # and one more: above


class AnalyticsEvent(db.Model):
    """One recorded operation, kept 7 days for drill-down (recent failures). No secret, no contact data."""

    __tablename__ = "analytics_events"
    __table_args__ = (Index("ix_analytics_events_user_time", "user_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    # No foreign keys: figures of a deleted integration stay until retention ends; "" = not attributed.
    integration_id: Mapped[str] = mapped_column(String(36), index=True)
    user_id: Mapped[int]
    provider: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    duration_ms: Mapped[int]
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)


class AnalyticsHour(db.Model):
    """Operations of one integration, kind and outcome in one hour (kept 90 days). Upserted by adding,
    so any number of processes can flush into the same row."""

    __tablename__ = "analytics_hours"
    __table_args__ = (
        UniqueConstraint("hour", "integration_id", "kind", "outcome", name="uq_analytics_hours_slot"),
        Index("ix_analytics_hours_user_hour", "user_id", "hour"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[datetime] = mapped_column(index=True)
    integration_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[int]
    provider: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_ms_total: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_ms_max: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[int] = mapped_column(BigInteger, default=0)
    unchanged: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    # How many operations took at most LATENCY_BUCKETS_MS[i] (not cumulative); le_inf: the rest.
    le_10: Mapped[int] = mapped_column(BigInteger, default=0)
    le_25: Mapped[int] = mapped_column(BigInteger, default=0)
    le_50: Mapped[int] = mapped_column(BigInteger, default=0)
    le_100: Mapped[int] = mapped_column(BigInteger, default=0)
    le_250: Mapped[int] = mapped_column(BigInteger, default=0)
    le_500: Mapped[int] = mapped_column(BigInteger, default=0)
    le_1000: Mapped[int] = mapped_column(BigInteger, default=0)
    le_2500: Mapped[int] = mapped_column(BigInteger, default=0)
    le_5000: Mapped[int] = mapped_column(BigInteger, default=0)
    le_10000: Mapped[int] = mapped_column(BigInteger, default=0)
    le_30000: Mapped[int] = mapped_column(BigInteger, default=0)
    le_inf: Mapped[int] = mapped_column(BigInteger, default=0)


# --- teams (crm/teams): share an integration with other users without sharing its secret ---

TEAM_ROLES = ("owner", "admin", "member")


class Team(db.Model):
    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(100))
    # The shared integration members act through when they have none of their own (chosen by an admin).
    designated_integration_id: Mapped[str | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TeamMembership(db.Model):
    __tablename__ = "team_memberships"
    __table_args__ = (UniqueConstraint("team_id", "user_id", name="uq_team_memberships_team_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(8), default="member")  # owner admin member
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TeamInvitation(db.Model):
    """An invitation to one email address; only the account with that address may answer it."""

    __tablename__ = "team_invitations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)  # lower-cased
    invited_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending accepted declined
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IntegrationShare(db.Model):
    """An integration every member of a team may use (never read, edit or re-share)."""

    __tablename__ = "integration_shares"
    __table_args__ = (UniqueConstraint("team_id", "integration_id", name="uq_integration_shares_team_integration"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)
    shared_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
