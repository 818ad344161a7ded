"""Team rules. Plain functions: they take the acting user, never read `request`.

- Every team object is reached through the actor's membership: a non-member gets TeamNotFound
  (404), a member asking for an admin action gets TeamForbidden (403).
- Owners and admins manage members, invitations and shares; anyone may leave; the last owner may not.
- An integration is shared by its owner (an owner or admin of the team). Members may *use* it (the
  resolver opens its secret on the outbound path only) and see its name, provider and host; they never
  read, edit, reconnect, delete or re-share it: those functions load integrations by owner only.
- Unsharing deletes the share row: every later lookup (a queued job's included) fails at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from crm import audit
from crm.extensions import db
from crm.integrations import service as integrations
from crm.models import Integration, IntegrationShare, Team, TeamInvitation, TeamMembership, User, find_owned
from crm.providers.base import unsafe_character_problem
from crm.providers.registry import get_provider

MANAGERS = ("owner", "admin")
MAX_NAME = 100


class TeamNotFound(LookupError):
    """No such team, invitation or member visible to this user (whether or not it exists)."""


class TeamForbidden(PermissionError):
    def __init__(self, message: str = "Only the team's owners and admins may do that."):
        super().__init__(message)
        self.message = message


class TeamInvalid(ValueError):
    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("Please correct the highlighted fields.")
        self.message = "Please correct the highlighted fields."
        self.fields = fields


@dataclass
class Member:
    user_id: int
    email: str
    role: str


def _uuid(value: object) -> str | None:
    import uuid

    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


# --- reading ------------------------------------------------------------------------------------


def membership(user: User, team_id: object) -> TeamMembership | None:
    key = _uuid(team_id)
    if key is None:
        return None
    query = select(TeamMembership).where(TeamMembership.team_id == key, TeamMembership.user_id == user.id)
    return db.session.scalars(query).first()


def get_team(user: User, team_id: object) -> tuple[Team, str]:
    """The team and the user's role in it; TeamNotFound for anyone who is not a member."""
    member = membership(user, team_id)
    if member is None:
        raise TeamNotFound(team_id)
    return db.session.get(Team, member.team_id), member.role


def managed_team(user: User, team_id: object) -> Team:
    team, role = get_team(user, team_id)
    if role not in MANAGERS:
        raise TeamForbidden()
    return team


def list_teams(user: User) -> list[tuple[Team, str]]:
    query = (
        select(Team, TeamMembership.role)
        .join(TeamMembership, TeamMembership.team_id == Team.id)
        .where(TeamMembership.user_id == user.id)
        .order_by(TeamMembership.created_at, Team.id)
    )
    return [(team, role) for team, role in db.session.execute(query)]


def members(team: Team) -> list[Member]:
    query = (
        select(TeamMembership, User.email)
        .join(User, User.id == TeamMembership.user_id)
        .where(TeamMembership.team_id == team.id)
        .order_by(TeamMembership.created_at, TeamMembership.id)
    )
    return [Member(m.user_id, email, m.role) for m, email in db.session.execute(query)]


def pending_invitations(team: Team) -> list[TeamInvitation]:
    query = select(TeamInvitation).where(TeamInvitation.team_id == team.id, TeamInvitation.status == "pending")
    return list(db.session.scalars(query.order_by(TeamInvitation.created_at)))


def my_invitations(user: User) -> list[tuple[TeamInvitation, Team]]:
    query = (
        select(TeamInvitation, Team)
        .join(Team, Team.id == TeamInvitation.team_id)
        .where(TeamInvitation.email == user.email.lower(), TeamInvitation.status == "pending")
        .order_by(TeamInvitation.created_at)
    )
    return [(invitation, team) for invitation, team in db.session.execute(query)]


def shared_integrations(team: Team) -> list[Integration]:
    query = (
        select(Integration)
        .join(IntegrationShare, IntegrationShare.integration_id == Integration.id)
        .where(IntegrationShare.team_id == team.id)
        .order_by(IntegrationShare.created_at)
    )
    return list(db.session.scalars(query))


def host_of(integration: Integration) -> str:
    """What a member may see of where it points: the host of its address, never a secret."""
    from urllib.parse import urlsplit

    config = integration.configuration or {}
    for name in ("base_url", "api_url", "instance_url", "api_domain"):
        value = config.get(name)
        if isinstance(value, str) and value.startswith("http"):
            return urlsplit(value).hostname or ""
    return ""


