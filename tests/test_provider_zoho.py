"""Zoho CRM's provider against the fake Zoho: Test Connection outcomes, the accounts-server and
api_domain checks, contacts upsert (call counts at 10,000) and notes, through the guarded client."""

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
from crm.providers.zoho import DATA_CENTERS, ZohoCRM
from tests.fakes.zoho import CLIENT_ID, CLIENT_SECRET, FakeZoho

LOCAL = {"CRM_ALLOW_PRIVATE_HOSTS": "127.0.0.1", "CRM_ALLOW_INSECURE_HTTP": True}
UPSERT = "/crm/v8/Contacts/upsert"


@pytest.fixture
def zoho():
    with FakeZoho() as server:
        yield server


def http(**settings):
    return client_from_config({**LOCAL, **settings})


def config(server, token: str | None = None, scopes=None) -> dict:
    settings = {"ZOHO_ACCOUNTS_URL": server.url()}
    values = {"data_center": "US"}
    answer = server.issue_tokens(**({"scopes": scopes} if scopes else {}))
    accepted = ZohoCRM.accept_token_answer(settings, values, answer, {"accounts-server": server.url()})
    access = token or answer["access_token"]
    return {**values, **accepted, "access_token": access, **ZohoCRM.endpoints(settings, values)}


def contact(i: int, email: str | None = "", **kwargs) -> ContactData:
    email = f"person{i}@example.com" if email == "" else email
    return ContactData(f"key-{i}", kwargs.get("name", f"Person Number{i}"), email, None, kwargs.get("remote_id"))


# --- Test Connection -------------------------------------------------------------------------------


def test_ok_names_org_and_user(zoho):
    result = ZohoCRM.run_test(config(zoho), http())
    assert result.outcome == "ok", result.message
    assert zoho.org["company_name"] in result.message
    assert zoho.user["email"] in result.message
    assert zoho.calls("GET", "/crm/v8/users") == 1 and zoho.calls("GET", "/crm/v8/org") == 1
    auth = next(r for r in zoho.requests if r["path"].startswith("/crm/v8/users"))["headers"]["Authorization"]
    assert auth.startswith("Zoho-oauthtoken 1000.")
    assert ZohoCRM.default_name({}, result) == f"Zoho CRM – {zoho.org['company_name']}"


def test_an_unknown_token_is_auth_failed_with_reconnect(zoho):
    result = ZohoCRM.run_test(config(zoho, token="1000.forged"), http())
    assert result.outcome == "auth_failed"
    assert "Reconnect Zoho CRM" in result.message


def test_a_token_without_the_users_scope_is_insufficient_permissions(zoho):
    result = ZohoCRM.run_test(config(zoho, scopes=("ZohoCRM.modules.contacts.ALL",)), http())
    assert result.outcome == "insufficient_permissions"


def test_a_profile_without_api_access_is_insufficient_permissions(zoho):
    zoho.api_permission = False
    assert ZohoCRM.run_test(config(zoho), http()).outcome == "insufficient_permissions"


@pytest.mark.parametrize(("status", "outcome"), [(429, "rate_limited"), (500, "server_error"), (503, "server_error")])
def test_throttling_and_server_errors(zoho, status, outcome):
    zoho.force_status(status, count=5)
    assert ZohoCRM.run_test(config(zoho), http()).outcome == outcome


def test_a_silent_zoho_is_a_timeout(zoho):
    live = config(zoho)
    zoho.delay = 5
    assert ZohoCRM.run_test(live, http(CRM_TOTAL_TIMEOUT=1)).outcome == "timeout"


# --- where Zoho's answers may send us ----------------------------------------------------------------


@pytest.mark.parametrize("center", sorted(DATA_CENTERS))
def test_every_data_center_is_accepted(center):
    accounts, api = DATA_CENTERS[center]
    accepted = ZohoCRM.accept_token_answer(
        {}, {"data_center": "US"}, {"api_domain": api}, {"accounts-server": accounts}
    )
    assert accepted == {"accounts_server": accounts, "api_domain": api, "data_center": center}
    assert ZohoCRM.token_url({}, accepted) == f"{accounts}/oauth/v2/token"
    assert ZohoCRM.revoke_url({}, accepted) == f"{accounts}/oauth/v2/token/revoke"


@pytest.mark.parametrize(
    "forged",
    [
        "https://evil.example.com",
        "http://www.zohoapis.com",
        "https://www.zohoapis.com.evil.example",
        "https://zohoapis.com",
        "https://user@www.zohoapis.com",
        "https://www.zohoapis.com:8443",
        "https://www.zohoapis.com/crm",
        None,
    ],
)
def test_a_forged_api_domain_is_refused(forged):
    with pytest.raises(CRMError) as caught:
        ZohoCRM.accept_token_answer({}, {"data_center": "EU"}, {"api_domain": forged or 7}, {})
    assert caught.value.outcome == "invalid_url"


