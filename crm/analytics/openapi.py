"""The OpenAPI description of GET /api/dashboard/integrations/{integrationId}/analytics."""

from __future__ import annotations

from typing import Any

from crm.analytics.report import DEFAULT_RANGE, RANGES
from crm.analytics.store import COUNT_NAMES

COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
MOMENT = {"type": "string", "description": "UTC, ISO 8601 with Z."}
FIGURES = {
    "type": "object",
    "required": [
        "integrationId",
        "range",
        "from",
        "to",
        "slot",
        "requests",
        "errors",
        "byOutcome",
        "latencyMs",
        "contacts",
        "webhooks",
        "rateLimitWaits",
        "nextScheduledRun",
        "series",
    ],
    "properties": {
        "integrationId": {"type": ["string", "null"]},
        "range": {"enum": list(RANGES)},
        "from": MOMENT,
        "to": MOMENT,
        "slot": {"enum": ["hour", "day"], "description": "The length of each entry of `series`."},
        "requests": {
            "type": "integer",
            "description": "Outbound operations: tests, sync batches, messages, provisioning.",
        },
        "errors": {"type": "integer", "description": "Requests whose outcome was not ok."},
        "byOutcome": COUNTS,
        "byKind": {"type": "object", "additionalProperties": COUNTS},
        "latencyMs": {
            "type": "object",
            "description": "Percentiles as the upper bound of a latency bucket (10, 25, 50, 100, 250 ms, ...).",
            "properties": {"p50": {"type": ["integer", "null"]}, "p95": {"type": ["integer", "null"]}},
        },
        "contacts": {"type": "object", "properties": {name: {"type": "integer"} for name in COUNT_NAMES}},
        "webhooks": {
            "type": "object",
            "properties": {"received": {"type": "integer"}, "rejected": {"type": "integer"}},
        },
        "rateLimitWaits": {
            "type": "object",
            "properties": {"count": {"type": "integer"}, "seconds": {"type": "number"}},
        },
        "nextScheduledRun": {**MOMENT, "type": ["string", "null"]},
        "series": {"type": "array", "items": {"type": "object", "required": ["start", "requests", "errors"]}},
    },
}


def analytics_paths(id_param: list[dict[str, Any]]) -> dict[str, Any]:
    from crm.api.openapi import JSON, responses

    return {
        "/api/dashboard/integrations/{integrationId}/analytics": {
            "parameters": id_param,
            "get": {
                "summary": "What the integration did: requests, outcomes, latency, contacts, webhooks, waits",
                "parameters": [
                    {
                        "name": "range",
                        "in": "query",
                        "description": "24h (hourly series), 7d or 30d (daily series, UTC days).",
                        "schema": {"enum": list(RANGES), "default": DEFAULT_RANGE},
                    }
                ],
                "responses": responses(
                    {"200": {"description": "The figures", "content": {JSON: {"schema": FIGURES}}}}, "404", "422"
                ),
            },
        }
    }
