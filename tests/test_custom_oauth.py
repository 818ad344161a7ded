"""Custom CRM's OAuth 2.0 with the Authorization code grant (issue #13): the user's own app (client id
and secret typed in the modal), PKCE S256, refresh with rotation, needs reconnect, and the client secret
kept sealed from the start to the callback. Against the generic authorization server
(tests/fakes/oauth_server.py) on 127.0.0.1, whose /api/me is the Custom CRM's API."""

from __future__ import annotations

import html
import json
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from crm import sealing
from crm.crypto import is_sealed
from crm.extensions import db
from crm.integrations import service
from crm.models import AuditEvent, Integration, OAuthState
from crm.providers import oauth
from crm.providers.base import CRMError
from crm.providers.custom import CustomCRM
from tests.conftest import use_outbound_policy
from tests.fakes.oauth_server import FakeOAuthServer

USER_CLIENT_ID = "users-own-client"
USER_CLIENT_SECRET = "users-own-secret-7f3a9c1e5b"


@pytest.fixture
def authz(app, allow_local):
    # The user's own app at their authorization server, which takes HTTP Basic client auth.
    with FakeOAuthServer(client_id=USER_CLIENT_ID, client_secret=USER_CLIENT_SECRET, client_auth="basic") as server:
        yield server


def configuration(authz, **overrides) -> dict[str, Any]:
    values = {
        "provider": "CUSTOM",
        "crmName": "Acme CRM",
        "baseUrl": f"{authz.url()}/api",
        "healthPath": "/me",
        "authType": "OAUTH2",
        "grant": "AUTHORIZATION_CODE",
        "authorizeUrl": f"{authz.url()}/authorize",
        "tokenUrl": f"{authz.url()}/token",
        "scope": "contacts.read contacts.write",
        "credentials": {"clientId": USER_CLIENT_ID, "clientSecret": USER_CLIENT_SECRET},
    }
    values.update(overrides)
    return values


def start(api, authz=None, **body) -> Any:
    payload: dict[str, Any] = {"name": "My Acme", "type": "CRM"}
    if authz is not None:
        payload["configuration"] = configuration(authz)
    payload.update(body)
    return api.post("/api/dashboard/integrations/oauth/start", json=payload)


def callback(api, params: dict[str, str]):
    return api.get(f"/integrations/oauth/callback?{urlencode(params)}")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def connect(api, authz) -> Integration:
    answer = start(api, authz)
    assert answer.status_code == 200, answer.get_json()
    back = callback(api, authz.consent(answer.get_json()["authorizationUrl"]))
    return db.session.get(Integration, query_of(back.headers["Location"])["connected"])


def expire_locally(integration: Integration) -> None:
    integration.configuration = {**integration.configuration, "token_expires_at": int(time.time()) - 10}
    db.session.commit()


def opened(alice, integration: Integration, name: str) -> Any:
    stored = integration.configuration[name]
    return sealing.open_value(service.keyring(), alice.id, integration.id, name, stored)


# --- connect ----------------------------------------------------------------------------------


def test_connect_with_the_users_own_app_and_pkce(api, authz, alice):
    url = start(api, authz).get_json()["authorizationUrl"]
    assert url.startswith(f"{authz.url()}/authorize?")
    query = query_of(url)
    assert query["client_id"] == USER_CLIENT_ID and query["scope"] == "contacts.read contacts.write"
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert query["redirect_uri"] == "http://127.0.0.1:5000/integrations/oauth/callback"
    assert USER_CLIENT_SECRET not in url

    # Between start and callback the client secret is only in the state row, sealed.
    state = db.session.query(OAuthState).one()
    assert USER_CLIENT_SECRET not in json.dumps(state.pending)
    assert "credentials" not in state.pending and is_sealed(state.pending["_sealed"]["credentials"])

    back = callback(api, authz.consent(url))
    integration = db.session.get(Integration, query_of(back.headers["Location"])["connected"])
    assert integration.user_id == alice.id and integration.name == "My Acme"
    assert integration.provider == "CUSTOM" and integration.last_test_outcome == "ok"
    stored = integration.configuration
    assert stored["grant"] == "AUTHORIZATION_CODE" and stored["authorize_url"] == f"{authz.url()}/authorize"
    assert is_sealed(stored["access_token"]) and is_sealed(stored["refresh_token"])
    assert opened(alice, integration, "credentials") == {"clientId": USER_CLIENT_ID, "clientSecret": USER_CLIENT_SECRET}
    assert authz.token_requests == [
        {"grant_type": "authorization_code", "redirect_uri": "http://127.0.0.1:5000/integrations/oauth/callback"}
    ]
    assert db.session.query(OAuthState).count() == 0


