"""Rate limits that hold: per user (not per session), on every state change, shared by every worker,
and a login limit that an attacker cannot turn against the account's owner."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests

from config import Config, DevelopmentConfig, ProductionConfig
from crm import create_app
from crm.extensions import db
from crm.limits import LimitStorageError
from tests.authorization_matrix import LIMIT_EXEMPT, send, url_for_rule
from tests.conftest import PASSWORD, TEST_KEY, APIClient, AuthActions, chatwoot_payload, make_app

ROOT = Path(__file__).resolve().parent.parent
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
REDIS_URL = "redis://127.0.0.1:6379/0"


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def login_attempt(client, email, password, address="10.0.0.7"):
    page = client.get("/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page)},
        environ_base={"REMOTE_ADDR": address},
    )


# --- per user, not per session -------------------------------------------------------------------


def test_per_user_limits_key_on_the_user_not_the_session(app, alice, bob, dns):
    """Logging in again (a new session token) buys no fresh budget; a second session shares it."""
    app.config["WRITE_LIMIT"] = "3 per minute"
    api = APIClient(app.test_client(), alice.email)
    created = api.post("/api/dashboard/integrations/create", json=chatwoot_payload())
    assert created.status_code == 201
    path = f"/api/dashboard/integrations/{created.get_json()['id']}"
    assert api.put(path, json={"name": "renamed once"}).status_code == 200

    AuthActions(api.client).logout()  # ends the session: the next login gets a new session token
    again = APIClient(app.test_client(), alice.email)
    assert again.put(path, json={"name": "renamed twice"}).status_code == 200
    refused = APIClient(app.test_client(), alice.email).put(path, json={"name": "renamed thrice"})
    assert refused.status_code == 429  # three writes by alice, whatever her sessions
    assert "Retry-After" in refused.headers
    bob_api = APIClient(app.test_client(), bob.email)  # bob has his own budget
    assert bob_api.post("/api/dashboard/integrations/create", json=chatwoot_payload()).status_code == 201


# --- every state change has a limit --------------------------------------------------------------


def test_every_state_changing_route_has_a_limit(app, api, make_integration):
    """Each POST/PUT/PATCH/DELETE route answers with rate-limit headers (or 429): none is unlimited."""
    integration_id = api.post("/api/dashboard/integrations/create", json=chatwoot_payload()).get_json()["id"]
    rules = [
        (rule, method)
        for rule in app.url_map.iter_rules()
        for method in sorted((rule.methods or set()) & WRITE_METHODS)
        if rule.endpoint not in LIMIT_EXEMPT
    ]
    rules.sort(key=lambda item: item[0].endpoint == "auth.logout")  # logging out last keeps the session
    unlimited = []
    for rule, method in rules:
        response = send(api.client, rule, method, url_for_rule(rule, integration_id), api.csrf)
        if response.status_code != 429 and "X-RateLimit-Limit" not in response.headers:
            unlimited.append(f"{method} {rule.rule} ({rule.endpoint})")
    assert unlimited == []
    assert len(rules) >= 15


def test_every_limit_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    settings = [name for name in dir(Config) if name.endswith("_LIMIT") and not name.startswith("WTF_")]
    assert {"WRITE_LIMIT", "CONTACTS_IMPORT_LIMIT", "CONTACTS_SYNC_LIMIT", "SEND_MESSAGE_LIMIT"} <= set(settings)
    assert [name for name in settings if f"| `{name}` |" not in readme] == []


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ("CONTACTS_IMPORT_LIMIT", "/contacts/import"),
        ("CONTACTS_SYNC_LIMIT", "/contacts/sync"),
        ("SEND_MESSAGE_LIMIT", "/contacts/00000000-0000-4000-8000-000000000000/message"),
        ("WRITE_LIMIT", "/contacts"),
    ],
)
def test_contacts_operations_are_limited_per_user(app, api, bob_api, setting, path):
    app.config[setting] = "2 per minute"
    statuses = [api.post(path, json=None, data={"csrf_token": api.csrf}).status_code for _ in range(3)]
    assert 429 not in statuses[:2] and statuses[2] == 429
    assert bob_api.post(path, json=None, data={"csrf_token": bob_api.csrf}).status_code != 429
    for thread in threading.enumerate():  # a started sync finishes before the database goes
        if thread.name.startswith("sync-"):
            thread.join(timeout=30)


def test_page_forms_and_the_api_share_one_write_budget(app, api, make_integration, alice):
    app.config["WRITE_LIMIT"] = "3 per minute"
    first = make_integration(alice, name="First")
    second = make_integration(alice, name="Second")
    headers = {"X-CSRFToken": api.csrf}
    assert api.client.post(f"/dashboard/integrations/{second.id}/primary", headers=headers).status_code != 429
    assert api.client.post(f"/dashboard/integrations/{first.id}/toggle", headers=headers).status_code != 429
    assert api.put(f"/api/dashboard/integrations/{first.id}", json={"name": "x"}).status_code == 200
    assert api.client.post(f"/dashboard/integrations/{first.id}/primary", headers=headers).status_code == 429
    assert api.put(f"/api/dashboard/integrations/{first.id}", json={"name": "y"}).status_code == 429


# --- login: failures only, per address and email ---------------------------------------------------


def test_the_owner_logs_in_from_a_new_address_while_an_attacker_hammers_the_email(app, client, alice):
    for attempt in range(40):
        response = login_attempt(client, "alice@example.com", "wrong password!", address=f"10.0.1.{attempt % 4}")
        assert response.status_code in (422, 429)
    assert login_attempt(client, "alice@example.com", "wrong password!", address="10.0.1.0").status_code == 429
    owner = app.test_client()
    assert login_attempt(owner, "alice@example.com", PASSWORD, address="10.0.2.1").status_code == 302


def test_only_failed_logins_count_toward_the_email_limit(app, alice):
    app.config["LOGIN_LIMIT"] = "100 per minute"  # the per-address limit stays out of the way
    address = "10.0.4.1"
    for _ in range(4):
        assert login_attempt(app.test_client(), "alice@example.com", "wrong password!", address).status_code == 422
    for _ in range(8):  # successes are not failures: they leave the budget alone
        assert login_attempt(app.test_client(), "alice@example.com", PASSWORD, address).status_code == 302
    assert login_attempt(app.test_client(), "alice@example.com", "wrong password!", address).status_code == 422
    refused = login_attempt(app.test_client(), "alice@example.com", "wrong password!", address)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # An unknown email is limited the same way (the answer tells nothing about who has an account).
    for _ in range(5):
        assert login_attempt(app.test_client(), "nobody@example.com", "wrong password!", address).status_code == 422
    assert login_attempt(app.test_client(), "nobody@example.com", "wrong password!", address).status_code == 429


def test_an_ipv6_client_is_one_address_per_64(client, alice):
    for attempt in range(10):
        address = f"2001:db8:1:2::{attempt + 1:x}"
        assert login_attempt(client, f"u{attempt}@example.com", "wrong password!", address).status_code == 422
    assert login_attempt(client, "u@example.com", "wrong password!", "2001:db8:1:2:ffff::1").status_code == 429
    assert login_attempt(client, "u@example.com", "wrong password!", "2001:db8:1:3::1").status_code == 422


# --- several workers, one count ----------------------------------------------------------------------


def settings(database_url, **extra):
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "INTEGRATION_ENCRYPTION_KEY": TEST_KEY,
        "SECRET_KEY": "limits-test",
        **extra,
    }


def test_production_refuses_memory_counters_with_several_workers(database_url):
    with pytest.raises(LimitStorageError, match=r"3 workers.*set REDIS_URL"):
        create_app(ProductionConfig, settings(database_url, WEB_WORKERS=3, RATELIMIT_STORAGE_URI="memory://"))
    create_app(ProductionConfig, settings(database_url, WEB_WORKERS=1, RATELIMIT_STORAGE_URI="memory://"))
    create_app(ProductionConfig, settings(database_url, WEB_WORKERS=3, RATELIMIT_STORAGE_URI=REDIS_URL))


def test_development_warns_about_memory_counters_with_several_workers(database_url, caplog):
    with caplog.at_level(logging.WARNING):
        create_app(DevelopmentConfig, settings(database_url, WEB_WORKERS=2, RATELIMIT_STORAGE_URI="memory://"))
    assert "2 workers" in caplog.text and "REDIS_URL" in caplog.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url, port, **extra):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"GUNICORN_WORKERS", "WEB_CONCURRENCY", "REDIS_URL", "SERVER_SOFTWARE"}
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": "limits-test",
            "INTEGRATION_ENCRYPTION_KEY": TEST_KEY,
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            **extra,
        }
    )
    return env


def gunicorn(env):
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py", "app:app"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_gunicorn_with_the_default_config_refuses_memory_counters_in_production(tmp_path):
    """`make serve` without REDIS_URL: gunicorn.conf.py's 3 workers, detected with no variable set."""
    database_url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    server = gunicorn(server_env(database_url, free_port(), APP_ENV="production"))
    try:
        output, _ = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode != 0
    assert "3 workers" in output and "set REDIS_URL" in output


