"""Salesforce's provider against the fake Salesforce: Test Connection outcomes, the instance_url check,
SOQL escaping, contacts through sObject Collections (call counts at 10,000) and tasks, through the
project's guarded client."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from crm.crypto import is_sealed
from crm.extensions import db
from crm.models import Integration
from crm.net import client_from_config
from crm.providers import oauth
from crm.providers.base import CRMError
from crm.providers.contract import ContactData
from crm.providers.salesforce import Salesforce, soql_string, trusted_instance
from tests.fakes.salesforce import CLIENT_ID, CLIENT_SECRET, FakeSalesforce, parse_literals

LOCAL = {"CRM_ALLOW_PRIVATE_HOSTS": "127.0.0.1", "CRM_ALLOW_INSECURE_HTTP": True}
COLLECTIONS = "/composite/sobjects"


@pytest.fixture
def salesforce():
    with FakeSalesforce() as server:
        yield server


def http(**settings):
    return client_from_config({**LOCAL, **settings})


def settings_for(server) -> dict:
    return {"SALESFORCE_LOGIN_URL": server.url()}


def config(server, token: str | None = None) -> dict:
    """The live configuration after a consent: tokens, the accepted instance_url, endpoints."""
    settings = settings_for(server)
    values = {"environment": "production"}
    answer = server.issue_tokens()
    accepted = Salesforce.accept_token_answer(settings, values, answer, {})
    return {
        **values,
        **accepted,
        "access_token": token or answer["access_token"],
        **Salesforce.endpoints(settings, values),
    }


def queries(server) -> int:
    """SOQL queries sent: each travels in a Composite API call (a 7 KB URL is over crm.net's limit)."""
    return server.calls("POST", "/composite") + server.calls("GET", "/query")


def contact(i: int, email: str | None = "", **kwargs) -> ContactData:
    email = f"person{i}@example.com" if email == "" else email
    name = kwargs.get("name", f"Person Number{i}")
    return ContactData(f"key-{i}", name, email, kwargs.get("phone"), kwargs.get("remote_id"))


# --- Test Connection -------------------------------------------------------------------------------


def test_ok_names_org_and_user(salesforce):
    result = Salesforce.run_test(config(salesforce), http())
    assert result.outcome == "ok", result.message
    assert salesforce.org_name in result.message
    assert salesforce.user["preferred_username"] in result.message
    assert any("daily API requests left" in line for line in result.verified)
    assert salesforce.calls("GET", "/services/oauth2/userinfo") == 1
    assert salesforce.calls("GET", "/limits") == 1
    assert Salesforce.default_name({}, result) == f"Salesforce – {salesforce.org_name}"


def test_a_token_salesforce_does_not_know_is_auth_failed_with_reconnect(salesforce):
    result = Salesforce.run_test(config(salesforce, token="00DFAKE!forged"), http())
    assert result.outcome == "auth_failed"
    assert "Reconnect Salesforce" in result.message


def test_an_org_without_api_access_is_insufficient_permissions(salesforce):
    salesforce.api_enabled = False
    result = Salesforce.run_test(config(salesforce), http())
    assert result.outcome == "insufficient_permissions"
    assert "API Enabled" in result.message


def test_the_daily_api_limit_is_rate_limited(salesforce):
    salesforce.exhaust_daily()
    result = Salesforce.run_test(config(salesforce), http())
    assert result.outcome == "rate_limited"
    assert "daily API request limit" in result.message


@pytest.mark.parametrize(("status", "outcome"), [(500, "server_error"), (503, "server_error")])
def test_server_errors(salesforce, status, outcome):
    salesforce.force_status(status, count=5)
    assert Salesforce.run_test(config(salesforce), http()).outcome == outcome


def test_a_silent_salesforce_is_a_timeout(salesforce):
    live = config(salesforce)
    salesforce.delay = 5
    assert Salesforce.run_test(live, http(CRM_TOTAL_TIMEOUT=1)).outcome == "timeout"


# --- where the token answer may send us --------------------------------------------------------------


@pytest.mark.parametrize(
    "forged",
    [
        "https://evil.example.com",
        "http://acme.my.salesforce.com",
        "https://acme.my.salesforce.com.evil.example",
        "https://evilsalesforce.com",
        "https://user@acme.my.salesforce.com",
        "https://acme.my.salesforce.com:8443",
        "https://acme.my.salesforce.com/services/data",
        "https://acme.my.salesforce.com?x=1",
        None,
        42,
    ],
)
def test_a_forged_instance_url_is_refused(forged):
    with pytest.raises(CRMError) as caught:
        Salesforce.accept_token_answer({}, {"environment": "production"}, {"instance_url": forged}, {})
    assert caught.value.outcome == "invalid_url"


@pytest.mark.parametrize(
    "instance",
    ["https://acme.my.salesforce.com", "https://acme--dev.sandbox.my.salesforce.com", "https://na1.force.com/"],
)
def test_salesforce_instances_are_accepted(instance):
    accepted = Salesforce.accept_token_answer({}, {}, {"instance_url": instance}, {})
    assert accepted == {"instance_url": instance.rstrip("/")}


def test_the_operators_login_host_is_trusted_but_not_its_neighbours():
    override = "http://127.0.0.1:8080"
    assert trusted_instance("http://127.0.0.1:9090", override) == "http://127.0.0.1:9090"
    with pytest.raises(CRMError):
        trusted_instance("http://127.0.0.2:8080", override)
    with pytest.raises(CRMError):
        trusted_instance("http://127.0.0.1:8080", None)


def test_a_stored_instance_is_checked_again_before_any_call(salesforce):
    live = {**config(salesforce), "instance_url": "https://evil.example.com"}
    result = Salesforce.run_test(live, http())
    assert result.outcome == "invalid_url"
    assert salesforce.calls("GET", "/services/oauth2/userinfo") == 0


def test_login_urls_per_environment_and_override():
    production = Salesforce.authorize_url({}, {"environment": "production"})
    assert production == "https://login.salesforce.com/services/oauth2/authorize"
    sandbox = Salesforce.token_url({}, {"environment": "sandbox"})
    assert sandbox == "https://test.salesforce.com/services/oauth2/token"
    mine = {"environment": "my_domain", "my_domain_url": "https://acme.my.salesforce.com"}
    assert Salesforce.revoke_url({}, mine) == "https://acme.my.salesforce.com/services/oauth2/revoke"
    override = {"SALESFORCE_LOGIN_URL": "https://login.proxy.example/"}
    assert Salesforce.token_url(override, mine) == "https://login.proxy.example/services/oauth2/token"


def test_my_domain_is_checked_and_the_lightning_address_understood():
    ok = Salesforce.validate(
        {
            "name": "SF",
            "environment": "my_domain",
            "my_domain_url": "https://acme.lightning.force.com/lightning/page/home",
        }
    )
    assert not ok.errors, ok.errors
    assert ok.values["my_domain_url"] == "https://acme.my.salesforce.com"
    bad = Salesforce.validate({"name": "SF", "environment": "my_domain", "my_domain_url": "https://example.com"})
    assert "my_domain_url" in bad.errors
    missing = Salesforce.validate({"name": "SF", "environment": "my_domain"})
    assert "my_domain_url" in missing.errors
    assert not Salesforce.validate({"name": "SF", "environment": "sandbox"}).errors


def test_the_api_version_setting():
    assert Salesforce.endpoints({"SALESFORCE_API_VERSION": "v61.0"}, {})["api_version"] == "61.0"
    assert Salesforce.endpoints({"SALESFORCE_API_VERSION": "../x"}, {})["api_version"] == "62.0"


# --- SOQL ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email", ["o'brien@example.com", "back\\slash@example.com", 'a"b@example.com', "x') OR Id != ('@e.com"]
)
def test_soql_literals_survive_any_email(email):
    assert parse_literals(f"({soql_string(email)})") == [email]