@pytest.mark.parametrize(
    "forged", ["https://accounts.evil.example", "https://accounts.zoho.com.evil.example", "javascript:x"]
)
def test_a_forged_accounts_server_is_refused(forged):
    with pytest.raises(CRMError) as caught:
        ZohoCRM.accept_token_answer({}, {}, {"api_domain": "https://www.zohoapis.eu"}, {"accounts-server": forged})
    assert caught.value.outcome == "invalid_url"
    with pytest.raises(CRMError):
        ZohoCRM.token_url({}, {"accounts_server": forged})  # never sent our client secret


def test_the_operators_accounts_host_is_trusted():
    settings = {"ZOHO_ACCOUNTS_URL": "http://127.0.0.1:8080"}
    accepted = ZohoCRM.accept_token_answer(
        settings, {}, {"api_domain": "http://127.0.0.1:9090"}, {"accounts-server": "http://127.0.0.1:8080"}
    )
    assert accepted == {"accounts_server": "http://127.0.0.1:8080", "api_domain": "http://127.0.0.1:9090"}
    assert ZohoCRM.authorize_url(settings, {"data_center": "JP"}) == "http://127.0.0.1:8080/oauth/v2/auth"


def test_urls_per_data_center():
    assert ZohoCRM.authorize_url({}, {"data_center": "EU"}) == "https://accounts.zoho.eu/oauth/v2/auth"
    assert ZohoCRM.token_url({}, {"data_center": "CA"}) == "https://accounts.zohocloud.ca/oauth/v2/token"
    assert ZohoCRM.oauth_app.scope_separator == ","
    assert ZohoCRM.oauth_app.extra_authorize_params == {"access_type": "offline", "prompt": "consent"}


def test_a_refresh_answer_without_api_domain_keeps_the_stored_one():
    stored = {"data_center": "EU", "api_domain": "https://www.zohoapis.eu"}
    assert ZohoCRM.accept_token_answer({}, stored, {"access_token": "x"}, {}) == {
        "api_domain": "https://www.zohoapis.eu"
    }


def test_a_stored_api_domain_is_checked_again_before_any_call(zoho):
    live = {**config(zoho), "api_domain": "https://evil.example.com"}
    assert ZohoCRM.run_test(live, http()).outcome == "invalid_url"
    assert zoho.calls("GET", "/crm/v8/users") == 0


# --- contacts --------------------------------------------------------------------------------------


def test_ten_thousand_contacts_in_a_hundred_upserts(zoho):
    zoho.seed_contacts(1000, pattern="person{i}@example.com")
    api = ZohoCRM.connect(config(zoho), http())
    everyone = [contact(i) for i in range(10_000)]
    results = []
    for start in range(0, len(everyone), api.batch_size):
        results += api.upsert_contacts(everyone[start : start + api.batch_size])
    assert api.batch_size == 100
    assert zoho.calls("POST", UPSERT) == 100
    assert [r.kind for r in results].count("updated") == 1000
    assert [r.kind for r in results].count("created") == 9000
    assert all(r.remote_id for r in results)
    assert len(zoho.contacts) == 10_000


def test_known_contacts_are_updated_by_id(zoho):
    api = ZohoCRM.connect(config(zoho), http())
    first = api.upsert_contacts([contact(i) for i in range(3)])
    changed = [contact(i, f"new{i}@example.com", remote_id=r.remote_id) for i, r in enumerate(first)]
    again = api.upsert_contacts(changed)
    assert [r.kind for r in again] == ["updated"] * 3
    assert [r.remote_id for r in again] == [r.remote_id for r in first]
    assert zoho.calls("PUT", "/crm/v8/Contacts") == 1
    assert zoho.contacts[first[0].remote_id]["Email"] == "new0@example.com"
    assert len(zoho.contacts) == 3


def test_a_contact_deleted_in_zoho_is_made_again(zoho):
    api = ZohoCRM.connect(config(zoho), http())
    [made] = api.upsert_contacts([contact(1)])
    zoho.delete_contact(made.remote_id)
    [again] = api.upsert_contacts([contact(1, remote_id=made.remote_id)])
    assert again.kind == "created" and again.remote_id != made.remote_id


def test_a_bad_email_fails_only_that_contact(zoho):
    api = ZohoCRM.connect(config(zoho), http())
    results = api.upsert_contacts([contact(1), contact(2, "not-an-email@"), contact(3)])
    assert [r.kind for r in results] == ["created", "failed", "created"]
    assert "email" in results[1].error


def test_one_word_names_are_last_names_and_duplicates_are_sent_once(zoho):
    api = ZohoCRM.connect(config(zoho), http())
    results = api.upsert_contacts([contact(1, "same@example.com", name="Cher"), contact(2, "SAME@example.com")])
    assert [r.kind for r in results] == ["created", "failed"]
    assert zoho.contacts[results[0].remote_id]["Last_Name"] == "Cher"


