"""OAuth routes: the modal's "Connect with ..." and the card's Reconnect (page forms), the JSON
API's start, and the callback the provider sends the browser back to."""

from __future__ import annotations

import secrets

from flask import abort, flash, redirect, request, session, url_for
from flask_login import current_user, login_required

from crm import limits
from crm.api import bp as api_bp
from crm.api.body import json_body, json_response
from crm.api.routes import check_type, configuration_of, find, invalid, provider_of_body, unprocessable
from crm.htmx import leave_site
from crm.integrations import service
from crm.integrations.forms import build_form
from crm.integrations.routes import available, owned, wizard
from crm.oauth import bp
from crm.oauth import service as flow
from crm.providers import oauth

SESSION_KEY = "oauth_binding"


def session_nonce() -> str:
    """A random value of this browser session: a state is only accepted back in the session that
    started it (a link sent to someone else, or a forged callback, finds no match)."""
    if SESSION_KEY not in session:
        session[SESSION_KEY] = secrets.token_urlsafe(24)
    return session[SESSION_KEY]


def go_to(provider, url: str):
    """Leave for the provider's consent page (a "Continue" link on a page without JavaScript)."""
    return leave_site(url, "oauth/continue.html", provider=provider, authorization_url=url)


def dashboard_with(**params):
    return redirect(url_for("integrations.index", **params), 302)


@bp.post("/integrations/oauth/start/<provider_id>")
@login_required
@limits.write
def start_page(provider_id: str):
    provider = available(provider_id)
    if not oauth.is_oauth(provider):
        abort(404)
    form = build_form(provider, for_test=True)
    if form.validate_on_submit():
        try:
            return go_to(provider, flow.start(current_user, session_nonce(), provider.id, form.values()))
        except service.ValidationFailed as exc:
            form.add_errors(exc.fields)
        except flow.OAuthFlowError as exc:
            form.form_errors.append(exc.message)
    if hasattr(provider, "uses_oauth"):  # Custom CRM: Test and Save stay for its other choices
        urls = {
            "action": url_for("integrations.create", provider_id=provider.id),
            "test_action": url_for("integrations.test_new", provider_id=provider.id),
        }
    else:
        action = url_for(".start_page", provider_id=provider.id)
        urls = {"action": action, "test_action": action}
    return wizard("form", 422, provider=provider, form=form, integration=None, **urls)


@bp.post("/integrations/oauth/reconnect/<integration_id>")
@login_required
@limits.write
def reconnect(integration_id: str):
    integration = owned(integration_id)
    try:
        url = flow.start(current_user, session_nonce(), None, {}, integration_id=integration.id)
        return go_to(service.provider_of(integration), url)
    except (service.ValidationFailed, flow.OAuthFlowError) as exc:
        flash(getattr(exc, "message", "This integration cannot reconnect."), "error")
        return dashboard_with()


@api_bp.post("/dashboard/integrations/oauth/start")  # in the API blueprint: JSON errors, no-store
@login_required
@limits.write
def oauth_start():
    body = json_body()
    check_type(body)
    integration_id = body.get("integrationId")
    configuration = configuration_of(body, required=integration_id is None)
    provider = None
    if integration_id is not None:
        find(str(integration_id))  # another user's id answers 404, like a missing one
    else:
        provider = provider_of_body(configuration)
    raw = {}
    if provider is not None:
        raw = {"name": body.get("name"), **provider.values_from_api(configuration)}
    try:
        url = flow.start(
            current_user, session_nonce(), provider.id if provider else None, raw, integration_id=integration_id
        )
    except service.ValidationFailed as exc:
        raise unprocessable(provider, exc) from None
    except flow.OAuthFlowError as exc:
        raise invalid("configuration.provider", exc.message) from None
    return json_response({"authorizationUrl": url})


@bp.get("/integrations/oauth/callback")
@login_required
def callback():
    params = {key: request.args.get(key, "")[:4096] for key in request.args}
    try:
        integration = flow.finish(current_user, session.get(SESSION_KEY), params)
    except flow.OAuthFlowError as exc:
        flash(exc.message, "error")
        return dashboard_with(oauth_error=exc.code)
    if integration.last_test_outcome == "ok":
        flash(f"{integration.name} is connected.", "success")
    else:
        flash(f"{integration.name} is connected, but its test failed: {integration.last_test_message}", "error")
    return dashboard_with(connected=integration.id)
