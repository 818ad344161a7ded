"""The teams JSON API: routes on the API blueprint (imported by crm/api/__init__.py), so they share
its JSON errors, session rules and no-store header. A non-member gets 404 for every team object; a
member asking for an admin action gets 403."""

from __future__ import annotations

from contextlib import contextmanager

from flask_login import current_user, login_required

from crm import limits
from crm.api import bp
from crm.api.body import APIError, json_body, json_response
from crm.api.present import timestamp
from crm.integrations import service as integrations
from crm.teams import service
from crm.teams.service import TeamForbidden, TeamInvalid, TeamNotFound

NOT_FOUND = "Team not found."


@contextmanager
def answered():
    try:
        yield
    except (TeamNotFound, integrations.IntegrationNotFound):
        raise APIError(404, NOT_FOUND) from None
    except TeamForbidden as exc:
        raise APIError(403, exc.message) from None
    except TeamInvalid as exc:
        raise APIError(422, exc.message, exc.fields) from None


def team_json(team, role: str) -> dict:
    manager = role in service.MANAGERS
    return {
        "id": team.id,
        "name": team.name,
        "role": role,
        "designatedIntegrationId": team.designated_integration_id,
        "members": [{"userId": m.user_id, "email": m.email, "role": m.role} for m in service.members(team)],
        "sharedIntegrations": [service.describe(i) for i in service.shared_integrations(team)],
        "invitations": [invitation_json(i, team) for i in service.pending_invitations(team)] if manager else [],
        "createdAt": timestamp(team.created_at),
    }


def invitation_json(invitation, team) -> dict:
    return {
        "id": invitation.id,
        "teamId": team.id,
        "teamName": team.name,
        "email": invitation.email,
        "status": invitation.status,
        "createdAt": timestamp(invitation.created_at),
    }


def body_field(name: str):
    return json_body().get(name)


@bp.get("/dashboard/teams")
@login_required
def list_teams():
    return json_response({"teams": [team_json(team, role) for team, role in service.list_teams(current_user)]})


@bp.post("/dashboard/teams")
@login_required
@limits.api_write
def create_team():
    with answered():
        team = service.create_team(current_user, body_field("name"))
    return json_response(team_json(team, "owner"), 201)


@bp.get("/dashboard/teams/<team_id>")
@login_required
def get_team(team_id: str):
    with answered():
        team, role = service.get_team(current_user, team_id)
    return json_response(team_json(team, role))


@bp.post("/dashboard/teams/<team_id>/invitations")
@login_required
@limits.api_write
def invite(team_id: str):
    with answered():
        service.get_team(current_user, team_id)  # 404 before reading the body
        invitation = service.invite(current_user, team_id, body_field("email"))
        team, _role = service.get_team(current_user, team_id)
    return json_response(invitation_json(invitation, team), 201)


@bp.get("/dashboard/invitations")
@login_required
def my_invitations():
    return json_response({"invitations": [invitation_json(i, t) for i, t in service.my_invitations(current_user)]})


@bp.post("/dashboard/invitations/<invitation_id>/accept")
@login_required
@limits.api_write
def accept_invitation(invitation_id: str):
    with answered():
        team = service.accept(current_user, invitation_id)
    return json_response(team_json(team, "member"))


@bp.post("/dashboard/invitations/<invitation_id>/decline")
@login_required
@limits.api_write
def decline_invitation(invitation_id: str):
    with answered():
        service.decline(current_user, invitation_id)
    return "", 204


@bp.delete("/dashboard/teams/<team_id>/members/<int:user_id>")
@login_required
@limits.api_write
def remove_member(team_id: str, user_id: int):
    with answered():
        service.remove_member(current_user, team_id, user_id)
    return "", 204


@bp.put("/dashboard/teams/<team_id>/members/<int:user_id>")
@login_required
@limits.api_write
def set_member_role(team_id: str, user_id: int):
    with answered():
        service.get_team(current_user, team_id)
        service.set_role(current_user, team_id, user_id, body_field("role"))
        team, role = service.get_team(current_user, team_id)
    return json_response(team_json(team, role))


@bp.post("/dashboard/teams/<team_id>/shares")
@login_required
@limits.api_write
def share_integration(team_id: str):
    with answered():
        service.get_team(current_user, team_id)
        service.share(current_user, team_id, body_field("integrationId"))
        team, role = service.get_team(current_user, team_id)
    return json_response(team_json(team, role), 201)


@bp.delete("/dashboard/teams/<team_id>/shares/<integration_id>")
@login_required
@limits.api_write
def unshare_integration(team_id: str, integration_id: str):
    with answered():
        service.unshare(current_user, team_id, integration_id)
    return "", 204


@bp.put("/dashboard/teams/<team_id>/designated")
@login_required
@limits.api_write
def designate_integration(team_id: str):
    with answered():
        service.get_team(current_user, team_id)
        team = service.designate(current_user, team_id, body_field("integrationId"))
        _team, role = service.get_team(current_user, team_id)
    return json_response(team_json(team, role))