def test_an_email_with_a_quote_finds_the_existing_contact(salesforce):
    existing = salesforce.add_contact("o'brien@example.com", last_name="OBrien")
    api = Salesforce.connect(config(salesforce), http())
    [result] = api.upsert_contacts([contact(1, "O'Brien@example.com", name="Pat O'Brien")])
    assert (result.kind, result.remote_id) == ("updated", existing["Id"])
    assert salesforce.contacts[existing["Id"]]["LastName"] == "O'Brien"
    assert len(salesforce.contacts) == 1


# --- contacts --------------------------------------------------------------------------------------


def test_ten_thousand_contacts_in_fifty_queries_and_fifty_collection_calls(salesforce):
    salesforce.seed_contacts(1000, pattern="person{i}@example.com")  # a tenth exist already
    api = Salesforce.connect(config(salesforce), http())
    everyone = [contact(i) for i in range(10_000)]
    results = []
    for start in range(0, len(everyone), api.batch_size):
        results += api.upsert_contacts(everyone[start : start + api.batch_size])
    assert api.batch_size == 200
    assert queries(salesforce) <= 50
    assert salesforce.calls("POST", COLLECTIONS) + salesforce.calls("PATCH", COLLECTIONS) <= 50
    assert [r.kind for r in results].count("updated") == 1000
    assert [r.kind for r in results].count("created") == 9000
    assert all(r.remote_id for r in results)
    assert len(salesforce.contacts) == 10_000
    salesforce.reset_counters()
    again = [contact(i, remote_id=r.remote_id) for i, r in enumerate(results)]
    for start in range(0, len(again), api.batch_size):
        api.upsert_contacts(again[start : start + api.batch_size])
    assert queries(salesforce) == 0
    assert salesforce.calls("PATCH", COLLECTIONS) == 50


