"""The figures of the Analytics page and API, read from the hourly rollups of one user (optionally of
one of their integrations) over a range: 24h (hourly slots), 7d or 30d (daily slots, UTC)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from crm import models
from crm.analytics.recorder import OUTBOUND_KINDS, current
from crm.analytics.store import BUCKET_COLUMNS, COUNT_NAMES, EVENT_DAYS, naive_utc
from crm.extensions import db
from crm.models import LATENCY_BUCKETS_MS, AnalyticsEvent, AnalyticsHour, Integration, SyncRun, User, utcnow

RANGES = {"24h": (timedelta(hours=1), 24), "7d": (timedelta(days=1), 7), "30d": (timedelta(days=1), 30)}
DEFAULT_RANGE = "7d"
RANGE_MESSAGE = "Choose 24h, 7d or 30d."
RECENT_FAILURES = 10
RECENT_SYNCS = 10


class BadRange(ValueError):
    pass


@dataclass
class Slot:
    start: datetime
    requests: int = 0
    errors: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    contacts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_NAMES, 0))
    webhooks_received: int = 0
    webhooks_rejected: int = 0
    rate_limit_waits: int = 0


@dataclass
class Figures:
    range: str
    start: datetime
    end: datetime
    step: timedelta
    slots: list[Slot]
    by_outcome: dict[str, int]
    by_kind: dict[str, dict[str, int]]
    latency: dict[str, int | None]
    rate_limit_wait_seconds: float
    next_run: datetime | None
    recent_failures: list[AnalyticsEvent]
    recent_syncs: list[SyncRun]
    integrations: list[dict[str, Any]]

    def total(self, name: str) -> int:
        return sum(getattr(slot, name) for slot in self.slots)

    def contacts(self) -> dict[str, int]:
        return {name: sum(slot.contacts[name] for slot in self.slots) for name in COUNT_NAMES}


def parse_range(value: str | None) -> str:
    value = value or DEFAULT_RANGE
    if value not in RANGES:
        raise BadRange(RANGE_MESSAGE)
    return value


def window(range_name: str, now: datetime) -> tuple[datetime, datetime, timedelta, int]:
    step, slots = RANGES[range_name]
    if step == timedelta(hours=1):
        end = now.replace(minute=0, second=0, microsecond=0) + step
    else:
        end = now.replace(hour=0, minute=0, second=0, microsecond=0) + step
    return end - step * slots, end, step, slots


def percentile(buckets: list[int], share: float, largest: int) -> int | None:
    """The bucket bound at or under which `share` of the operations took (the largest seen, above the
    last bound): p50 "≤ 250 ms" means at least half took 250 ms or less."""
    total = sum(buckets)
    if not total:
        return None
    needed, seen = share * total, 0
    for bound, count in zip((*LATENCY_BUCKETS_MS, None), buckets, strict=True):
        seen += count
        if seen >= needed:
            return bound if bound is not None else largest
    return largest


def figures(owner: User, range_name: str, integration: Integration | None = None, now: datetime | None = None):
    if now is None:
        clock = current()  # the recorder's clock, so a test's injected clock moves the page too
        now = naive_utc(clock.clock()) if clock else utcnow()
    start, end, step, slot_count = window(range_name, now)
    scope = [AnalyticsHour.user_id == owner.id, AnalyticsHour.hour >= start, AnalyticsHour.hour < end]
    if integration is not None:
        scope.append(AnalyticsHour.integration_id == integration.id)
    h = AnalyticsHour
    columns = [h.hour, h.integration_id, h.kind, h.outcome, sa.func.max(h.duration_ms_max)] + [
        sa.func.sum(getattr(h, name)) for name in ("duration_ms_total", "count", *COUNT_NAMES, *BUCKET_COLUMNS)
    ]
    rows = db.session.execute(sa.select(*columns).where(*scope).group_by(h.hour, h.integration_id, h.kind, h.outcome))

    slots = [Slot(start + step * i) for i in range(slot_count)]
    by_outcome: dict[str, int] = {}
    by_kind: dict[str, dict[str, int]] = {}
    per_integration: dict[str, dict[str, Any]] = {}
    buckets, largest, waited_ms = [0] * len(BUCKET_COLUMNS), 0, 0
    for hour, integration_id, kind, outcome, longest, spent, count, *rest in rows:
        count = int(count or 0)
        contacts = dict(zip(COUNT_NAMES, (int(v or 0) for v in rest[: len(COUNT_NAMES)]), strict=True))
        latencies = [int(v or 0) for v in rest[len(COUNT_NAMES) :]]
        slot = slots[min(int((hour - start) / step), slot_count - 1)]
        if kind == "rate_limit_wait":
            slot.rate_limit_waits += count
            waited_ms += int(spent or 0)
            continue
        if kind == "webhook":
            if outcome == "ok":
                slot.webhooks_received += count
            else:
                slot.webhooks_rejected += count
            continue
        if kind not in OUTBOUND_KINDS:
            continue
        slot.requests += count
        slot.by_outcome[outcome] = slot.by_outcome.get(outcome, 0) + count
        by_outcome[outcome] = by_outcome.get(outcome, 0) + count
        by_kind.setdefault(kind, {})[outcome] = by_kind.get(kind, {}).get(outcome, 0) + count
        if outcome != "ok":
            slot.errors += count
        for name, value in contacts.items():
            slot.contacts[name] += value
        buckets = [a + b for a, b in zip(buckets, latencies, strict=True)]
        largest = max(largest, int(longest or 0))
        mine = per_integration.setdefault(integration_id, {"requests": 0, "errors": 0})
        mine["requests"] += count
        mine["errors"] += count if outcome != "ok" else 0

    return Figures(
        range=range_name,
        start=start,
        end=end,
        step=step,
        slots=slots,
        by_outcome=dict(sorted(by_outcome.items(), key=lambda item: (item[0] != "ok", -item[1], item[0]))),
        by_kind=by_kind,
        latency={"p50": percentile(buckets, 0.5, largest), "p95": percentile(buckets, 0.95, largest)},
        rate_limit_wait_seconds=round(waited_ms / 1000, 1),
        next_run=next_scheduled_run(owner, integration),
        recent_failures=recent_failures(owner, integration, max(start, now - timedelta(days=EVENT_DAYS))),
        recent_syncs=recent_syncs(owner, integration),
        integrations=named(owner, per_integration) if integration is None else [],
    )


def recent_failures(owner: User, integration: Integration | None, since: datetime) -> list[AnalyticsEvent]:
    e = AnalyticsEvent
    scope = [e.user_id == owner.id, e.occurred_at >= since, e.outcome.not_in(("ok", "waited"))]
    if integration is not None:
        scope.append(e.integration_id == integration.id)
    query = sa.select(e).where(*scope).order_by(e.occurred_at.desc(), e.id.desc()).limit(RECENT_FAILURES)
    return list(db.session.scalars(query))


def recent_syncs(owner: User, integration: Integration | None) -> list[SyncRun]:
    scope = [SyncRun.user_id == owner.id]
    if integration is not None and hasattr(SyncRun, "integration_id"):
        scope.append(SyncRun.integration_id == integration.id)
    query = sa.select(SyncRun).where(*scope).order_by(SyncRun.created_at.desc()).limit(RECENT_SYNCS)
    return list(db.session.scalars(query))


def next_scheduled_run(owner: User, integration: Integration | None) -> datetime | None:
    """From helper "schedules"' table when it exists: the earliest next run of a schedule that is on."""
    schedule = getattr(models, "SyncSchedule", None)
    if schedule is None:
        return None
    query = (
        sa.select(sa.func.min(schedule.next_run_at))
        .join(Integration, Integration.id == schedule.integration_id)
        .where(Integration.user_id == owner.id, schedule.kind != "off", Integration.is_active.is_(True))
    )
    if integration is not None:
        query = query.where(Integration.id == integration.id)
    return db.session.scalar(query)


def named(owner: User, per_integration: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    integrations = db.session.scalars(sa.select(Integration).where(Integration.user_id == owner.id)).all()
    names = {i.id: i.name for i in integrations}
    rows = [
        {"id": i.id, "name": i.name, "requests": 0, "errors": 0, **per_integration.get(i.id, {})} for i in integrations
    ]
    rows += [
        {"id": key, "name": "Deleted integration", **value}
        for key, value in per_integration.items()
        if key not in names
    ]
    return rows
