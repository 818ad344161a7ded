"""Teams (issue #16): roles, invitations, sharing an integration without sharing its secret, and the
resolver acting through a team's integration on a member's behalf."""

import hashlib
import secrets

import pytest
import sqlalchemy as sa

from crm.contacts import service as contacts
from crm.extensions import db
from crm.models import AuditEvent, SyncRun
from crm.operations.messages import send_message
from crm.operations.resolver import NoCRMConfigured, crm_for, source_for
from crm.operations.sync import IDENTIFIER_PREFIX, run_sync
from crm.teams import service as teams
from crm.teams.service import TeamForbidden, TeamNotFound
from tests.conftest import APIClient
from tests.test_canary import find_leaks
from tests.test_operations import chatwoot_integration


def sync_now(owner, integration_id=None) -> SyncRun:
    run = SyncRun(user_id=owner.id, status="queued", integration_id=integration_id)
    db.session.add(run)
    db.session.commit()
    return run_sync(run.id)


def fingerprint(integration_id: str) -> str:
    row = db.session.execute(sa.text("select * from integrations where id = :id"), {"id": integration_id}).one()
    return hashlib.sha256(repr(tuple(row)).encode()).hexdigest()


def team_of(owner, *members):
    team = teams.create_team(owner, "Support team")
    for member in members:
        invitation = teams.invite(owner, team.id, member.email.upper())
        teams.accept(member, invitation.id)
    return team


# --- roles and invitations --------------------------------------------------------------------


def test_invitations_are_answered_by_the_invitee_only(alice, bob, make_user):
    carol = make_user("carol@example.com")
    team = teams.create_team(alice, "Sales")
    invitation = teams.invite(alice, team.id, "Bob@Example.com")
    with pytest.raises(TeamNotFound):
        teams.accept(carol, invitation.id)
    with pytest.raises(TeamNotFound):
        teams.get_team(bob, team.id)  # not a member before accepting
    teams.decline(bob, invitation.id)
    with pytest.raises(TeamNotFound):
        teams.accept(bob, invitation.id)  # answered once
    again = teams.invite(alice, team.id, bob.email)
    assert teams.accept(bob, again.id).id == team.id
    assert teams.get_team(bob, team.id)[1] == "member"
    assert [m.email for m in teams.members(team)] == ["alice@example.com", "bob@example.com"]


def test_owners_and_admins_manage_members_and_the_last_owner_stays(alice, bob, make_user):
    carol = make_user("carol@example.com")
    team = team_of(alice, bob, carol)
    with pytest.raises(TeamForbidden):
        teams.invite(bob, team.id, "dave@example.com")  # a member
    with pytest.raises(TeamForbidden):
        teams.remove_member(bob, team.id, carol.id)
    with pytest.raises(TeamForbidden):
        teams.set_role(bob, team.id, bob.id, "owner")
    with pytest.raises(TeamForbidden, match="last owner"):
        teams.remove_member(alice, team.id, alice.id)
    teams.set_role(alice, team.id, bob.id, "admin")
    with pytest.raises(TeamForbidden):
        teams.remove_member(bob, team.id, alice.id)  # an admin does not remove an owner
    teams.remove_member(bob, team.id, carol.id)  # an admin removes a member
    teams.remove_member(bob, team.id, bob.id)  # anyone may leave
    assert [m.email for m in teams.members(team)] == ["alice@example.com"]
    with pytest.raises(TeamNotFound):
        teams.get_team(carol, team.id)
    actions = set(db.session.scalars(sa.select(AuditEvent.action)))
    assert {"team_created", "team_invited", "team_joined", "team_removed", "team_left"} <= actions


def test_only_the_integration_owner_shares_and_members_cannot_reshare(alice, bob, make_integration):
    mine = make_integration(alice)
    team = team_of(alice, bob)
    bobs_team = teams.create_team(bob, "Bob's own")
    teams.share(alice, team.id, mine.id)
    with pytest.raises(LookupError):
        teams.share(bob, bobs_team.id, mine.id)  # re-sharing: not his integration
    with pytest.raises(TeamForbidden):
        teams.unshare(bob, team.id, mine.id)  # a member neither owns it nor manages the team
    with pytest.raises(TeamForbidden):
        teams.designate(bob, team.id, mine.id)
    assert teams.shared_integrations(bobs_team) == []


# --- the acceptance: one shared Chatwoot, used by a member -------------------------------------


