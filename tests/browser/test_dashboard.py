"""The dashboard and the modal as a user meets them (issue 11, items 3, 4, 6, 7 and 10), in Chromium."""

from __future__ import annotations

import os
import re

from playwright.sync_api import expect

from crm.auth.service import find_user
from crm.integrations import service
from tests.browser.test_modal import SCREENSHOTS, fill_chatwoot, register

CUSTOM_CRM = {
    "name": "Acme",
    "type": "CRM",
    "configuration": {
        "provider": "CUSTOM",
        "crmName": "Acme CRM",
        "baseUrl": "https://api.acme.example",
        "authType": "API_KEY",
        "credentials": {"apiKey": "acme-key-0123456789"},
    },
}


def open_chatwoot_form(page):
    page.get_by_role("button", name="+ Add Integration").click()
    dialog = page.locator("dialog#integration-modal")
    dialog.get_by_role("link", name=re.compile("CRM Integration")).click()
    dialog.get_by_role("link", name=re.compile("^Chatwoot")).click()
    expect(dialog.get_by_role("heading", name="Connect Chatwoot")).to_be_visible()
    return dialog


def csrf(page) -> str:
    return page.locator('meta[name="csrf-token"]').get_attribute("content")


def integrations_of(email: str):
    return service.list_integrations(find_user(email))


# --- item 3 ---------------------------------------------------------------------------------------


def test_a_double_click_and_a_replayed_post_create_one_integration(
    app, page_factory, live_server, allow_local, chatwoot
):
    page, recorder = page_factory()
    register(page, live_server, "twice@example.com")
    dialog = open_chatwoot_form(page)
    fill_chatwoot(page, chatwoot, chatwoot.admin_token)
    form = dialog.locator("form.integration-form")
    sent = form.evaluate("f => new URLSearchParams(new FormData(f)).toString()")
    action = form.get_attribute("action")

    dialog.get_by_role("button", name="Save").dblclick()
    expect(dialog).to_have_count(0)
    expect(page.locator(".integration-card")).to_have_count(1)

    # The same form posted again (a replay, or a second tab's click): still one integration.
    replay = page.request.post(
        f"{live_server}{action}",
        data=sent,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-CSRFToken": csrf(page)},
        max_redirects=0,
    )
    assert replay.status in (204, 302, 303)
    assert len(integrations_of("twice@example.com")) == 1

    # The API: one Idempotency-Key, one integration, the same id answered twice.
    body = {"name": "API desk", "type": "CRM", "configuration": CUSTOM_CRM["configuration"]}
    headers = {"Idempotency-Key": "create-api-desk-1", "X-CSRFToken": csrf(page)}
    first = page.request.post(f"{live_server}/api/dashboard/integrations/create", data=body, headers=headers)
    again = page.request.post(f"{live_server}/api/dashboard/integrations/create", data=body, headers=headers)
    assert first.status == 201 and again.status == 200
    assert first.json()["id"] == again.json()["id"]
    assert len(integrations_of("twice@example.com")) == 2
    assert recorder.problems == []


# --- item 4 ---------------------------------------------------------------------------------------


def test_errors_show_inside_the_modal_and_a_429_says_when(app, page_factory, live_server, allow_local, chatwoot):
    app.config["TEST_CONNECTION_LIMIT"] = "2 per minute"
    page, recorder = page_factory()
    register(page, live_server, "errors@example.com")
    dialog = open_chatwoot_form(page)
    fill_chatwoot(page, chatwoot, chatwoot.admin_token)

    # A field error, then a green test: the stale error goes.
    dialog.get_by_label("Chatwoot Base URL").fill("chat.example.com")
    dialog.get_by_role("button", name="Test Connection").click()
    expect(dialog.locator("#base_url-error")).to_contain_text("https://")
    dialog.get_by_label("Chatwoot Base URL").fill(chatwoot.url())
    dialog.get_by_label("API Access Token").fill(chatwoot.admin_token)
    dialog.get_by_role("button", name="Test Connection").click()
    expect(dialog.locator(".test-result")).to_contain_text("Connection works")
    expect(dialog.locator("#base_url-error")).to_have_count(0)
    expect(dialog.locator("[aria-invalid=true]")).to_have_count(0)

    # Over the limit: the toast is inside the open dialog, on top, and says when to try again.
    dialog.get_by_role("button", name="Test Connection").click()
    toast = dialog.locator(".toast")
    expect(toast).to_contain_text(re.compile(r"Try again in \d+ (second|minute)"))
    on_top = toast.evaluate(
        "t => { const r = t.getBoundingClientRect();"
        " return t.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2)); }"
    )
    assert on_top, "the toast is hidden under the dialog"
    assert all("429" in problem for problem in recorder.problems)  # Chromium logs the 429 itself


