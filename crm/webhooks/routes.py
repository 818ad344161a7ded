"""The inbound route (public, CSRF-exempt, verified per provider) and the Webhooks page of a card."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from crm import limits
from crm.auth.guards import public
from crm.extensions import csrf, limiter
from crm.http import no_store
from crm.integrations import service as integrations
from crm.webhooks import service

UNAUTHORIZED = ("", 401)


bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks/<token>")
@public
@csrf.exempt
@limiter.exempt  # verified per delivery; a CRM's burst must not be refused (see tests/test_limits.py)
def receive(token: str):
    """Raw body first (at most 2 MiB, read before any parsing), then verify, store once, answer."""
    length = request.content_length
    if length is not None and length > service.MAX_BODY_BYTES:
        return "", 413
    body = request.stream.read(service.MAX_BODY_BYTES + 1)
    if len(body) > service.MAX_BODY_BYTES:
        return "", 413
    received = service.receive(
        token, request.method, request.path, request.query_string.decode("latin-1"), request.headers, body
    )
    if received.status != 200:
        return UNAUTHORIZED
    return {"ok": True}, 200


@bp.app_context_processor
def webhook_helpers():
    return {"conversation_log": _conversation_log, "webhooks_supported": service.supports_webhooks}


def _conversation_log():
    return service.recent_messages(current_user) if current_user.is_authenticated else []


# --- the Webhooks page of one integration --------------------------------------------------------

PAGE = "/dashboard/integrations/<integration_id>/webhooks"


def _panel(integration_id: str):
    try:
        return service.panel(current_user, integration_id)
    except integrations.IntegrationNotFound:
        abort(404)
    except service.WebhookError:
        abort(404)


@bp.get(PAGE)
@login_required
def panel(integration_id: str):
    integration, endpoint = _panel(integration_id)
    response = current_app.make_response(
        render_template(
            "webhooks/panel.html",
            integration=integration,
            endpoint=endpoint,
            url=service.endpoint_url(endpoint),
            url_problem=service.public_base_problem(),
            figures=service.status_of(integration),
            hubspot_secret_set=bool(current_app.config.get("HUBSPOT_CLIENT_SECRET")),
        )
    )
    return no_store(response)


def _act(integration_id: str, action, success: str):
    _panel(integration_id)  # 404 before anything for another user's id
    try:
        result = action()
    except service.WebhookError as exc:
        flash(str(exc), "error")
    else:
        flash(success(result) if callable(success) else success, "success")
    return redirect(url_for(".panel", integration_id=integration_id))


@bp.post(PAGE + "/register")
@login_required
@limits.write
def register(integration_id: str):
    return _act(
        integration_id, lambda: service.register(current_user, integration_id), "Webhook registered in the CRM."
    )


@bp.post(PAGE + "/unregister")
@login_required
@limits.write
def unregister(integration_id: str):
    return _act(
        integration_id, lambda: service.unregister(current_user, integration_id), "Webhook removed from the CRM."
    )


@bp.post(PAGE + "/rotate")
@login_required
@limits.write
def rotate(integration_id: str):
    message = "New URL made: the old one no longer works. Register again (or paste it in your CRM)."
    return _act(integration_id, lambda: service.rotate(current_user, integration_id), message)


@bp.post(PAGE + "/test")
@login_required
@limits.write
def send_test(integration_id: str):
    def said(received):
        if received.status == 200:
            return "Test event accepted: it passed verification and appears below."
        return f"Test event refused ({received.status}): the stored secret does not verify."

    return _act(integration_id, lambda: service.send_test(current_user, integration_id), said)


@bp.post(PAGE + "/settings")
@login_required
@limits.write
def settings(integration_id: str):
    secret = (request.form.get("secret") or "").strip() or None
    accept_unsigned = request.form.get("accept_unsigned") == "y"
    return _act(
        integration_id,
        lambda: service.save_settings(current_user, integration_id, secret, accept_unsigned),
        "Webhook settings saved.",
    )
