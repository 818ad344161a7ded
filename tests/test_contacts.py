"""Contacts at scale (issues #10.6 and #11.8): natural order, pages, search, bulk delete with a
confirmation, a per-user cap, imports that update instead of duplicating, and separators detected."""

from __future__ import annotations

import io
import re

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from crm import models
from crm.contacts import service
from crm.extensions import db
from crm.models import Contact
from tests.conftest import AuthActions, make_app
from tests.test_migrations import drop_everything


def page_csrf(client, path="/contacts") -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def row_names(html: str) -> list[str]:
    return re.findall(r'<td class="name-cell">([^<]*)</td>', html)


def many(owner, count: int, prefix="Contact") -> None:
    service.add_contacts(
        owner, ({"name": f"{prefix} {i}", "email": f"c{i}@example.com", "phone": None} for i in range(1, count + 1))
    )


@pytest.fixture
def logged_in(client, alice):
    AuthActions(client).login()
    return client


# --- order, pages, search ---------------------------------------------------------------------


def test_names_sort_as_people_read_them(alice):
    for name in ("Contact 10", "contact 1", "Contact 2", "Ärger", "Contact 02b", "Zoe"):
        service.create_contact(alice, {"name": name})
    items, total = service.list_contacts_page(alice, 1, 10)
    assert total == 6
    assert [c.name for c in items] == ["Ärger", "contact 1", "Contact 2", "Contact 02b", "Contact 10", "Zoe"]
    assert models.natural_sort_key("Contact 2") < models.natural_sort_key("Contact 10")


def test_renaming_keeps_the_sort_key_current(alice):
    contact = service.create_contact(alice, {"name": "Contact 30"})
    service.update_contact(alice, contact.id, {"name": "Contact 3"})
    assert db.session.get(Contact, contact.id).sort_key == models.natural_sort_key("Contact 3")


def test_pages_are_stable_and_complete_and_scoped_to_the_owner(alice, bob):
    many(alice, 120)
    many(bob, 5, prefix="Bob's")
    seen = []
    for number in (1, 2, 3):
        items, total = service.list_contacts_page(alice, number, 50)
        assert total == 120
        seen += [c.name for c in items]
    assert seen == [f"Contact {i}" for i in range(1, 121)]  # numeric order, no repeat, no gap
    assert service.list_contacts_page(alice, 4, 50) == ([], 120)
    assert len(service.list_contacts_page(alice, 1, 10_000)[0]) == service.MAX_PER_PAGE


def test_the_list_page_paginates_server_side(logged_in, alice):
    many(alice, 120)
    first = logged_in.get("/contacts").get_data(as_text=True)
    assert row_names(first) == [f"Contact {i}" for i in range(1, 51)]
    assert "page 1 of 3" in first and 'href="/contacts?page=2"' in first
    last = logged_in.get("/contacts?page=3").get_data(as_text=True)
    assert row_names(last) == [f"Contact {i}" for i in range(101, 121)]
    beyond = logged_in.get("/contacts?page=99").get_data(as_text=True)
    assert row_names(beyond) == row_names(last)


