"""The JSON API: /api/dashboard/integrations/..., /api/dashboard/providers and /api/dashboard/contacts."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask_login import current_user, login_required

from crm import limits
from crm.api import bp
from crm.api.body import APIError, json_body, json_response
from crm.api.openapi import openapi_document
from crm.api.pagination import page_request, paginated
from crm.api.present import contact_json, integration_json, provider_json, test_result_json
from crm.auth.guards import public
from crm.contacts import service as contacts_service
from crm.http import no_store
from crm.integrations import service
from crm.providers import all_providers, get_provider
from crm.providers.base import Provider

NOT_FOUND = "Integration not found."


def field_errors(provider: type[Provider] | None, errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """Service errors (schema names) as the API names them (camelCase, nested under their group)."""
    if provider is None:
        return errors
    return {provider.api_path(name): messages for name, messages in errors.items()}


def unprocessable(provider: type[Provider] | None, exc: service.ValidationFailed) -> APIError:
    return APIError(422, exc.message, field_errors(provider, exc.fields))


def invalid(field: str, message: str) -> APIError:
    return APIError(422, "Please correct the highlighted fields.", {field: [message]})


def saved_provider(integration_id: str, configuration: dict[str, Any]) -> type[Provider]:
    """The provider of one of the user's integrations; a configuration may name it, not change it."""
    provider = get_provider(find(integration_id).provider)
    if configuration.get("provider", provider.id) != provider.id:
        raise invalid("provider", "It cannot change.")
    return provider


def check_type(body: dict[str, Any]) -> None:
    if body.get("type", "CRM") != "CRM":
        raise invalid("type", "Only CRM integrations exist.")


def configuration_of(body: dict[str, Any], required: bool = True) -> dict[str, Any]:
    configuration = body.get("configuration")
    if configuration is None and not required:
        return {}
    if not isinstance(configuration, dict):
        raise invalid("configuration", "Send an object.")
    return configuration


def provider_of_body(configuration: dict[str, Any]) -> type[Provider]:
    try:
        return service.available_provider(configuration.get("provider"))
    except service.ValidationFailed as exc:
        raise unprocessable(None, exc) from None


def find(integration_id: str):
    try:
        return service.get_integration(current_user, integration_id)
    except service.IntegrationNotFound:
        raise APIError(404, NOT_FOUND) from None


bp.after_request(no_store)


@bp.get("/openapi.json")
@public
def openapi():
    return json_response(openapi_document(current_app))


@bp.get("/dashboard/providers")
@login_required
def providers():
    return json_response({"providers": [provider_json(p) for p in all_providers()]})


@bp.get("/dashboard/integrations")
@login_required
def list_integrations():
    wanted = page_request()
    integrations = service.list_integrations(current_user)  # a user's few, in one query: sliced here
    page = [integration_json(i) for i in wanted.slice(integrations)]
    return paginated("integrations", page, len(integrations), wanted)


@bp.get("/dashboard/contacts")
@login_required
def list_contacts():
    wanted = page_request(searchable=True)
    contacts, total = contacts_service.list_contacts_page(current_user, wanted.page, wanted.per_page, wanted.search)
    return paginated("contacts", [contact_json(c) for c in contacts], total, wanted)


@bp.post("/dashboard/integrations/create")
@login_required
@limits.api_write
def create_integration():
    body = json_body()
    check_type(body)
    configuration = configuration_of(body)
    provider = provider_of_body(configuration)
    values = {"name": body.get("name"), **provider.values_from_api(configuration)}
    try:
        integration, created = service.create_once(
            current_user, provider.id, values, creation_key=request.headers.get("Idempotency-Key")
        )
    except service.BadCreationKey:
        raise invalid("Idempotency-Key", "Send 1 to 64 characters.") from None
    except service.ValidationFailed as exc:
        raise unprocessable(provider, exc) from None
    return json_response(integration_json(integration), 201 if created else 200)


