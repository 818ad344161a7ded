"""Fixtures shared by every test: a real database (SQLite always, PostgreSQL when
TEST_DATABASE_URL is set), the app, a client, users and integrations."""

from __future__ import annotations

import contextvars
import errno
import functools
import ipaddress
import os
import re
import socket
import ssl

import pytest
import sqlalchemy as sa
import trustme
from flask.testing import FlaskClient

from config import TestConfig
from crm import create_app
from crm.auth.service import create_user
from crm.crypto import generate_key
from crm.extensions import db
from crm.integrations import service
from crm.net import client_from_config
from tests.fakes.chatwoot import FakeChatwoot

TEST_KEY = generate_key()
PASSWORD = "correct horse battery"
ENGINES = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


def postgres_url() -> str:
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", os.environ["TEST_DATABASE_URL"])
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # parallel workers (make test): a database each
    return worker_database(url, worker) if worker else url


@functools.cache
def worker_database(url: str, worker: str) -> str:
    """`<database>_<worker>` beside TEST_DATABASE_URL's database, created when missing. Unreachable
    PostgreSQL fails here, never skips."""
    base = sa.engine.make_url(url)
    name = f"{base.database}_{worker}"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            if not connection.scalar(sa.text("select 1 from pg_database where datname = :name"), {"name": name}):
                connection.execute(sa.text(f'create database "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"TEST_DATABASE_URL is set but PostgreSQL cannot be reached: {exc}", pytrace=False)
    finally:
        admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def check_postgres(url: str) -> None:
    """TEST_DATABASE_URL set but unreachable is a failure, never a skip."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"TEST_DATABASE_URL is set but PostgreSQL cannot be reached: {exc}", pytrace=False)
    finally:
        engine.dispose()


@pytest.fixture(params=ENGINES)
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    url = postgres_url()
    check_postgres(url)
    return url


class IsolatedClient(FlaskClient):
    """Runs each request in an empty context, as a real server would: the request gets its own
    app context, `g` and database session instead of sharing the test's."""

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


def make_app(database_url: str, **overrides):
    settings = {"SQLALCHEMY_DATABASE_URI": database_url, "INTEGRATION_ENCRYPTION_KEY": TEST_KEY}
    settings.update(overrides)
    app = create_app(TestConfig, settings)
    app.test_client_class = IsolatedClient
    return app


@pytest.fixture
def app(database_url):
    app = make_app(database_url)
    with app.app_context():
        db.drop_all()
        db.create_all()
        yield app
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    counter = iter(range(1, 10_000))

    def _make_user(email: str | None = None, password: str = PASSWORD):
        return create_user(email or f"user{next(counter)}@example.com", password)

    return _make_user


@pytest.fixture
def alice(make_user):
    return make_user("alice@example.com")


@pytest.fixture
def bob(make_user):
    return make_user("bob@example.com")


def chatwoot_values(**overrides):
    values = {
        "name": "Support Chatwoot",
        "base_url": "https://chat.example.com",
        "account_id": 7,
        "api_key": "cw-token-1234567890abcd",
        "auto_create_inboxes": True,
        "auto_create_bots": False,
        "sync_contacts": True,
    }
    values.update(overrides)
    return values


@pytest.fixture
def make_integration(app, dns):
    def _make(owner, provider="CHATWOOT", **overrides):
        values = chatwoot_values(**overrides) if provider == "CHATWOOT" else overrides
        return service.create_integration(owner, provider, values)

    return _make


class AuthActions:
    """Log in and out through the real forms, the way flaskr's tests do."""

    def __init__(self, client):
        self.client = client

    def csrf_token(self) -> str:
        page = self.client.get("/login").get_data(as_text=True)
        return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    def login(self, email="alice@example.com", password=PASSWORD):
        token = self.csrf_token()
        return self.client.post("/login", data={"email": email, "password": password, "csrf_token": token})

    def logout(self):
        page = self.client.get("/dashboard/integrations").get_data(as_text=True)
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        return self.client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(client):
    return AuthActions(client)


# --- outbound: DNS, local CRMs, TLS --------------------------------------------------------------

PUBLIC_IP = "93.184.215.14"  # a public address; the tripwire stops any connection to it


class FakeDNS:
    """Stands in for the system resolver (socket.getaddrinfo): names map to chosen addresses,
    literals and localhost resolve as the system would, anything else does not exist."""

    def __init__(self, records: dict | None = None):
        self.records = dict(records or {})
        self.lookups: list[str] = []

    def __call__(self, host, port, *args, **kwargs):
        self.lookups.append(host)
        answer = self.records.get(host.lower().rstrip("."))
        if callable(answer):
            answer = answer()
        if answer is None:
            if host.lower() == "localhost":
                answer = ["127.0.0.1"]
            else:
                try:
                    return socket.getaddrinfo(host, port, *args, flags=socket.AI_NUMERICHOST, **kwargs)
                except socket.gaierror:
                    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answer
        ]


class Tripwire:
    """Refuses, before any packet leaves, every connection to an address off this machine, and
    records every connection attempt. Tests may only ever talk to 127.0.0.0/8."""

    def __init__(self):
        self.attempts: list[str] = []

    def install(self, monkeypatch):
        real_connect = socket.socket.connect
        tripwire = self

        def guarded_connect(sock, address):
            host = address[0] if isinstance(address, tuple) else str(address)
            tripwire.attempts.append(host)
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not ipaddress.ip_address(host).is_loopback:
                raise OSError(errno.ENETUNREACH, "tripwire: off-machine address")
            return real_connect(sock, address)

        monkeypatch.setattr(socket.socket, "connect", guarded_connect)
        return self


@pytest.fixture(autouse=True)
def tripwire(monkeypatch):
    return Tripwire().install(monkeypatch)


@pytest.fixture
def dns(app):
    resolver = FakeDNS({"chat.example.com": [PUBLIC_IP], "api.acme.example": [PUBLIC_IP]})
    app.extensions["crm_http"] = client_from_config(app.config, resolver)
    return resolver


def use_outbound_policy(app, resolver=None, **settings):
    """Give the app an outbound client with these operator settings (e.g. an allowlist)."""
    config = {**app.config, **settings}
    client = client_from_config(config, resolver or FakeDNS())
    app.extensions["crm_http"] = client
    return client


@pytest.fixture
def allow_local(app, dns):
    """The operator allows the tests' 127.0.0.1 and plain http, as a self-hosted setup would."""
    return use_outbound_policy(app, dns, CRM_ALLOW_PRIVATE_HOSTS="127.0.0.1,localhost", CRM_ALLOW_INSECURE_HTTP=True)


@pytest.fixture
def chatwoot():
    with FakeChatwoot() as server:
        server.account = server.add_account("Acme Support")
        server.admin_token = server.add_user({server.account.id: "administrator"})
        server.agent_token = server.add_user({server.account.id: "agent"})
        yield server


@pytest.fixture(scope="session")
def tls_ca():
    return trustme.CA()


@pytest.fixture
def tls_server_context(tls_ca):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def ca_bundle(tls_ca, tmp_path):
    path = tmp_path / "private-ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return str(path)


# --- the JSON API ------------------------------------------------------------------------------


class APIClient:
    """A logged-in user's JSON client: sends the CSRF token as the X-CSRFToken header, like htmx does."""

    def __init__(self, client, email: str):
        self.client = client
        self.email = email
        AuthActions(client).login(email)
        page = client.get("/dashboard/integrations").get_data(as_text=True)
        self.csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    def call(self, method: str, path: str, json=None, csrf: bool = True, **kwargs):
        headers = kwargs.pop("headers", {})
        if csrf:
            headers["X-CSRFToken"] = self.csrf
        return self.client.open(path, method=method, json=json, headers=headers, **kwargs)

    def get(self, path, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.call("POST", path, json=json, **kwargs)

    def put(self, path, json=None, **kwargs):
        return self.call("PUT", path, json=json, **kwargs)

    def delete(self, path, **kwargs):
        return self.call("DELETE", path, **kwargs)


@pytest.fixture
def api(app, alice, dns):
    return APIClient(app.test_client(), alice.email)


@pytest.fixture
def bob_api(app, bob, dns):
    return APIClient(app.test_client(), bob.email)


def chatwoot_payload(**configuration):
    body = {
        "name": "Support",
        "type": "CRM",
        "configuration": {
            "provider": "CHATWOOT",
            "baseUrl": "https://chat.example.com",
            "accountId": 7,
            "apiKey": "cw-token-abcdefghijkl1234",
            "features": {"autoCreateInboxes": True, "autoCreateBots": False, "syncContacts": True},
        },
    }
    body["configuration"].update(configuration)
    return body


# --- contact sync state (one ContactLink per CRM account) ------------------------------------------


def link_of(contact):
    """The contact's one sync link (tests with a single CRM), fresh from the database."""
    from crm.models import ContactLink

    links = db.session.scalars(sa.select(ContactLink).where(ContactLink.contact_id == contact.id)).all()
    assert len(links) <= 1, "this helper is for contacts synced to one CRM"
    return links[0] if links else None


def remote_id(contact):
    """The contact's id in its one CRM (an int where the CRM's ids are numbers), or None."""
    link = link_of(contact)
    value = link.remote_id if link else None
    return int(value) if value and value.isdigit() else value


def sync_error(contact):
    link = link_of(contact)
    return link.sync_error if link else None


# --- a provider that is listed but not yet connectable ------------------------------------------


@pytest.fixture
def coming_soon_provider():
    """Every real provider can be connected now; the "coming soon" path still exists for the next one."""
    from crm.providers.base import Provider
    from crm.providers.registry import REGISTRY

    class UpcomingCRM(Provider):
        id = "UPCOMING"
        name = "Upcoming CRM"
        description = "Listed in the picker, not yet connectable."
        availability = "coming_soon"

    REGISTRY[UpcomingCRM.id] = UpcomingCRM
    yield UpcomingCRM
    del REGISTRY[UpcomingCRM.id]