def test_search_is_debounced_htmx_and_answers_only_the_list(logged_in, alice):
    many(alice, 60)
    service.create_contact(alice, {"name": "Ana Lima", "email": "ana@lima.example", "phone": "+4930123456"})
    full = logged_in.get("/contacts").get_data(as_text=True)
    assert 'hx-trigger="input changed delay:300ms, search"' in full
    partial = logged_in.get("/contacts?q=LIMA", headers={"HX-Request": "true"})
    html = partial.get_data(as_text=True)
    assert partial.status_code == 200 and "<html" not in html and 'id="contacts-list"' in html
    assert row_names(html) == ["Ana Lima"]
    assert row_names(logged_in.get("/contacts?q=30123").get_data(as_text=True)) == ["Ana Lima"]
    by_number = logged_in.get("/contacts?q=contact 5", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert row_names(by_number) == [
        "Contact 5",
        "Contact 50",
        "Contact 51",
        "Contact 52",
        "Contact 53",
        "Contact 54",
        "Contact 55",
        "Contact 56",
        "Contact 57",
        "Contact 58",
        "Contact 59",
    ]


def test_search_treats_wildcards_as_text(alice):
    service.create_contact(alice, {"name": "100% sure"})
    service.create_contact(alice, {"name": "Plain"})
    assert [c.name for c in service.list_contacts_page(alice, 1, 50, search="%")[0]] == ["100% sure"]
    assert service.list_contacts_page(alice, 1, 50, search="_")[1] == 0


# --- deletes with a confirmation ----------------------------------------------------------------


def test_single_delete_asks_first(logged_in, alice):
    contact_id = service.create_contact(alice, {"name": "Ana"}).id
    confirm = logged_in.get(f"/contacts/{contact_id}/delete")
    assert confirm.status_code == 200 and "Delete 1 contact?" in confirm.get_data(as_text=True)
    assert db.session.get(Contact, contact_id) is not None
    done = logged_in.post(f"/contacts/{contact_id}/delete", data={"csrf_token": page_csrf(logged_in)})
    assert done.status_code == 302
    db.session.expire_all()
    assert db.session.get(Contact, contact_id) is None


def test_bulk_delete_confirms_then_deletes_only_own_contacts(logged_in, alice, bob):
    mine = [service.create_contact(alice, {"name": f"Mine {i}"}) for i in range(3)]
    theirs = service.create_contact(bob, {"name": "Bob's friend"})
    ids = [mine[0].id, mine[1].id, theirs.id, "not-a-uuid"]
    confirm = logged_in.get("/contacts/delete", query_string={"ids": ids})
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "Delete 2 contacts?" in html
    assert "Mine 0" in html and "Mine 1" in html and "Bob&#39;s friend" not in html and "Bob's friend" not in html
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Contact)) == 4  # a GET changes nothing
    done = logged_in.post("/contacts/delete", data={"ids": ids, "csrf_token": page_csrf(logged_in)})
    assert done.status_code == 302
    db.session.expire_all()
    assert {c.name for c in db.session.scalars(sa.select(Contact))} == {"Mine 2", "Bob's friend"}


def test_bulk_delete_with_nothing_ticked_says_so(logged_in, alice):
    response = logged_in.get("/contacts/delete", follow_redirects=True)
    assert "Tick the contacts to delete first." in response.get_data(as_text=True)


def test_bulk_delete_needs_the_csrf_token(logged_in, alice):
    contact = service.create_contact(alice, {"name": "Ana"})
    assert logged_in.post("/contacts/delete", data={"ids": [contact.id]}).status_code == 400
    assert db.session.get(Contact, contact.id) is not None


# --- the per-user cap ---------------------------------------------------------------------------


def test_the_cap_is_documented_configurable_and_100000_by_default(app):
    assert app.config["CONTACTS_MAX_PER_USER"] == 100_000


def test_adding_one_more_than_the_cap_says_the_limit(app, logged_in, alice):
    app.config["CONTACTS_MAX_PER_USER"] = 2
    many(alice, 2)
    data = {"name": "Three", "email": "", "phone": "", "csrf_token": page_csrf(logged_in)}
    response = logged_in.post("/contacts", data=data)
    assert response.status_code == 422
    assert "You have 2 contacts, the most one account can keep" in response.get_data(as_text=True)
    with pytest.raises(service.ContactLimitReached):
        service.create_contact(alice, {"name": "Four"})


