"""The Add Integration modal and the dashboard, walked in Chromium as a user would."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

from playwright.sync_api import expect

from crm.auth.service import find_user
from crm.integrations import service
from tests.conftest import PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def register(page, base: str, email: str) -> None:
    page.goto(f"{base}/register")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.locator("main").get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{base}/dashboard/integrations")
    # A click before htmx has loaded is a plain link (which works too); these tests want the modal.
    page.wait_for_load_state("load")


def fill_chatwoot(page, chatwoot, token: str, name: str = "Support desk") -> None:
    page.get_by_label("Integration Name").fill(name)
    page.get_by_label("Chatwoot Base URL").fill(chatwoot.url())
    page.get_by_label("Account ID").fill(str(chatwoot.account.id))
    page.get_by_label("API Access Token").fill(token)


def assert_secret_never_shown(recorder, pages: list[str], secret: str) -> None:
    forms = [secret, base64.b64encode(secret.encode()).decode(), secret[:12], secret[-8:]]
    for url, text in recorder.bodies():
        for form in forms:
            assert form not in text, f"secret found in the response of {url}"
    for html in pages:
        for form in forms:
            assert form not in html


def test_the_whole_walk(app, page_factory, live_server, allow_local, chatwoot, coming_soon_provider):
    page, recorder = page_factory()
    token = chatwoot.admin_token
    snapshots: list[str] = []
    register(page, live_server, "walker@example.com")
    expect(page.get_by_text("CRM features are off")).to_be_visible()

    # Open the modal; focus moves into it.
    add = page.get_by_role("button", name="+ Add Integration")
    add.click()
    dialog = page.locator("dialog#integration-modal")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading", name="Add Integration")).to_be_visible()
    dialog.get_by_role("link", name=re.compile("CRM Integration")).click()
    expect(dialog.get_by_role("heading", name="CRM Integration")).to_be_visible()
    for coming in ("Upcoming CRM",):
        card = dialog.locator(f"[data-provider]:has-text('{coming}')")
        expect(card).to_have_attribute("aria-disabled", "true")
        expect(card.get_by_text("Coming soon")).to_be_visible()
    dialog.get_by_role("link", name=re.compile("^Chatwoot")).click()
    expect(dialog.get_by_role("heading", name="Connect Chatwoot")).to_be_visible()

    # Fill it and test: green.
    fill_chatwoot(page, chatwoot, token)
    secret_input = dialog.get_by_label("API Access Token")
    expect(secret_input).to_have_attribute("type", "password")
    expect(secret_input).to_have_attribute("autocomplete", "off")
    dialog.get_by_role("button", name="Test Connection").click()
    result = dialog.locator(".test-result")
    expect(result).to_contain_text("Connection works")
    expect(result).to_contain_text("Acme Support")
    expect(result).to_have_class(re.compile("test-result-ok"))
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        secret_input.fill("")  # the screenshot must not show even masked dots of a real token
        page.set_viewport_size({"width": 1280, "height": 1480})
        # caret="initial": hiding the caret injects a <style>, which the CSP rightly refuses.
        page.screenshot(path=str(SCREENSHOTS / "add-integration-modal.png"), caret="initial")
        page.set_viewport_size({"width": 1280, "height": 900})
        secret_input.fill(token)

    # A wrong token: red, with what to do.
    secret_input.fill("not-the-right-token")
    dialog.get_by_role("button", name="Test Connection").click()
    expect(result).to_contain_text("Connection failed")
    expect(result).to_have_class(re.compile("test-result-bad"))
    expect(result).to_contain_text("Profile Settings → Access Token")
    assert service.list_integrations(find_user("walker@example.com")) == []  # testing never saves

    # Validation errors appear beside the field, in place.
    secret_input.fill(token)
    dialog.get_by_label("Chatwoot Base URL").fill("chat.example.com")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator("#base_url-error")).to_contain_text("https://")
    dialog.get_by_label("Chatwoot Base URL").fill(chatwoot.url())
    dialog.get_by_label("API Access Token").fill(token)  # password inputs are never re-filled by the server
    snapshots.append(page.content())

    # Save: the modal closes, the list refreshes, a toast confirms.
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(page.locator(".toast", has_text="Support desk is saved.")).to_be_visible()
    card = page.locator(".integration-card", has_text="Support desk")
    expect(card).to_be_visible()
    expect(card).to_contain_text("Connection works · tested just now")  # the green test before the save
    expect(card.get_by_text("Active", exact=True)).to_be_visible()
    expect(page.get_by_text("CRM features are off")).to_have_count(0)
    expect(add).to_be_focused()  # focus came back to the opener

    # The card's Test button.
    card.get_by_role("button", name="Test").click()
    expect(card).to_contain_text("Connection works · tested just now")

    # Edit: the stored values are there, the secret is not; rename and keep the token.
    card.get_by_role("button", name="Edit").click()
    dialog = page.locator("dialog#integration-modal")
    expect(dialog.get_by_label("Integration Name")).to_have_value("Support desk")
    expect(dialog.get_by_label("Account ID")).to_have_value(str(chatwoot.account.id))
    secret_input = dialog.get_by_label("API Access Token")
    expect(secret_input).to_have_value("")
    expect(secret_input).to_have_attribute("type", "password")
    expect(secret_input).to_have_attribute("autocomplete", "off")
    expect(dialog).to_contain_text(f"Saved, ending in {token[-4:]}. Leave blank to keep it.")
    snapshots.append(page.content())
    dialog.get_by_role("button", name="Test Connection").click()  # blank input: the stored token is used
    expect(dialog.locator(".test-result")).to_contain_text("Connection works")
    dialog.get_by_label("Integration Name").fill("Support desk (EU)")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    card = page.locator(".integration-card", has_text="Support desk (EU)")
    expect(card).to_be_visible()
    owner = find_user("walker@example.com")
    saved = service.list_integrations(owner)[0]
    assert service.live_configuration(owner, saved)["api_key"] == token  # the token was kept

    # Changing the host on the edit form refuses to send the stored token there.
    card.get_by_role("button", name="Edit").click()
    dialog = page.locator("dialog#integration-modal")
    dialog.get_by_label("Chatwoot Base URL").fill(chatwoot.url("localhost"))
    requests_before = len(chatwoot.requests)
    dialog.get_by_role("button", name="Test Connection").click()
    expect(dialog.locator("#api_key-error")).to_contain_text("enter the API Access Token again")
    assert len(chatwoot.requests) == requests_before
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)

    # Deactivate, then delete with a confirmation (both in the card's More menu).
    card.get_by_text("More").click()
    card.get_by_role("button", name="Deactivate").click()
    expect(card.get_by_text("Inactive", exact=True)).to_be_visible()
    expect(page.get_by_text("CRM features are off")).to_be_visible()
    card.get_by_text("More").click()
    card.get_by_role("link", name="Delete").click()
    dialog = page.locator("dialog#integration-modal")
    expect(dialog).to_contain_text("erases its stored credentials")
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator(".integration-card")).to_have_count(0)
    expect(page.get_by_text("No integrations yet")).to_be_visible()
    expect(page.locator(".toast", has_text="is deleted")).to_be_visible()

    snapshots.append(page.content())
    assert_secret_never_shown(recorder, snapshots, token)
    assert any("/test" in url for url, _ in recorder.bodies())  # the scan saw the htmx answers
    assert recorder.problems == []


def test_keyboard_esc_closes_and_focus_returns(page_factory, live_server):
    page, recorder = page_factory()
    register(page, live_server, "keys@example.com")
    add = page.get_by_role("button", name="+ Add Integration")
    add.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("dialog#integration-modal")
    expect(dialog).to_be_visible()
    focused_inside = page.evaluate("document.querySelector('dialog').contains(document.activeElement)")
    assert focused_inside
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(add).to_be_focused()
    assert recorder.problems == []


def test_create_flow_without_javascript(app, page_factory, live_server, allow_local, chatwoot):
    page, recorder = page_factory(javascript=False)
    register(page, live_server, "nojs@example.com")
    page.get_by_role("button", name="+ Add Integration").click()
    expect(page).to_have_url(f"{live_server}/dashboard/integrations/new")
    page.get_by_role("link", name=re.compile("CRM Integration")).click()
    page.get_by_role("link", name=re.compile("^Chatwoot")).click()
    expect(page.get_by_role("heading", name="Connect Chatwoot")).to_be_visible()
    fill_chatwoot(page, chatwoot, chatwoot.admin_token, name="No-JS desk")
    page.get_by_role("button", name="Test Connection").click()
    expect(page.locator(".test-result")).to_contain_text("Connection works")
    # A full page came back: the form keeps the typed values except the secret.
    expect(page.get_by_label("Integration Name")).to_have_value("No-JS desk")
    page.get_by_label("API Access Token").fill(chatwoot.admin_token)
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(f"{live_server}/dashboard/integrations")
    expect(page.locator(".integration-card", has_text="No-JS desk")).to_be_visible()
    expect(page.locator(".toast", has_text="No-JS desk is saved.")).to_be_visible()
    # The card's buttons post the list's one form (one CSRF token) without JavaScript too.
    page.locator(".integration-card").get_by_text("More").click()
    page.locator(".integration-card").get_by_role("button", name="Deactivate").click()
    expect(page.locator(".toast", has_text="No-JS desk is now inactive.")).to_be_visible()
    expect(page.locator(".integration-card").get_by_text("Inactive", exact=True)).to_be_visible()
    # Delete works without JavaScript too, through its confirmation page.
    page.locator(".integration-card").get_by_text("More").click()
    page.locator(".integration-card").get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No integrations yet")).to_be_visible()
    assert_secret_never_shown(recorder, [page.content()], chatwoot.admin_token)


def test_readable_on_a_phone(page_factory, live_server):
    page, recorder = page_factory(viewport={"width": 390, "height": 844})
    register(page, live_server, "phone@example.com")
    page.get_by_role("button", name="+ Add Integration").click()
    page.locator("dialog").get_by_role("link", name=re.compile("CRM Integration")).click()
    dialog = page.locator("dialog#integration-modal")
    expect(dialog.get_by_role("heading", name="CRM Integration")).to_be_visible()
    box = dialog.locator("article").bounding_box()
    assert box is not None and box["width"] <= 390
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert recorder.problems == []
