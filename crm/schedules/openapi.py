"""The schedule endpoints and the Health object in the OpenAPI document (merged by crm.api.openapi)."""

from __future__ import annotations

from typing import Any

from crm.schedules.service import KINDS


def schedule_schemas() -> dict[str, Any]:
    nullable_time = {"type": ["string", "null"]}
    return {
        "Health": {
            "type": "object",
            "description": "Scheduled connection checks (CRM_HEALTH_CHECK_INTERVAL): green ok, amber a warning or "
            "one failure, red failing (since `since`), grey never checked.",
            "required": ["status", "since", "message", "advice", "checkedAt"],
            "properties": {
                "status": {"enum": ["green", "amber", "red", "grey"]},
                "since": {**nullable_time, "description": "When the status began (red: failing since)."},
                "message": {"type": ["string", "null"]},
                "advice": {"type": "array", "items": {"type": "string"}},
                "checkedAt": nullable_time,
            },
        },
        "Schedule": {
            "type": "object",
            "required": ["kind", "timeOfDay", "cron", "timezone", "nextRuns", "nextRunAt", "lastSlotAt", "lastStatus"],
            "properties": {
                "kind": {"enum": list(KINDS)},
                "timeOfDay": {**nullable_time, "description": "HH:MM in `timezone`, for kind daily."},
                "cron": {**nullable_time, "description": "Five-field cron expression in `timezone`, for kind cron."},
                "timezone": {"type": "string", "description": "The user's time zone (their settings)."},
                "nextRuns": {"type": "array", "items": {"type": "string"}, "description": "The next 3 runs, UTC."},
                "nextRunAt": nullable_time,
                "lastSlotAt": nullable_time,
                "lastStatus": {"enum": ["enqueued", "skipped", "failed", None]},
                "syncsContacts": {"type": "boolean"},
            },
        },
        "ScheduleInput": {
            "type": "object",
            "required": ["kind"],
            "properties": {
                "kind": {"enum": list(KINDS)},
                "timeOfDay": {**nullable_time, "description": "Required for daily: HH:MM."},
                "cron": {**nullable_time, "description": "Required for cron, e.g. */30 * * * *."},
            },
        },
    }


def schedule_paths(id_param: list[dict[str, Any]]) -> dict[str, Any]:
    from crm.api.openapi import JSON, ref, responses

    schedule = {"content": {JSON: {"schema": ref("Schedule")}}}
    return {
        "/api/dashboard/integrations/{integrationId}/schedule": {
            "parameters": id_param,
            "get": {
                "summary": "The integration's contacts-sync schedule and its next 3 runs",
                "responses": responses({"200": {"description": "The schedule", **schedule}}, "404"),
            },
            "put": {
                "summary": "Set the schedule: off, every_15_minutes, hourly, daily (timeOfDay) or cron",
                "security": [{"session": [], "csrf": []}],
                "requestBody": {"required": True, "content": {JSON: {"schema": ref("ScheduleInput")}}},
                "responses": responses(
                    {"200": {"description": "Saved", **schedule}}, "400", "404", "413", "415", "422", "429"
                ),
            },
        }
    }
