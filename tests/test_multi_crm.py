"""Operations that know no provider: contacts sync and messages to HubSpot, Pipedrive and Chatwoot
through the same code, state per contact and per CRM, several CRMs per user."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from crm.contacts import service as contacts
from crm.extensions import db
from crm.integrations import service
from crm.models import ContactLink, SyncRun
from crm.operations.messages import send_message
from crm.operations.resolver import NoCRMConfigured, crm_for
from crm.operations.sync import run_sync
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.pipedrive import FakePipedrive

UPSERT = "/crm/v3/objects/contacts/batch/upsert"
UPDATE = "/crm/v3/objects/contacts/batch/update"


@pytest.fixture
def hubspot(app, allow_local):
    with FakeHubSpot() as server:
        server.token = server.add_token()
        app.config["HUBSPOT_API_URL"] = server.url()
        yield server


@pytest.fixture
def pipedrive(app, allow_local):
    with FakePipedrive() as server:
        server.token = server.add_user()
        app.config["PIPEDRIVE_API_URL"] = server.url()
        yield server


def hubspot_integration(owner, server, name="HubSpot"):
    return service.create_integration(owner, "HUBSPOT", {"name": name, "access_token": server.token})


def pipedrive_integration(owner, server, name="Pipedrive"):
    return service.create_integration(
        owner, "PIPEDRIVE", {"name": name, "company_domain": "acme", "api_token": server.token}
    )


def chatwoot_integration(owner, server, name="Support"):
    values = {
        "name": name,
        "base_url": server.url(),
        "account_id": server.account.id,
        "api_key": server.admin_token,
        "auto_create_inboxes": True,
        "auto_create_bots": False,
        "sync_contacts": True,
    }
    return service.create_integration(owner, "CHATWOOT", values)


def make_contacts(owner, count, prefix="c"):
    contacts.add_contacts(
        owner, [{"name": f"Contact {i}", "email": f"{prefix}{i}@example.com", "phone": None} for i in range(count)]
    )


def sync_now(owner, integration_id=None) -> SyncRun:
    run = SyncRun(user_id=owner.id, status="queued", integration_id=integration_id)
    db.session.add(run)
    db.session.commit()
    return run_sync(run.id)


def links(integration) -> list[ContactLink]:
    return list(db.session.scalars(sa.select(ContactLink).where(ContactLink.integration_id == integration.id)))


def test_ten_thousand_contacts_reach_hubspot_in_a_hundred_upserts(alice, hubspot):
    hubspot_integration(alice, hubspot)
    make_contacts(alice, 10_000)
    hubspot.reset_counters()
    run = sync_now(alice)
    assert (run.status, run.created, run.failed) == ("done", 10_000, 0), run.message
    assert hubspot.calls("POST", UPSERT) == 100
    assert hubspot.count == 100  # nothing else: no search, no single calls
    assert len(hubspot.contacts) == 10_000

    hubspot.reset_counters()
    again = sync_now(alice)
    assert (again.unchanged, again.created, again.updated) == (10_000, 0, 0)
    assert hubspot.count == 0  # an unchanged re-run sends nothing

    changed = contacts.list_contacts_page(alice, 1, 1)[0][0]
    contacts.update_contact(alice, changed.id, {"name": "Renamed Person", "email": changed.email})
    third = sync_now(alice)
    assert (third.updated, third.unchanged) == (1, 9_999)
    assert hubspot.count == 1 and hubspot.calls("POST", UPDATE) == 1  # by its stored id
    assert hubspot.contact_by_email(changed.email)["properties"]["lastname"] == "Person"


def test_pipedrive_first_sync_lists_once_and_creates_only_the_missing(alice, pipedrive):
    pipedrive_integration(alice, pipedrive)
    pipedrive.seed_persons(2000)
    contacts.add_contacts(
        alice,
        [{"name": f"Existing {i}", "email": f"existing{i}@example.com", "phone": None} for i in range(0, 2500, 5)],
    )
    pipedrive.reset_counters()
    run = sync_now(alice)
    assert (run.status, run.failed) == ("done", 0), run.message
    assert pipedrive.search_calls == 0
    assert pipedrive.calls("POST", "/api/v2/persons") == 100  # existing2000 .. existing2495 were missing
    assert run.created == 100 and run.updated == 400
    assert len(pipedrive.persons) == 2100
    pipedrive.reset_counters()
    assert sync_now(alice).unchanged == 500
    assert pipedrive.count == 0


def test_a_second_crm_gets_every_contact_without_touching_the_first(alice, chatwoot, hubspot):
    first = chatwoot_integration(alice, chatwoot)
    make_contacts(alice, 30)
    assert sync_now(alice).created == 30
    chatwoot_requests = chatwoot.count
    second = hubspot_integration(alice, hubspot)
    run = sync_now(alice)
    assert (run.created, run.unchanged, run.failed) == (30, 30, 0)
    assert chatwoot.count == chatwoot_requests  # the first CRM was not called at all
    assert len(hubspot.contacts) == 30
    assert len(links(first)) == len(links(second)) == 30


def test_one_integration_can_be_synced_alone(alice, chatwoot, hubspot):
    chatwoot_integration(alice, chatwoot)
    only = hubspot_integration(alice, hubspot)
    make_contacts(alice, 5)
    before = chatwoot.count
    run = sync_now(alice, only.id)
    assert (run.created, run.total) == (5, 5)
    assert chatwoot.count == before


def test_a_failing_crm_does_not_stop_the_others(alice, chatwoot, hubspot):
    chatwoot_integration(alice, chatwoot)
    hubspot_integration(alice, hubspot)
    make_contacts(alice, 4)
    hubspot.force_status(401, count=50)
    run = sync_now(alice)
    assert run.status == "done"
    assert run.created == 4  # Chatwoot got them
    assert "HubSpot" in run.message and "rejected the access token" in run.message


def test_messages_go_to_hubspot_as_notes(alice, hubspot):
    hubspot_integration(alice, hubspot)
    contact = contacts.create_contact(alice, {"name": "Ana Lima", "email": "ana@example.com"})
    sent = send_message(alice, contact.id, "Called about the invoice")
    assert sent.kind == "note" and "note in HubSpot" in sent.summary
    [note] = hubspot.notes.values()
    assert note["properties"]["hs_note_body"] == "Called about the invoice"
    remote = hubspot.contact_by_email("ana@example.com")
    assert remote["id"] in [str(i) for i in note["contact_ids"]]
    sent_again = send_message(alice, contact.id, "Second note")
    assert sent_again.kind == "note"
    assert len(hubspot.contacts) == 1  # the contact was not sent twice


def test_messages_go_to_pipedrive_as_notes_and_to_the_integration_asked_for(alice, chatwoot, pipedrive):
    chatwoot_integration(alice, chatwoot)
    other = pipedrive_integration(alice, pipedrive)
    contact = contacts.create_contact(alice, {"name": "Bo", "email": "bo@example.com"})
    assert send_message(alice, contact.id, "To Chatwoot").kind == "message"  # the primary
    sent = send_message(alice, contact.id, "To Pipedrive", integration_id=other.id)
    assert sent.kind == "note" and "Pipedrive" in sent.summary
    [note] = pipedrive.notes.values()
    assert note["content"] == "To Pipedrive"


def test_a_crm_without_messages_is_never_used_for_them(alice, app):
    custom = service.create_integration(
        alice,
        "CUSTOM",
        {
            "name": "Acme",
            "crm_name": "Acme",
            "base_url": "https://api.acme.example",
            "auth_type": "BEARER",
            "credentials": {"token": "t-1234567890"},
        },
    )
    with pytest.raises(NoCRMConfigured):
        crm_for(alice)
    with pytest.raises(NoCRMConfigured, match="cannot record messages"):
        crm_for(alice, custom.id)


def test_cli_sync_and_send_message_take_an_integration(app, alice, chatwoot, hubspot, runner):
    chatwoot_integration(alice, chatwoot)
    chosen = hubspot_integration(alice, hubspot)
    make_contacts(alice, 3)
    result = runner.invoke(args=["crm", "sync-contacts", "--user", alice.email, "--integration", chosen.id[:8]])
    assert result.exit_code == 0, result.output
    assert "3 created" in result.output
    assert len(hubspot.contacts) == 3 and len(chatwoot.account.contacts) == 0
    result = runner.invoke(
        args=["crm", "send-message", "--user", alice.email, "--to", "c1@example.com", "--text", "Hi", "--integration",
              chosen.id]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Recorded as a note in HubSpot" in result.output


def test_the_contacts_page_shows_the_state_per_crm(app, alice, chatwoot, hubspot, auth):
    chatwoot_integration(alice, chatwoot, name="Team inbox")
    hubspot_integration(alice, hubspot, name="Sales HubSpot")
    make_contacts(alice, 2)
    hubspot.force_status(500, count=50)
    sync_now(alice)
    auth.login()
    body = auth.client.get("/contacts").get_data(as_text=True)
    assert "Team inbox" in body
    assert "Sales HubSpot: failed" in body
