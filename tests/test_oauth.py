"""Connect with OAuth 2.0 (issue #13): state, PKCE, deny, refresh under concurrency, needs reconnect,
revocation on delete. Against a real authorization server on 127.0.0.1 (tests/fakes/oauth_server.py)
and a provider registered by this module only ("OAUTHTEST")."""

from __future__ import annotations

import html
import json
import multiprocessing
import re
import threading
import time
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from crm.crypto import is_sealed
from crm.extensions import db
from crm.integrations import service
from crm.models import AuditEvent, Integration, OAuthState
from crm.providers import oauth
from crm.providers.base import ConnectionResult, CRMError, Field, Provider
from crm.providers.registry import REGISTRY, register
from tests.fakes.oauth_server import FakeOAuthServer

PROVIDER_ID = "OAUTHTEST"
PROVIDER_SETTINGS = ("OAUTHTEST_URL", "OAUTHTEST_CLIENT_ID", "OAUTHTEST_CLIENT_SECRET")


class OAuthTestCRM(Provider):
    """A provider that connects only with OAuth, pointed at the fake (OAUTHTEST_URL)."""

    id = PROVIDER_ID
    name = "Test CRM"
    features = ("oauth", "connection_test")
    oauth_app: ClassVar[oauth.OAuthApp] = oauth.OAuthApp(
        client_id_setting="OAUTHTEST_CLIENT_ID", client_secret_setting="OAUTHTEST_CLIENT_SECRET", scopes=("api",)
    )
    config_fields = (Field("region", "Region", choices=(("eu", "EU"), ("us", "US")), type="select", default="eu"),)
    config_fields = (*config_fields, *oauth.oauth_token_fields())

    @classmethod
    def authorize_url(cls, settings, values):
        return f"{settings['OAUTHTEST_URL']}/authorize"

    @classmethod
    def token_url(cls, settings, values):
        return f"{settings['OAUTHTEST_URL']}/token"

    @classmethod
    def revoke_url(cls, settings, values):
        return f"{settings['OAUTHTEST_URL']}/revoke"

    @classmethod
    def accept_token_answer(cls, settings, values, answer, callback_params):
        return {}

    @classmethod
    def test_connection(cls, config, http):
        response = http.request("GET", f"{config['OAUTHTEST_URL']}/api/me", headers=bearer(config))
        if response.status == 401:
            raise CRMError("auth_failed", "Test CRM refused the access token.")
        return ConnectionResult("ok", f"Connected to {response.json()['org']}.")

    @classmethod
    def endpoints(cls, settings, values):
        return {"OAUTHTEST_URL": settings["OAUTHTEST_URL"]}


