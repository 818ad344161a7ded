"""GET /metrics: the rollups of every integration, summed by provider, kind and outcome. Those are the
only labels: never a user, an email, an integration id or a secret."""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from crm.analytics.recorder import current
from crm.analytics.store import BUCKET_COLUMNS, COUNT_NAMES
from crm.extensions import db
from crm.models import LATENCY_BUCKETS_MS, AnalyticsHour

LABELS = ["provider", "kind", "outcome"]


class RollupCollector:
    """Totals over the retained rollups (90 days): counters may fall when old hours are purged, which
    Prometheus's rate() reads as a reset."""

    def collect(self):
        h = AnalyticsHour
        columns = [
            sa.func.sum(getattr(h, name)) for name in ("count", "duration_ms_total", *COUNT_NAMES, *BUCKET_COLUMNS)
        ]
        rows = db.session.execute(
            sa.select(h.provider, h.kind, h.outcome, *columns)
            .group_by(h.provider, h.kind, h.outcome)
            .order_by(h.provider, h.kind, h.outcome)
        )
        operations = CounterMetricFamily(
            "crm_operations", "Operations recorded, by provider, kind and outcome.", labels=LABELS
        )
        durations = HistogramMetricFamily(
            "crm_operation_duration_seconds",
            "How long operations took (rate-limit waits: how long they waited).",
            labels=LABELS,
        )
        contacts = CounterMetricFamily(
            "crm_sync_contacts",
            "Contacts handled by sync batches; outcome: created, updated, unchanged, failed.",
            labels=LABELS,
        )
        synced: dict[tuple[str, str], int] = {}
        for provider, kind, outcome, count, spent, *rest in rows:
            labels = [provider, kind, outcome]
            operations.add_metric(labels, int(count or 0))
            per_contact = [int(v or 0) for v in rest[: len(COUNT_NAMES)]]
            per_bucket = [int(v or 0) for v in rest[len(COUNT_NAMES) :]]
            cumulative, running = [], 0
            for bound, n in zip((*LATENCY_BUCKETS_MS, None), per_bucket, strict=True):
                running += n
                cumulative.append(("+Inf" if bound is None else str(bound / 1000), running))
            durations.add_metric(labels, cumulative, int(spent or 0) / 1000)
            if kind == "sync_batch":
                for name, value in zip(COUNT_NAMES, per_contact, strict=True):
                    synced[(provider, name)] = synced.get((provider, name), 0) + value
        for (provider, name), value in sorted(synced.items()):
            contacts.add_metric([provider, "sync_batch", name], value)
        yield operations
        yield durations
        yield contacts
        recorder = current()
        buffered = GaugeMetricFamily("crm_analytics_buffered_events", "Events waiting in this process's buffer.")
        buffered.add_metric([], len(recorder.buffer) if recorder else 0)
        yield buffered


def exposition() -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RollupCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
