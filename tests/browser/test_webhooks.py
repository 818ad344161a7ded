"""The Webhooks page of a card, in Chromium: register in (the fake) Chatwoot, receive a signed
delivery over real HTTP, and see it appear, verified."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.test_dashboard import csrf
from tests.browser.test_modal import assert_secret_never_shown, register


def test_register_from_the_card_and_see_the_delivery(app, page_factory, live_server, allow_local, chatwoot):
    app.config.update(PUBLIC_BASE_URL=live_server, CRM_ALLOW_INSECURE_HTTP=True)
    page, recorder = page_factory()
    register(page, live_server, "hooks@example.com")
    body = {
        "name": "Support desk",
        "type": "CRM",
        "configuration": {
            "provider": "CHATWOOT",
            "baseUrl": chatwoot.url(),
            "accountId": chatwoot.account.id,
            "apiKey": chatwoot.admin_token,
            "features": {"autoCreateInboxes": False, "autoCreateBots": False, "syncContacts": True},
        },
    }
    created = page.request.post(
        f"{live_server}/api/dashboard/integrations/create", data=body, headers={"X-CSRFToken": csrf(page)}
    )
    assert created.status == 201
    page.reload()
    card = page.locator(".integration-card")
    card.get_by_text("More").click()  # the link lives in the card's menu
    card.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
    expect(page.get_by_text("source of truth")).to_be_visible()
    url = page.locator("#webhook-url").input_value()
    assert re.fullmatch(re.escape(live_server) + r"/webhooks/[A-Za-z0-9_-]{43}", url)

    page.get_by_role("button", name="Register in Chatwoot").click()
    expect(page.get_by_text("Webhook registered in the CRM.")).to_be_visible()
    expect(page.locator("#webhook-registered")).to_have_text("yes")
    webhook = next(iter(chatwoot.account.webhooks.values()))
    assert webhook["url"] == url

    message = {
        "id": 501,
        "content": "Hello from the widget",
        "message_type": "incoming",
        "private": False,
        "sender": {"id": 3, "name": "Ana", "email": "ana@example.com"},
        "conversation": {"id": 1, "status": "open"},
    }
    assert chatwoot.emit(chatwoot.account, "message_created", message) == [200]
    page.reload()
    row = page.locator("#webhook-deliveries tbody tr").first
    expect(row).to_contain_text("message_created")
    expect(row).to_contain_text("verified")
    expect(page.locator("#webhook-counts")).to_contain_text("1 received")

    page.get_by_role("button", name="Send test event").click()
    expect(page.get_by_text("Test event accepted")).to_be_visible()

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.get_by_role("button", name="Rotate URL")).to_be_visible()
    page.get_by_role("button", name="Copy").click()  # the clipboard may be refused headless: a toast either way
    expect(page.locator("#toasts .toast").last).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1

    for _ in range(50):  # the delivery is processed by a background job: give it a moment
        page.goto(f"{live_server}/contacts")
        if page.locator("#conversation-log").count():
            break
        page.wait_for_timeout(100)
    expect(page.locator("#conversation-log")).to_contain_text("Hello from the widget")
    assert_secret_never_shown(recorder, [page.content()], webhook["secret"])
    assert recorder.problems == []