def test_an_import_stops_adding_at_the_cap_and_counts_what_it_skipped(app, logged_in, alice):
    app.config["CONTACTS_MAX_PER_USER"] = 5
    many(alice, 2)
    rows = "".join(f"New {i},new{i}@example.com\n" for i in range(6))
    content = ("name,email\nContact 1 renamed,c1@example.com\n" + rows).encode()
    response = upload(logged_in, content)
    html = response.get_data(as_text=True)
    assert "Imported 3 new contacts</strong>, updated 1." in html
    assert "The limit of 5 contacts per account is reached:\n            3 rows were not imported." in html
    assert service.count_contacts(alice) == 5


# --- imports: update, not duplicate; separators --------------------------------------------------


def upload(client, content: bytes):
    data = {"file": (io.BytesIO(content), "contacts.csv"), "csrf_token": page_csrf(client)}
    return client.post("/contacts/import", data=data, content_type="multipart/form-data")


def test_importing_the_same_file_twice_updates_instead_of_duplicating(alice):
    first = "name,email,phone\nAna,ana@example.com,\nBen,,+4930111111\nCleo,cleo@example.com,+4930222222\n"
    assert service.import_csv(alice, first).imported == 3
    again = service.import_csv(alice, first)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 3)
    changed = "name,email,phone\nAna Maria,ANA@example.com,\nBenjamin,,0049 30 111111\nCleo,,+4930222222\n"
    report = service.import_csv(alice, changed)
    assert (report.imported, report.updated, report.unchanged) == (0, 2, 1)
    stored = {c.name: c for c in service.list_contacts(alice)}
    assert set(stored) == {"Ana Maria", "Benjamin", "Cleo"}
    assert stored["Cleo"].email == "cleo@example.com"  # a blank cell keeps what is stored


def test_matching_stays_within_the_owner(alice, bob):
    service.import_csv(bob, "name,email\nAna,ana@example.com\n")
    report = service.import_csv(alice, "name,email\nAna,ana@example.com\n")
    assert report.imported == 1
    assert service.count_contacts(bob) == 1 and service.count_contacts(alice) == 1


@pytest.mark.parametrize("separator", [";", "\t"])
def test_semicolon_and_tab_separated_files_are_detected(alice, separator):
    text = separator.join(["Name", "E-Mail", "Phone"]).replace("E-Mail", "email") + "\n"
    text += separator.join(["Müller, Ana", "ana@example.com", "+4930123456"]) + "\n"
    report = service.import_csv(alice, text)
    assert report.errors == [] and report.imported == 1
    assert service.list_contacts(alice)[0].name == "Müller, Ana"


def test_an_unknown_separator_is_named_in_the_error(alice):
    report = service.import_csv(alice, "name|email|phone\nAna|ana@example.com|+4930123456\nBen|ben@example.com|\n")
    assert report.imported == 0
    assert report.errors[0][0] == 1 and "'|'" in report.errors[0][1]


# --- the migration ----------------------------------------------------------------------------------


def test_the_migration_gives_existing_contacts_their_sort_key(database_url):
    app = make_app(database_url)
    with app.app_context():
        drop_everything()
        try:
            upgrade(revision="83815d3dd638")
            with db.engine.begin() as connection:
                connection.execute(
                    sa.text(
                        "INSERT INTO users (id, email, password_hash, session_token, created_at) "
                        "VALUES (1, 'a@example.com', 'x', 't', '2026-01-01')"
                    )
                )
                for number, name in enumerate(("Contact 10", "Contact 9")):
                    connection.execute(
                        sa.text(
                            "INSERT INTO contacts (id, user_id, name, created_at, updated_at) "
                            "VALUES (:id, 1, :name, '2026-01-01', '2026-01-01')"
                        ),
                        {"id": f"00000000-0000-4000-8000-00000000000{number}", "name": name},
                    )
            upgrade(revision="fd2dafa031f7")
            with db.engine.connect() as connection:
                names = connection.execute(sa.text("SELECT name FROM contacts ORDER BY sort_key")).scalars().all()
            assert names == ["Contact 9", "Contact 10"]
        finally:
            db.session.remove()
            drop_everything()
            db.engine.dispose()