def describe(integration: Integration) -> dict:
    """A shared integration as a member sees it: no configuration, no secret, not even last-4."""
    provider = get_provider(integration.provider)
    return {
        "id": integration.id,
        "name": integration.name,
        "provider": provider.id,
        "providerName": provider.name,
        "host": host_of(integration),
        "isActive": integration.is_active,
        "ownerId": integration.user_id,
    }


def usable_shared(user: User, integration_id: object) -> Integration | None:
    """Another user's integration shared with a team this user belongs to, or None."""
    key = _uuid(integration_id)
    if key is None:
        return None
    query = (
        select(Integration)
        .join(IntegrationShare, IntegrationShare.integration_id == Integration.id)
        .join(TeamMembership, TeamMembership.team_id == IntegrationShare.team_id)
        .where(Integration.id == key, TeamMembership.user_id == user.id, Integration.user_id != user.id)
    )
    return db.session.scalars(query).first()


def may_use(user: User, integration: Integration) -> bool:
    return integration.user_id == user.id or usable_shared(user, integration.id) is not None


def designated_for(user: User) -> tuple[Integration, Team] | None:
    """The first designated integration (teams in the order joined) that is still shared and on."""
    for team, _role in list_teams(user):
        if team.designated_integration_id is None:
            continue
        integration = usable_shared(user, team.designated_integration_id)
        if integration is None and (own := find_owned(Integration, user, team.designated_integration_id)):
            integration = own
        if integration is not None and integration.is_active:
            return integration, team
    return None


# --- changing -----------------------------------------------------------------------------------


def _name(raw: object) -> str:
    name = str(raw or "").strip()
    if not name or len(name) > MAX_NAME:
        raise TeamInvalid({"name": [f"Give the team a name of 1 to {MAX_NAME} characters."]})
    problem = unsafe_character_problem(name)  # the one rule for stored text (a NUL fails PostgreSQL)
    if problem:
        raise TeamInvalid({"name": [problem]})
    return name


def create_team(user: User, name: object) -> Team:
    team = Team(name=_name(name))
    db.session.add(team)
    db.session.flush()
    db.session.add(TeamMembership(team_id=team.id, user_id=user.id, role="owner"))
    audit.record(user.id, "team_created", detail=f"team {team.id}")
    db.session.commit()
    return team


def invite(actor: User, team_id: object, email: object) -> TeamInvitation:
    """An invitation to an address. It is made whether or not an account has it, so the answer
    tells nobody which addresses have accounts; the account that has (or gets) it may answer."""
    team = managed_team(actor, team_id)
    address = str(email or "").strip().lower()
    if "@" not in address or len(address) > 254 or address.startswith("@") or address.endswith("@"):
        raise TeamInvalid({"email": ["Enter an email address."]})
    if unsafe_character_problem(address):
        raise TeamInvalid({"email": ["An email address cannot contain control characters."]})
    if any(m.email == address for m in members(team)):
        raise TeamInvalid({"email": ["That person is already a member."]})
    existing = next((i for i in pending_invitations(team) if i.email == address), None)
    if existing is not None:
        return existing
    invitation = TeamInvitation(team_id=team.id, email=address, invited_by=actor.id)
    db.session.add(invitation)
    audit.record(actor.id, "team_invited", detail=f"{address} to team {team.id}")
    db.session.commit()
    return invitation


def _my_invitation(user: User, invitation_id: object) -> TeamInvitation:
    key = _uuid(invitation_id)
    invitation = db.session.get(TeamInvitation, key) if key else None
    if invitation is None or invitation.status != "pending" or invitation.email != user.email.lower():
        raise TeamNotFound(invitation_id)
    return invitation


def accept(user: User, invitation_id: object) -> Team:
    invitation = _my_invitation(user, invitation_id)
    invitation.status = "accepted"
    if membership(user, invitation.team_id) is None:
        db.session.add(TeamMembership(team_id=invitation.team_id, user_id=user.id, role="member"))
    audit.record(user.id, "team_joined", detail=f"team {invitation.team_id}")
    db.session.commit()
    return db.session.get(Team, invitation.team_id)


def decline(user: User, invitation_id: object) -> None:
    invitation = _my_invitation(user, invitation_id)
    invitation.status = "declined"
    audit.record(user.id, "team_declined", detail=f"team {invitation.team_id}")
    db.session.commit()


