"""Custom CRM with OAuth 2.0 in Chromium: the Grant choice switches the modal between Test/Save
(client credentials) and Connect (authorization code) without a round trip; Connect goes to the
user's own authorization server (the fake), and the dashboard shows a green card."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from crm.extensions import db
from crm.models import Integration
from tests.browser.test_form_fields import open_form
from tests.browser.test_modal import register
from tests.browser.test_oauth_walk import is_ours
from tests.fakes.oauth_server import FakeOAuthServer

CLIENT_ID = "walkers-own-app"
CLIENT_SECRET = "walkers-own-secret-4b8d2e6f"


@pytest.fixture
def authz(app, allow_local, live_server):
    with FakeOAuthServer(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, client_auth="basic") as server:
        app.config.update(PUBLIC_BASE_URL=live_server)
        yield server


def test_custom_crm_connects_with_the_authorization_code_grant(app, page_factory, live_server, authz):
    page, recorder = page_factory()
    ours: list[str] = []
    page.on("console", lambda m: ours.append(m.text) if m.type == "error" and is_ours(m, live_server) else None)
    page.on("pageerror", lambda error: ours.append(str(error)))
    register(page, live_server, "custom-oauth@example.com")
    dialog = open_form(page, "Custom CRM")
    test_button, save = dialog.get_by_role("button", name="Test Connection"), dialog.get_by_role("button", name="Save")
    connect = dialog.get_by_role("button", name="Connect", exact=True)
    authorize_url = dialog.get_by_label("Authorization URL")

    # API Key (the default): Test and Save; no Grant, no Connect.
    expect(test_button).to_be_visible()
    expect(connect).to_be_hidden()
    expect(dialog.get_by_label("Grant")).to_be_hidden()

    # OAuth 2.0 with Client credentials: still Test and Save.
    dialog.get_by_label("Authentication Type").select_option("OAUTH2")
    expect(dialog.get_by_label("Grant")).to_have_value("CLIENT_CREDENTIALS")
    expect(authorize_url).to_be_hidden()
    expect(save).to_be_visible()
    expect(connect).to_be_hidden()

    # Authorization code: the Authorization URL, Connect and the redirect URI to register.
    dialog.get_by_label("Grant").select_option("AUTHORIZATION_CODE")
    expect(authorize_url).to_be_visible()
    expect(connect).to_be_visible()
    expect(test_button).to_be_hidden()
    expect(save).to_be_hidden()
    expect(dialog.locator("#oauth-redirect-uri")).to_contain_text(f"{live_server}/integrations/oauth/callback")

    # Another authentication type hides the grant's fields again, whatever the Grant held.
    dialog.get_by_label("Authentication Type").select_option("BEARER")
    expect(authorize_url).to_be_hidden()
    expect(connect).to_be_hidden()
    expect(test_button).to_be_visible()
    dialog.get_by_label("Authentication Type").select_option("OAUTH2")
    expect(connect).to_be_visible()

    dialog.get_by_label("Integration Name").fill("Acme with my app")
    dialog.get_by_label("CRM Name").fill("Acme CRM")
    dialog.get_by_label("API Base URL").fill(authz.url() + "/api")
    dialog.get_by_label("Health Check Path").fill("/me")
    authorize_url.fill(authz.url() + "/authorize")
    dialog.get_by_label("Token URL").fill(authz.url() + "/token")
    dialog.get_by_label("Scope", exact=True).fill("contacts")
    dialog.get_by_label("Client ID").fill(CLIENT_ID)
    dialog.get_by_label("Client Secret").fill(CLIENT_SECRET)
    connect.click()

    expect(page).to_have_url(re.compile(re.escape(authz.url() + "/authorize")))
    page.locator("#approve").click()
    expect(page).to_have_url(re.compile(r"/dashboard/integrations\?connected="))
    card = page.locator("article.integration-card", has_text="Acme with my app")
    expect(card.locator(".test-state")).to_contain_text("Connection works")

    with app.app_context():
        assert [i.name for i in db.session.query(Integration)] == ["Acme with my app"]
    html = page.content()
    for secret in (CLIENT_SECRET, *authz.issued_tokens()):
        assert secret not in html
        for url, text in recorder.bodies():
            assert secret not in text, f"a secret in the response of {url}"
    assert ours == []
