"""The integration form as a user meets it: fields that follow the auth type, typed input that
survives, and advice that belongs to the provider (issue 11, items 1, 2 and 5)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from crm.auth.service import find_user
from crm.integrations import service
from tests.browser.test_modal import register
from tests.fakes.custom_crm import FakeCustomCRM


@pytest.fixture
def custom_crm():
    with FakeCustomCRM() as crm:
        yield crm


def open_form(page, provider_name: str):
    """+ Add Integration → (CRM Integration) → the provider: the form in the modal."""
    page.get_by_role("button", name="+ Add Integration").click()
    dialog = page.locator("dialog#integration-modal")
    expect(dialog).to_be_visible()
    crm_type = dialog.get_by_role("link", name=re.compile("CRM Integration"))
    provider = dialog.get_by_role("link", name=re.compile(f"^{provider_name}"))
    expect(crm_type.or_(provider).first).to_be_visible()
    if crm_type.count():
        crm_type.click()
    provider.click()
    expect(dialog.get_by_role("heading", name=f"Connect {provider_name}")).to_be_visible()
    return dialog


def test_custom_crm_fields_follow_the_auth_type(app, page_factory, live_server, allow_local, custom_crm):
    """Item 1: choosing OAuth 2.0 shows its fields at once (no round trip); one input per credential."""
    page, recorder = page_factory()
    register(page, live_server, "fields@example.com")
    dialog = open_form(page, "Custom CRM")
    expect(dialog.locator("textarea")).to_have_count(0)  # no JSON to write by hand

    api_key, token_url = dialog.get_by_label("API Key", exact=True), dialog.get_by_label("Token URL")
    expect(api_key).to_be_visible()
    expect(api_key).to_have_attribute("type", "password")
    expect(token_url).to_be_hidden()

    requests_before = len(recorder.responses)
    dialog.get_by_label("Authentication Type").select_option("OAUTH2")
    for label in ("Token URL", "Client ID", "Client Secret", "Scope", "Client Authentication"):
        expect(dialog.get_by_label(label, exact=True)).to_be_visible()
    for label in ("API Key", "API Key Header", "Token", "Username", "Password"):
        expect(dialog.get_by_label(label, exact=True)).to_be_hidden()
    expect(dialog.locator(".only-for:visible")).to_have_count(0)  # the headings are for pages without JS
    assert len(recorder.responses) == requests_before  # shown and hidden without asking the server

    dialog.get_by_label("CRM Name").fill("Acme CRM")
    dialog.get_by_label("API Base URL").fill(custom_crm.url() + "/v1")
    dialog.get_by_label("Health Check Path").fill("/me")
    dialog.get_by_label("Token URL").fill(custom_crm.url() + "/oauth/token")
    dialog.get_by_label("Client ID").fill(custom_crm.client_id)
    dialog.get_by_label("Client Secret").fill(custom_crm.client_secret)
    expect(dialog.get_by_label("Client Secret")).to_have_attribute("type", "password")
    dialog.get_by_role("button", name="Test Connection").click()
    result = dialog.locator(".test-result")
    expect(result).to_contain_text("Connection works")
    expect(result).to_contain_text("token URL issued an access token")

    # Back and forth: a value typed for another type is not sent, checked or stored.
    dialog.get_by_label("Authentication Type").select_option("API_KEY")
    dialog.get_by_label("API Key", exact=True).fill("a-stray-api-key")
    dialog.get_by_label("Authentication Type").select_option("OAUTH2")
    expect(dialog.get_by_label("Integration Name")).to_have_value(f"127.0.0.1:{custom_crm.port}")  # proposed
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    card = page.locator(".integration-card", has_text=f"127.0.0.1:{custom_crm.port}")
    expect(card).to_be_visible()

    owner = find_user("fields@example.com")
    saved = service.list_integrations(owner)[0]
    assert saved.configuration["auth_type"] == "OAUTH2"
    assert set(saved.configuration["credentials"]) == {"clientId", "clientSecret"}
    assert "api_key_header" not in saved.configuration
    assert recorder.problems == []


def test_custom_crm_fields_without_javascript(app, page_factory, live_server, allow_local, custom_crm):
    """Item 1 without JavaScript: every type's fields show, each headed with the type it is for."""
    page, _ = page_factory(javascript=False)
    register(page, live_server, "fields-nojs@example.com")
    page.goto(f"{live_server}/dashboard/integrations/new/crm/CUSTOM")
    expect(page.locator("textarea")).to_have_count(0)
    for label in ("API Key", "Token", "Username", "Password", "Client ID", "Client Secret", "Token URL"):
        expect(page.get_by_label(label, exact=True)).to_be_visible()
    expect(page.get_by_text("Only for OAuth 2.0").first).to_be_visible()
    page.get_by_label("Integration Name").fill("Acme basic")
    page.get_by_label("CRM Name").fill("Acme CRM")
    page.get_by_label("API Base URL").fill(custom_crm.url() + "/v1")
    page.get_by_label("Health Check Path").fill("/me")
    page.get_by_label("Authentication Type").select_option("BASIC")
    page.get_by_label("Username").fill(custom_crm.username)
    page.get_by_label("Password", exact=True).fill("a-wrong-password")
    page.get_by_role("button", name="Test Connection").click()
    expect(page.locator(".test-result")).to_contain_text("Connection failed")
    expect(page.get_by_label("Password", exact=True)).to_have_value("a-wrong-password")  # typed, kept
    page.get_by_label("Password", exact=True).fill(custom_crm.password)
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(f"{live_server}/dashboard/integrations")
    saved = service.list_integrations(find_user("fields-nojs@example.com"))[0]
    assert set(saved.configuration["credentials"]) == {"username", "password"}