def test_member_syncs_and_messages_through_a_shared_chatwoot_and_cannot_touch_it(
    app, alice, bob, allow_local, chatwoot, caplog
):
    canary = "CANARY" + secrets.token_hex(16)
    chatwoot.add_user({chatwoot.account.id: "administrator"}, token=canary)
    shared = chatwoot_integration(alice, chatwoot, token=canary, name="Team Chatwoot")
    team = team_of(alice, bob)
    teams.share(alice, team.id, shared.id)
    teams.designate(alice, team.id, shared.id)

    # The resolver: bob has no integration of his own, so the team's designated one is used, shared.
    assert source_for(bob) == "team"
    target = crm_for(bob)
    assert target.source == "team" and target.shared and target.integration_id == shared.id

    # The member syncs his own contacts (tenant identifiers, never adopted by email) and messages.
    contacts.create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    ana_of_bob = contacts.create_contact(bob, {"name": "Ana B", "email": "ana@example.com"})
    assert sync_now(alice).status == "done"
    run = sync_now(bob)
    assert run.status == "done", run.message
    remote = list(chatwoot.account.contacts.values())
    assert len(remote) == 2  # bob's Ana is a contact of his, not alice's Ana adopted by email
    assert sum((c.get("identifier") or "").startswith(IDENTIFIER_PREFIX) for c in remote) == 1
    sent = send_message(bob, ana_of_bob.id, "Hello from the team")
    assert "team" in sent.target
    assert [m["content"] for m in chatwoot.account.messages] == ["Hello from the team"]
    assert any(r["headers"].get("api_access_token") == canary for r in chatwoot.requests)

    # Every use is audited, by whom: in the member's log and in the owner's.
    uses = db.session.execute(
        sa.select(AuditEvent.user_id, AuditEvent.detail).where(AuditEvent.action == "shared_use")
    ).all()
    assert {user_id for user_id, _ in uses} == {alice.id, bob.id}
    assert any("by bob@example.com" in (detail or "") for _, detail in uses)

    # The member's attempts to read, edit, delete, reconnect or re-share: 404, nothing changes.
    member = APIClient(app.test_client(), bob.email)
    before = fingerprint(shared.id)
    seen = []
    base = f"/api/dashboard/integrations/{shared.id}"
    attempts = [
        member.get(base),
        member.put(base, json={"name": "pwned", "isActive": False}),
        member.put(base, json={"configuration": {"apiKey": "stolen"}}),
        member.delete(base),
        member.post("/api/dashboard/integrations/test", json={"type": "CRM", "integrationId": shared.id}),
        member.put(f"{base}/schedule", json={"kind": "hourly"}),
        member.post(f"{base}/webhooks/register"),
        member.client.get(f"/dashboard/integrations/{shared.id}/edit"),
        member.client.post(f"/dashboard/integrations/{shared.id}/delete", data={"csrf_token": member.csrf}),
        member.client.post(f"/dashboard/integrations/{shared.id}/toggle", data={"csrf_token": member.csrf}),
        member.client.post(f"/integrations/oauth/reconnect/{shared.id}", data={"csrf_token": member.csrf}),
        member.client.post(
            f"/dashboard/teams/{team.id}/shares", data={"csrf_token": member.csrf, "integration_id": shared.id}
        ),
        member.post(f"/api/dashboard/teams/{team.id}/shares", json={"integrationId": shared.id}),
        member.delete(f"/api/dashboard/teams/{team.id}/shares/{shared.id}"),
        member.put(f"/api/dashboard/teams/{team.id}/designated", json={"integrationId": None}),
    ]
    for response in attempts:
        assert response.status_code in (403, 404), (response.request.path, response.status_code)
        seen.append(response.get_data(as_text=True))
    db.session.expire_all()
    assert fingerprint(shared.id) == before
    assert teams.shared_integrations(team)[0].id == shared.id

    # What the member may see: its name, provider and host; never the secret, not even its end.
    listed = member.get(f"/api/dashboard/teams/{team.id}").get_json()
    assert listed["sharedIntegrations"][0]["name"] == "Team Chatwoot"
    assert listed["sharedIntegrations"][0]["host"] == "127.0.0.1"
    for path in ("/api/dashboard/teams", f"/api/dashboard/teams/{team.id}", "/api/dashboard/integrations",
                 f"/dashboard/teams/{team.id}", "/dashboard/teams", "/contacts", "/dashboard"):  # fmt: skip
        response = member.client.get(path)
        seen.append(response.get_data(as_text=True))
    pages = "\n".join(seen)
    assert "Team Chatwoot" in pages
    assert find_leaks(pages, [canary]) == [] and canary[-4:] not in pages
    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert find_leaks(logs, [canary]) == []


