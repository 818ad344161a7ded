"""Pipedrive's provider against the fake Pipedrive: Test Connection outcomes, persons and notes,
through the project's guarded client."""

from __future__ import annotations

import pytest

from crm.net import client_from_config
from crm.providers.contract import ContactData
from crm.providers.pipedrive import Pipedrive
from tests.fakes.pipedrive import FakePipedrive

LOCAL = {"CRM_ALLOW_PRIVATE_HOSTS": "127.0.0.1", "CRM_ALLOW_INSECURE_HTTP": True}


@pytest.fixture
def pipedrive():
    with FakePipedrive() as server:
        server.token = server.add_user()
        yield server


def http(**settings):
    return client_from_config({**LOCAL, **settings})


def config(server, token=None, domain="acme"):
    values = {"company_domain": domain, "api_token": token or server.token}
    return {**values, **Pipedrive.endpoints({"PIPEDRIVE_API_URL": server.url()}, values)}


def contact(i: int, email: str | None = "", **kwargs) -> ContactData:
    email = f"person{i}@example.com" if email == "" else email
    return ContactData(f"key-{i}", f"Person {i}", email, kwargs.get("phone"), kwargs.get("remote_id"))


def test_validation_reduces_a_full_address_to_the_company_domain():
    checked = Pipedrive.validate({"name": "P", "company_domain": "https://Acme.pipedrive.com/", "api_token": "t" * 40})
    assert checked.errors == {}
    assert checked.values["company_domain"] == "acme"
    bad = Pipedrive.validate({"name": "P", "company_domain": "acme corp!", "api_token": "t" * 40})
    assert "company_domain" in bad.errors


def test_the_default_address_is_the_company_domain():
    assert Pipedrive.endpoints({}, {"company_domain": "acme"})["api_url"] == "https://acme.pipedrive.com"


def test_ok_names_user_and_company_and_sends_the_token_in_a_header(pipedrive):
    result = Pipedrive.run_test(config(pipedrive), http())
    assert result.outcome == "ok", result.message
    assert "Acme Ltd" in result.message and "Ann Admin" in result.message
    assert pipedrive.query_token_uses == 0
    assert pipedrive.token not in result.message + " ".join(result.verified)


def test_a_token_of_another_company_is_a_warning(pipedrive):
    token = pipedrive.add_user(company_domain="globex")
    result = Pipedrive.run_test(config(pipedrive, token), http())
    assert result.outcome == "ok"
    assert result.details["warning"] == "company_mismatch"
    assert "globex" in result.message


def test_bad_token_is_auth_failed(pipedrive):
    result = Pipedrive.run_test(config(pipedrive, "0" * 40), http())
    assert result.outcome == "auth_failed"
    assert "Personal preferences" in result.message


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(403, "insufficient_permissions"), (429, "rate_limited"), (500, "server_error")],
)
def test_refusals_throttling_and_server_errors(pipedrive, status, outcome):
    pipedrive.force_status(status, count=10)
    assert Pipedrive.run_test(config(pipedrive), http()).outcome == outcome


def test_a_silent_pipedrive_is_a_timeout(pipedrive):
    pipedrive.delay = 5
    assert Pipedrive.run_test(config(pipedrive), http(CRM_TOTAL_TIMEOUT=1)).outcome == "timeout"


def test_a_first_sync_lists_once_and_creates_only_the_missing(pipedrive):
    pipedrive.seed_persons(2000)
    api = Pipedrive.connect(config(pipedrive), http())
    batch = [contact(i, f"existing{i}@example.com") for i in range(0, 3000, 2)]  # half of them exist
    results = api.upsert_contacts(batch)
    assert pipedrive.search_calls == 0
    assert pipedrive.calls("GET", "/api/v2/persons") == 4  # 2,000 persons in pages of 500
    created = [r for r in results if r.kind == "created"]
    assert len(created) == 500  # existing1000 .. existing2998 were missing
    assert pipedrive.calls("POST", "/api/v2/persons") == 500
    assert len(pipedrive.persons) == 2500
    again = api.upsert_contacts([contact(1, remote_id=results[0].remote_id)])
    assert again[0].kind == "updated"
    assert pipedrive.calls("GET", "/api/v2/persons") == 4  # the index is read once per connection


def test_a_person_deleted_in_pipedrive_is_made_again(pipedrive):
    api = Pipedrive.connect(config(pipedrive), http())
    [result] = api.upsert_contacts([contact(1, remote_id="424242")])
    assert result.kind == "created"
    assert pipedrive.persons_with_email("person1@example.com")


def test_a_note_is_recorded_on_the_person(pipedrive):
    api = Pipedrive.connect(config(pipedrive), http())
    [made] = api.upsert_contacts([contact(1)])
    recorded = api.record_message(contact(1, remote_id=made.remote_id), "Hello")
    assert recorded.kind == "note"
    assert pipedrive.notes[int(recorded.remote_id)]["person_id"] == int(made.remote_id)


def test_the_two_second_window_is_respected():
    with FakePipedrive(burst_limit=3, window_seconds=0.3) as server:
        server.token = server.add_user()
        api = Pipedrive.connect(config(server), http())
        results = api.upsert_contacts([contact(i) for i in range(8)])
    assert [r.kind for r in results] == ["created"] * 8