def bearer(config: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {config['access_token']}"}


def install_provider() -> None:
    if PROVIDER_ID not in REGISTRY:
        register(OAuthTestCRM)


@pytest.fixture
def provider():
    install_provider()
    yield OAuthTestCRM
    REGISTRY.pop(PROVIDER_ID, None)


@pytest.fixture
def authz(app, allow_local, provider):
    with FakeOAuthServer() as server:
        app.config.update(
            OAUTHTEST_URL=server.url(),
            OAUTHTEST_CLIENT_ID=server.client_id,
            OAUTHTEST_CLIENT_SECRET=server.client_secret,
        )
        yield server


def start(api, **body) -> Any:
    payload = {"name": "My Test CRM", "type": "CRM", "configuration": {"provider": PROVIDER_ID, "region": "eu"}}
    payload.update(body)
    return api.post("/api/dashboard/integrations/oauth/start", json=payload)


def callback(api, params: dict[str, str]):
    return api.get(f"/integrations/oauth/callback?{urlencode(params)}")


def connect(api, authz) -> Integration:
    answer = start(api)
    assert answer.status_code == 200, answer.get_json()
    back = callback(api, authz.consent(answer.get_json()["authorizationUrl"]))
    assert back.status_code == 302
    location = urlsplit(back.headers["Location"])
    assert location.path == "/dashboard/integrations"
    integration_id = parse_qs(location.query)["connected"][0]
    return db.session.get(Integration, integration_id)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# --- the flow ----------------------------------------------------------------------------------


def test_connect_creates_a_tested_integration_with_sealed_tokens(api, authz, alice):
    answer = start(api)
    url = answer.get_json()["authorizationUrl"]
    query = query_of(url)
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert query["redirect_uri"] == "http://127.0.0.1:5000/integrations/oauth/callback"
    assert query["client_id"] == authz.client_id and query["scope"] == "api"

    back = callback(api, authz.consent(url))
    integration_id = query_of(back.headers["Location"])["connected"]
    integration = db.session.get(Integration, integration_id)
    assert integration.user_id == alice.id and integration.name == "My Test CRM"
    assert integration.last_test_outcome == "ok"
    stored = integration.configuration
    assert is_sealed(stored["access_token"]) and is_sealed(stored["refresh_token"])
    assert stored["token_expires_at"] > time.time() + 3000 and stored["token_lifetime"] == 3600
    assert stored["region"] == "eu"
    assert db.session.query(OAuthState).count() == 0

    # Tokens never leave: not in the API, the dashboard, the edit form, nor the audit log.
    pages = [
        api.get(f"/api/dashboard/integrations/{integration_id}").get_data(as_text=True),
        api.get("/api/dashboard/integrations").get_data(as_text=True),
        api.get("/dashboard/integrations").get_data(as_text=True),
        api.get(f"/dashboard/integrations/{integration_id}/edit").get_data(as_text=True),
        api.get("/api/dashboard/providers").get_data(as_text=True),
        json.dumps([(e.action, e.detail) for e in db.session.query(AuditEvent)]),
    ]
    for token in authz.issued_tokens():
        for page in pages:
            assert token not in page
    detail = api.get(f"/api/dashboard/integrations/{integration_id}").get_json()
    assert "accessToken" not in json.dumps(detail) and detail["status"] == "connected"


def test_the_token_request_carries_the_pkce_verifier(api, authz):
    """The fake refuses a code without the verifier of its challenge: a wrong one ends in token_error."""
    url = start(api).get_json()["authorizationUrl"]
    params = authz.consent(url)
    state = db.session.query(OAuthState).one()
    state.code_verifier = service.keyring().seal(
        "x" * 64, oauth_state_binding(state)
    )  # a verifier that does not match the challenge
    db.session.commit()
    back = callback(api, params)
    assert query_of(back.headers["Location"]) == {"oauth_error": "token_error"}
    assert db.session.query(Integration).count() == 0


def oauth_state_binding(state):
    from crm.models import User
    from crm.oauth.service import _verifier_binding

    return _verifier_binding(db.session.get(User, state.user_id), state.state_hash)


def test_deny_on_the_consent_page_saves_nothing(api, authz):
    url = start(api).get_json()["authorizationUrl"]
    back = callback(api, authz.consent(url, approve=False))
    assert query_of(back.headers["Location"]) == {"oauth_error": "access_denied"}
    page = api.get("/dashboard/integrations").get_data(as_text=True)
    assert "You did not allow access on the Test CRM page, so nothing was saved." in page
    assert db.session.query(Integration).count() == 0
    assert authz.token_requests == []


def test_a_state_is_single_use(api, authz):
    url = start(api).get_json()["authorizationUrl"]
    params = authz.consent(url)
    assert "connected" in query_of(callback(api, params).headers["Location"])
    replay = callback(api, params)
    assert query_of(replay.headers["Location"]) == {"oauth_error": "invalid_state"}
    assert db.session.query(Integration).count() == 1


def test_another_users_state_is_refused(api, bob_api, authz):
    url = start(api).get_json()["authorizationUrl"]
    back = callback(bob_api, authz.consent(url))
    assert query_of(back.headers["Location"]) == {"oauth_error": "invalid_state"}
    assert db.session.query(Integration).count() == 0
    # ...and it is spent: the rightful user cannot use it afterwards either.
    assert query_of(callback(api, authz.consent(url)).headers["Location"]) == {"oauth_error": "invalid_state"}


def test_a_state_from_another_session_of_the_same_user_is_refused(app, api, authz, alice):
    from tests.conftest import APIClient

    url = start(api).get_json()["authorizationUrl"]
    other_session = APIClient(app.test_client(), alice.email)
    back = callback(other_session, authz.consent(url))
    assert query_of(back.headers["Location"]) == {"oauth_error": "invalid_state"}
    assert db.session.query(Integration).count() == 0


def test_an_expired_state_is_refused(api, authz):
    url = start(api).get_json()["authorizationUrl"]
    state = db.session.query(OAuthState).one()
    state.created_at = state.created_at - timedelta(minutes=11)
    db.session.commit()
    back = callback(api, authz.consent(url))
    assert query_of(back.headers["Location"]) == {"oauth_error": "invalid_state"}
    assert db.session.query(Integration).count() == 0


def test_a_forged_state_is_refused(api, authz):
    url = start(api).get_json()["authorizationUrl"]
    params = {**authz.consent(url), "state": "forged-" + "a" * 40}
    assert query_of(callback(api, params).headers["Location"]) == {"oauth_error": "invalid_state"}
    assert db.session.query(Integration).count() == 0


def test_start_refuses_bad_input_with_422(api, authz, app):
    answer = start(api, configuration={"provider": PROVIDER_ID, "region": "mars"})
    assert answer.status_code == 422 and "region" in answer.get_json()["fields"]
    assert start(api, configuration={"provider": "CHATWOOT"}).status_code == 422
    assert start(api, integrationId="00000000-0000-4000-8000-000000000000").status_code == 404
    app.config["OAUTHTEST_CLIENT_ID"] = ""
    answer = start(api)
    assert answer.status_code == 422
    assert "Ask your administrator to configure the Test CRM app." in json.dumps(answer.get_json())


def test_start_needs_csrf(api, authz):
    payload = {"name": "x", "type": "CRM", "configuration": {"provider": PROVIDER_ID}}
    assert api.post("/api/dashboard/integrations/oauth/start", json=payload, csrf=False).status_code == 400


# --- refresh -----------------------------------------------------------------------------------


def expire_locally(integration: Integration) -> None:
    integration.configuration = {**integration.configuration, "token_expires_at": int(time.time()) - 10}
    db.session.commit()


def test_ensure_fresh_refreshes_ahead_of_expiry_and_saves_the_rotated_token(api, authz, alice):
    integration = connect(api, authz)
    live = oauth.ensure_fresh(alice, integration)
    assert authz.refresh_requests == 0 and authz.access_valid(live["access_token"])

    # Lifetime 3600 s: the margin is 15 min. 14 min left → refresh.
    integration.configuration = {**integration.configuration, "token_expires_at": int(time.time()) + 14 * 60}
    db.session.commit()
    live = oauth.ensure_fresh(alice, integration)
    assert authz.refresh_requests == 1
    assert live["refresh_token"] == authz.current_refresh_tokens()[0]
    assert authz.access_valid(live["access_token"])


def test_short_lived_tokens_refresh_at_half_their_lifetime():
    # 20 minutes: refreshed at half its life (10 min left), not 15 min before expiry.
    assert not oauth.refresh_due({"token_expires_at": 1000 + 600, "token_lifetime": 1200}, now=999)
    assert oauth.refresh_due({"token_expires_at": 1000 + 600, "token_lifetime": 1200}, now=1000)
    assert not oauth.refresh_due({"token_expires_at": 10_000, "token_lifetime": 7200}, now=10_000 - 901)
    assert oauth.refresh_due({"token_expires_at": 10_000, "token_lifetime": 7200}, now=10_000 - 900)
    assert not oauth.refresh_due({}, now=10**10)  # unknown expiry: only after a 401


def test_refresh_after_a_401_happens_once_for_a_token_already_replaced(api, authz, alice):
    integration = connect(api, authz)
    authz.expire_access_tokens()
    first = db.session.get(Integration, integration.id).configuration["access_token"]
    live = oauth.refresh_after_401(alice, integration)
    assert authz.refresh_requests == 1 and authz.access_valid(live["access_token"])
    # A second caller that read the row before the refresh asks again: the stored token already changed.
    stale = Integration(id=integration.id, user_id=alice.id, configuration={"access_token": first})
    oauth._refresh(alice, stale, OAuthTestCRM, seen_access=first)
    assert authz.refresh_requests == 1


def refresh_in_thread(app, integration_id: str, results: list, barrier: threading.Barrier) -> None:
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        owner = integration.owner
        barrier.wait()
        try:
            results.append(oauth.ensure_fresh(owner, integration)["access_token"])
        except Exception as exc:
            results.append(exc)
        finally:
            db.session.remove()


def refresh_in_process(settings: dict, integration_id: str, start_at: float, queue) -> None:
    """A second process: its own app, engine and outbound client on the same database."""
    from crm.models import Integration as Row
    from tests.conftest import FakeDNS, make_app, use_outbound_policy

    install_provider()
    app = make_app(settings.pop("SQLALCHEMY_DATABASE_URI"), **settings)
    with app.app_context():
        use_outbound_policy(app, FakeDNS(), CRM_ALLOW_PRIVATE_HOSTS="127.0.0.1", CRM_ALLOW_INSECURE_HTTP=True)
        integration = db.session.get(Row, integration_id)
        time.sleep(max(0.0, start_at - time.time()))
        try:
            queue.put(oauth.ensure_fresh(integration.owner, integration)["access_token"])
        except Exception as exc:
            queue.put(repr(exc))


def test_one_refresh_for_8_threads_and_2_processes(app, api, authz, alice):
    """The lock of the database: a row lock on PostgreSQL, BEGIN IMMEDIATE on SQLite."""
    race_8_threads_and_2_processes(app, api, authz, alice)


def race_8_threads_and_2_processes(app, api, authz, alice):
    integration = connect(api, authz)
    authz.expire_access_tokens()
    expire_locally(integration)
    authz.token_delay = 0.3  # a refresh in flight while every other caller arrives

    settings = {
        key: app.config[key]
        for key in ("SQLALCHEMY_DATABASE_URI", "INTEGRATION_ENCRYPTION_KEY", "REDIS_URL", *PROVIDER_SETTINGS)
    }
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start_at = time.time() + 6  # spawned interpreters need a few seconds to import the app
    processes = [
        context.Process(target=refresh_in_process, args=(dict(settings), integration.id, start_at, queue))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    results: list = []
    barrier = threading.Barrier(8)
    time.sleep(max(0.0, start_at - time.time()))
    threads = [
        threading.Thread(target=refresh_in_thread, args=(app, integration.id, results, barrier)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    from_processes = [queue.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)

    assert authz.refresh_requests == 1
    tokens = results + from_processes
    assert all(isinstance(t, str) and authz.access_valid(t) for t in tokens), tokens
    assert len(set(tokens)) == 1
    db.session.expire_all()
    stored = db.session.get(Integration, integration.id)
    live = service.live_configuration(alice, stored)
    assert live["refresh_token"] == authz.current_refresh_tokens()[0]


# --- needs reconnect ---------------------------------------------------------------------------


def test_invalid_grant_needs_reconnect_then_reconnect_keeps_the_id(api, authz, alice):
    integration = connect(api, authz)
    authz.revoke_all()
    expire_locally(integration)
    with pytest.raises(oauth.NeedsReconnect) as refused:
        oauth.ensure_fresh(alice, integration)
    assert "Reconnect Test CRM on Dashboard → Integrations" in refused.value.message
    db.session.expire_all()
    integration = db.session.get(Integration, integration.id)
    assert integration.auth_state == "needs_reconnect"
    assert api.get(f"/api/dashboard/integrations/{integration.id}").get_json()["status"] == "needs_reconnect"
    page = api.get("/dashboard/integrations").get_data(as_text=True)
    assert "Needs reconnect" in page and f"/integrations/oauth/reconnect/{integration.id}" in page
    actions = [e.action for e in db.session.query(AuditEvent).filter_by(integration_id=integration.id)]
    assert "oauth_refresh" in actions

    # Fails fast: no further request reaches the token endpoint.
    before = authz.refresh_requests
    with pytest.raises(oauth.NeedsReconnect):
        oauth.ensure_fresh(alice, integration)
    assert authz.refresh_requests == before

    answer = start(api, integrationId=integration.id)
    back = callback(api, authz.consent(answer.get_json()["authorizationUrl"]))
    assert query_of(back.headers["Location"]) == {"connected": integration.id}
    db.session.expire_all()
    again = db.session.get(Integration, integration.id)
    assert again.auth_state is None and again.last_test_outcome == "ok"
    assert db.session.query(Integration).count() == 1
    assert api.get(f"/api/dashboard/integrations/{integration.id}").get_json()["status"] == "connected"


def test_reconnect_of_another_users_integration_is_404(api, bob_api, authz):
    integration = connect(api, authz)
    assert start(bob_api, integrationId=integration.id).status_code == 404


# --- delete revokes ----------------------------------------------------------------------------


def test_delete_revokes_at_the_provider_and_a_failed_revocation_does_not_block(api, authz, alice):
    first = connect(api, authz)
    assert api.delete(f"/api/dashboard/integrations/{first.id}").status_code == 204
    assert len(authz.revocations) == 1 and authz.current_refresh_tokens() == []

    second_id = connect(api, authz).id
    authz.revoke_status = 503
    assert api.delete(f"/api/dashboard/integrations/{second_id}").status_code == 204
    db.session.expire_all()
    assert db.session.get(Integration, second_id) is None
    outcomes = [e.outcome for e in db.session.query(AuditEvent).filter_by(action="oauth_revoke")]
    assert outcomes == ["ok", "failed"]


# --- the modal (pages without JavaScript) -------------------------------------------------------


def test_the_modal_offers_connect_instead_of_a_token_form(api, authz, app):
    page = api.get(f"/dashboard/integrations/new/crm/{PROVIDER_ID}").get_data(as_text=True)
    assert "Connect with Test CRM" in page and "Test Connection" not in page
    assert "access_token" not in page and "refresh_token" not in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = api.client.post(
        f"/integrations/oauth/start/{PROVIDER_ID}", data={"csrf_token": csrf, "name": "From the modal", "region": "us"}
    )
    # Without JavaScript: a Continue link (CSP form-action 'self' stops a post redirected elsewhere).
    url = html.unescape(re.search(r'href="([^"]+)" role="button" id="oauth-continue"', answer.text).group(1))
    assert answer.status_code == 200 and url.startswith(f"{authz.url()}/authorize?")
    back = callback(api, authz.consent(url))
    integration = db.session.get(Integration, query_of(back.headers["Location"])["connected"])
    assert integration.name == "From the modal" and integration.configuration["region"] == "us"

    app.config["OAUTHTEST_CLIENT_SECRET"] = ""
    page = api.get(f"/dashboard/integrations/new/crm/{PROVIDER_ID}").get_data(as_text=True)
    assert "Ask your administrator to configure the Test CRM app." in page and "Connect with" not in page


def test_the_modal_start_shows_field_errors(api, authz):
    page = api.get(f"/dashboard/integrations/new/crm/{PROVIDER_ID}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = api.client.post(f"/integrations/oauth/start/{PROVIDER_ID}", data={"csrf_token": csrf, "region": "mars"})
    assert answer.status_code == 422
    assert '<small id="region-error" class="field-error">Not a valid choice.</small>' in answer.get_data(as_text=True)
    assert db.session.query(OAuthState).count() == 0


def test_testing_a_saved_connection_refreshes_an_expired_token_first(api, authz, alice):
    integration = connect(api, authz)
    authz.expire_access_tokens()
    expire_locally(integration)
    answer = api.post("/api/dashboard/integrations/test", json={"type": "CRM", "integrationId": integration.id})
    assert answer.get_json()["outcome"] == "ok" and authz.refresh_requests == 1


def test_plain_create_refuses_an_oauth_provider(api, authz):
    answer = api.post(
        "/api/dashboard/integrations/create",
        json={"name": "x", "type": "CRM", "configuration": {"provider": PROVIDER_ID, "region": "eu"}},
    )
    assert answer.status_code == 422 and "connects with OAuth" in json.dumps(answer.get_json())


def test_cli_prints_the_redirect_uri(app, runner):
    app.config["PUBLIC_BASE_URL"] = "https://crm.example.com"
    result = runner.invoke(args=["crm", "oauth-redirect-uri"])
    assert result.exit_code == 0 and result.output == "https://crm.example.com/integrations/oauth/callback\n"


def test_changing_the_sign_in_address_of_a_connection_needs_connecting_again(api, authz, alice, provider, monkeypatch):
    """A stored token may only go where it was issued: an edit that moves a URL field is refused."""
    integration = connect(api, authz)
    url_field = Field("sign_in_url", "Sign-in URL", type="url")
    monkeypatch.setattr(provider, "config_fields", (url_field, *provider.config_fields))
    integration.configuration = {**integration.configuration, "sign_in_url": "https://login.example.com"}
    db.session.commit()
    answer = api.put(
        f"/api/dashboard/integrations/{integration.id}",
        json={"configuration": {"provider": PROVIDER_ID, "signInUrl": "https://evil.example.com"}},
    )
    assert answer.status_code == 422 and "connect Test CRM again" in json.dumps(answer.get_json())
    renamed = api.put(f"/api/dashboard/integrations/{integration.id}", json={"name": "Renamed"})
    assert renamed.status_code == 200
    db.session.expire_all()
    kept = db.session.get(Integration, integration.id).configuration
    assert is_sealed(kept["access_token"]) and kept["token_lifetime"] == 3600


@pytest.fixture
def redis_url():
    import shutil
    import socket
    import subprocess

    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(10)


def test_with_redis_a_lease_gives_one_refresh_for_8_threads_and_2_processes(app, api, authz, alice, redis_url):
    app.config["REDIS_URL"] = redis_url
    race_8_threads_and_2_processes(app, api, authz, alice)


def test_a_failed_early_refresh_keeps_using_a_token_that_has_not_expired(api, authz, alice):
    integration = connect(api, authz)
    integration.configuration = {**integration.configuration, "token_expires_at": int(time.time()) + 60}
    db.session.commit()
    authz.client_secret = "rotated-by-the-operator"  # the token endpoint now answers invalid_client (401)
    live = oauth.ensure_fresh(alice, integration)
    assert authz.refresh_requests == 0 and authz.access_valid(live["access_token"])
    expire_locally(integration)
    with pytest.raises(CRMError) as failed:
        oauth.ensure_fresh(alice, integration)
    assert not isinstance(failed.value, oauth.NeedsReconnect)
    db.session.expire_all()
    assert db.session.get(Integration, integration.id).auth_state is None
