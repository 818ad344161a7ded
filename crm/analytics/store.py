"""Writing buffered events: raw rows (kept EVENT_DAYS) and hourly rollups (kept ROLLUP_DAYS), upserted
by adding with INSERT ... ON CONFLICT DO UPDATE (SQLite and PostgreSQL alike), so several processes
may flush into the same hour without losing a count."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from crm.extensions import db
from crm.models import LATENCY_BUCKETS_MS, AnalyticsEvent, AnalyticsHour, Integration

if TYPE_CHECKING:
    from crm.analytics.recorder import Event

EVENT_DAYS = 7
ROLLUP_DAYS = 90
PURGE_EVERY_SECONDS = 3600
COUNT_NAMES = ("created", "updated", "unchanged", "failed")
BUCKET_COLUMNS = (*(f"le_{bound}" for bound in LATENCY_BUCKETS_MS), "le_inf")
ADDED = ("count", "duration_ms_total", *COUNT_NAMES, *BUCKET_COLUMNS)
UNKNOWN_PROVIDER = "unknown"

_last_purge: dict[str, float] = {}


def naive_utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def bucket_column(duration_ms: int) -> str:
    for bound, column in zip(LATENCY_BUCKETS_MS, BUCKET_COLUMNS, strict=False):
        if duration_ms <= bound:
            return column
    return "le_inf"


def providers_of(connection: sa.Connection, integration_ids: Iterable[str]) -> dict[str, str]:
    ids = [i for i in set(integration_ids) if i]
    if not ids:
        return {}
    rows = connection.execute(sa.select(Integration.id, Integration.provider).where(Integration.id.in_(ids)))
    return dict(rows.all())


def rows_of(connection: sa.Connection, events: list[Event]) -> tuple[list[dict], list[dict]]:
    """The raw rows, and one rollup row per (hour, integration, kind, outcome), summed in Python."""
    known = providers_of(connection, [e.integration_id for e in events if e.provider is None])
    raw, hours = [], {}
    for event in events:
        provider = event.provider or known.get(event.integration_id, UNKNOWN_PROVIDER)
        counts = event.counts or {}
        occurred = naive_utc(event.at)
        duration = max(0, event.duration_ms)
        raw.append(
            {
                "occurred_at": occurred,
                "integration_id": event.integration_id,
                "user_id": event.user_id,
                "provider": provider,
                "kind": event.kind,
                "outcome": event.outcome[:32],
                "duration_ms": duration,
                **{name: int(counts.get(name, 0)) for name in COUNT_NAMES},
            }
        )
        hour = occurred.replace(minute=0, second=0, microsecond=0)
        key = (hour, event.integration_id, event.kind, event.outcome[:32])
        row = hours.get(key)
        if row is None:
            row = hours[key] = {
                "hour": hour,
                "integration_id": event.integration_id,
                "user_id": event.user_id,
                "provider": provider,
                "kind": event.kind,
                "outcome": event.outcome[:32],
                "duration_ms_max": 0,
                **dict.fromkeys(ADDED, 0),
            }
        row["count"] += 1
        row["duration_ms_total"] += duration
        row["duration_ms_max"] = max(row["duration_ms_max"], duration)
        row[bucket_column(duration)] += 1
        for name in COUNT_NAMES:
            row[name] += int(counts.get(name, 0))
    return raw, list(hours.values())


def upsert_statement(dialect: str):
    table = AnalyticsHour.__table__
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    excluded = statement.excluded
    added = {name: table.c[name] + excluded[name] for name in ADDED}
    larger = sa.case(
        (excluded.duration_ms_max > table.c.duration_ms_max, excluded.duration_ms_max), else_=table.c.duration_ms_max
    )
    return statement.on_conflict_do_update(
        index_elements=["hour", "integration_id", "kind", "outcome"], set_={**added, "duration_ms_max": larger}
    )


def write(events: list[Event], now: float) -> None:
    with db.engine.begin() as connection:
        raw, hours = rows_of(connection, events)
        connection.execute(sa.insert(AnalyticsEvent.__table__), raw)
        connection.execute(upsert_statement(connection.dialect.name), hours)
        # Per app and database: a process runs one app, but each test makes its own on one database.
        key = f"{id(current_app._get_current_object())}:{db.engine.url}"
        if now - _last_purge.get(key, 0) >= PURGE_EVERY_SECONDS:
            purge(connection, naive_utc(now))
            _last_purge[key] = now


def purge(connection, now: datetime) -> None:
    """Raw events older than EVENT_DAYS and rollups older than ROLLUP_DAYS go."""
    connection.execute(
        sa.delete(AnalyticsEvent.__table__).where(AnalyticsEvent.occurred_at < now - timedelta(days=EVENT_DAYS))
    )
    connection.execute(sa.delete(AnalyticsHour.__table__).where(AnalyticsHour.hour < now - timedelta(days=ROLLUP_DAYS)))
