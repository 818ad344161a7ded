"""Dashboard → Integrations and the Add Integration modal. Every step is a page of its own without
JavaScript; with htmx the same routes answer partials that swap into the modal."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from flask import Blueprint, abort, request, session, url_for
from flask_login import current_user, login_required

from crm import audit, limits
from crm.htmx import after_change, render, swap_or_redirect
from crm.http import no_store
from crm.integrations import ago, breakable, capability_labels, service
from crm.integrations.advice import advice_for
from crm.integrations.forms import build_form
from crm.operations.resolver import environment_settings
from crm.providers import all_providers, get_provider
from crm.providers.base import Provider
from crm.providers.registry import UnknownProvider

CHANGED = "integrations:changed"
TESTS_KEPT = 3  # test results remembered per session (the cookie stays small), for a save after a test
# What the history table calls each recorded action.
EVENT_NAMES = {
    "create": "Created",
    "update": "Settings changed",
    "test": "Connection tested",
    "activate": "Activated",
    "deactivate": "Deactivated",
    "make_primary": "Made primary",
    "delete": "Deleted",
    "provision": "Set up in the CRM",
    "secret_used": "Credentials used",  # nosec B105  # a label in the history table, not a password
    "key_rotated": "Encryption key rotated",
}
OUTCOME_NAMES = {"ok": "OK", "failed": "Failed"}


bp = Blueprint("integrations", __name__, url_prefix="/dashboard/integrations")
for _filter in (ago, breakable, capability_labels):
    bp.add_app_template_filter(_filter)
bp.after_request(no_store)


def owned(integration_id: str):
    try:
        return service.get_integration(current_user, integration_id)
    except service.IntegrationNotFound:
        abort(404)


def available(provider_id: str) -> type[Provider]:
    try:
        provider = get_provider(provider_id)
    except UnknownProvider:
        abort(404)
    if not provider.is_available():
        abort(404)
    return provider


def wizard(step: str, status: int = 200, triggers=None, retarget: str | None = None, **context):
    """A modal step: the dialog partial for htmx, a full page otherwise."""
    return render(
        "integrations/wizard.html", "integrations/_modal.html", status, triggers, retarget, step=step, **context
    )


def list_context() -> dict:
    """One query for the list; URLs and icons built once per page, not per card."""
    integrations = service.list_integrations(current_user)
    return {
        "integrations": integrations,
        "provider_of": get_provider,
        "primary": service.primary_of(integrations),
        "environment_chatwoot": environment_settings() is not None,
        "base": url_for("integrations.index"),
        "icon_base": url_for("static", filename="icons/"),
    }


def done(message: str, category: str = "success"):
    """After a change: htmx closes the modal, refreshes the list and toasts; a page redirects."""
    return after_change(message, url_for("integrations.index"), category, events=(CHANGED,))


def remember_test(fingerprint: str, result) -> None:
    """Keep what this session's test found for these exact values, so saving them records it."""
    tests = dict(session.get("tests", {}))
    tests.pop(fingerprint, None)
    tests[fingerprint] = {"outcome": result.outcome, "message": result.message[:300]}
    session["tests"] = dict(list(tests.items())[-TESTS_KEPT:])


def tests_seen() -> dict:
    return session.get("tests", {})


def creation_key() -> str:
    """The create form's one-time id: a second submit of the same form finds the first integration."""
    key = request.form.get("form_id") or ""
    if len(key) > service.CREATION_KEY_MAX:
        abort(400)
    return key or secrets.token_urlsafe(16)


def primary_news(before, after) -> str:
    if after is None:
        return " No integration is primary now: the platform cannot act in a CRM of yours."
    if before is None or before.id != after.id:
        return f" {after.name} is now your primary integration."
    return ""


# --- the list ----------------------------------------------------------------------------------


@bp.get("")
@login_required
def index():
    return render("integrations/index.html", "integrations/_list.html", **list_context())


# --- Add Integration: type → provider → form ---------------------------------------------------


@bp.get("/new")
@login_required
def new():
    return wizard("type")


@bp.get("/new/crm")
@login_required
def choose_provider():
    return wizard("provider", providers=all_providers())


@bp.route("/new/crm/<provider_id>", methods=["GET", "POST"])
@login_required
@limits.write
def create(provider_id: str):
    provider = available(provider_id)
    key = creation_key()

    def save(values) -> str:
        integration, created = service.create_once(
            current_user, provider.id, values, creation_key=key, tests=tests_seen()
        )
        return f"{integration.name} is saved." if created else f"{integration.name} was already saved."

    return submit(build_form(provider), provider, None, save, form_id=key)


@bp.post("/new/crm/<provider_id>/test")
@login_required
@limits.test_connection
def test_new(provider_id: str):
    provider = available(provider_id)
    return run_test(build_form(provider, for_test=True), provider, None)


def form_urls(provider: type[Provider], integration) -> dict[str, str]:
    if integration is None:
        return {
            "action": url_for(".create", provider_id=provider.id),
            "test_action": url_for(".test_new", provider_id=provider.id),
        }
    return {
        "action": url_for(".edit", integration_id=integration.id),
        "test_action": url_for(".test_edit", integration_id=integration.id),
    }