# --- item 6 ---------------------------------------------------------------------------------------


def test_primary_is_an_active_chatwoot_and_everyone_agrees(app, page_factory, live_server, allow_local, chatwoot):
    page, recorder = page_factory()
    register(page, live_server, "primary@example.com")
    headers = {"X-CSRFToken": csrf(page)}
    # A Custom CRM first (the platform cannot act in it), then two Chatwoots.
    custom = page.request.post(f"{live_server}/api/dashboard/integrations/create", data=CUSTOM_CRM, headers=headers)
    assert custom.status == 201, custom.text()
    owner = find_user("primary@example.com")
    values = {"base_url": chatwoot.url(), "account_id": chatwoot.account.id, "api_key": chatwoot.admin_token}
    first = service.create_integration(owner, "CHATWOOT", {"name": "Desk A", **values})
    service.create_integration(owner, "CHATWOOT", {"name": "Desk B", **values})
    page.reload()

    def agree(primary_name: str | None) -> None:
        badges = page.locator(".integration-card", has=page.locator(".badge-primary"))
        listed = page.request.get(f"{live_server}/api/dashboard/integrations").json()["integrations"]
        flagged = [i["name"] for i in listed if i["isPrimary"]]
        if primary_name is None:
            expect(badges).to_have_count(0)
            expect(page.get_by_text("CRM features are off")).to_be_visible()
            assert flagged == []
        else:
            expect(badges).to_have_count(1)
            expect(badges).to_contain_text(primary_name)
            expect(page.locator("#integration-list [role=note]")).to_contain_text(primary_name)
            assert flagged == [primary_name]

    agree("Desk A")
    custom_card = page.locator(".integration-card", has_text="Acme")
    custom_card.get_by_text("More").click()
    expect(custom_card.get_by_role("button", name="Make primary")).to_have_count(0)
    page.mouse.click(5, 5)  # a click elsewhere closes the menu
    expect(custom_card.locator("details[open]")).to_have_count(0)
    refused = page.request.post(
        f"{live_server}/dashboard/integrations/{custom.json()['id']}/primary", headers=headers, max_redirects=0
    )
    assert refused.status == 302
    agree("Desk A")

    # Deactivating the primary hands over to the next Chatwoot, and says so.
    card_a = page.locator(f"#integration-{first.id}")
    card_a.get_by_text("More").click()
    card_a.get_by_role("button", name="Deactivate").click()
    expect(page.locator(".toast", has_text="Desk B is now your primary integration")).to_be_visible()
    agree("Desk B")

    # Deleting the last one that can be primary says none is.
    card_b = page.locator(".integration-card", has_text="Desk B")
    card_b.get_by_text("More").click()
    card_b.get_by_role("link", name="Delete").click()
    page.locator("dialog#integration-modal").get_by_role("button", name="Delete").click()
    expect(page.locator(".toast", has_text="No integration is primary now")).to_be_visible()
    agree(None)
    assert recorder.problems == []


# --- item 7 ---------------------------------------------------------------------------------------


def test_a_green_test_is_kept_by_the_save_and_a_rename(app, page_factory, live_server, allow_local, chatwoot):
    page, recorder = page_factory()
    register(page, live_server, "tested@example.com")
    dialog = open_chatwoot_form(page)
    fill_chatwoot(page, chatwoot, chatwoot.admin_token, name="Kept desk")
    dialog.get_by_role("button", name="Test Connection").click()
    expect(dialog.locator(".test-result")).to_contain_text("Connection works")
    dialog.get_by_role("button", name="Save").click()
    card = page.locator(".integration-card", has_text="Kept desk")
    expect(card).to_contain_text("Connection works · tested just now")

    # A new name keeps the test.
    card.get_by_role("button", name="Edit").click()
    dialog = page.locator("dialog#integration-modal")
    dialog.get_by_label("Integration Name").fill("Kept desk (EU)")
    dialog.get_by_role("button", name="Save").click()
    card = page.locator(".integration-card", has_text="Kept desk (EU)")
    expect(card).to_contain_text("Connection works · tested just now")

    # Another secret, not tested: the card no longer claims it works.
    card.get_by_role("button", name="Edit").click()
    dialog = page.locator("dialog#integration-modal")
    dialog.get_by_label("API Access Token").fill(chatwoot.agent_token)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(card).to_contain_text("Not tested yet")

    # A test of unsaved values cannot be claimed by a save of other values.
    card.get_by_role("button", name="Edit").click()
    dialog = page.locator("dialog#integration-modal")
    dialog.get_by_label("API Access Token").fill(chatwoot.admin_token)
    dialog.get_by_role("button", name="Test Connection").click()
    expect(dialog.locator(".test-result")).to_contain_text("Connection works")
    dialog.get_by_label("API Access Token").fill("a-different-token-0000")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(card).to_contain_text("Not tested yet")
    assert recorder.problems == []


