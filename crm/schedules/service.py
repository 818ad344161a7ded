"""Schedules of contacts syncs: what a user may choose, when it runs next, and saving it.

Business rules only (no `request`): the card, the API and the CLI all call these. Times are stored
as naive UTC (like every other column); daily times and cron expressions are read in the owner's
time zone (User.timezone), so "daily 09:00" stays 09:00 across daylight-saving changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter
from flask import g, has_request_context
from sqlalchemy import delete, event, select

from crm import audit
from crm.extensions import db
from crm.integrations import service as integrations
from crm.models import Integration, IntegrationHealth, ScheduledSlot, SyncSchedule, User, utcnow

KINDS = ("off", "every_15_minutes", "hourly", "daily", "cron")
KIND_LABELS = {
    "off": "Off",
    "every_15_minutes": "Every 15 minutes",
    "hourly": "Hourly",
    "daily": "Daily at a time",
    "cron": "Cron expression",
}
# The cron expression each fixed kind stands for (daily: minute and hour filled in).
FIXED_CRON = {"every_15_minutes": "*/15 * * * *", "hourly": "0 * * * *"}
TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
CRON_MAX = 100
PREVIEW_RUNS = 3


class ScheduleInvalid(ValueError):
    def __init__(self, fields: dict[str, list[str]], message: str = "Please correct the highlighted fields."):
        super().__init__(message)
        self.message = message
        self.fields = fields


class NoContactsSync(ValueError):
    """This integration's CRM has no contacts to sync to, so it has no schedule."""


@dataclass(frozen=True)
class Spec:
    """A validated schedule: its kind and the one detail that kind needs."""

    kind: str = "off"
    time_of_day: str | None = None
    cron: str | None = None

    @property
    def expression(self) -> str | None:
        """The cron expression this schedule runs on (None: off)."""
        if self.kind == "daily":
            hour, minute = self.time_of_day.split(":")
            return f"{int(minute)} {int(hour)} * * *"
        if self.kind == "cron":
            return self.cron
        return FIXED_CRON.get(self.kind)

    def describe(self) -> str:
        if self.kind == "daily":
            return f"Daily at {self.time_of_day}"
        if self.kind == "cron":
            return f"Cron {self.cron}"
        return KIND_LABELS[self.kind]


# --- time zones --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def timezone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def check_timezone(name: object) -> str:
    """The zone name as zoneinfo knows it, or ScheduleInvalid naming the `timezone` field."""
    text = str(name or "").strip()
    if text not in timezone_names():
        raise ScheduleInvalid({"timezone": ["Choose a time zone from the list, e.g. Europe/Berlin or UTC."]})
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleInvalid({"timezone": ["This time zone is not known on this server."]}) from None
    return text


