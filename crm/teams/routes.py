"""Team pages: create a team, invite, answer invitations, members, and share or unshare
integrations. Plain forms (post, then redirect); the rules are in crm.teams.service."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from crm import limits
from crm.http import no_store
from crm.integrations import service as integrations
from crm.teams import bp, service
from crm.teams.service import TeamForbidden, TeamInvalid, TeamNotFound

bp.after_request(no_store)


def guarded(action, *args):
    """Run a service call for a page: 404 for what the user may not see, 403 for what they may
    see but not change, a flashed message for bad input. Returns True when it changed something."""
    try:
        action(current_user, *args)
        return True
    except (TeamNotFound, integrations.IntegrationNotFound):
        abort(404)
    except TeamForbidden as exc:
        abort(403, exc.message)
    except TeamInvalid as exc:
        flash(" ".join(m for ms in exc.fields.values() for m in ms), "error")
    return False


def back_to(team_id: str):
    return redirect(url_for(".show", team_id=team_id))


@bp.route("/dashboard/teams", methods=["GET", "POST"])
@login_required
@limits.write
def index():
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        try:
            team = service.create_team(current_user, request.form.get("name"))
            flash(f"The team “{team.name}” is created.", "success")
            return back_to(team.id)
        except TeamInvalid as exc:
            errors = exc.fields
    return render_template(
        "teams/index.html",
        teams=service.list_teams(current_user),
        invitations=service.my_invitations(current_user),
        errors=errors,
    ), 422 if errors else 200


@bp.get("/dashboard/teams/<team_id>")
@login_required
def show(team_id: str):
    try:
        team, role = service.get_team(current_user, team_id)
    except TeamNotFound:
        abort(404)
    shared = service.shared_integrations(team)
    shared_ids = {i.id for i in shared}
    return render_template(
        "teams/show.html",
        team=team,
        role=role,
        manager=role in service.MANAGERS,
        members=service.members(team),
        invitations=service.pending_invitations(team) if role in service.MANAGERS else [],
        shared=[service.describe(i) for i in shared],
        shareable=[i for i in integrations.list_integrations(current_user) if i.id not in shared_ids],
    )


@bp.post("/dashboard/teams/<team_id>/invite")
@login_required
@limits.write
def invite(team_id: str):
    if guarded(service.invite, team_id, request.form.get("email")):
        flash("The invitation is sent; it appears on the invitee's Teams page.", "success")
    return back_to(team_id)


@bp.post("/dashboard/teams/invitations/<invitation_id>/accept")
@login_required
@limits.write
def accept(invitation_id: str):
    try:
        team = service.accept(current_user, invitation_id)
    except TeamNotFound:
        abort(404)
    flash(f"You joined “{team.name}”.", "success")
    return back_to(team.id)


@bp.post("/dashboard/teams/invitations/<invitation_id>/decline")
@login_required
@limits.write
def decline(invitation_id: str):
    guarded(service.decline, invitation_id)
    flash("Invitation declined.", "info")
    return redirect(url_for(".index"))


@bp.post("/dashboard/teams/<team_id>/members/<int:user_id>/remove")
@login_required
@limits.write
def remove_member(team_id: str, user_id: int):
    if guarded(service.remove_member, team_id, user_id):
        if user_id == current_user.id:
            flash("You left the team.", "info")
            return redirect(url_for(".index"))
        flash("The member is removed.", "success")
    return back_to(team_id)


@bp.post("/dashboard/teams/<team_id>/shares")
@login_required
@limits.write
def share(team_id: str):
    if guarded(service.share, team_id, request.form.get("integration_id")):
        flash("Shared: members can use it, never read its secret or change it.", "success")
    return back_to(team_id)


@bp.post("/dashboard/teams/<team_id>/shares/<integration_id>/remove")
@login_required
@limits.write
def unshare(team_id: str, integration_id: str):
    if guarded(service.unshare, team_id, integration_id):
        flash("Unshared: members can no longer use it.", "success")
    return back_to(team_id)


@bp.post("/dashboard/teams/<team_id>/designate")
@login_required
@limits.write
def designate(team_id: str):
    if guarded(service.designate, team_id, request.form.get("integration_id") or None):
        flash("The team's integration is chosen.", "success")
    return back_to(team_id)


@bp.app_template_global()
def team_integration_name() -> str:
    """For the contacts page: the name of the team integration in use (no secret: its name only)."""
    found = service.designated_for(current_user)
    return found[0].name if found else ""


@bp.app_template_global()
def card_team_shares(integration) -> list:
    """For an integration's card: each team its owner manages, and whether it is shared there."""
    if not current_user.is_authenticated or integration.user_id != current_user.id:
        return []
    managed = [team for team, role in service.list_teams(current_user) if role in service.MANAGERS]
    return [(team, any(i.id == integration.id for i in service.shared_integrations(team))) for team in managed]