def wait_until_serving(port, server):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stdout.read()
        try:
            requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise AssertionError("the server did not start")


@pytest.fixture
def redis_prefix():
    prefix = f"limits-test-{uuid.uuid4().hex}"
    yield prefix
    store = redis.Redis.from_url(REDIS_URL)
    for key in store.scan_iter(match=f"*{prefix}*"):
        store.delete(key)


def test_two_processes_share_one_count_in_redis(tmp_path, redis_prefix):
    """Two separate servers (two workers' worth of memory) on one Redis: the 11th login attempt
    from one address is refused, however the attempts were spread over them."""
    database_url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    app = make_app(database_url)
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    ports = [free_port(), free_port()]
    servers = [
        gunicorn(
            server_env(
                database_url,
                port,
                APP_ENV="development",
                GUNICORN_WORKERS="1",
                REDIS_URL=REDIS_URL,
                RATELIMIT_KEY_PREFIX=redis_prefix,
            )
        )
        for port in ports
    ]
    try:
        for port, server in zip(ports, servers, strict=True):
            wait_until_serving(port, server)
        browser = requests.Session()
        token = csrf_of(browser.get(f"http://127.0.0.1:{ports[0]}/login", timeout=5).text)
        statuses = []
        for attempt in range(11):
            port = ports[attempt % 2]
            data = {"email": f"someone{attempt}@example.com", "password": "wrong password!", "csrf_token": token}
            statuses.append(browser.post(f"http://127.0.0.1:{port}/login", data=data, timeout=5).status_code)
        browser.close()  # no kept-alive connection holds the servers' graceful shutdown
        assert statuses == [422] * 10 + [429]
        assert any(redis.Redis.from_url(REDIS_URL).scan_iter(match=f"*{redis_prefix}*"))
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


def test_registration_probing_is_bounded_per_ipv6_64(client, alice):
    """Registration tells whether an email has an account (an accepted risk, README: Security in
    short); its limit bounds the probing, and a /64 of addresses counts as one client."""
    statuses = []
    for attempt in range(6):
        address = f"2001:db8:5:6::{attempt + 1:x}"
        page = client.get("/register", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)
        data = {"email": "alice@example.com", "password": PASSWORD, "confirm": PASSWORD, "csrf_token": csrf_of(page)}
        statuses.append(client.post("/register", data=data, environ_base={"REMOTE_ADDR": address}).status_code)
    assert statuses == [422] * 5 + [429]
