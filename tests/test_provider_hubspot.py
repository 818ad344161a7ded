"""HubSpot's provider against the fake HubSpot: Test Connection outcomes and the contacts and notes
operations, through the project's guarded client."""

from __future__ import annotations

import pytest

from crm.net import client_from_config
from crm.providers.contract import ContactData
from crm.providers.hubspot import HubSpot
from tests.fakes.hubspot import READ, FakeHubSpot

UPSERT = "/crm/v3/objects/contacts/batch/upsert"
UPDATE = "/crm/v3/objects/contacts/batch/update"
CREATE = "/crm/v3/objects/contacts/batch/create"
LOCAL = {"CRM_ALLOW_PRIVATE_HOSTS": "127.0.0.1", "CRM_ALLOW_INSECURE_HTTP": True}


@pytest.fixture
def hubspot():
    with FakeHubSpot() as server:
        server.token = server.add_token()
        yield server


def http(**settings):
    return client_from_config({**LOCAL, **settings})


def config(server, token=None):
    return {"access_token": token or server.token, **HubSpot.endpoints({"HUBSPOT_API_URL": server.url()}, {})}


def contact(i: int, email: str | None = "", **kwargs) -> ContactData:
    email = f"person{i}@example.com" if email == "" else email
    return ContactData(f"key-{i}", f"Person Number{i}", email, kwargs.get("phone"), kwargs.get("remote_id"))


def test_ok_names_the_portal(hubspot):
    result = HubSpot.run_test(config(hubspot), http())
    assert result.outcome == "ok", result.message
    assert str(hubspot.portal_id) in result.message
    assert any("read contacts" in line for line in result.verified)
    assert hubspot.token not in result.message + " ".join(result.verified)


def test_bad_token_is_auth_failed_with_where_to_copy_it(hubspot):
    result = HubSpot.run_test(config(hubspot, "pat-eu1-wrong"), http())
    assert result.outcome == "auth_failed"
    assert "Private Apps" in result.message
    assert "Chatwoot" not in result.message


def test_missing_scope_names_the_scope(hubspot):
    token = hubspot.add_token(scopes={"oauth"})
    result = HubSpot.run_test(config(hubspot, token), http())
    assert result.outcome == "insufficient_permissions"
    assert READ in result.message


@pytest.mark.parametrize(("status", "outcome"), [(429, "rate_limited"), (500, "server_error"), (503, "server_error")])
def test_throttling_and_server_errors(hubspot, status, outcome):
    hubspot.force_status(status, count=10)
    result = HubSpot.run_test(config(hubspot), http())
    assert result.outcome == outcome


def test_a_silent_hubspot_is_a_timeout(hubspot):
    hubspot.delay = 5
    result = HubSpot.run_test(config(hubspot), http(CRM_TOTAL_TIMEOUT=1))
    assert result.outcome == "timeout"


def test_upsert_creates_then_updates_by_email_in_one_call_per_hundred(hubspot):
    api = HubSpot.connect(config(hubspot), http())
    batch = [contact(i) for i in range(100)]
    first = api.upsert_contacts(batch)
    assert [r.kind for r in first] == ["created"] * 100
    assert hubspot.calls("POST", UPSERT) == 1
    # Results come back in another order: each contact still gets its own id.
    for data, result in zip(batch, first, strict=True):
        assert hubspot.contacts[result.remote_id]["properties"]["email"] == data.email
    again = api.upsert_contacts([contact(i, remote_id=r.remote_id) for i, r in enumerate(first)])
    assert {r.kind for r in again} == {"updated"}
    assert hubspot.calls("POST", UPDATE) == 1
    assert len(hubspot.contacts) == 100


def test_contacts_without_email_are_created_and_keep_their_ids(hubspot):
    api = HubSpot.connect(config(hubspot), http())
    results = api.upsert_contacts([contact(1, None, phone="+4930123"), contact(2, None, phone="+4930456")])
    assert [r.kind for r in results] == ["created", "created"]
    phones = {hubspot.contacts[r.remote_id]["properties"]["phone"] for r in results}
    assert phones == {"+4930123", "+4930456"}
    assert hubspot.calls("POST", CREATE) == 1


def test_duplicate_emails_in_one_batch_are_sent_once(hubspot):
    api = HubSpot.connect(config(hubspot), http())
    results = api.upsert_contacts([contact(1, "same@example.com"), contact(2, "SAME@example.com")])
    assert [r.kind for r in results] == ["created", "failed"]
    assert "same email" in results[1].error


def test_a_partial_answer_fails_only_the_bad_contact(hubspot):
    api = HubSpot.connect(config(hubspot), http())
    results = api.upsert_contacts([contact(1), contact(2, "not-an-email@"), contact(3)])
    assert [r.kind for r in results] == ["created", "failed", "created"]
    assert "email" in results[1].error


def test_a_contact_deleted_in_hubspot_is_made_again(hubspot):
    api = HubSpot.connect(config(hubspot), http())
    results = api.upsert_contacts([contact(1, remote_id="999999")])
    assert results[0].kind == "created"
    assert hubspot.contact_by_email("person1@example.com")["id"] == results[0].remote_id


def test_a_daily_limit_stops_the_run_with_a_clear_message(hubspot):
    hubspot.exhaust_daily()
    api = HubSpot.connect(config(hubspot), http())
    with pytest.raises(Exception) as caught:
        api.upsert_contacts([contact(1)])
    assert "daily" in str(caught.value)


def test_the_ten_second_window_is_waited_out_within_the_deadline():
    with FakeHubSpot(burst_limit=1, window_seconds=0.3) as server:
        server.token = server.add_token()
        api = HubSpot.connect(config(server), http())
        results = [api.upsert_contacts([contact(i)])[0] for i in range(3)]
    assert [r.kind for r in results] == ["created"] * 3
    assert server.rate_limited >= 1


def test_a_note_is_recorded_on_the_contact(hubspot):
    api = HubSpot.connect(config(hubspot), http())
    [made] = api.upsert_contacts([contact(1)])
    recorded = api.record_message(contact(1, remote_id=made.remote_id), "Hello from the platform")
    assert recorded.kind == "note"
    note = hubspot.notes[recorded.remote_id]
    assert made.remote_id in [str(i) for i in note["contact_ids"]]


def test_a_batch_refused_whole_for_one_bad_email_is_sent_again_without_it(hubspot):
    hubspot.strict_batches = True  # HubSpot may answer 400 for the whole batch
    api = HubSpot.connect(config(hubspot), http())
    results = api.upsert_contacts([contact(1), contact(2, "not-an-email@"), contact(3)])
    assert [r.kind for r in results] == ["created", "failed", "created"]
    assert hubspot.calls("POST", UPSERT) == 2
    assert len(hubspot.contacts) == 2