def test_new_contacts_need_one_query_and_one_create_per_batch(salesforce):
    api = Salesforce.connect(config(salesforce), http())
    results = api.upsert_contacts([contact(i) for i in range(200)])
    assert {r.kind for r in results} == {"created"}
    assert queries(salesforce) == 1
    assert salesforce.calls("POST", COLLECTIONS) == 1
    for data, result in zip([contact(i) for i in range(200)], results, strict=True):
        assert salesforce.contacts[result.remote_id]["Email"] == data.email


def test_last_name_is_required_so_one_word_names_become_last_names(salesforce):
    api = Salesforce.connect(config(salesforce), http())
    one, nameless = api.upsert_contacts([contact(1, name="Madonna"), contact(2, None, name="", phone="+4930123")])
    assert salesforce.contacts[one.remote_id]["LastName"] == "Madonna"
    assert "FirstName" not in salesforce.contacts[one.remote_id] or not salesforce.contacts[one.remote_id]["FirstName"]
    assert salesforce.contacts[nameless.remote_id]["LastName"] == "+4930123"


def test_a_bad_email_fails_only_that_contact(salesforce):
    api = Salesforce.connect(config(salesforce), http())
    results = api.upsert_contacts([contact(1), contact(2, "not-an-email@"), contact(3)])
    assert [r.kind for r in results] == ["created", "failed", "created"]
    assert "email" in results[1].error


def test_duplicate_emails_in_one_batch_are_sent_once(salesforce):
    api = Salesforce.connect(config(salesforce), http())
    results = api.upsert_contacts([contact(1, "same@example.com"), contact(2, "SAME@example.com")])
    assert [r.kind for r in results] == ["created", "failed"]
    assert len(salesforce.contacts) == 1


def test_a_contact_deleted_in_salesforce_is_made_again(salesforce):
    api = Salesforce.connect(config(salesforce), http())
    [made] = api.upsert_contacts([contact(1)])
    salesforce.delete_contact(made.remote_id)
    [again] = api.upsert_contacts([contact(1, remote_id=made.remote_id)])
    assert again.kind == "created" and again.remote_id != made.remote_id
    assert salesforce.contact_by_email("person1@example.com")["Id"] == again.remote_id


def test_a_long_name_is_shortened_and_says_so(salesforce):
    api = Salesforce.connect(config(salesforce), http())
    [result] = api.upsert_contacts([contact(1, name="A " + "b" * 100)])
    assert result.kind == "created" and result.note
    assert len(salesforce.contacts[result.remote_id]["LastName"]) == 80


def test_the_daily_limit_stops_a_sync(salesforce):
    api = Salesforce.connect(config(salesforce), http())
    salesforce.exhaust_daily()
    with pytest.raises(CRMError) as caught:
        api.upsert_contacts([contact(1)])
    assert caught.value.outcome == "rate_limited"