def test_throttling_is_waited_out_within_the_deadline():
    with FakeZoho(burst_limit=1, window_seconds=0.5) as server:
        api = ZohoCRM.connect(config(server), http())
        results = [api.upsert_contacts([contact(i)])[0] for i in range(3)]
    assert [r.kind for r in results] == ["created"] * 3
    assert server.rate_limited >= 1


def test_an_expired_token_is_renewed_once_and_the_call_retried(zoho):
    live = config(zoho)
    zoho.expire_access_tokens()
    renewed = []

    def renew():
        renewed.append(1)
        return {**live, "access_token": zoho.issue_tokens()["access_token"]}

    api = ZohoCRM.connect(live, http(), renew=renew)
    assert api.upsert_contacts([contact(1)])[0].kind == "created"
    assert renewed == [1]


def test_an_expired_token_without_renewal_is_auth_failed(zoho):
    live = config(zoho)
    zoho.expire_access_tokens()
    with pytest.raises(CRMError) as caught:
        ZohoCRM.connect(live, http()).upsert_contacts([contact(1)])
    assert caught.value.outcome == "auth_failed"


# --- messages --------------------------------------------------------------------------------------


def test_a_message_is_recorded_as_a_note_on_the_contact(zoho):
    api = ZohoCRM.connect(config(zoho), http())
    [made] = api.upsert_contacts([contact(1)])
    recorded = api.record_message(contact(1, remote_id=made.remote_id), "Hello from the platform")
    assert recorded.kind == "note"
    note = zoho.notes[recorded.remote_id]
    assert note["Parent_Id"] == made.remote_id
    assert note["Note_Content"] == "Hello from the platform"


# --- Connect with Zoho, through the app's OAuth flow -----------------------------------------------


@pytest.fixture
def connectable(app, allow_local, zoho):
    app.config.update(ZOHO_ACCOUNTS_URL=zoho.url(), ZOHO_CLIENT_ID=CLIENT_ID, ZOHO_CLIENT_SECRET=CLIENT_SECRET)
    return zoho


def connect_through_app(api, server, **forged):
    body = {"name": "My Zoho", "type": "CRM", "configuration": {"provider": "ZOHO", "dataCenter": "EU"}}
    answer = api.post("/api/dashboard/integrations/oauth/start", json=body)
    assert answer.status_code == 200, answer.get_json()
    url = answer.get_json()["authorizationUrl"]
    query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["scope"] == ",".join(ZohoCRM.oauth_app.scopes) and query["access_type"] == "offline"
    params = {**server.consent(url), **forged}
    back = api.get(f"/integrations/oauth/callback?{urlencode(params)}")
    assert back.status_code == 302
    return {k: v[-1] for k, v in parse_qs(urlsplit(back.headers["Location"]).query).items()}


def test_connect_with_zoho_lands_green_with_the_api_domain_stored(api, connectable):
    landed = connect_through_app(api, connectable)
    integration = db.session.get(Integration, landed["connected"])
    assert integration.last_test_outcome == "ok"
    stored = integration.configuration
    assert stored["api_domain"] == connectable.url() and stored["accounts_server"] == connectable.url()
    assert is_sealed(stored["access_token"]) and is_sealed(stored["refresh_token"])
    assert stored["token_lifetime"] == 3600


def test_a_forged_accounts_server_in_the_callback_saves_nothing(api, connectable):
    landed = connect_through_app(api, connectable, **{"accounts-server": "https://accounts.evil.example"})
    assert landed == {"oauth_error": "invalid_url"}
    assert db.session.query(Integration).count() == 0


def test_a_forged_api_domain_in_the_token_answer_saves_nothing(api, connectable):
    connectable.api_domain = "https://www.zohoapis.evil.example"
    assert connect_through_app(api, connectable) == {"oauth_error": "invalid_url"}
    assert db.session.query(Integration).count() == 0


def expire_stored_token(integration) -> None:
    integration.configuration = {**integration.configuration, "token_expires_at": int(time.time()) - 10}
    db.session.commit()


def test_a_due_token_is_refreshed_at_the_accounts_server_zoho_named(api, alice, connectable):
    integration = db.session.get(Integration, connect_through_app(api, connectable)["connected"])
    expire_stored_token(integration)
    live = oauth.ensure_fresh(alice, integration)
    assert connectable.token_requests["refresh_token"] == 1
    assert live["refresh_token"] == connectable.oauth.current_refresh_tokens()[0]  # Zoho keeps it
    assert ZohoCRM.run_test(live, http()).outcome == "ok"


def test_a_revoked_connection_needs_reconnect(api, alice, connectable):
    """Zoho answers a revoked refresh token with HTTP 200 {"error": "invalid_code"}."""
    integration = db.session.get(Integration, connect_through_app(api, connectable)["connected"])
    connectable.revoke_all()
    expire_stored_token(integration)
    with pytest.raises(oauth.NeedsReconnect):
        oauth.ensure_fresh(alice, integration)
    assert db.session.get(Integration, integration.id).auth_state == oauth.NEEDS_RECONNECT
