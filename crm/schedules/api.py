"""GET/PUT /api/dashboard/integrations/{id}/schedule: routes on the API blueprint (imported by
crm/api/__init__.py), so they share its JSON errors, session rules and no-store header."""

from __future__ import annotations

from flask_login import current_user, login_required

from crm import limits
from crm.api import bp
from crm.api.body import APIError, json_body, json_response
from crm.api.present import timestamp
from crm.integrations import service as integrations
from crm.models import utcnow
from crm.schedules import service
from crm.schedules.service import ScheduleInvalid

NOT_FOUND = "Integration not found."


def schedule_json(integration, schedule) -> dict:
    spec = service.spec_of(schedule)
    return {
        "kind": spec.kind,
        "timeOfDay": spec.time_of_day,
        "cron": spec.cron,
        "timezone": current_user.timezone or "UTC",
        "nextRuns": [timestamp(run) for run in service.upcoming(spec, current_user, utcnow())],
        "nextRunAt": timestamp(schedule.next_run_at) if schedule is not None else None,
        "lastSlotAt": timestamp(schedule.last_slot_at) if schedule is not None else None,
        "lastStatus": schedule.last_status if schedule is not None else None,
        "syncsContacts": service.syncs_contacts(integration),
    }


def find(integration_id: str):
    try:
        return service.get_schedule(current_user, integration_id)
    except integrations.IntegrationNotFound:
        raise APIError(404, NOT_FOUND) from None


@bp.get("/dashboard/integrations/<integration_id>/schedule")
@login_required
def get_schedule(integration_id: str):
    return json_response(schedule_json(*find(integration_id)))


@bp.put("/dashboard/integrations/<integration_id>/schedule")
@login_required
@limits.api_write
def put_schedule(integration_id: str):
    find(integration_id)  # 404 before reading the body
    body = json_body()
    try:
        spec = service.parse(body.get("kind"), body.get("timeOfDay"), body.get("cron"))
        service.save_schedule(current_user, integration_id, spec)
    except ScheduleInvalid as exc:
        raise APIError(422, exc.message, exc.fields) from None
    except service.NoContactsSync as exc:
        raise APIError(422, str(exc), {"kind": [str(exc)]}) from None
    return json_response(schedule_json(*find(integration_id)))
