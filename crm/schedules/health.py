"""Health checks: every active integration's connection is tested on a timer (CRM_HEALTH_CHECK_INTERVAL,
a day by default) through the same path as the card's Test button, so the result is recorded on the
integration as well. Each integration has its own fixed phase in the interval (a hash of its id), so
10,000 integrations are checked spread over the day, never all at midnight; a provider gets at most
CRM_HEALTH_CHECKS_PER_MINUTE checks per tick, the rest wait for the next tick.

The badge: green (last check ok), amber (a warning, or one failure that may pass), red (failing since
a time: a refused credential or a second failure in a row), grey (never checked). A change of status
is recorded in the audit log; entering red and leaving it email the owner once each.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app, g, has_request_context
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from crm import audit
from crm.crypto import CredentialUnreadable
from crm.extensions import db
from crm.integrations import service as integrations
from crm.models import Integration, IntegrationHealth, User
from crm.schedules.mail import mail_configured, send_mail

log = logging.getLogger(__name__)
DEFAULT_INTERVAL = 24 * 3600
NEW_ROWS_PER_TICK = 1000
# The CRM said no to these: a second try will not change it, so one failure is enough for red.
REFUSED = {
    "auth_failed",
    "account_not_found",
    "invalid_url",
    "blocked_destination",
    "not_a_crm",
    "redirected",
    "tls_error",
}
WARNINGS = {"insufficient_permissions"}
STATUS_LABELS = {
    "green": "Healthy",
    "amber": "Warning",
    "red": "Failing",
    "grey": "Not checked yet",
}


def interval_seconds() -> int:
    return max(60, int(current_app.config.get("CRM_HEALTH_CHECK_INTERVAL") or DEFAULT_INTERVAL))


def retry_after(interval: int) -> timedelta:
    """After a failure that may pass, check again soon (not a whole day later): an eighth of the
    interval, between one and fifteen minutes."""
    return timedelta(seconds=max(60, min(interval // 8, 900)))


# --- when --------------------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1)


def phase(integration_id: str, interval: int) -> int:
    digest = hashlib.sha256(integration_id.encode()).hexdigest()
    return int(digest[:12], 16) % interval


def next_slot(integration_id: str, after: datetime, interval: int) -> datetime:
    """The first moment strictly after `after` at this integration's phase of the interval."""
    offset = phase(integration_id, interval)
    seconds = int((after - EPOCH).total_seconds())
    turns = (seconds - offset) // interval + 1
    return EPOCH + timedelta(seconds=offset + turns * interval)


# --- status --------------------------------------------------------------------------------------


def status_after(outcome: str, failures: int, needs_reconnect: bool) -> str:
    if needs_reconnect:
        return "red"
    if outcome == "ok":
        return "green"
    if outcome in WARNINGS:
        return "amber"
    if outcome in REFUSED or failures >= 2:
        return "red"
    return "amber"


def needs_reconnect(integration: Integration) -> bool:
    return getattr(integration, "auth_state", None) == "needs_reconnect"


# --- the tick's part -----------------------------------------------------------------------------


def add_missing_rows(now: datetime, interval: int) -> None:
    """Give every active integration a health row, first check at its phase (within one interval)."""
    missing = db.session.scalars(
        select(Integration.id)
        .outerjoin(IntegrationHealth, IntegrationHealth.integration_id == Integration.id)
        .where(Integration.is_active.is_(True), IntegrationHealth.id.is_(None))
        .limit(NEW_ROWS_PER_TICK)
    ).all()
    for integration_id in missing:
        try:
            with db.session.begin_nested():
                db.session.add(
                    IntegrationHealth(
                        integration_id=integration_id, next_check_at=next_slot(integration_id, now, interval)
                    )
                )
        except IntegrityError:
            pass  # another scheduler added it a moment ago
    db.session.commit()


def checks_in_last_minute(provider: str, now: datetime) -> int:
    """Scheduled checks of this provider's integrations in the minute before `now`, by any instance."""
    return db.session.scalar(
        select(func.count())
        .select_from(IntegrationHealth)
        .join(Integration, Integration.id == IntegrationHealth.integration_id)
        .where(Integration.provider == provider, IntegrationHealth.last_checked_at > now - timedelta(minutes=1))
    )