def remove_member(actor: User, team_id: object, user_id: object) -> None:
    """Leave (user_id is the actor) or remove someone (owners and admins; only an owner removes an
    owner). The last owner can do neither: the team would have nobody to manage it."""
    team, role = get_team(actor, team_id)
    try:
        target_id = int(str(user_id))
    except ValueError:
        raise TeamNotFound(user_id) from None
    target = db.session.scalars(
        select(TeamMembership).where(TeamMembership.team_id == team.id, TeamMembership.user_id == target_id)
    ).first()
    if target is None:
        raise TeamNotFound(user_id)
    if target_id != actor.id and (role not in MANAGERS or (target.role == "owner" and role != "owner")):
        raise TeamForbidden()
    owners = [m for m in members(team) if m.role == "owner"]
    if target.role == "owner" and len(owners) == 1:
        raise TeamForbidden("The last owner cannot leave: make another member an owner first.")
    db.session.delete(target)
    action = "team_left" if target_id == actor.id else "team_removed"
    audit.record(actor.id, action, detail=f"user {target_id} from team {team.id}")
    db.session.commit()


def set_role(actor: User, team_id: object, user_id: object, role: object) -> None:
    team, actor_role = get_team(actor, team_id)
    if role not in ("owner", "admin", "member"):
        raise TeamInvalid({"role": ["Choose owner, admin or member."]})
    if actor_role != "owner":
        raise TeamForbidden("Only the team's owners may change roles.")
    target = db.session.scalars(
        select(TeamMembership).where(TeamMembership.team_id == team.id, TeamMembership.user_id == _int(user_id))
    ).first()
    if target is None:
        raise TeamNotFound(user_id)
    if target.role == "owner" and role != "owner" and sum(m.role == "owner" for m in members(team)) == 1:
        raise TeamForbidden("The last owner cannot step down: make another member an owner first.")
    target.role = role
    audit.record(actor.id, "team_role", detail=f"user {target.user_id} is {role} in team {team.id}")
    db.session.commit()


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1


def share(actor: User, team_id: object, integration_id: object) -> IntegrationShare:
    """Share one of the actor's *own* integrations (IntegrationNotFound otherwise: a shared one cannot
    be re-shared) with a team the actor manages."""
    team = managed_team(actor, team_id)
    integration = integrations.get_integration(actor, integration_id)
    existing = db.session.scalars(
        select(IntegrationShare).where(
            IntegrationShare.team_id == team.id, IntegrationShare.integration_id == integration.id
        )
    ).first()
    if existing is not None:
        return existing
    shared = IntegrationShare(team_id=team.id, integration_id=integration.id, shared_by=actor.id)
    db.session.add(shared)
    audit.record(actor.id, "shared", integration, detail=f"with team {team.id}")
    db.session.commit()
    return shared


def unshare(actor: User, team_id: object, integration_id: object) -> None:
    """The integration's owner (any member) or a team manager. Effective at once: every use looks
    the share up again (a queued job's included)."""
    team, role = get_team(actor, team_id)
    key = _uuid(integration_id)
    row = db.session.scalars(
        select(IntegrationShare).where(IntegrationShare.team_id == team.id, IntegrationShare.integration_id == key)
    ).first()
    if row is None:
        raise TeamNotFound(integration_id)
    integration = db.session.get(Integration, row.integration_id)
    if integration.user_id != actor.id and role not in MANAGERS:
        raise TeamForbidden()
    db.session.delete(row)
    if team.designated_integration_id == integration.id:
        team.designated_integration_id = None
    audit.record(actor.id, "unshared", integration, detail=f"from team {team.id}")
    db.session.commit()


def designate(actor: User, team_id: object, integration_id: object | None) -> Team:
    """The integration members act through when they have none of their own; None clears it."""
    team = managed_team(actor, team_id)
    if integration_id in (None, ""):
        team.designated_integration_id = None
    else:
        chosen = next((i for i in shared_integrations(team) if i.id == _uuid(integration_id)), None)
        if chosen is None:
            raise TeamInvalid({"integrationId": ["Share that integration with the team first."]})
        team.designated_integration_id = chosen.id
    audit.record(actor.id, "team_designated", detail=f"{team.designated_integration_id} for team {team.id}")
    db.session.commit()
    return team


def record_use(user: User, integration: Integration, purpose: str) -> None:
    """Every use of a shared integration, by whom: in the member's log and in the owner's."""
    audit.record(user.id, "shared_use", integration, detail=purpose)
    audit.record(integration.user_id, "shared_use", integration, detail=f"by {user.email}: {purpose}")