def test_a_wrong_pkce_verifier_is_refused_by_the_server(api, authz):
    from crm.models import User
    from crm.oauth.service import _verifier_binding

    params = authz.consent(start(api, authz).get_json()["authorizationUrl"])
    state = db.session.query(OAuthState).one()
    binding = _verifier_binding(db.session.get(User, state.user_id), state.state_hash)
    state.code_verifier = service.keyring().seal("x" * 64, binding)
    db.session.commit()
    assert query_of(callback(api, params).headers["Location"]) == {"oauth_error": "token_error"}
    assert db.session.query(Integration).count() == 0


def test_deny_saves_nothing(api, authz):
    url = start(api, authz).get_json()["authorizationUrl"]
    back = callback(api, authz.consent(url, approve=False))
    assert query_of(back.headers["Location"]) == {"oauth_error": "access_denied"}
    assert "You did not allow access on the Custom CRM page" in api.get("/dashboard/integrations").text
    assert db.session.query(Integration).count() == 0 and authz.token_requests == []


def test_a_state_is_single_use_and_bound_to_its_user(api, bob_api, authz):
    url = start(api, authz).get_json()["authorizationUrl"]
    assert query_of(callback(bob_api, authz.consent(url)).headers["Location"]) == {"oauth_error": "invalid_state"}
    assert query_of(callback(api, authz.consent(url)).headers["Location"]) == {"oauth_error": "invalid_state"}
    assert db.session.query(Integration).count() == 0

    url = start(api, authz).get_json()["authorizationUrl"]
    params = authz.consent(url)
    assert "connected" in query_of(callback(api, params).headers["Location"])
    assert query_of(callback(api, params).headers["Location"]) == {"oauth_error": "invalid_state"}
    assert db.session.query(Integration).count() == 1


# --- refresh and reconnect --------------------------------------------------------------------


def test_refresh_rotates_and_stores_the_new_refresh_token(api, authz, alice):
    integration = connect(api, authz)
    first_refresh = opened(alice, integration, "refresh_token")
    expire_locally(integration)
    live = oauth.ensure_fresh(alice, integration)
    assert authz.refresh_requests == 1 and authz.access_valid(live["access_token"])
    db.session.expire_all()
    integration = db.session.get(Integration, integration.id)
    stored_refresh = opened(alice, integration, "refresh_token")
    assert stored_refresh == authz.current_refresh_tokens()[0] != first_refresh
    # The saved connection tests green with the refreshed token.
    answer = api.post("/api/dashboard/integrations/test", json={"type": "CRM", "integrationId": integration.id})
    assert answer.get_json()["outcome"] == "ok"


def test_invalid_grant_needs_reconnect_then_reconnect_keeps_the_id(api, authz, alice):
    integration = connect(api, authz)
    authz.revoke_all()
    expire_locally(integration)
    with pytest.raises(oauth.NeedsReconnect):
        oauth.ensure_fresh(alice, integration)
    db.session.expire_all()
    integration = db.session.get(Integration, integration.id)
    assert integration.auth_state == "needs_reconnect"
    page = api.get("/dashboard/integrations").text
    assert "Needs reconnect" in page and f"/integrations/oauth/reconnect/{integration.id}" in page

    answer = start(api, integrationId=integration.id)
    assert answer.status_code == 200, answer.get_json()
    url = answer.get_json()["authorizationUrl"]
    assert query_of(url)["client_id"] == USER_CLIENT_ID  # the user's own app, opened from the integration
    back = callback(api, authz.consent(url))
    assert query_of(back.headers["Location"]) == {"connected": integration.id}
    db.session.expire_all()
    again = db.session.get(Integration, integration.id)
    assert again.auth_state is None and again.last_test_outcome == "ok"
    assert db.session.query(Integration).count() == 1


def test_reconnect_of_another_users_integration_is_404(api, bob_api, authz):
    integration = connect(api, authz)
    assert start(bob_api, integrationId=integration.id).status_code == 404


# --- secrets and destinations -----------------------------------------------------------------