def run_due_checks(now: datetime, instance: str) -> list[str]:
    """Claim each due check exactly once (compare-and-set on next_check_at), then run the claimed ones
    a few at a time (CRM_HEALTH_CHECK_CONCURRENCY), each in its own app context and session."""
    interval = interval_seconds()
    add_missing_rows(now, interval)
    budget = int(current_app.config.get("CRM_HEALTH_CHECKS_PER_MINUTE", 30))
    if budget <= 0:
        return []  # scheduled checks are switched off
    due = db.session.execute(
        select(
            IntegrationHealth.id,
            IntegrationHealth.integration_id,
            IntegrationHealth.next_check_at,
            Integration.provider,
        )
        .join(Integration, Integration.id == IntegrationHealth.integration_id)
        .where(IntegrationHealth.next_check_at <= now, Integration.is_active.is_(True))
        .order_by(IntegrationHealth.next_check_at)
        .limit(budget * 20)
    ).all()
    db.session.rollback()
    left: dict[str, int] = {}
    claimed = []
    for health_id, integration_id, slot, provider in due:
        if provider not in left:
            left[provider] = budget - checks_in_last_minute(provider, now)
        if left[provider] <= 0:
            continue  # this provider's share of the minute is used: the rest stay due
        following = next_slot(integration_id, max(now, slot), interval)
        moved = db.session.execute(
            update(IntegrationHealth)
            .where(IntegrationHealth.id == health_id, IntegrationHealth.next_check_at == slot)
            .values(next_check_at=following)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        if moved.rowcount == 1:
            left[provider] -= 1
            claimed.append(integration_id)
    run_checks(claimed, now, interval)
    return claimed


def run_checks(integration_ids: list[str], now: datetime, interval: int) -> None:
    workers = max(1, int(current_app.config.get("CRM_HEALTH_CHECK_CONCURRENCY", 4)))
    if workers == 1 or len(integration_ids) <= 1:
        for integration_id in integration_ids:
            check(integration_id, now, interval)
        return
    app = current_app._get_current_object()

    def one(integration_id: str) -> None:
        with app.app_context():
            try:
                check(integration_id, now, interval)
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crm-health") as pool:
        list(pool.map(one, integration_ids))


def check(integration_id: str, now: datetime, interval: int) -> IntegrationHealth:
    """Test the saved integration as it is and record the result on its badge."""
    integration = db.session.get(Integration, integration_id)
    owner = integration.owner
    try:
        result = integrations.test_connection(owner, None, {}, integration.id)
        outcome, message = result.outcome, result.message
    except CredentialUnreadable:
        db.session.rollback()
        outcome, message = "auth_failed", "A stored credential can't be read any more: enter it again."
    except integrations.ValidationFailed:
        db.session.rollback()
        outcome, message = "invalid_url", "The saved settings are no longer accepted: open Edit and save them again."
    except Exception:  # one integration's trouble must not stop the other checks
        db.session.rollback()
        log.exception("health check of %s failed unexpectedly", integration_id)
        outcome, message = "server_error", "The check could not run; it will be tried again."
    return record(integration_id, outcome, message, now, interval)


def record(integration_id: str, outcome: str, message: str, now: datetime, interval: int) -> IntegrationHealth:
    health = db.session.scalars(
        select(IntegrationHealth).where(IntegrationHealth.integration_id == integration_id)
    ).one()
    integration = db.session.get(Integration, integration_id)
    failures = 0 if outcome == "ok" or outcome in WARNINGS else health.failures + 1
    status = status_after(outcome, failures, needs_reconnect(integration))
    before = health.status
    if status != before:
        # Red after a first failure keeps that failure's time: "failing since" the first one.
        keep = status == "red" and before == "amber" and health.failures > 0
        health.since = health.since if keep else now
        audit.record(
            integration.user_id, "health", integration, outcome=status, detail=f"{before} → {status}: {outcome}"
        )
    health.status, health.failures = status, failures
    health.last_outcome, health.last_message, health.last_checked_at = outcome, message, now
    if status == "amber" and failures:
        health.next_check_at = min(health.next_check_at, now + retry_after(interval))
    db.session.commit()
    notify(integration, health)
    return health


# --- email, once per change ---------------------------------------------------------------------


def notify(integration: Integration, health: IntegrationHealth) -> None:
    """Entering red, and leaving it for green, each email the owner once (not every check)."""
    if health.status == health.notified_status:
        return
    worth_telling = health.status == "red" or (health.status == "green" and health.notified_status == "red")
    if not worth_telling:
        if health.status in ("green", "red"):
            health.notified_status = health.status
            db.session.commit()
        return
    if mail_configured() and not send_mail(integration.owner.email, *email_text(integration, health)):
        return  # not sent: the next check tries again
    health.notified_status = health.status
    db.session.commit()


def email_text(integration: Integration, health: IntegrationHealth) -> tuple[str, str]:
    provider = integrations.provider_of(integration)
    if health.status == "green":
        subject = f"{integration.name} works again"
        body = (
            f"The connection of your integration {integration.name} ({provider.name}) works again: "
            f"the check at {health.last_checked_at:%Y-%m-%d %H:%M} UTC passed.\n"
        )
    else:
        subject = f"{integration.name} needs attention"
        advice = "".join(f"- {line}\n" for line in provider.advice(health.last_outcome or ""))
        body = (
            f"The connection of your integration {integration.name} ({provider.name}) is failing since "
            f"{health.since:%Y-%m-%d %H:%M} UTC.\n\n{health.last_message}\n\n"
            + (f"What to do:\n{advice}\n" if advice else "")
            + "Open Dashboard → Integrations to fix it.\n"
        )
    return f"LocalBoxs: {subject}", body


# --- what the pages show -----------------------------------------------------------------------


@dataclass(frozen=True)
class Badge:
    status: str
    label: str
    since: datetime | None
    message: str | None
    advice: tuple[str, ...]
    checked_at: datetime | None

    @property
    def css(self) -> str:
        return {"green": "badge-ok", "amber": "badge-warn", "red": "badge-bad"}.get(self.status, "")

    @property
    def since_iso(self) -> str | None:
        return (
            self.since.replace(tzinfo=UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if self.since else None
        )


def badge_of(integration: Integration, health: IntegrationHealth | None) -> Badge:
    if needs_reconnect(integration):
        since = health.since if health is not None and health.status == "red" else None
        message = f"Reconnect {integrations.provider_of(integration).name}: the connection expired or was revoked."
        return Badge("red", STATUS_LABELS["red"], since, message, (), health.last_checked_at if health else None)
    if health is None or health.status == "grey":
        return Badge("grey", STATUS_LABELS["grey"], None, None, (), None)
    advice = ()
    if health.status in ("red", "amber") and health.last_outcome:
        advice = tuple(integrations.provider_of(integration).advice(health.last_outcome))
    message = None if health.status == "green" else health.last_message
    return Badge(health.status, STATUS_LABELS[health.status], health.since, message, advice, health.last_checked_at)


def health_rows(owner: User) -> dict[str, IntegrationHealth]:
    """The owner's health rows by integration id, read once per request."""
    cache_key = f"crm_health_{owner.id}"
    if has_request_context() and cache_key in g:
        return g.get(cache_key)
    rows = db.session.scalars(select(IntegrationHealth).join(Integration).where(Integration.user_id == owner.id)).all()
    found = {row.integration_id: row for row in rows}
    if has_request_context():
        setattr(g, cache_key, found)
    return found


def badge_for(owner: User, integration: Integration) -> Badge:
    return badge_of(integration, health_rows(owner).get(integration.id))


def attention_count(owner: User) -> int:
    """Active integrations whose badge is amber or red."""
    query = (
        select(func.count())
        .select_from(Integration)
        .outerjoin(IntegrationHealth, IntegrationHealth.integration_id == Integration.id)
        .where(Integration.user_id == owner.id, Integration.is_active.is_(True))
        .where(IntegrationHealth.status.in_(("amber", "red")) | (Integration.auth_state == "needs_reconnect"))
    )
    return db.session.scalar(query) or 0


def health_json(integration: Integration, health: IntegrationHealth | None) -> dict:
    badge = badge_of(integration, health)
    return {
        "status": badge.status,
        "since": badge.since_iso,
        "message": badge.message,
        "advice": list(badge.advice),
        "checkedAt": badge.checked_at.isoformat(timespec="seconds") + "Z" if badge.checked_at else None,
    }