def submit(form, provider: type[Provider], integration, save: Callable[[dict], str], form_id: str | None = None):
    """Validate the form and `save` it (which answers the toast), or show it again with its errors."""
    if form.validate_on_submit():
        try:
            return done(save(form.values()))
        except service.ValidationFailed as exc:
            form.add_errors(exc.fields)
    status = 422 if form.errors or form.form_errors else 200
    return wizard(
        "form",
        status,
        provider=provider,
        form=form,
        integration=integration,
        form_id=form_id,
        **form_urls(provider, integration),
    )


def run_test(form, provider, integration):
    """Test the form's values (and, when editing, the stored secrets); never saves."""
    result = None
    if form.validate_on_submit():
        try:
            result, fingerprint = service.test_and_fingerprint(
                current_user, provider.id, form.values(), integration.id if integration else None
            )
            remember_test(fingerprint, result)
        except service.ValidationFailed as exc:
            form.add_errors(exc.fields)
    context = {
        "provider": provider,
        "form": form,
        "integration": integration,
        "result": result,
        "advice": advice_for(provider, result),
        "proposed_name": propose_name(form, provider, result),
        "form_id": request.form.get("form_id"),
        **form_urls(provider, integration),
    }
    if result is None:
        # Errors belong beside the fields: swap the whole form back in place of the result box.
        return wizard("form", 422, retarget="#modal-root", **context)
    return render("integrations/wizard.html", "integrations/_test_result.html", step="form", **context)


# --- one integration ---------------------------------------------------------------------------


def propose_name(form, provider, result) -> str | None:
    """After a green test with the name left empty, fill it with the provider's proposal."""
    if result is None or not result.success or (form.name.data or "").strip():
        return None
    form.name.data = provider.default_name(form.values(), result)
    return form.name.data


def edit_form(integration, for_test: bool = False):
    provider = service.provider_of(integration)
    stored = {"name": integration.name, **(integration.configuration or {})}
    hints = service.secret_hints(integration)
    return provider, build_form(provider, stored=stored, secret_hints=hints, for_test=for_test)


@bp.route("/<integration_id>/edit", methods=["GET", "POST"])
@login_required
@limits.write
def edit(integration_id: str):
    integration = owned(integration_id)
    provider, form = edit_form(integration)

    def save(values) -> str:
        updated = service.update_integration(current_user, integration.id, raw=values, tests=tests_seen())
        return f"{updated.name} is updated."

    return submit(form, provider, integration, save)


@bp.post("/<integration_id>/test")
@login_required
@limits.test_connection
def test_edit(integration_id: str):
    integration = owned(integration_id)
    provider, form = edit_form(integration, for_test=True)
    return run_test(form, provider, integration)


@bp.post("/<integration_id>/retest")
@login_required
@limits.test_connection
def retest(integration_id: str):
    """The card's Test button: test the saved integration as it is, and show the card again."""
    integration = owned(integration_id)
    result = service.test_connection(current_user, None, {}, integration.id)
    message = "Connection works." if result.success else f"Test failed: {result.message}"
    context = list_context()
    integration = next(i for i in context["integrations"] if i.id == integration.id)
    category = "success" if result.success else "error"
    return swap_or_redirect(
        "integrations/_card.html", url_for(".index"), message, category, notify=True, integration=integration, **context
    )


@bp.post("/<integration_id>/toggle")
@login_required
@limits.write
def toggle(integration_id: str):
    integration = owned(integration_id)
    before = service.primary_integration(current_user)
    service.update_integration(current_user, integration.id, is_active=not integration.is_active)
    state = "active" if integration.is_active else "inactive"
    return done(f"{integration.name} is now {state}." + primary_news(before, service.primary_integration(current_user)))


@bp.post("/<integration_id>/primary")
@login_required
@limits.write
def make_primary(integration_id: str):
    integration = owned(integration_id)
    try:
        service.make_primary(current_user, integration.id)
    except service.CannotBePrimary as exc:
        return done(str(exc), "error")
    return done(f"{integration.name} is now your primary integration.")


@bp.get("/<integration_id>/history")
@login_required
def history(integration_id: str):
    integration = owned(integration_id)
    events = audit.history(current_user, integration.id)
    return wizard(
        "history",
        integration=integration,
        provider=service.provider_of(integration),
        events=events,
        event_names=EVENT_NAMES,
        outcome_names=OUTCOME_NAMES,
    )


@bp.route("/<integration_id>/delete", methods=["GET", "POST"])
@login_required
@limits.write
def delete(integration_id: str):
    """GET asks for confirmation (in the modal with htmx, as a page without); POST deletes."""
    integration = owned(integration_id)
    if request.method == "GET":
        return wizard("delete", integration=integration, provider=service.provider_of(integration))
    return remove(integration)


@bp.delete("/<integration_id>")
@login_required
@limits.write
def delete_now(integration_id: str):
    return remove(owned(integration_id))


def remove(integration):
    name, was_primary = integration.name, integration.is_primary
    primary = service.delete_integration(current_user, integration.id)
    return done(f"{name} is deleted." + (primary_news(None, primary) if was_primary else ""))