def fill_chatwoot_without_name(page_or_dialog, chatwoot, token: str) -> None:
    page_or_dialog.get_by_label("Chatwoot Base URL").fill(chatwoot.url())
    page_or_dialog.get_by_label("Account ID").fill(str(chatwoot.account.id))
    page_or_dialog.get_by_label("API Access Token").fill(token)


def test_typed_secret_survives_and_a_name_is_proposed(app, page_factory, live_server, allow_local, chatwoot):
    """Item 2, with JavaScript: a failed save keeps the typed token; Test needs no name and proposes one."""
    page, recorder = page_factory()
    token = chatwoot.admin_token
    register(page, live_server, "typed@example.com")
    dialog = open_form(page, "Chatwoot")
    fill_chatwoot_without_name(dialog, chatwoot, token)

    # A failed validation: the error shows, and the token is still there.
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator("#name-error")).to_contain_text("Integration Name is required")
    secret = dialog.get_by_label("API Access Token")
    expect(secret).to_have_value(token)
    expect(secret).to_have_attribute("type", "password")

    # A failed test keeps it too.
    dialog.get_by_label("Account ID").fill("999")
    dialog.get_by_role("button", name="Test Connection").click()
    expect(dialog.locator(".test-result")).to_contain_text("Connection failed")
    expect(secret).to_have_value(token)

    # Test needs only what the connection needs, and proposes a name from the answer.
    dialog.get_by_label("Account ID").fill(str(chatwoot.account.id))
    dialog.get_by_role("button", name="Test Connection").click()
    expect(dialog.locator(".test-result")).to_contain_text("Connection works")
    expect(dialog.get_by_label("Integration Name")).to_have_value("Chatwoot – Acme Support")
    expect(secret).to_have_value(token)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(page.locator(".integration-card", has_text="Chatwoot – Acme Support")).to_be_visible()

    # With JavaScript the server never sent the token back: the browser kept it.
    for url, text in recorder.bodies():
        assert token not in text, url
    assert recorder.problems == []


def test_typed_secret_survives_without_javascript(app, page_factory, live_server, allow_local, chatwoot):
    """Item 2, without JavaScript: the re-rendered page gives back what was typed, as a password input."""
    page, _ = page_factory(javascript=False)
    token = chatwoot.admin_token
    register(page, live_server, "typed-nojs@example.com")
    page.goto(f"{live_server}/dashboard/integrations/new/crm/CHATWOOT")
    fill_chatwoot_without_name(page, chatwoot, token)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#name-error")).to_contain_text("Integration Name is required")
    secret = page.get_by_label("API Access Token")
    expect(secret).to_have_value(token)
    expect(secret).to_have_attribute("type", "password")
    page.get_by_role("button", name="Test Connection").click()
    expect(page.locator(".test-result")).to_contain_text("Connection works")
    expect(page.get_by_label("Integration Name")).to_have_value("Chatwoot – Acme Support")
    expect(page.get_by_label("API Access Token")).to_have_value(token)
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(f"{live_server}/dashboard/integrations")
    expect(page.locator(".integration-card", has_text="Chatwoot – Acme Support")).to_be_visible()


def test_custom_crm_advice_and_card_are_its_own(app, page_factory, live_server, allow_local, custom_crm):
    """Item 5: a Custom CRM's failed test never sends the user to Chatwoot's Profile Settings."""
    page, recorder = page_factory()
    register(page, live_server, "advice@example.com")
    dialog = open_form(page, "Custom CRM")
    dialog.get_by_label("Integration Name").fill("Acme")
    dialog.get_by_label("CRM Name").fill("Acme CRM")
    dialog.get_by_label("API Base URL").fill(custom_crm.url() + "/v1")
    dialog.get_by_label("Health Check Path").fill("/me")
    dialog.get_by_label("Authentication Type").select_option("BEARER")
    dialog.get_by_label("Token", exact=True).fill("not-the-right-token")
    dialog.get_by_role("button", name="Test Connection").click()
    result = dialog.locator(".test-result")
    expect(result).to_contain_text("Connection failed")
    expect(result.locator(".advice")).to_contain_text("Authentication Type")
    expect(result).not_to_contain_text("Chatwoot")
    expect(result).not_to_contain_text("Profile Settings")

    dialog.get_by_label("Token", exact=True).fill(custom_crm.bearer)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    card = page.locator(".integration-card", has_text="Acme")
    expect(card).to_contain_text(f"Custom CRM · Acme CRM · 127.0.0.1:{custom_crm.port}")
    assert recorder.problems == []
