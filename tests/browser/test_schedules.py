"""The card's schedule editor (live preview of the next runs) and its health badge, in Chromium, at
1280 and 390 px, with no console error or CSP violation."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from crm.auth.service import find_user
from crm.models import utcnow
from crm.schedules import health
from crm.schedules.scheduler import tick
from tests.browser.test_modal import register
from tests.test_operations import chatwoot_integration


def test_schedule_editor_previews_saves_and_the_badge_turns_red(
    app, page_factory, live_server, allow_local, chatwoot
):
    page, recorder = page_factory()
    register(page, live_server, "sched@example.com")
    owner = find_user("sched@example.com")
    integration = chatwoot_integration(owner, chatwoot, name="Desk")
    page.reload()
    card = page.locator(f"#integration-{integration.id}")
    expect(card.locator(".health-badge")).to_have_text("Not checked yet")
    expect(card.locator(".schedule-text")).to_have_text("No schedule")

    card.get_by_role("link", name="Schedule").click()
    dialog = page.locator("dialog#schedule-modal")
    expect(dialog.get_by_role("heading", name="Schedule of Desk")).to_be_visible()
    dialog.get_by_label("Run the contacts sync").select_option("cron")
    expect(dialog.get_by_label("Time of day, in UTC")).to_be_hidden()
    cron = dialog.get_by_label("Cron expression")
    cron.fill("61 * * * *")
    expect(dialog.locator("#schedule-preview .field-error")).to_contain_text("not a valid cron expression")
    cron.fill("*/30 * * * *")
    runs = dialog.locator("#schedule-preview .next-runs li")
    expect(runs).to_have_count(3)
    assert all(re.search(r":(00|30)$", text) for text in runs.all_inner_texts())
    dialog.get_by_role("button", name="Save schedule").click()
    expect(dialog).to_have_count(0)
    expect(card.locator(".schedule-text")).to_have_text("Cron */30 * * * *")
    expect(card.locator(".schedule-line")).to_contain_text("next")

    # The CRM starts refusing the token: the next scheduled check turns the badge red.
    app.config["CRM_HEALTH_CHECK_INTERVAL"] = 3600
    chatwoot.tokens.pop(chatwoot.admin_token)
    now = utcnow().replace(microsecond=0)
    tick(now=now, dispatch=lambda *args: None)
    due = health.health_rows(owner)[integration.id].next_check_at
    tick(now=due, dispatch=lambda *args: None)
    page.reload()
    expect(page.locator(".attention-banner")).to_contain_text("1 integration needs attention")
    expect(card.locator(".health-badge")).to_have_text("Failing")
    expect(card.locator(".health-line")).to_contain_text("since")
    expect(card.locator(".health-advice li").first).to_be_visible()

    narrow, narrow_recorder = page_factory(viewport={"width": 390, "height": 844})
    narrow.context.add_cookies(page.context.cookies())
    narrow.goto(f"{live_server}/dashboard/integrations")
    expect(narrow.locator(".health-badge")).to_have_text("Failing")
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 390
    narrow.get_by_role("link", name="Schedule").click()
    expect(narrow.locator("dialog#schedule-modal .next-runs li")).to_have_count(3)
    assert recorder.problems == [] and narrow_recorder.problems == []
