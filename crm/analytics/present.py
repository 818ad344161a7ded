"""The figures as the API answers them (camelCase), and as the page's charts draw them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm.analytics.charts import Chart, Series, slot_label, stacked_bars
from crm.analytics.report import Figures
from crm.analytics.store import COUNT_NAMES


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None


def figures_json(figures: Figures, integration_id: str | None = None) -> dict[str, Any]:
    return {
        "integrationId": integration_id,
        "range": figures.range,
        "from": iso(figures.start),
        "to": iso(figures.end),
        "slot": "hour" if figures.step.days == 0 else "day",
        "requests": figures.total("requests"),
        "errors": figures.total("errors"),
        "byOutcome": figures.by_outcome,
        "byKind": figures.by_kind,
        "latencyMs": figures.latency,
        "contacts": figures.contacts(),
        "webhooks": {"received": figures.total("webhooks_received"), "rejected": figures.total("webhooks_rejected")},
        "rateLimitWaits": {"count": figures.total("rate_limit_waits"), "seconds": figures.rate_limit_wait_seconds},
        "nextScheduledRun": iso(figures.next_run),
        "series": [
            {
                "start": iso(slot.start),
                "requests": slot.requests,
                "errors": slot.errors,
                "byOutcome": slot.by_outcome,
                "contacts": slot.contacts,
                "webhooksReceived": slot.webhooks_received,
                "webhooksRejected": slot.webhooks_rejected,
                "rateLimitWaits": slot.rate_limit_waits,
            }
            for slot in figures.slots
        ],
    }


def charts(figures: Figures) -> list[Chart]:
    labels = [slot_label(slot.start, figures.step) for slot in figures.slots]
    slots = figures.slots
    return [
        stacked_bars(
            "requests",
            "Requests",
            labels,
            [
                Series("ok", "chart-ok", [s.requests - s.errors for s in slots]),
                Series("errors", "chart-bad", [s.errors for s in slots]),
            ],
        ),
        stacked_bars(
            "contacts",
            "Contacts synced",
            labels,
            [Series(name, f"chart-{name}", [s.contacts[name] for s in slots]) for name in COUNT_NAMES],
        ),
        stacked_bars(
            "webhooks",
            "Webhooks",
            labels,
            [
                Series("received", "chart-ok", [s.webhooks_received for s in slots]),
                Series("rejected", "chart-bad", [s.webhooks_rejected for s in slots]),
            ],
        ),
    ]
