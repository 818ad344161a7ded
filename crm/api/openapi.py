"""The OpenAPI 3.1 document of the JSON API. Provider configurations are derived from the
providers' field schemas, so a new provider appears here without an edit."""

from __future__ import annotations

from typing import Any

from flask import Flask

from crm.analytics.openapi import analytics_paths
from crm.api.body import MAX_BODY_BYTES
from crm.api.pagination import DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE, MAX_SEARCH_LENGTH
from crm.providers import all_providers
from crm.providers.base import OUTCOMES, Field, Provider
from crm.providers.contract import CAPABILITIES
from crm.schedules.openapi import schedule_paths, schedule_schemas
from crm.teams.openapi import team_paths, team_schemas

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def error_response(description: str, with_fields: bool = False) -> dict[str, Any]:
    return {
        "description": description,
        "content": {JSON: {"schema": ref("ValidationError" if with_fields else "Error")}},
    }


ERRORS = {
    "400": error_response("Malformed JSON, or the X-CSRFToken header is missing or invalid."),
    "401": error_response("Not logged in."),
    "403": error_response("Only the team's owners or admins may do that."),
    "404": error_response("No such integration among yours."),
    "405": error_response("Method not allowed."),
    "409": error_response("A stored credential can't be read: enter it again."),
    "413": error_response(f"The body is larger than {MAX_BODY_BYTES // 1024} KiB."),
    "415": error_response("The body is not application/json."),
    "422": error_response("Invalid values; `fields` names each one.", with_fields=True),
    "429": {
        **error_response("Too many requests; wait for Retry-After seconds."),
        "headers": {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}},
    },
}


def responses(success: dict[str, Any], *codes: str) -> dict[str, Any]:
    return {**success, **{code: ERRORS[code] for code in ("401", "405", *codes)}}


def page_parameters(searchable: bool) -> list[dict[str, Any]]:
    parameters = [
        {
            "name": "page",
            "in": "query",
            "description": "Page number, from 1. Past the last page the list is empty.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
        },
        {
            "name": "perPage",
            "in": "query",
            "description": f"Items per page, at most {MAX_PER_PAGE}.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": DEFAULT_PER_PAGE},
        },
    ]
    if searchable:
        parameters.append(
            {
                "name": "search",
                "in": "query",
                "description": "Only items whose name, email or phone contains this text (any case).",
                "schema": {"type": "string", "maxLength": MAX_SEARCH_LENGTH},
            }
        )
    return parameters


def page_of(key: str, item: str, summary: str, searchable: bool = False) -> dict[str, Any]:
    """A paginated list: `{key: [...], "pagination": {...}}` and a Link header with rel=next/prev."""
    link = {
        "description": 'Where the neighbouring pages are: `<url>; rel="next", <url>; rel="prev"` (absent on a '
        "single page).",
        "schema": {"type": "string"},
    }
    schema = {
        "type": "object",
        "required": [key, "pagination"],
        "properties": {key: {"type": "array", "items": ref(item)}, "pagination": ref("Pagination")},
    }
    return {
        "summary": summary,
        "parameters": page_parameters(searchable),
        "responses": responses(
            {"200": {"description": summary, "headers": {"Link": link}, "content": {JSON: {"schema": schema}}}},
            "422",
        ),
    }


def field_schema(spec: Field, for_write: bool) -> dict[str, Any]:
    base: dict[str, Any] = {"description": spec.label + (f". {spec.help}" if spec.help else "")}
    if spec.sensitive:
        summary = ref("SecretSummary")
        if spec.type == "json":
            stored = {"type": "object", "additionalProperties": summary}
            if spec.parts:  # its keys are declared: one per part, e.g. credentials.apiKey
                stored = {"type": "object", "properties": {part.name: summary for part in spec.parts}}
            if for_write:
                return {
                    **base,
                    "anyOf": [
                        {"type": "object", "additionalProperties": {"type": "string"}},
                        {"type": "string"},
                        stored,
                        {"type": "null"},
                    ],
                }
            return {**base, **stored}
        if for_write:
            return {**base, "anyOf": [{"type": "string"}, summary, {"type": "null"}]}
        return {**base, **summary}
    types = {
        "checkbox": ["boolean", "string", "null"],
        "number": ["integer", "string", "null"],
        "json": ["object", "string", "null"],
    }
    if for_write:
        base["type"] = types.get(spec.type, ["string", "null"])
    else:
        base["type"] = {"checkbox": "boolean", "number": "integer", "json": "object"}.get(spec.type, "string")
        if spec.choices:
            base["enum"] = [value for value, _ in spec.choices]
    return base