# --- item 10 --------------------------------------------------------------------------------------


def in_view(page, locator) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    return (
        box is not None
        and box["y"] >= 0
        and box["y"] + box["height"] <= size["height"]
        and box["x"] >= 0
        and (box["x"] + box["width"] <= size["width"])
    )


def test_layout_at_desktop_and_phone_sizes(app, page_factory, live_server, allow_local, chatwoot):
    for width, height in ((1280, 860), (390, 844)):
        page, recorder = page_factory(viewport={"width": width, "height": height})
        email = f"layout{width}@example.com"
        page.goto(f"{live_server}/register")
        for label in ("Password", "Repeat password"):
            expect(page.get_by_label(label, exact=True)).to_have_attribute("autocomplete", "new-password")
        register(page, live_server, email)
        breadcrumb = page.get_by_role("navigation", name="breadcrumb").get_by_role("link", name="Dashboard")
        expect(breadcrumb).to_have_attribute("href", "/")

        page.get_by_role("button", name="+ Add Integration").click()
        dialog = page.locator("dialog#integration-modal")
        expect(dialog.locator(".choice-card.disabled", has_text="Coming soon")).not_to_have_count(0)
        dialog.get_by_role("link", name=re.compile("CRM Integration")).click()
        dialog.get_by_role("link", name=re.compile("^Chatwoot")).click()
        expect(dialog.get_by_role("heading", name="Connect Chatwoot")).to_be_visible()
        for name in ("Test Connection", "Save"):
            assert in_view(page, dialog.get_by_role("button", name=name)), f"{name} is out of view at {width}px"
        secret = dialog.get_by_label("API Access Token")
        expect(secret).to_have_attribute("autocomplete", re.compile("^(off|new-password)$"))
        if os.environ.get("UPDATE_SCREENSHOTS") and width < 800:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "add-integration-modal-390.png"), caret="initial")
        fill_chatwoot(page, chatwoot, chatwoot.admin_token, name="A desk with a rather long name for its card")
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_have_count(0)
        owner = find_user(email)
        values = {"base_url": chatwoot.url(), "account_id": chatwoot.account.id, "api_key": chatwoot.admin_token}
        service.create_integration(owner, "CHATWOOT", {"name": "Second desk", **values})
        page.reload()

        # Cards: the actions fit one row, Delete is red, cards of a row are as tall as each other.
        cards = page.locator(".integration-card")
        expect(cards).to_have_count(2)
        for index in range(2):
            tops = (
                cards.nth(index)
                .locator(".card-actions > *")
                .evaluate_all("items => items.map(i => Math.round(i.getBoundingClientRect().top))")
            )
            assert len(set(tops)) == 1, f"card actions wrap at {width}px: {tops}"
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not overflow
        if width > 800:
            heights = cards.evaluate_all("cs => cs.map(c => Math.round(c.getBoundingClientRect().height))")
            assert len(set(heights)) == 1, heights
        first = cards.first
        first.get_by_text("More").click()
        delete = first.get_by_role("link", name="Delete")
        color = delete.evaluate("d => getComputedStyle(d).color")
        assert color in ("rgb(179, 38, 30)",), color  # --lb-bad

        # History: readable names and the local time.
        first.get_by_role("link", name="History").click()
        history = page.locator("dialog#integration-modal")
        expect(history.locator("tbody")).to_contain_text("Created")
        expect(history.locator("tbody")).not_to_contain_text("make_primary")
        expect(history.locator("time").first).not_to_contain_text("UTC")
        page.keyboard.press("Escape")
        page.get_by_role("link", name="Contacts").first.click()
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        assert recorder.problems == [], recorder.problems  # no CSP violation, no script error
