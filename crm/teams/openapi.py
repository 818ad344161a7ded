"""The teams endpoints and their objects in the OpenAPI document (merged by crm.api.openapi)."""

from __future__ import annotations

from typing import Any

ROLES = ["owner", "admin", "member"]


def team_schemas() -> dict[str, Any]:
    string, nullable = {"type": "string"}, {"type": ["string", "null"]}
    return {
        "SharedIntegration": {
            "type": "object",
            "description": "An integration shared with a team, as members see it: never its configuration or a "
            "secret (not even the last characters).",
            "required": ["id", "name", "provider", "providerName", "host", "isActive", "ownerId"],
            "properties": {
                "id": string,
                "name": string,
                "provider": string,
                "providerName": string,
                "host": string,
                "isActive": {"type": "boolean"},
                "ownerId": {"type": "integer"},
            },
        },
        "Invitation": {
            "type": "object",
            "required": ["id", "teamId", "teamName", "email", "status", "createdAt"],
            "properties": {
                "id": string,
                "teamId": string,
                "teamName": string,
                "email": string,
                "status": {"enum": ["pending", "accepted", "declined"]},
                "createdAt": nullable,
            },
        },
        "Team": {
            "type": "object",
            "required": [
                "id", "name", "role", "designatedIntegrationId", "members", "sharedIntegrations", "invitations",
                "createdAt",
            ],
            "properties": {
                "id": string,
                "name": string,
                "role": {"enum": ROLES, "description": "Your role in the team."},
                "designatedIntegrationId": {
                    **nullable,
                    "description": "The shared integration members act through when they have none of their own.",
                },
                "members": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["userId", "email", "role"],
                        "properties": {"userId": {"type": "integer"}, "email": string, "role": {"enum": ROLES}},
                    },
                },
                "sharedIntegrations": {"type": "array", "items": {"$ref": "#/components/schemas/SharedIntegration"}},
                "invitations": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Invitation"},
                    "description": "Pending invitations (owners and admins only; empty for members).",
                },
                "createdAt": nullable,
            },
        },
        "TeamInput": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100}},
        },
        "InvitationInput": {
            "type": "object",
            "required": ["email"],
            "properties": {"email": {"type": "string", "format": "email", "maxLength": 254}},
        },
        "RoleInput": {"type": "object", "required": ["role"], "properties": {"role": {"enum": ROLES}}},
        "ShareInput": {"type": "object", "required": ["integrationId"], "properties": {"integrationId": string}},
        "DesignateInput": {
            "type": "object",
            "required": ["integrationId"],
            "properties": {"integrationId": {**nullable, "description": "A shared integration's id; null clears."}},
        },
    }


def team_paths(write: dict[str, Any]) -> dict[str, Any]:
    from crm.api.openapi import JSON, ref, responses

    team = {"content": {JSON: {"schema": ref("Team")}}}
    invitation = {"content": {JSON: {"schema": ref("Invitation")}}}
    body = lambda name: {"required": True, "content": {JSON: {"schema": ref(name)}}}  # noqa: E731
    team_id = {"name": "teamId", "in": "path", "required": True, "schema": {"type": "string"}}
    user_id = {"name": "userId", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
    invitation_id = {"name": "invitationId", "in": "path", "required": True, "schema": {"type": "string"}}
    integration_id = {"name": "integrationId", "in": "path", "required": True, "schema": {"type": "string"}}
    with_body = ("400", "403", "404", "413", "415", "422", "429")
    return {
        "/api/dashboard/teams": {
            "get": {
                "summary": "Your teams, with members and shared integrations",
                "responses": responses(
                    {
                        "200": {
                            "description": "Teams",
                            "content": {
                                JSON: {
                                    "schema": {
                                        "type": "object",
                                        "required": ["teams"],
                                        "properties": {"teams": {"type": "array", "items": ref("Team")}},
                                    }
                                }
                            },
                        }
                    }
                ),
            },
            "post": {
                "summary": "Create a team (you are its owner)",
                **write,
                "requestBody": body("TeamInput"),
                "responses": responses({"201": {"description": "Created", **team}}, "400", "413", "415", "422", "429"),
            },
        },
        "/api/dashboard/teams/{teamId}": {
            "parameters": [team_id],
            "get": {
                "summary": "One of your teams (404 when you are not a member)",
                "responses": responses({"200": {"description": "The team", **team}}, "404"),
            },
        },
        "/api/dashboard/teams/{teamId}/invitations": {
            "parameters": [team_id],
            "post": {
                "summary": "Invite an email address (owners and admins)",
                **write,
                "requestBody": body("InvitationInput"),
                "responses": responses({"201": {"description": "Invited", **invitation}}, *with_body),
            },
        },
        "/api/dashboard/teams/{teamId}/members/{userId}": {
            "parameters": [team_id, user_id],
            "put": {
                "summary": "Change a member's role (owners)",
                **write,
                "requestBody": body("RoleInput"),
                "responses": responses({"200": {"description": "Changed", **team}}, *with_body),
            },
            "delete": {
                "summary": "Remove a member (owners and admins), or leave (your own id); never the last owner",
                **write,
                "responses": responses({"204": {"description": "Removed"}}, "400", "403", "404", "429"),
            },
        },
        "/api/dashboard/teams/{teamId}/shares": {
            "parameters": [team_id],
            "post": {
                "summary": "Share one of your own integrations with the team (owners and admins)",
                **write,
                "requestBody": body("ShareInput"),
                "responses": responses({"201": {"description": "Shared", **team}}, *with_body),
            },
        },
        "/api/dashboard/teams/{teamId}/shares/{integrationId}": {
            "parameters": [team_id, integration_id],
            "delete": {
                "summary": "Unshare (its owner, or the team's owners and admins); effective at once",
                **write,
                "responses": responses({"204": {"description": "Unshared"}}, "400", "403", "404", "429"),
            },
        },
        "/api/dashboard/teams/{teamId}/designated": {
            "parameters": [team_id],
            "put": {
                "summary": "Choose the team's integration (owners and admins)",
                **write,
                "requestBody": body("DesignateInput"),
                "responses": responses({"200": {"description": "Chosen", **team}}, *with_body),
            },
        },
        "/api/dashboard/invitations": {
            "get": {
                "summary": "Invitations addressed to you, pending",
                "responses": responses(
                    {
                        "200": {
                            "description": "Invitations",
                            "content": {
                                JSON: {
                                    "schema": {
                                        "type": "object",
                                        "required": ["invitations"],
                                        "properties": {"invitations": {"type": "array", "items": ref("Invitation")}},
                                    }
                                }
                            },
                        }
                    }
                ),
            },
        },
        "/api/dashboard/invitations/{invitationId}/accept": {
            "parameters": [invitation_id],
            "post": {
                "summary": "Accept an invitation addressed to you",
                **write,
                "responses": responses({"200": {"description": "Joined", **team}}, "400", "404", "429"),
            },
        },
        "/api/dashboard/invitations/{invitationId}/decline": {
            "parameters": [invitation_id],
            "post": {
                "summary": "Decline an invitation addressed to you",
                **write,
                "responses": responses({"204": {"description": "Declined"}}, "400", "404", "429"),
            },
        },
    }
