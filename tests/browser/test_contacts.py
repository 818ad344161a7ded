"""The contacts page in Chromium: search as you type, pages, bulk delete with a confirmation, and a
usable layout at 390 px (issue #11.8)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import expect

from crm.contacts import service
from crm.extensions import db
from crm.models import Contact
from tests.conftest import PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def log_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("main").get_by_role("button", name="Log in").click()
    page.goto(f"{base}/contacts")
    page.wait_for_load_state("load")


def seed(owner, count: int) -> None:
    service.add_contacts(
        owner,
        (
            {"name": f"Contact {i}", "email": f"contact{i}@example.com", "phone": f"+49301234{i:03d}"}
            for i in range(1, count + 1)
        ),
    )


def names_on_page(page) -> list[str]:
    return page.locator("#contacts-list td.name-cell").all_inner_texts()


def test_search_pages_and_bulk_delete(app, page_factory, live_server, alice):
    seed(alice, 120)
    page, recorder = page_factory()
    log_in(page, live_server, alice.email)

    # Pages: 50 a page, in natural order, with working links.
    expect(page.locator("#contacts-list")).to_contain_text("120 contacts")
    assert names_on_page(page)[:3] == ["Contact 1", "Contact 2", "Contact 3"]
    assert len(names_on_page(page)) == 50
    page.get_by_role("link", name="Next →").click()
    expect(page.locator("#contacts-list td.name-cell").first).to_have_text("Contact 51")
    expect(page).to_have_url(re.compile(r"/contacts\?page=2$"))
    page.get_by_role("link", name="Next →").click()
    expect(page.locator("#contacts-list td.name-cell").first).to_have_text("Contact 101")
    assert len(names_on_page(page)) == 20

    # Search as you type: one request after the typing pauses, the list swapped in place.
    search = page.get_by_role("searchbox", name="Search contacts")
    before = len(recorder.responses)
    search.press_sequentially("contact 11", delay=30)
    expect(page.locator("#contacts-list td.name-cell")).to_have_count(11)  # 11, 110..119
    searches = [r for r in recorder.responses[before:] if "q=" in r.url]
    assert len(searches) <= 2, [r.url for r in searches]  # debounced, not one per key
    assert names_on_page(page)[:2] == ["Contact 11", "Contact 110"]
    expect(page).to_have_url(re.compile(r"q=contact(\+|%20)11"))

    # Bulk delete: tick two, confirm on the next page, and only those two go.
    page.get_by_label("Select Contact 110").check()
    page.get_by_label("Select Contact 111").check()
    page.get_by_role("button", name="Delete selected").click()
    expect(page.get_by_role("heading", name="Delete 2 contacts?")).to_be_visible()
    expect(page.locator(".confirm-list")).to_contain_text("Contact 110")
    db.session.expire_all()
    assert db.session.scalar(db.select(db.func.count()).select_from(Contact)) == 120  # not yet
    page.get_by_role("button", name="Delete 2 contacts").click()
    expect(page.locator("#toasts")).to_contain_text("2 contacts deleted.")
    expect(page.locator("#contacts-list")).to_contain_text("9 contacts matching")
    db.session.expire_all()
    remaining = set(db.session.scalars(db.select(Contact.name)))
    assert len(remaining) == 118 and not {"Contact 110", "Contact 111"} & remaining

    # Select all on this page, then cancel: nothing goes.
    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Delete selected").click()
    expect(page.get_by_role("heading", name="Delete 9 contacts?")).to_be_visible()
    page.get_by_role("button", name="Cancel").or_(page.get_by_role("link", name="Cancel")).click()
    expect(page.locator("#contacts-list")).to_contain_text("9 contacts matching")
    assert recorder.problems == []


def test_single_delete_asks_first(app, page_factory, live_server, alice):
    service.create_contact(alice, {"name": "Ana Lima", "email": "ana@example.com"})
    page, _ = page_factory()
    log_in(page, live_server, alice.email)
    page.get_by_role("row", name=re.compile("Ana Lima")).get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete 1 contact?")).to_be_visible()
    page.get_by_role("button", name="Delete 1 contact").click()
    expect(page.locator("#toasts")).to_contain_text("Ana Lima is deleted.")
    expect(page.locator("#contacts-list")).to_contain_text("No contacts yet")


def test_the_contacts_page_is_usable_at_390_px(app, page_factory, live_server, alice):
    seed(alice, 60)
    Contact.query  # noqa: B018 - the table exists
    page, recorder = page_factory(viewport={"width": 390, "height": 844})
    log_in(page, live_server, alice.email)
    # Nothing wider than the screen: no sideways scrolling.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    first_row = page.locator("#contacts-list tbody tr").first
    for part in ("Contact 1", "contact1@example.com", "Send message", "Edit", "Delete"):
        expect(first_row).to_contain_text(part)
    box = first_row.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    for control in (
        page.get_by_role("searchbox", name="Search contacts"),
        page.get_by_role("button", name="Delete selected"),
        page.get_by_label("Select Contact 1", exact=True),
        page.get_by_role("link", name="Next →"),
    ):
        control.scroll_into_view_if_needed()
        control_box = control.bounding_box()
        assert control_box is not None and control_box["x"] >= 0 and control_box["x"] + control_box["width"] <= 390
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("document.getElementById('contacts-heading').scrollIntoView()")
        page.screenshot(path=str(SCREENSHOTS / "contacts-390.png"))
    assert recorder.problems == []


def test_an_oversized_file_gets_the_message_beside_the_file_field(app, page_factory, live_server, alice, tmp_path):
    app.config["CONTACTS_IMPORT_MAX_BYTES"] = 4096
    app.config["MAX_CONTENT_LENGTH"] = 8192
    big = tmp_path / "contacts.csv"
    big.write_bytes(b"name,email\n" + b"Ana,ana@example.com\n" * 20_000)  # 400 KB: over the request limit too
    page, _ = page_factory()
    log_in(page, live_server, alice.email)
    page.get_by_label("CSV file").set_input_files(str(big))
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#file-error")).to_have_text(re.compile("The file is larger than 4 KiB"))
    expect(page.get_by_role("heading", name="Contacts", exact=True)).to_be_visible()
