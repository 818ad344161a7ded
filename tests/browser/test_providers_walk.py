"""HubSpot and Pipedrive in the Add Integration modal, walked in Chromium: pick the provider, fill the
form built from its schema, Test Connection (green, naming the portal or company), Save, and the card
with its capabilities. The operator's HUBSPOT_API_URL / PIPEDRIVE_API_URL point at the fakes."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import expect

from crm.auth.service import find_user
from crm.integrations import service
from tests.browser.test_modal import assert_secret_never_shown, register
from tests.conftest import APIClient
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.pipedrive import FakePipedrive


def open_provider(page, name: str):
    page.get_by_role("button", name="+ Add Integration").click()
    dialog = page.locator("dialog#integration-modal")
    dialog.get_by_role("link", name=re.compile("CRM Integration")).click()
    card = dialog.locator(f"a[data-provider]:has-text('{name}')")
    expect(card).not_to_have_attribute("aria-disabled", "true")
    expect(card.get_by_text("Coming soon")).to_have_count(0)
    card.click()
    expect(dialog.get_by_role("heading", name=f"Connect {name}")).to_be_visible()
    return dialog


def test_hubspot_walk(app, page_factory, live_server, allow_local):
    with FakeHubSpot() as hubspot:
        token = hubspot.add_token("pat-eu1-" + secrets.token_hex(16))
        app.config["HUBSPOT_API_URL"] = hubspot.url()
        page, recorder = page_factory()
        snapshots: list[str] = []
        register(page, live_server, "hubspot@example.com")
        dialog = open_provider(page, "HubSpot")

        secret_input = dialog.get_by_label("Private App Access Token")
        expect(secret_input).to_have_attribute("type", "password")
        expect(secret_input).to_have_attribute("autocomplete", "off")
        expect(dialog).to_contain_text("crm.objects.contacts.read")  # the field's help, from the schema

        # A wrong token: red, with HubSpot's own advice.
        secret_input.fill("pat-eu1-not-the-right-one")
        dialog.get_by_role("button", name="Test Connection").click()
        result = dialog.locator(".test-result")
        expect(result).to_have_class(re.compile("test-result-bad"))
        expect(result.locator(".advice")).to_contain_text("Private Apps → your app → Auth")

        # The right one, the name left empty: green, naming the portal, and the name is proposed.
        secret_input.fill(token)
        dialog.get_by_role("button", name="Test Connection").click()
        expect(result).to_have_class(re.compile("test-result-ok"))
        expect(result).to_contain_text("Connected to HubSpot account 146000123")
        expect(dialog.get_by_label("Integration Name")).to_have_value("HubSpot – portal 146000123")
        snapshots.append(page.content())

        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_have_count(0)
        card = page.locator(".integration-card", has_text="HubSpot – portal 146000123")
        expect(card.locator(".capabilities")).to_have_text("Contacts sync · Notes")
        expect(card).to_contain_text("Connection works · tested just now")
        with page.expect_response(lambda response: response.url.endswith("/retest")):
            card.get_by_role("button", name="Test").click()
        expect(card).to_contain_text("Connection works · tested just now")
        snapshots.append(page.content())

        [saved] = service.list_integrations(find_user("hubspot@example.com"))
        assert saved.provider == "HUBSPOT" and saved.last_test_outcome == "ok"
        assert hubspot.calls("GET", "/crm/v3/objects/contacts") >= 3  # every test reached the fake
        assert_secret_never_shown(recorder, snapshots, token)
        assert recorder.problems == []


@pytest.mark.parametrize("width", [1280, 390])
def test_pipedrive_walk(app, page_factory, live_server, allow_local, width):
    with FakePipedrive() as pipedrive:
        token = pipedrive.add_user()
        app.config["PIPEDRIVE_API_URL"] = pipedrive.url()
        page, recorder = page_factory(viewport={"width": width, "height": 900})
        snapshots: list[str] = []
        register(page, live_server, "pipedrive@example.com")
        dialog = open_provider(page, "Pipedrive")
        expect(dialog.get_by_label("API Token")).to_have_attribute("type", "password")

        # A bad company domain: the message beside the field is the one the API gives.
        name = dialog.get_by_label("Integration Name")
        name.fill("Sales")
        domain = dialog.get_by_label("Company Domain")
        domain.fill("acme corp!")
        dialog.get_by_label("API Token").fill(token)
        dialog.get_by_role("button", name="Save").click()
        error = dialog.locator("#company_domain-error")
        expect(error).to_be_visible()
        user = APIClient(app.test_client(), "pipedrive@example.com")
        configuration = {"provider": "PIPEDRIVE", "companyDomain": "acme corp!", "apiToken": token}
        answer = user.post("/api/dashboard/integrations/create", json={"name": "P", "configuration": configuration})
        assert answer.status_code == 422
        assert error.inner_text().strip() == answer.get_json()["fields"]["companyDomain"][0]

        # The address as pasted from the browser is reduced to the company domain; green names the company.
        name.fill("")  # left empty: a green test proposes one
        domain.fill("https://acme.pipedrive.com/")
        dialog.get_by_label("API Token").fill(token)  # password inputs are never re-filled by the server
        dialog.get_by_role("button", name="Test Connection").click()
        result = dialog.locator(".test-result")
        expect(result).to_have_class(re.compile("test-result-ok"))
        expect(result).to_contain_text("Connected to Pipedrive (Acme Ltd) as Ann Admin")
        expect(name).to_have_value("Pipedrive – Acme Ltd")
        snapshots.append(page.content())

        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_have_count(0)
        card = page.locator(".integration-card", has_text="Pipedrive – Acme Ltd")
        expect(card).to_contain_text("acme.pipedrive.com")
        expect(card.locator(".capabilities")).to_have_text("Contacts sync · Notes")
        expect(card).to_contain_text("Connection works · tested just now")
        snapshots.append(page.content())
        if width == 390:
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            box = card.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390

        [saved] = service.list_integrations(find_user("pipedrive@example.com"))
        assert saved.configuration["company_domain"] == "acme"
        assert pipedrive.query_token_uses == 0  # the token went in the header, never the URL
        assert_secret_never_shown(recorder, snapshots, token)
        assert recorder.problems == []
