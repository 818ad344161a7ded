"""Connect with Salesforce and Zoho CRM in Chromium: the modal, the vendor's consent page (the fakes),
and back on the dashboard with a green card; a denial says so and saves nothing."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from crm.extensions import db
from crm.models import Integration
from tests.browser.test_modal import register
from tests.fakes import salesforce as fake_salesforce
from tests.fakes import zoho as fake_zoho


@pytest.fixture
def vendors(app, allow_local, live_server):
    with fake_salesforce.FakeSalesforce() as salesforce, fake_zoho.FakeZoho() as zoho:
        app.config.update(
            PUBLIC_BASE_URL=live_server,
            SALESFORCE_LOGIN_URL=salesforce.url(),
            SALESFORCE_CLIENT_ID=fake_salesforce.CLIENT_ID,
            SALESFORCE_CLIENT_SECRET=fake_salesforce.CLIENT_SECRET,
            ZOHO_ACCOUNTS_URL=zoho.url(),
            ZOHO_CLIENT_ID=fake_zoho.CLIENT_ID,
            ZOHO_CLIENT_SECRET=fake_zoho.CLIENT_SECRET,
        )
        yield salesforce, zoho


def open_provider(page, name: str):
    page.get_by_role("button", name="+ Add Integration").click()
    dialog = page.locator("dialog#integration-modal")
    dialog.get_by_role("link", name=re.compile("CRM Integration")).click()
    dialog.get_by_role("link", name=re.compile(f"^{name}")).click()
    expect(dialog.get_by_role("heading", name=f"Connect {name}")).to_be_visible()
    expect(dialog.get_by_role("button", name="Test Connection")).to_have_count(0)
    return dialog


def is_ours(message, base: str) -> bool:
    return (message.location or {}).get("url", "").startswith(base)


def issued_secrets(*servers) -> list[str]:
    return [token for server in servers for token in (*server.oauth.by_refresh, *server.oauth.access)]


def assert_no_token_reached_the_browser(recorder, page, tokens) -> None:
    html = page.content()
    for token in tokens:
        assert token not in html
        for url, text in recorder.bodies():
            assert token not in text, f"a token in the response of {url}"


def test_connect_salesforce_and_zoho_then_deny(app, page_factory, live_server, vendors):
    salesforce, zoho = vendors
    page, recorder = page_factory()
    # The fakes' consent pages have no favicon (Chromium logs its 404): only our pages must be clean.
    ours: list[str] = []
    page.on("console", lambda m: ours.append(m.text) if m.type == "error" and is_ours(m, live_server) else None)
    page.on("pageerror", lambda error: ours.append(str(error)))
    register(page, live_server, "oauth-walker@example.com")

    # Salesforce: environment, Connect, the consent page, Allow, back with a green card.
    dialog = open_provider(page, "Salesforce")
    dialog.get_by_label("Integration Name").fill("Acme Salesforce")
    dialog.get_by_label("Salesforce environment").select_option("sandbox")
    dialog.get_by_role("button", name="Connect with Salesforce").click()
    expect(page).to_have_url(re.compile(re.escape(salesforce.url())))
    page.locator("#approve").click()
    expect(page).to_have_url(re.compile(r"/dashboard/integrations\?connected="))
    card = page.locator("article.integration-card", has_text="Acme Salesforce")
    expect(card.locator(".test-state")).to_contain_text("Connection works")
    expect(page.locator(".toast")).to_contain_text("Acme Salesforce is connected.")

    # Zoho CRM: data center, Connect, Allow.
    page.wait_for_load_state("load")
    dialog = open_provider(page, "Zoho CRM")
    dialog.get_by_label("Integration Name").fill("Acme Zoho")
    dialog.get_by_label("Data center").select_option("EU")
    dialog.get_by_role("button", name="Connect with Zoho CRM").click()
    expect(page).to_have_url(re.compile(re.escape(zoho.url())))
    page.locator("#approve").click()
    expect(page).to_have_url(re.compile(r"/dashboard/integrations\?connected="))
    card = page.locator("article.integration-card", has_text="Acme Zoho")
    expect(card.locator(".test-state")).to_contain_text("Connection works")

    # Deny on the consent page: a clear message, nothing saved.
    page.wait_for_load_state("load")
    dialog = open_provider(page, "Salesforce")
    dialog.get_by_label("Integration Name").fill("Never saved")
    dialog.get_by_role("button", name="Connect with Salesforce").click()
    expect(page).to_have_url(re.compile(re.escape(salesforce.url())))
    page.locator("#deny").click()
    expect(page).to_have_url(re.compile(r"/dashboard/integrations\?oauth_error=access_denied"))
    expect(page.locator(".toast")).to_contain_text("You did not allow access on the Salesforce page")
    expect(page.locator("article.integration-card", has_text="Never saved")).to_have_count(0)

    with app.app_context():
        names = sorted(i.name for i in db.session.query(Integration))
    assert names == ["Acme Salesforce", "Acme Zoho"]
    assert_no_token_reached_the_browser(recorder, page, issued_secrets(salesforce, zoho))
    assert ours == []


def test_without_an_app_the_modal_asks_for_the_administrator(app, page_factory, live_server, allow_local):
    app.config.update(SALESFORCE_CLIENT_ID="", SALESFORCE_CLIENT_SECRET="")
    page, recorder = page_factory(viewport={"width": 390, "height": 844})
    register(page, live_server, "no-app@example.com")
    dialog = open_provider(page, "Salesforce")
    ask = "Ask your administrator to configure the Salesforce app."
    expect(dialog.locator("#oauth-not-configured")).to_have_text(ask)
    expect(dialog.get_by_role("button", name="Connect with Salesforce")).to_have_count(0)
    assert recorder.problems == []


def test_a_revoked_connection_needs_reconnect_and_reconnect_keeps_the_card(app, page_factory, live_server, vendors):
    import time

    from crm.providers import oauth

    salesforce, _ = vendors
    page, _ = page_factory()
    register(page, live_server, "reconnect@example.com")
    dialog = open_provider(page, "Salesforce")
    dialog.get_by_label("Integration Name").fill("Acme Salesforce")
    dialog.get_by_role("button", name="Connect with Salesforce").click()
    page.locator("#approve").click()
    expect(page).to_have_url(re.compile(r"\?connected="))
    connected_id = page.url.rsplit("=", 1)[1]

    # An admin revokes the app; the next refresh is refused (invalid_grant).
    salesforce.revoke_all()
    with app.app_context():
        integration = db.session.get(Integration, connected_id)
        integration.configuration = {**integration.configuration, "token_expires_at": int(time.time()) - 10}
        db.session.commit()
        with pytest.raises(oauth.NeedsReconnect):
            oauth.ensure_fresh(integration.owner, integration)

    page.goto(f"{live_server}/dashboard/integrations")
    card = page.locator(f"#integration-{connected_id}")
    expect(card.locator(".oauth-reconnect .badge-bad")).to_have_text("Needs reconnect")
    card.get_by_role("button", name="Reconnect Salesforce").click()
    expect(page).to_have_url(re.compile(re.escape(salesforce.url())))
    page.locator("#approve").click()
    expect(page).to_have_url(f"{live_server}/dashboard/integrations?connected={connected_id}")
    card = page.locator(f"#integration-{connected_id}")
    expect(card.locator(".test-state")).to_contain_text("Connection works")
    expect(card.locator(".oauth-reconnect")).to_have_count(0)
    with app.app_context():
        assert db.session.query(Integration).count() == 1
