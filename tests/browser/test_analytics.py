"""The Analytics page in Chromium: reached from the nav and the card, charts with their tables, no CSP
violation, usable at 390 px. UPDATE_SCREENSHOTS=1 saves docs/screenshots/analytics-{1280,390}.png."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from crm.analytics import recorder
from crm.auth.service import find_user
from crm.integrations import service
from tests.browser.test_modal import SCREENSHOTS, register

NOW = datetime(2026, 3, 10, 17, 40)


def script_day(integration) -> int:
    """A working day of one integration; returns how many outbound requests it made."""
    requests = 0
    for hour in range(24):
        at = NOW - timedelta(hours=hour, minutes=10)
        busy = 8 <= at.hour <= 18
        for n in range(6 if busy else 1):
            outcome = "rate_limited" if (hour + n) % 11 == 0 else "ok"
            counts = {"created": n % 3, "updated": 1, "unchanged": 4 + hour % 5, "failed": int(outcome != "ok")}
            recorder.record("sync_batch", integration.id, integration.user_id, outcome, 80 + 37 * n, counts, at=at)
            requests += 1
        recorder.record("message", integration.id, integration.user_id, "ok", 240, at=at)
        recorder.record("webhook", integration.id, integration.user_id, "ok" if hour % 7 else "bad_signature", 4, at=at)
        requests += 1
    recorder.record("test", integration.id, integration.user_id, "auth_failed", 310, at=NOW - timedelta(hours=3))
    recorder.note_rate_limit_wait(2.5, integration_id=integration.id, user_id=integration.user_id)
    return requests + 1


def test_analytics_page_at_desktop_and_phone_sizes(app, page_factory, live_server, dns):
    recorder.current().clock = lambda: NOW.replace(tzinfo=UTC).timestamp()
    for width, height in ((1280, 900), (390, 844)):
        page, problems = page_factory(viewport={"width": width, "height": height})
        email = f"analytics{width}@example.com"
        register(page, live_server, email)
        owner = find_user(email)
        values = {"base_url": "https://chat.example.com", "account_id": 7, "api_key": "cw-token-1234567890abcd"}
        values.update(auto_create_inboxes=False, auto_create_bots=False)  # nothing provisioned: counts are ours
        desk = service.create_integration(owner, "CHATWOOT", {"name": "Support desk", **values})
        sales = service.create_integration(owner, "CHATWOOT", {"name": "Sales", **values})
        total = script_day(desk) + script_day(sales)
        recorder.flush()

        # From the nav: the user's page, both integrations.
        page.reload()
        page.get_by_role("banner").get_by_role("link", name="Analytics").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Analytics")
        page.get_by_role("navigation", name="Range").get_by_role("link", name="24h").click()
        expect(page.locator("#stat-requests")).to_have_text(str(total))
        expect(page.locator("#integration-table")).to_contain_text("Sales")

        # From the card's menu: one integration's page.
        page.goto(f"{live_server}/dashboard/integrations")
        card = page.locator(f"#integration-{desk.id}")
        card.get_by_text("More").click()
        card.get_by_role("link", name="Analytics").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Analytics · Support desk")
        page.get_by_role("navigation", name="Range").get_by_role("link", name="24h").click()
        expect(page.locator("#stat-requests")).to_have_text(str(total // 2))
        expect(page.locator("#stat-webhooks")).to_have_text("20 received · 4 rejected")
        expect(page.locator("#stat-next-run")).to_have_text("not scheduled")

        # Each chart is an SVG with bars, its table beside it (desktop) or under it (phone).
        for chart in ("requests", "contacts", "webhooks"):
            block = page.locator(f"#chart-{chart}")
            expect(block.locator("svg.chart rect").first).to_be_visible()
            table = block.get_by_role("table")
            expect(table.locator("tbody tr")).to_have_count(24)
            svg_box, table_box = block.locator("svg.chart").bounding_box(), table.bounding_box()
            if width > 800:
                assert table_box["x"] > svg_box["x"] + svg_box["width"] - 1, (chart, svg_box, table_box)
            else:
                assert table_box["y"] >= svg_box["y"] + svg_box["height"] - 1, (chart, svg_box, table_box)
        fill = page.locator("#chart-requests rect.chart-bad").first.evaluate("r => getComputedStyle(r).fill")
        assert fill == "rgb(179, 38, 30)", fill  # coloured by app.css, not by inline style
        wide = page.evaluate(  # what sticks out, named in the failure
            "[...document.querySelectorAll('body *')]"
            ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-scroll'))"
            ".slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + e.textContent.slice(0, 30))"
        )
        assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth"), (width, wide)
        assert problems.problems == [], problems.problems  # no CSP violation, no script error

        if os.environ.get("UPDATE_SCREENSHOTS"):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"analytics-{width}.png"), full_page=True, caret="initial")