@bp.post("/dashboard/integrations/test")
@login_required
@limits.test_connection
def test_integration():
    body = json_body()
    check_type(body)
    integration_id = body.get("integrationId")
    configuration = configuration_of(body, required=integration_id is None)
    if integration_id is not None:
        provider = saved_provider(str(integration_id), configuration)
    else:
        provider = provider_of_body(configuration)
    try:
        result = service.test_connection(
            current_user, provider.id, provider.values_from_api(configuration), integration_id
        )
    except service.ValidationFailed as exc:
        raise unprocessable(provider, exc) from None
    except service.IntegrationNotFound:
        raise APIError(404, NOT_FOUND) from None
    return json_response(test_result_json(result))


@bp.get("/dashboard/integrations/<integration_id>")
@login_required
def get_integration(integration_id: str):
    return json_response(integration_json(find(integration_id)))


@bp.put("/dashboard/integrations/<integration_id>")
@login_required
@limits.api_write
def update_integration(integration_id: str):
    find(integration_id)  # 404 before reading the body
    body = json_body()
    configuration = configuration_of(body, required=False)
    provider = saved_provider(integration_id, configuration)
    name, is_active = body.get("name"), body.get("isActive")
    if is_active is not None and not isinstance(is_active, bool):
        raise invalid("isActive", "Send true or false.")
    try:
        integration = service.update_integration(
            current_user,
            integration_id,
            name=name,
            is_active=is_active,
            raw=provider.values_from_api(configuration) if "configuration" in body else None,
        )
    except service.ValidationFailed as exc:
        raise unprocessable(provider, exc) from None
    return json_response(integration_json(integration))


@bp.delete("/dashboard/integrations/<integration_id>")
@login_required
@limits.api_write
def delete_integration(integration_id: str):
    try:
        service.delete_integration(current_user, integration_id)
    except service.IntegrationNotFound:
        raise APIError(404, NOT_FOUND) from None
    return "", 204


@bp.get("/dashboard/integrations/<integration_id>/analytics")
@login_required
def integration_analytics(integration_id: str):
    """The Analytics page's figures (crm/analytics) for ?range=24h, 7d (default) or 30d."""
    from crm.analytics import recorder, report
    from crm.analytics.present import figures_json

    integration = find(integration_id)
    try:
        range_name = report.parse_range(request.args.get("range"))
    except report.BadRange as exc:
        raise invalid("range", str(exc)) from None
    recorder.flush()
    return json_response(figures_json(report.figures(current_user, range_name, integration), integration.id))


# --- webhooks (crm/webhooks) -------------------------------------------------------------------


def _webhook_call(integration_id: str, action=None):
    from crm.webhooks import service as webhooks

    integration = find(integration_id)
    try:
        if action is not None:
            action(current_user, integration.id)
        _, endpoint = webhooks.panel(current_user, integration.id)
    except webhooks.WebhookError as exc:
        raise APIError(422, str(exc), {"integrationId": [str(exc)]}) from None
    return json_response(webhooks.summary_json(integration, endpoint))


@bp.get("/dashboard/integrations/<integration_id>/webhooks")
@login_required
def get_webhooks(integration_id: str):
    return _webhook_call(integration_id)


@bp.post("/dashboard/integrations/<integration_id>/webhooks/register")
@login_required
@limits.api_write
def register_webhook(integration_id: str):
    from crm.webhooks import service as webhooks

    return _webhook_call(integration_id, webhooks.register)


@bp.post("/dashboard/integrations/<integration_id>/webhooks/unregister")
@login_required
@limits.api_write
def unregister_webhook(integration_id: str):
    from crm.webhooks import service as webhooks

    return _webhook_call(integration_id, webhooks.unregister)


@bp.post("/dashboard/integrations/<integration_id>/webhooks/rotate")
@login_required
@limits.api_write
def rotate_webhook(integration_id: str):
    from crm.webhooks import service as webhooks

    return _webhook_call(integration_id, webhooks.rotate)


@bp.post("/dashboard/integrations/<integration_id>/webhooks/test")
@login_required
@limits.api_write
def test_webhook(integration_id: str):
    from crm.webhooks import service as webhooks

    return _webhook_call(integration_id, webhooks.send_test)
