"""The OpenAPI 3.1 document of the JSON API. Provider configurations are derived from the
providers' field schemas, so a new provider appears here without an edit."""

from __future__ import annotations

from typing import Any

from flask import Flask

from crm.api.body import MAX_BODY_BYTES
from crm.providers import all_providers
from crm.providers.base import OUTCOMES, Field, Provider

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


def field_schema(spec: Field, for_write: bool) -> dict[str, Any]:
    base: dict[str, Any] = {"description": spec.label + (f". {spec.help}" if spec.help else "")}
    if spec.sensitive:
        summary = ref("SecretSummary")
        if spec.type == "json":
            stored = {"type": "object", "additionalProperties": summary}
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
    for spec in provider.config_fields:
        target = properties
        if spec.group:
            group = properties.setdefault(spec.group, {"type": "object", "properties": {}})
            target = group["properties"]
        target[spec.api_name] = field_schema(spec, for_write)
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
            "required": ["id", "name", "type", "isActive", "configuration", "lastTest", "createdAt", "updatedAt"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "name": {"type": "string"},
                "type": {"const": "CRM"},
                "isActive": {"type": "boolean"},
                "configuration": {"oneOf": [ref(f"{p.id}Configuration") for p in available]},
                "lastTest": {"oneOf": [{"type": "null"}, ref("LastTest")]},
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
        "Provider": {"type": "object", "required": ["id", "name", "availability", "fields"]},
    }
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
                "get": {
                    "summary": "Your integrations",
                    "responses": responses(
                        {
                            "200": {
                                "description": "Integrations",
                                "content": {
                                    JSON: {
                                        "schema": {
                                            "type": "object",
                                            "required": ["integrations"],
                                            "properties": {
                                                "integrations": {"type": "array", "items": ref("Integration")}
                                            },
                                        }
                                    }
                                },
                            }
                        }
                    ),
                }
            },
            "/api/dashboard/integrations/create": {
                "post": {
                    "summary": "Create an integration",
                    **write,
                    "requestBody": body("CreateIntegration"),
                    "responses": responses(
                        {"201": {"description": "Created", **integration}}, "400", "413", "415", "422", "429"
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
        },
    }