def test_the_client_secret_never_reaches_a_page_json_or_log(api, authz, alice, caplog):
    caplog.set_level(logging.DEBUG)
    integration = connect(api, authz)
    pages = [
        api.get(f"/api/dashboard/integrations/{integration.id}").text,
        api.get("/api/dashboard/integrations").text,
        api.get("/dashboard/integrations").text,
        api.get(f"/dashboard/integrations/{integration.id}/edit").text,
        api.get("/api/dashboard/providers").text,
        json.dumps([(e.action, e.detail) for e in db.session.query(AuditEvent)]),
        json.dumps(integration.configuration),
        caplog.text,
    ]
    for secret in (USER_CLIENT_SECRET, *authz.issued_tokens()):
        for page in pages:
            assert secret not in page


def test_a_token_url_to_a_private_address_is_refused(api, authz, app, dns):
    use_outbound_policy(app, dns, CRM_ALLOW_PRIVATE_HOSTS="127.0.0.1", CRM_ALLOW_INSECURE_HTTP=True)
    answer = start(api, configuration=configuration(authz, tokenUrl="http://10.1.2.3/token"))
    assert answer.status_code == 422 and "tokenUrl" in answer.get_json()["fields"]
    assert db.session.query(OAuthState).count() == 0

    # A state row forged to send the code (and the client secret) elsewhere: the guard refuses it.
    url = start(api, authz).get_json()["authorizationUrl"]
    state = db.session.query(OAuthState).one()
    state.pending = {**state.pending, "token_url": "http://10.1.2.3/token"}
    db.session.commit()
    back = callback(api, authz.consent(url))
    assert query_of(back.headers["Location"]) == {"oauth_error": "unreachable"}
    assert authz.token_requests == [] and db.session.query(Integration).count() == 0


def test_the_authorization_url_must_be_https(app, dns):
    use_outbound_policy(app, dns)  # plain http not allowed
    with pytest.raises(CRMError) as refused:
        CustomCRM.authorize_url({}, {"authorize_url": "http://auth.example.com/authorize"})
    assert refused.value.outcome == "invalid_url"
    assert CustomCRM.authorize_url({}, {"authorize_url": "https://auth.example.com/a"}) == "https://auth.example.com/a"


# --- the two grants side by side ----------------------------------------------------------------


def test_save_is_for_client_credentials_and_connect_for_authorization_code(api, authz):
    create = api.post(
        "/api/dashboard/integrations/create", json={"name": "x", "type": "CRM", "configuration": configuration(authz)}
    )
    assert create.status_code == 422 and "grant" in create.get_json()["fields"]
    client_credentials = configuration(authz, grant="CLIENT_CREDENTIALS")
    answer = start(api, configuration=client_credentials)
    assert answer.status_code == 422 and "grant" in answer.get_json()["fields"]
    assert db.session.query(OAuthState).count() == 0


def test_the_modal_without_javascript_offers_both_and_connect_leaves_for_the_consent_page(api, authz):
    page = api.get("/dashboard/integrations/new/crm/CUSTOM").text
    assert "Test Connection" in page and 'id="oauth-connect"' in page
    assert "http://127.0.0.1:5000/integrations/oauth/callback" in page  # the redirect URI to register
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {
        "csrf_token": csrf,
        "name": "From the modal",
        "crm_name": "Acme CRM",
        "base_url": f"{authz.url()}/api",
        "health_path": "/me",
        "auth_type": "OAUTH2",
        "grant": "AUTHORIZATION_CODE",
        "authorize_url": f"{authz.url()}/authorize",
        "token_url": f"{authz.url()}/token",
        "client_auth": "BASIC",
        "credentials.clientId": USER_CLIENT_ID,
        "credentials.clientSecret": USER_CLIENT_SECRET,
    }
    answer = api.client.post("/integrations/oauth/start/CUSTOM", data=form)
    assert answer.status_code == 200 and USER_CLIENT_SECRET not in answer.text
    url = html.unescape(re.search(r'href="([^"]+)" role="button" id="oauth-continue"', answer.text).group(1))
    back = callback(api, authz.consent(url))
    integration = db.session.get(Integration, query_of(back.headers["Location"])["connected"])
    assert integration.name == "From the modal" and integration.last_test_outcome == "ok"

    # Connect with Client credentials chosen: the error beside Grant, and Save still offered.
    answer = api.client.post("/integrations/oauth/start/CUSTOM", data={**form, "grant": "CLIENT_CREDENTIALS"})
    assert answer.status_code == 422 and 'id="grant-error"' in answer.text and "save-integration" in answer.text
