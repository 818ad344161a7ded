"""Dashboard → Integrations and the Add Integration modal. Every step is a page of its own without
JavaScript; with htmx the same routes answer partials that swap into the modal."""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user, login_required

from crm import audit, limits
from crm.htmx import htmx_event, is_htmx, no_store, render, toast
from crm.integrations import bp, service
from crm.integrations.advice import advice_for
from crm.integrations.forms import build_form
from crm.operations.resolver import environment_settings, operational_integration
from crm.providers import all_providers, get_provider
from crm.providers.base import Provider
from crm.providers.registry import UnknownProvider

CHANGED = "integrations:changed"


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


def wizard(step: str, status: int = 200, triggers=None, **context):
    """A modal step: the dialog partial for htmx, a full page otherwise."""
    return render("integrations/wizard.html", "integrations/_modal.html", status, triggers, step=step, **context)


def list_context() -> dict:
    integrations = service.list_integrations(current_user)
    return {
        "integrations": integrations,
        "provider_of": get_provider,
        "operational": operational_integration(current_user),
        "environment_chatwoot": environment_settings() is not None,
    }


def done(message: str, category: str = "success"):
    """After a change: htmx closes the modal, refreshes the list and toasts; a page redirects."""
    if is_htmx():
        return htmx_event(**{CHANGED: None, "modal:close": None, "toast": toast(message, category)})
    flash(message, category)
    return redirect(url_for("integrations.index"))


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
def create(provider_id: str):
    provider = available(provider_id)

    def save(values) -> str:
        return f"{service.create_integration(current_user, provider.id, values).name} is saved."

    return submit(build_form(provider), provider, None, save)


@bp.post("/new/crm/<provider_id>/test")
@login_required
@limits.test_connection
def test_new(provider_id: str):
    provider = available(provider_id)
    return run_test(build_form(provider), provider, None)


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


def submit(form, provider: type[Provider], integration, save: Callable[[dict], str]):
    """Validate the form and `save` it (which answers the toast), or show it again with its errors."""
    if form.validate_on_submit():
        try:
            return done(save(form.values()))
        except service.ValidationFailed as exc:
            form.add_errors(exc.fields)
    status = 422 if form.errors or form.form_errors else 200
    return wizard(
        "form", status, provider=provider, form=form, integration=integration, **form_urls(provider, integration)
    )


def run_test(form, provider, integration):
    """Test the form's values (and, when editing, the stored secrets); never saves."""
    result = None
    if form.validate_on_submit():
        try:
            result = service.test_connection(
                current_user, provider.id, form.values(), integration.id if integration else None
            )
        except service.ValidationFailed as exc:
            form.add_errors(exc.fields)
    context = {
        "provider": provider,
        "form": form,
        "integration": integration,
        "result": result,
        "advice": advice_for(result),
        **form_urls(provider, integration),
    }
    if result is None:
        # Errors belong beside the fields: swap the whole form back in place of the result box.
        response = wizard("form", 422, **context)
        if is_htmx():
            response.headers["HX-Retarget"] = "#modal-root"
            response.headers["HX-Reswap"] = "innerHTML"
        return response
    return render("integrations/wizard.html", "integrations/_test_result.html", step="form", **context)


# --- one integration ---------------------------------------------------------------------------


def edit_form(integration):
    provider = service.provider_of(integration)
    stored = {"name": integration.name, **(integration.configuration or {})}
    return provider, build_form(provider, stored=stored, secret_hints=service.secret_hints(integration))


@bp.route("/<integration_id>/edit", methods=["GET", "POST"])
@login_required
def edit(integration_id: str):
    integration = owned(integration_id)
    provider, form = edit_form(integration)

    def save(values) -> str:
        return f"{service.update_integration(current_user, integration.id, raw=values).name} is updated."

    return submit(form, provider, integration, save)


@bp.post("/<integration_id>/test")
@login_required
@limits.test_connection
def test_edit(integration_id: str):
    integration = owned(integration_id)
    provider, form = edit_form(integration)
    return run_test(form, provider, integration)


@bp.post("/<integration_id>/retest")
@login_required
@limits.test_connection
def retest(integration_id: str):
    """The card's Test button: test the saved integration as it is, and show the card again."""
    integration = owned(integration_id)
    result = service.test_connection(current_user, None, {}, integration.id)
    message = "Connection works." if result.success else f"Test failed: {result.message}"
    if not is_htmx():
        return done(message, "success" if result.success else "error")
    return card(integration.id, triggers={"toast": toast(message, "success" if result.success else "error")})


@bp.post("/<integration_id>/toggle")
@login_required
def toggle(integration_id: str):
    integration = owned(integration_id)
    service.update_integration(current_user, integration.id, is_active=not integration.is_active)
    state = "active" if integration.is_active else "inactive"
    return done(f"{integration.name} is now {state}.")


def card(integration_id: str, triggers=None):
    context = list_context()
    integration = service.get_integration(current_user, integration_id)
    return render(
        "integrations/index.html", "integrations/_card.html", 200, triggers, integration=integration, **context
    )


@bp.post("/<integration_id>/primary")
@login_required
def make_primary(integration_id: str):
    integration = owned(integration_id)
    service.make_primary(current_user, integration.id)
    return done(f"{integration.name} is now your primary integration.")


@bp.get("/<integration_id>/history")
@login_required
def history(integration_id: str):
    integration = owned(integration_id)
    events = audit.history(current_user, integration.id)
    return wizard("history", integration=integration, provider=service.provider_of(integration), events=events)


@bp.route("/<integration_id>/delete", methods=["GET", "POST"])
@login_required
def delete(integration_id: str):
    """GET asks for confirmation (in the modal with htmx, as a page without); POST deletes."""
    integration = owned(integration_id)
    if request.method == "GET":
        return wizard("delete", integration=integration, provider=service.provider_of(integration))
    return remove(integration)


@bp.delete("/<integration_id>")
@login_required
def delete_now(integration_id: str):
    return remove(owned(integration_id))


def remove(integration):
    name = integration.name
    service.delete_integration(current_user, integration.id)
    return done(f"{name} is deleted.")
