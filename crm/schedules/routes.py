"""The card's schedule editor (a modal with htmx, a page without), its live preview of the next
runs, and the user's settings page (time zone)."""

from __future__ import annotations

from flask import abort, request, url_for
from flask_login import current_user, login_required

from crm import limits
from crm.htmx import after_change, render
from crm.http import no_store
from crm.integrations import service as integrations
from crm.models import utcnow
from crm.schedules import bp, health, service
from crm.schedules.service import KIND_LABELS, KINDS, ScheduleInvalid, Spec

CHANGED = "integrations:changed"  # the integrations list listens for it and reloads

bp.after_request(no_store)


def owned(integration_id: str):
    try:
        return integrations.get_integration(current_user, integration_id)
    except integrations.IntegrationNotFound:
        abort(404)


def submitted() -> Spec:
    source = request.form if request.method == "POST" else request.args
    return service.parse(source.get("kind"), source.get("time_of_day"), source.get("cron"))


def preview_context(spec: Spec | None, error: ScheduleInvalid | None = None) -> dict:
    runs = service.upcoming(spec, current_user, utcnow()) if spec is not None else []
    return {
        "runs": [service.local(run, current_user) for run in runs],
        "preview_error": " ".join(m for ms in error.fields.values() for m in ms) if error else None,
        "timezone": current_user.timezone or "UTC",
    }


def editor(integration, spec: Spec, status: int = 200, errors: dict | None = None, error=None):
    schedule = service.schedule_for(integration)
    context = {
        "integration": integration,
        "schedule": schedule,
        "spec": spec,
        "kinds": [(kind, KIND_LABELS[kind]) for kind in KINDS],
        "errors": errors or {},
        "syncs_contacts": service.syncs_contacts(integration),
        "save_url": url_for(".edit_schedule", integration_id=integration.id),
        "preview_url": url_for(".preview", integration_id=integration.id),
        "next_run": service.local(schedule.next_run_at, current_user) if schedule else None,
        **preview_context(spec if not errors else None, error),
    }
    return render("schedules/editor_page.html", "schedules/_editor_modal.html", status, **context)


@bp.route("/dashboard/integrations/<integration_id>/schedule", methods=["GET", "POST"])
@login_required
@limits.write
def edit_schedule(integration_id: str):
    integration = owned(integration_id)
    if request.method == "GET":
        return editor(integration, service.spec_of(service.schedule_for(integration)))
    try:
        spec = submitted()
        service.save_schedule(current_user, integration.id, spec)
    except ScheduleInvalid as exc:
        raw = Spec(request.form.get("kind") or "off", request.form.get("time_of_day"), request.form.get("cron"))
        return editor(
            integration, raw, 422, {"time_of_day" if k == "timeOfDay" else k: v for k, v in exc.fields.items()}, exc
        )
    except service.NoContactsSync as exc:
        return editor(integration, Spec("off"), 422, {"kind": [str(exc)]})
    return after_change(
        f"{integration.name}: {spec.describe().lower() if spec.kind != 'off' else 'schedule off'}.",
        url_for("integrations.index"),
        events=(CHANGED,),
    )


@bp.get("/dashboard/integrations/<integration_id>/schedule/preview")
@login_required
def preview(integration_id: str):
    """The next three runs of the schedule being typed (htmx swaps it in as the user types)."""
    owned(integration_id)
    try:
        context = preview_context(submitted())
    except ScheduleInvalid as exc:
        context = preview_context(None, exc)
    return render("schedules/_preview.html", "schedules/_preview.html", **context)


@bp.route("/settings", methods=["GET", "POST"])
@login_required
@limits.write
def settings():
    errors: dict[str, list[str]] = {}
    chosen = current_user.timezone or "UTC"
    if request.method == "POST":
        chosen = request.form.get("timezone", "")
        try:
            service.set_timezone(current_user, chosen)
            return after_change("Your settings are saved.", url_for(".settings"))
        except ScheduleInvalid as exc:
            errors = exc.fields
    return render(
        "schedules/settings.html",
        "schedules/settings.html",
        422 if errors else 200,
        timezones=service.timezone_names(),
        chosen=chosen,
        errors=errors,
    )


# --- what the card and the list read -------------------------------------------------------------


@bp.app_template_global()
def health_badge(integration):
    return health.badge_for(current_user, integration)


@bp.app_template_global()
def schedule_summary(integration) -> dict:
    schedule = service.schedules_of(current_user).get(integration.id)
    spec = service.spec_of(schedule)
    return {
        "on": spec.kind != "off",
        "text": spec.describe() if spec.kind != "off" else "No schedule",
        "next_run": schedule.next_run_at if schedule is not None and spec.kind != "off" else None,
        "last_status": schedule.last_status if schedule is not None else None,
        "last_message": schedule.last_message if schedule is not None else None,
        "syncs_contacts": service.syncs_contacts(integration),
    }


@bp.app_template_global()
def integrations_needing_attention() -> int:
    return health.attention_count(current_user)
