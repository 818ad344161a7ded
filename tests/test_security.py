"""Headers on every response, rate limits, and sessions that really end."""

import re

import pytest

from config import ProductionConfig
from crm import create_app
from crm.auth.guards import public
from tests.authorization_matrix import send, url_for_rule
from tests.conftest import PASSWORD, TEST_KEY, APIClient, chatwoot_payload

REQUIRED = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def check_headers(response, production=False):
    csp = response.headers.get("Content-Security-Policy", "")
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";") if part.strip())
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert "unsafe-inline" not in directives["script-src"] and "unsafe-eval" not in directives["script-src"]
    assert directives["object-src"] == "'none'" and directives["base-uri"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    for name, value in REQUIRED.items():
        assert response.headers.get(name) == value, name
    if production:
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_every_route_carries_the_headers(app, api):
    created = api.post("/api/dashboard/integrations/create", json=chatwoot_payload()).get_json()
    seen = 0
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = send(api.client, rule, method, url_for_rule(rule, created["id"]), api.csrf)
            check_headers(response)
            seen += 1
    for path in ("/no/such/page", "/api/nope"):
        check_headers(api.get(path))
    check_headers(api.client.post("/login", data={}))  # 400: no CSRF token
    assert seen > 40


def test_a_500_carries_the_headers_and_no_traceback(database_url):
    app = create_app(
        ProductionConfig,
        {"SQLALCHEMY_DATABASE_URI": database_url, "INTEGRATION_ENCRYPTION_KEY": TEST_KEY, "SECRET_KEY": "prod-test"},
    )

    @app.get("/boom")
    @public
    def boom():
        raise RuntimeError("secret detail that must not show")

    client = app.test_client()
    page = client.get("/boom", base_url="https://localhost")
    assert page.status_code == 500
    assert "secret detail" not in page.get_data(as_text=True) and "Traceback" not in page.get_data(as_text=True)
    check_headers(page, production=True)
    assert not app.debug


def test_hsts_only_under_the_production_config(client, database_url):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    app = create_app(
        ProductionConfig,
        {"SQLALCHEMY_DATABASE_URI": database_url, "INTEGRATION_ENCRYPTION_KEY": TEST_KEY, "SECRET_KEY": "prod-test"},
    )
    check_headers(app.test_client().get("/login", base_url="https://localhost"), production=True)


def login_attempt(client, email, password, address="10.0.0.7"):
    page = client.get("/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
    )


def test_the_eleventh_login_attempt_in_a_minute_is_refused(app, client, alice):
    for attempt in range(10):  # one address trying many accounts
        assert login_attempt(client, f"guess{attempt}@example.com", "wrong password!").status_code == 422
    refused = login_attempt(client, "alice@example.com", "wrong password!")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "wait a minute" in refused.get_data(as_text=True)
    # Even the right password waits: per address, the limit is on attempts, not only failures.
    assert login_attempt(client, "alice@example.com", PASSWORD).status_code == 429
    # The per-email limit is per address and counts failures only: see tests/test_limits.py.


def test_test_connection_is_limited_per_user(app, alice, bob, dns):
    api = APIClient(app.test_client(), alice.email)
    body = {"type": "CRM", "configuration": chatwoot_payload()["configuration"]}
    statuses = [api.post("/api/dashboard/integrations/test", json=body).status_code for _ in range(11)]
    assert statuses[:10] == [200] * 10
    assert statuses[10] == 429
    refused = api.post("/api/dashboard/integrations/test", json=body)
    assert refused.is_json and "wait a minute" in refused.get_json()["error"]
    assert "Retry-After" in refused.headers
    # The page's Test Connection shares the budget; another user has their own.
    page = api.client.post("/dashboard/integrations/new/crm/CHATWOOT/test", data={}, headers={"X-CSRFToken": api.csrf})
    assert page.status_code == 429
    other = APIClient(app.test_client(), bob.email)
    assert other.post("/api/dashboard/integrations/test", json=body).status_code == 200


def test_registration_is_limited(client):
    statuses = []
    for attempt in range(6):
        page = client.get("/register", environ_base={"REMOTE_ADDR": "10.0.3.1"}).get_data(as_text=True)
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        response = client.post(
            "/register",
            environ_base={"REMOTE_ADDR": "10.0.3.1"},
            data={"email": f"r{attempt}@example.com", "password": "x", "confirm": "x", "csrf_token": token},
        )
        statuses.append(response.status_code)
    assert statuses[:5] == [422] * 5 and statuses[5] == 429


def test_login_starts_a_fresh_session_and_logout_ends_every_copy(app, client, auth, alice):
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    auth.login()
    with client.session_transaction() as session:
        assert "planted" not in session
    stolen = client.get_cookie("session").value
    assert client.get("/dashboard/integrations").status_code == 200
    auth.logout()
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    response = replay.get("/dashboard/integrations")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("config_name", ["REMEMBER_COOKIE_DURATION"])
def test_remember_me_is_bounded(config_name):
    assert ProductionConfig.REMEMBER_COOKIE_DURATION.days <= 30