def zone_of(owner: User) -> ZoneInfo:
    try:
        return ZoneInfo(owner.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def set_timezone(owner: User, name: object) -> str:
    """Save the user's time zone; their daily and cron schedules move with it."""
    zone = check_timezone(name)
    if zone != owner.timezone:
        owner.timezone = zone
        now = utcnow()
        for schedule in db.session.scalars(
            select(SyncSchedule).join(Integration).where(Integration.user_id == owner.id)
        ):
            schedule.next_run_at = next_run(spec_of(schedule), owner, now)
        audit.record(owner.id, "settings", detail=f"time zone {zone}")
    db.session.commit()
    return zone


# --- parsing -----------------------------------------------------------------------------------


def parse(kind: object, time_of_day: object = None, cron: object = None) -> Spec:
    """Check a schedule as the card form and the API send it (kind + detail)."""
    kind = str(kind or "").strip()
    if kind not in KINDS:
        raise ScheduleInvalid({"kind": [f"Choose one of: {', '.join(KINDS)}."]})
    if kind == "daily":
        match = TIME_OF_DAY.match(str(time_of_day or "").strip())
        if not match:
            raise ScheduleInvalid({"timeOfDay": ["Enter a time as HH:MM, e.g. 09:00."]})
        return Spec("daily", time_of_day=f"{int(match.group(1)):02d}:{match.group(2)}")
    if kind == "cron":
        return Spec("cron", cron=check_cron(cron))
    return Spec(kind)


def check_cron(cron: object) -> str:
    text = " ".join(str(cron or "").split())
    if not text:
        raise ScheduleInvalid({"cron": ["Enter a cron expression, e.g. */30 * * * *."]})
    if len(text) > CRON_MAX:
        raise ScheduleInvalid({"cron": [f"Keep it under {CRON_MAX} characters."]})
    if len(text.split(" ")) != 5:
        raise ScheduleInvalid({"cron": ["Use five fields: minute hour day-of-month month day-of-week."]})
    if not croniter.is_valid(text):
        raise ScheduleInvalid({"cron": ["This is not a valid cron expression (e.g. */30 * * * * or 0 9 * * 1-5)."]})
    return text


def parse_text(text: str) -> Spec:
    """The CLI's shorthand: off, 15m, hourly, "daily 09:00", or a cron expression."""
    words = " ".join(str(text or "").split())
    lowered = words.lower()
    if lowered in ("off", "none"):
        return Spec("off")
    if lowered in ("15m", "15min", "every 15 minutes"):
        return Spec("every_15_minutes")
    if lowered in ("hourly", "1h"):
        return Spec("hourly")
    if lowered.startswith("daily"):
        return parse("daily", time_of_day=lowered.removeprefix("daily").strip())
    return parse("cron", cron=words)


def spec_of(schedule: SyncSchedule | None) -> Spec:
    if schedule is None:
        return Spec("off")
    return Spec(schedule.kind, schedule.time_of_day, schedule.cron)


# --- when --------------------------------------------------------------------------------------


def to_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def upcoming(spec: Spec, owner: User, after: datetime, count: int = PREVIEW_RUNS) -> list[datetime]:
    """The next `count` run times (naive UTC) strictly after `after` (naive UTC)."""
    expression = spec.expression
    if expression is None:
        return []
    start = after.replace(tzinfo=UTC).astimezone(zone_of(owner))
    runs = croniter(expression, start)
    return [to_utc(runs.get_next(datetime)) for _ in range(count)]


def next_run(spec: Spec, owner: User, after: datetime) -> datetime | None:
    runs = upcoming(spec, owner, after, 1)
    return runs[0] if runs else None


def local(moment: datetime | None, owner: User) -> datetime | None:
    """A stored UTC time in the owner's zone, for display."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).astimezone(zone_of(owner))


# --- reading and saving --------------------------------------------------------------------------


def syncs_contacts(integration: Integration) -> bool:
    provider = integrations.provider_of(integration)
    if "contacts" not in provider.features:
        return False
    # A provider with a "sync contacts" switch (Chatwoot) syncs only when it is on.
    return (integration.configuration or {}).get("sync_contacts", True) is not False


def schedule_for(integration: Integration) -> SyncSchedule | None:
    return db.session.scalars(select(SyncSchedule).where(SyncSchedule.integration_id == integration.id)).first()


def schedules_of(owner: User) -> dict[str, SyncSchedule]:
    """The owner's schedules by integration id, read once per request (the list shows 50 cards)."""
    cache_key = f"crm_schedules_{owner.id}"
    if has_request_context() and cache_key in g:
        return g.get(cache_key)
    query = select(SyncSchedule).join(Integration).where(Integration.user_id == owner.id)
    found = {row.integration_id: row for row in db.session.scalars(query)}
    if has_request_context():
        setattr(g, cache_key, found)
    return found


def get_schedule(owner: User, integration_id: object) -> tuple[Integration, SyncSchedule | None]:
    integration = integrations.get_integration(owner, integration_id)  # IntegrationNotFound for others'
    return integration, schedule_for(integration)


def save_schedule(owner: User, integration_id: object, spec: Spec, now: datetime | None = None) -> SyncSchedule:
    """Store the schedule; its first run is the next slot after now (none when off)."""
    integration = integrations.get_integration(owner, integration_id)
    if spec.kind != "off" and not syncs_contacts(integration):
        raise NoContactsSync(f"{integration.name} does not sync contacts, so it has no schedule.")
    now = now or utcnow()
    schedule = schedule_for(integration)
    if schedule is None:
        schedule = SyncSchedule(integration_id=integration.id)
        db.session.add(schedule)
    before = spec_of(schedule)
    schedule.kind, schedule.time_of_day, schedule.cron = spec.kind, spec.time_of_day, spec.cron
    schedule.next_run_at = next_run(spec, owner, now)
    if before != spec:
        audit.record(owner.id, "schedule", integration, detail=spec.describe())
    db.session.commit()
    return schedule


@event.listens_for(Integration, "after_delete")
def _forget_deleted_integration(mapper, connection, integration: Integration) -> None:
    """Its schedule, slots and health go with it (SQLite does not enforce ON DELETE CASCADE)."""
    for model in (SyncSchedule, ScheduledSlot, IntegrationHealth):
        connection.execute(delete(model).where(model.integration_id == integration.id))
