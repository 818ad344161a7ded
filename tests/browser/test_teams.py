"""Teams in Chromium: create a team, invite, accept, share, use the shared CRM as the member, unshare;
at 1280 and 390 px, with no console error or CSP violation, and the secret never sent to the member."""

from __future__ import annotations

import secrets

from playwright.sync_api import expect

from crm.auth.service import find_user
from crm.contacts.service import create_contact
from tests.browser.test_modal import register
from tests.test_canary import find_leaks
from tests.test_operations import chatwoot_integration


def test_team_walk_share_use_unshare(app, page_factory, live_server, allow_local, chatwoot):
    canary = "CANARY" + secrets.token_hex(16)
    chatwoot.add_user({chatwoot.account.id: "administrator"}, token=canary)
    owner_page, owner_recorder = page_factory()
    register(owner_page, live_server, "owner@example.com")
    owner = find_user("owner@example.com")
    chatwoot_integration(owner, chatwoot, token=canary, name="Team desk")
    member_page, member_recorder = page_factory()
    register(member_page, live_server, "member@example.com")
    member = find_user("member@example.com")

    # The owner creates a team and invites the member.
    owner_page.get_by_role("link", name="Teams").click()
    owner_page.get_by_label("New team").fill("Support")
    owner_page.get_by_role("button", name="Create team").click()
    expect(owner_page.get_by_role("heading", name="Support")).to_be_visible()
    owner_page.get_by_label("Invite by email").fill("member@example.com")
    owner_page.get_by_role("button", name="Invite").click()
    expect(owner_page.get_by_text("Invited: member@example.com")).to_be_visible()

    # The member accepts.
    member_page.goto(f"{live_server}/dashboard/teams")
    member_page.get_by_role("button", name="Accept").click()
    expect(member_page.get_by_role("heading", name="Support")).to_be_visible()
    expect(member_page.get_by_text("You are member of this team.")).to_be_visible()

    # The owner shares the integration from its card, and makes it the team's.
    owner_page.reload()
    expect(owner_page.locator('[data-member="member@example.com"]')).to_be_visible()
    owner_page.goto(f"{live_server}/dashboard/integrations")
    owner_page.get_by_role("link", name="Share with Support").click()
    owner_page.get_by_label("Share one of your integrations").select_option(label="Team desk")
    owner_page.get_by_role("button", name="Share", exact=True).click()
    shared = owner_page.locator('[data-shared="Team desk"]')
    expect(shared).to_be_visible()
    shared.get_by_role("button", name="Use for the team").click()
    expect(shared).to_contain_text("the team's integration")
    owner_page.goto(f"{live_server}/dashboard/integrations")
    owner_page.get_by_role("link", name="Shared with Support").click()

    # The member sees it (name, provider, host; no button to change it) and sends a message through it.
    member_page.reload()
    seen = member_page.locator('[data-shared="Team desk"]')
    expect(seen).to_contain_text("127.0.0.1")
    expect(seen.get_by_role("button")).to_have_count(0)
    contact = create_contact(member, {"name": "Mia", "email": "mia@example.com"})
    member_page.goto(f"{live_server}/contacts")
    expect(member_page.get_by_text("your team's shared integration “Team desk”")).to_be_visible()
    member_page.goto(f"{live_server}/contacts/{contact.id}/message")
    member_page.get_by_label("Message").fill("Hello from the team")
    member_page.get_by_role("button", name="Send message").click()
    expect(member_page.locator("#message-result")).to_contain_text("Sent")
    assert [m["content"] for m in chatwoot.account.messages] == ["Hello from the team"]

    # The owner unshares: at once, the member no longer has it.
    owner_page.reload()
    owner_page.locator('[data-shared="Team desk"]').get_by_role("button", name="Unshare").click()
    expect(owner_page.get_by_text("Nothing is shared with this team yet.")).to_be_visible()
    member_page.goto(f"{live_server}/contacts")
    expect(member_page.get_by_text("No CRM configured")).to_be_visible()

    narrow, narrow_recorder = page_factory(viewport={"width": 390, "height": 844})
    narrow.context.add_cookies(owner_page.context.cookies())
    narrow.goto(f"{live_server}/dashboard/teams")
    narrow.get_by_role("link", name="Support").click()
    expect(narrow.get_by_role("heading", name="Support")).to_be_visible()
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 390

    member_seen = "\n".join(body for _url, body in member_recorder.bodies())
    assert find_leaks(member_seen, [canary]) == [] and canary[-4:] not in member_seen
    assert owner_recorder.problems == [] and member_recorder.problems == [] and narrow_recorder.problems == []