def configuration_schema(provider: type[Provider], for_write: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"provider": {"const": provider.id}}
    for spec in provider.fields()[1:]:  # the user's fields: OAuth tokens are neither read nor written
        target = properties
        if spec.group:
            group = properties.setdefault(spec.group, {"type": "object", "properties": {}})
            target = group["properties"]
        target[spec.api_name] = field_schema(spec, for_write)
        if for_write:  # a part may also be written as a flat key, e.g. "apiKey" for credentials.apiKey
            for part in spec.parts:
                properties[part.name] = {"type": "string", "description": f"{part.label}: {spec.api_name}.{part.name}"}
    return {
        "type": "object",
        "title": f"{provider.name} configuration",
        "properties": properties,
        "required": ["provider"],
    }


def schemas() -> dict[str, Any]:
    available = [p for p in all_providers() if p.is_available()]
    result: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "ValidationError": {
            "type": "object",
            "required": ["error", "fields"],
            "properties": {
                "error": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            },
        },
        "SecretSummary": {
            "type": "object",
            "description": "A stored secret: whether it is set, and the last four characters of a long one.",
            "required": ["configured"],
            "properties": {"configured": {"const": True}, "last4": {"type": "string", "maxLength": 4}},
        },
        "Integration": {
            "type": "object",
            "required": [
                "id",
                "name",
                "type",
                "isActive",
                "isPrimary",
                "configuration",
                "lastTest",
                "createdAt",
                "updatedAt",
            ],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "name": {"type": "string"},
                "type": {"const": "CRM"},
                "isActive": {"type": "boolean"},
                "isPrimary": {
                    "type": "boolean",
                    "description": "The one integration the platform acts through: active, and of a provider "
                    "the platform can operate in (Chatwoot). At most one is; none when no integration can be.",
                },
                "configuration": {"oneOf": [ref(f"{p.id}Configuration") for p in available]},
                "lastTest": {"oneOf": [{"type": "null"}, ref("LastTest")]},
                "status": {
                    "enum": ["connected", "needs_reconnect"],
                    "description": "needs_reconnect: the OAuth provider refused our refresh token; reconnect.",
                },
                "health": ref("Health"),
                "createdAt": {"type": "string"},
                "updatedAt": {"type": "string"},
            },
        },
        "LastTest": {
            "type": "object",
            "properties": {
                "outcome": {"enum": list(OUTCOMES)},
                "message": {"type": "string"},
                "testedAt": {"type": "string"},
            },
        },
        "TestResult": {
            "type": "object",
            "required": ["success", "outcome", "message"],
            "properties": {
                "success": {"type": "boolean"},
                "outcome": {"enum": list(OUTCOMES)},
                "message": {"type": "string"},
                "verified": {"type": "array", "items": {"type": "string"}},
                "details": {"type": "object"},
            },
        },
        "CreateIntegration": {
            "type": "object",
            "required": ["name", "configuration"],
            "properties": {
                "name": {"type": ["string", "null"]},
                "type": {"type": "string", "description": "Always CRM."},
                "configuration": {"oneOf": [ref(f"{p.id}ConfigurationInput") for p in available]},
            },
        },
        "UpdateIntegration": {
            "type": "object",
            "properties": {
                "name": {"type": ["string", "null"]},
                "isActive": {"type": ["boolean", "null"]},
                "configuration": {"type": "object", "description": "Any fields of the provider's configuration."},
            },
        },
        "TestRequest": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "integrationId": {"type": "string", "description": "Test this saved integration."},
                "configuration": {"type": "object", "description": "Values to test (override the saved ones)."},
            },
        },
        "Provider": {
            "type": "object",
            "required": ["id", "name", "availability", "features", "capabilities", "fields"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "availability": {"type": "string", "description": "available, or coming_soon: listed only."},
                "features": {"type": "array", "items": {"enum": list(CAPABILITIES)}},
                "capabilities": {
                    "type": "array",
                    "description": "What the provider can do, in words: one per entry of `features`.",
                    "items": {
                        "type": "object",
                        "required": ["id", "label"],
                        "properties": {"id": {"enum": list(CAPABILITIES)}, "label": {"type": "string"}},
                    },
                },
                "fields": {"type": "array", "items": {"type": "object"}},
            },
        },
        "Contact": {
            "type": "object",
            "required": ["id", "name", "email", "phone", "sync", "createdAt", "updatedAt"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "name": {"type": "string"},
                "email": {"type": ["string", "null"]},
                "phone": {"type": ["string", "null"], "description": "E.164, e.g. +4930123456."},
                "sync": {
                    "type": "array",
                    "description": "Its state in each CRM it was sent to (integrationId null: the platform's CRM).",
                    "items": {
                        "type": "object",
                        "required": ["integrationId", "synced", "error"],
                        "properties": {
                            "integrationId": {"type": ["string", "null"]},
                            "synced": {"type": "boolean"},
                            "error": {"type": ["string", "null"], "description": "Why its last sync failed."},
                        },
                    },
                },
                "createdAt": {"type": "string"},
                "updatedAt": {"type": "string"},
            },
        },
        "Pagination": {
            "type": "object",
            "required": ["page", "perPage", "total", "next", "prev"],
            "properties": {
                "page": {"type": "integer", "minimum": 1},
                "perPage": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
                "total": {"type": "integer", "minimum": 0, "description": "Items on all pages together."},
                "next": {"type": ["string", "null"], "description": "The next page's URL (as in Link rel=next)."},
                "prev": {"type": ["string", "null"], "description": "The previous page's URL (Link rel=prev)."},
            },
        },
    }
    result.update(schedule_schemas())
    result.update(team_schemas())
    for provider in available:
        result[f"{provider.id}Configuration"] = configuration_schema(provider, for_write=False)
        result[f"{provider.id}ConfigurationInput"] = configuration_schema(provider, for_write=True)
    return result