def test_unsharing_takes_effect_at_once_also_for_queued_jobs(app, alice, bob, allow_local, chatwoot):
    shared = chatwoot_integration(alice, chatwoot)
    team = team_of(alice, bob)
    teams.share(alice, team.id, shared.id)
    teams.designate(alice, team.id, shared.id)
    contacts.create_contact(bob, {"name": "Ben", "email": "ben@example.com"})
    queued = SyncRun(user_id=bob.id, status="queued", integration_id=shared.id)
    default = SyncRun(user_id=bob.id, status="queued")
    db.session.add_all([queued, default])
    db.session.commit()

    teams.unshare(alice, team.id, shared.id)

    assert run_sync(queued.id).status == "failed"
    assert run_sync(default.id).status == "failed"
    assert chatwoot.account.contacts == {}
    with pytest.raises(NoCRMConfigured):
        crm_for(bob)
    with pytest.raises(LookupError):
        crm_for(bob, shared.id)
    assert source_for(bob) == "none"
    assert db.session.get(type(team), team.id).designated_integration_id is None


def test_a_removed_member_loses_the_shared_integration(alice, bob, allow_local, chatwoot):
    shared = chatwoot_integration(alice, chatwoot)
    team = team_of(alice, bob)
    teams.share(alice, team.id, shared.id)
    assert crm_for(bob, shared.id).integration_id == shared.id
    teams.remove_member(alice, team.id, bob.id)
    with pytest.raises(LookupError):
        crm_for(bob, shared.id)


def test_own_primary_comes_before_the_team_integration(alice, bob, allow_local, chatwoot):
    shared = chatwoot_integration(alice, chatwoot, name="Team one")
    own = chatwoot_integration(bob, chatwoot, name="Bob's own")
    team = team_of(alice, bob)
    teams.share(alice, team.id, shared.id)
    teams.designate(alice, team.id, shared.id)
    assert source_for(bob) == "integration"
    assert crm_for(bob).integration_id == own.id


# --- the API ----------------------------------------------------------------------------------


def test_team_api_walk(app, api, bob_api, alice, bob, make_integration):
    mine = make_integration(alice)
    created = api.post("/api/dashboard/teams", json={"name": "Ops"})
    assert created.status_code == 201 and created.get_json()["role"] == "owner"
    team_id = created.get_json()["id"]
    assert api.post("/api/dashboard/teams", json={"name": " "}).status_code == 422
    assert bob_api.get(f"/api/dashboard/teams/{team_id}").status_code == 404
    invited = api.post(f"/api/dashboard/teams/{team_id}/invitations", json={"email": "bob@example.com"})
    assert invited.status_code == 201
    assert [i["teamName"] for i in bob_api.get("/api/dashboard/invitations").get_json()["invitations"]] == ["Ops"]
    assert api.post(f"/api/dashboard/invitations/{invited.get_json()['id']}/accept").status_code == 404
    assert bob_api.post(f"/api/dashboard/invitations/{invited.get_json()['id']}/accept").status_code == 200
    shared = api.post(f"/api/dashboard/teams/{team_id}/shares", json={"integrationId": mine.id})
    assert shared.status_code == 201
    assert api.put(f"/api/dashboard/teams/{team_id}/designated", json={"integrationId": mine.id}).status_code == 200
    seen_by_bob = bob_api.get(f"/api/dashboard/teams/{team_id}").get_json()
    assert seen_by_bob["role"] == "member" and seen_by_bob["designatedIntegrationId"] == mine.id
    assert seen_by_bob["invitations"] == []
    assert "configuration" not in seen_by_bob["sharedIntegrations"][0]
    refused = bob_api.post(f"/api/dashboard/teams/{team_id}/invitations", json={"email": "x@example.com"})
    assert refused.status_code == 403
    assert bob_api.delete(f"/api/dashboard/teams/{team_id}/members/{alice.id}").status_code == 403
    assert api.delete(f"/api/dashboard/teams/{team_id}/members/{alice.id}").status_code == 403  # last owner
    assert api.delete(f"/api/dashboard/teams/{team_id}/shares/{mine.id}").status_code == 204
    assert bob_api.get(f"/api/dashboard/teams/{team_id}").get_json()["sharedIntegrations"] == []
    assert bob_api.delete(f"/api/dashboard/teams/{team_id}/members/{bob.id}").status_code == 204
    assert bob_api.get(f"/api/dashboard/teams/{team_id}").status_code == 404
    actions = set(db.session.scalars(sa.select(AuditEvent.action)))
    assert {"shared", "unshared", "team_invited", "team_left"} <= actions