def test_an_expired_session_is_renewed_once_and_the_call_retried(salesforce):
    live = config(salesforce)
    fresh = salesforce.issue_tokens()["access_token"]
    salesforce.expire_access_tokens()
    salesforce.oauth.access.pop(fresh, None)
    renewed = []

    def renew():
        renewed.append(1)
        return {**live, "access_token": salesforce.issue_tokens()["access_token"]}

    api = Salesforce.connect(live, http(), renew=renew)
    [result] = api.upsert_contacts([contact(1)])
    assert result.kind == "created"
    assert renewed == [1]


def test_an_expired_session_without_renewal_is_auth_failed(salesforce):
    live = config(salesforce)
    salesforce.expire_access_tokens()
    api = Salesforce.connect(live, http())
    with pytest.raises(CRMError) as caught:
        api.upsert_contacts([contact(1)])
    assert caught.value.outcome == "auth_failed"


# --- messages --------------------------------------------------------------------------------------


def test_a_message_is_recorded_as_a_task_on_the_contact(salesforce):
    api = Salesforce.connect(config(salesforce), http())
    [made] = api.upsert_contacts([contact(1)])
    recorded = api.record_message(contact(1, remote_id=made.remote_id), "Hello from the platform\nSecond line")
    assert recorded.kind == "task"
    task = salesforce.tasks[recorded.remote_id]
    assert task["WhoId"] == made.remote_id
    assert task["Subject"] == "Hello from the platform"
    assert task["Description"].endswith("Second line")
    assert task["Status"] == "Completed"


# --- Connect with Salesforce, through the app's OAuth flow -----------------------------------------


@pytest.fixture
def connectable(app, allow_local, salesforce):
    app.config.update(
        SALESFORCE_LOGIN_URL=salesforce.url(), SALESFORCE_CLIENT_ID=CLIENT_ID, SALESFORCE_CLIENT_SECRET=CLIENT_SECRET
    )
    return salesforce


def connect_through_app(api, server):
    body = {
        "name": "My Salesforce",
        "type": "CRM",
        "configuration": {"provider": "SALESFORCE", "environment": "sandbox"},
    }
    answer = api.post("/api/dashboard/integrations/oauth/start", json=body)
    assert answer.status_code == 200, answer.get_json()
    back = api.get(f"/integrations/oauth/callback?{urlencode(server.consent(answer.get_json()['authorizationUrl']))}")
    assert back.status_code == 302
    return {k: v[-1] for k, v in parse_qs(urlsplit(back.headers["Location"]).query).items()}


def test_connect_with_salesforce_lands_green_with_the_instance_stored(api, connectable):
    landed = connect_through_app(api, connectable)
    integration = db.session.get(Integration, landed["connected"])
    assert integration.last_test_outcome == "ok"
    stored = integration.configuration
    assert stored["instance_url"] == connectable.url() and stored["environment"] == "sandbox"
    assert is_sealed(stored["access_token"]) and is_sealed(stored["refresh_token"])
    assert connectable.token_requests["authorization_code"] == 1


def test_a_forged_instance_url_in_the_token_answer_saves_nothing(api, connectable):
    connectable.instance_url = "https://evil.example.com"
    landed = connect_through_app(api, connectable)
    assert landed == {"oauth_error": "invalid_url"}
    assert db.session.query(Integration).count() == 0


def expire_stored_token(integration) -> None:
    integration.configuration = {**integration.configuration, "token_expires_at": int(time.time()) - 10}
    db.session.commit()


def test_a_due_token_is_refreshed_and_the_rotated_refresh_token_stored(api, alice, connectable):
    integration = db.session.get(Integration, connect_through_app(api, connectable)["connected"])
    expire_stored_token(integration)
    live = oauth.ensure_fresh(alice, integration)
    assert connectable.token_requests["refresh_token"] == 1
    [current] = connectable.oauth.current_refresh_tokens()
    assert live["refresh_token"] == current  # the rotated one, not the burned one
    assert Salesforce.run_test(live, http()).outcome == "ok"


def test_a_revoked_connection_needs_reconnect(api, alice, connectable):
    integration = db.session.get(Integration, connect_through_app(api, connectable)["connected"])
    connectable.revoke_all()
    expire_stored_token(integration)
    with pytest.raises(oauth.NeedsReconnect):
        oauth.ensure_fresh(alice, integration)
    assert db.session.get(Integration, integration.id).auth_state == oauth.NEEDS_RECONNECT