def openapi_document(app: Flask) -> dict[str, Any]:
    integration = {"content": {JSON: {"schema": ref("Integration")}}}
    write = {"security": [{"session": [], "csrf": []}]}
    id_param = [{"name": "integrationId", "in": "path", "required": True, "schema": {"type": "string"}}]
    body = lambda name: {"required": True, "content": {JSON: {"schema": ref(name)}}}  # noqa: E731
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LocalBoxs CRM Integrations API",
            "version": "1.0.0",
            "description": "Session-cookie authenticated (log in at /login). Writes need the X-CSRFToken header "
            "(the page's csrf-token meta tag). Secrets are write-only: responses carry SecretSummary objects.",
        },
        "security": [{"session": []}],
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": app.config.get("SESSION_COOKIE_NAME", "session")},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRFToken"},
            },
            "schemas": schemas(),
        },
        "paths": {
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document", "content": {JSON: {}}}},
                }
            },
            "/api/dashboard/providers": {
                "get": {
                    "summary": "Providers with their field schemas",
                    "responses": responses(
                        {
                            "200": {
                                "description": "Providers",
                                "content": {
                                    JSON: {
                                        "schema": {
                                            "type": "object",
                                            "required": ["providers"],
                                            "properties": {"providers": {"type": "array", "items": ref("Provider")}},
                                        }
                                    }
                                },
                            }
                        }
                    ),
                }
            },
            "/api/dashboard/integrations": {
                "get": page_of("integrations", "Integration", "Your integrations, oldest first"),
            },
            "/api/dashboard/contacts": {
                "get": page_of("contacts", "Contact", "Your contacts in natural name order", searchable=True),
            },
            "/api/dashboard/integrations/create": {
                "post": {
                    "summary": "Create an integration",
                    **write,
                    "requestBody": body("CreateIntegration"),
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "Any unique string of 1 to 64 characters. A repeat with the same key "
                            "creates nothing and answers 200 with the integration the first request created.",
                            "schema": {"type": "string", "minLength": 1, "maxLength": 64},
                        }
                    ],
                    "responses": responses(
                        {
                            "201": {"description": "Created", **integration},
                            "200": {"description": "Already created with this Idempotency-Key", **integration},
                        },
                        "400",
                        "413",
                        "415",
                        "422",
                        "429",
                    ),
                }
            },
            "/api/dashboard/integrations/test": {
                "post": {
                    "summary": "Test a configuration, or a saved integration; never saves",
                    **write,
                    "requestBody": body("TestRequest"),
                    "responses": responses(
                        {"200": {"description": "The outcome", "content": {JSON: {"schema": ref("TestResult")}}}},
                        "400",
                        "404",
                        "409",
                        "413",
                        "415",
                        "422",
                        "429",
                    ),
                }
            },
            **analytics_paths(id_param),
            **schedule_paths(id_param),
            "/api/dashboard/integrations/{integrationId}": {
                "parameters": id_param,
                "get": {
                    "summary": "One integration",
                    "responses": responses({"200": {"description": "The integration", **integration}}, "404"),
                },
                "put": {
                    "summary": "Change name, activation or configuration (blank secrets keep the stored ones)",
                    **write,
                    "requestBody": body("UpdateIntegration"),
                    "responses": responses(
                        {"200": {"description": "Updated", **integration}}, "400", "404", "413", "415", "422", "429"
                    ),
                },
                "delete": {
                    "summary": "Delete an integration",
                    **write,
                    "responses": responses({"204": {"description": "Deleted"}}, "400", "404", "429"),
                },
            },
            **webhook_paths(write, id_param),
            **oauth_paths(write),
            **team_paths(write),
        },
    }


WEBHOOK_STATUS = {
    "type": "object",
    "required": ["integrationId", "url", "events", "registered", "last24h", "deliveries"],
    "properties": {
        "integrationId": {"type": "string"},
        "url": {"type": "string", "description": "The inbound URL the CRM calls ({PUBLIC_BASE_URL}/webhooks/<token>)."},
        "publicUrlProblem": {"type": ["string", "null"], "description": "Why CRMs cannot reach it yet, if so."},
        "events": {"type": "array", "items": {"type": "string"}},
        "registered": {"type": "boolean"},
        "secretConfigured": {"type": "boolean"},
        "acceptUnsigned": {"type": "boolean"},
        "lastDeliveryAt": {"type": ["string", "null"]},
        "lastError": {"type": ["string", "null"]},
        "lastErrorAt": {"type": ["string", "null"]},
        "last24h": {
            "type": "object",
            "properties": {k: {"type": "integer"} for k in ("received", "duplicate", "rejected")},
        },
        "deliveries": {"type": "array", "items": {"type": "object"}, "description": "The last 50, newest first."},
    },
}


def webhook_paths(write: dict[str, Any], id_param: list[dict[str, Any]]) -> dict[str, Any]:
    """The webhook management operations of one integration (crm/webhooks)."""
    status = {"content": {JSON: {"schema": WEBHOOK_STATUS}}}
    base = "/api/dashboard/integrations/{integrationId}/webhooks"
    actions = {
        "register": "Register the inbound URL in the CRM (Chatwoot, Pipedrive), importing its signing secret",
        "unregister": "Remove the webhook from the CRM",
        "rotate": "A new inbound URL; the old one stops working at once",
        "test": "Send a signed sample event through the real verification path",
    }
    paths: dict[str, Any] = {
        base: {
            "parameters": id_param,
            "get": {
                "summary": "Webhook URL, status, counts of the last 24 h and the last 50 deliveries",
                "responses": responses({"200": {"description": "Webhook status", **status}}, "404", "422"),
            },
        }
    }
    for action, summary in actions.items():
        paths[f"{base}/{action}"] = {
            "parameters": id_param,
            "post": {
                "summary": summary,
                **write,
                "responses": responses(
                    {"200": {"description": "Webhook status", **status}}, "400", "404", "409", "422", "429"
                ),
            },
        }
    return paths


def oauth_paths(write: dict[str, Any]) -> dict[str, Any]:
    """Connect with OAuth 2.0 (crm/oauth): the start answers where to send the user agent."""
    request = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "type": {"type": "string"},
            "configuration": {"type": "object", "description": "provider and its non-secret fields"},
            "integrationId": {"type": "string", "description": "Reconnect this integration (same id)."},
        },
    }
    answer = {
        "type": "object",
        "required": ["authorizationUrl"],
        "properties": {"authorizationUrl": {"type": "string", "format": "uri"}},
    }
    return {
        "/api/dashboard/integrations/oauth/start": {
            "post": {
                "summary": "Start Connect with OAuth: the provider's consent page to send the user agent to",
                **write,
                "requestBody": {"required": True, "content": {JSON: {"schema": request}}},
                "responses": responses(
                    {"200": {"description": "Follow it with the same session", "content": {JSON: {"schema": answer}}}},
                    "400",
                    "404",
                    "413",
                    "415",
                    "422",
                    "429",
                ),
            }
        }
    }
