"""Hostile values are refused at validation with a message naming the field, never a 500 (issue #10.5).

Runs on SQLite and, when TEST_DATABASE_URL is set, on PostgreSQL (which cannot store a NUL byte)."""

from __future__ import annotations

import csv
import io
import re

import pytest

from crm.contacts import service as contacts
from crm.extensions import db
from crm.models import Contact, Integration
from tests.conftest import AuthActions, chatwoot_payload

BASE = "/api/dashboard/integrations"
BIDI = ["\u202e", "\u202a", "\u2066", "\u2069", "\u200f"]


def page_csrf(client, path="/contacts") -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


@pytest.fixture
def logged_in(client, alice):
    AuthActions(client).login()
    return client


# --- control characters in integration fields: one validator for the API and the form --------------


@pytest.mark.parametrize("value", ["tok-1234567890\r\nX-Injected: 1", "tok-1234567890\x00abc", "tok\x1b[2J1234567890"])
def test_api_refuses_control_characters_in_a_credential(api, value):
    response = api.post(f"{BASE}/create", json=chatwoot_payload(apiKey=value))
    assert response.status_code == 422
    problems = response.get_json()["fields"]["apiKey"]
    assert any("control character" in p for p in problems)
    assert value not in response.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count()).select_from(Integration)) == 0


def test_page_form_refuses_a_credential_with_a_line_break(app, api):
    data = {
        "name": "Support",
        "base_url": "https://chat.example.com",
        "account_id": "7",
        "api_key": "cw-token-1234\r\nSet-Cookie: x=1",
        "csrf_token": api.csrf,
    }
    response = api.client.post("/dashboard/integrations/new/crm/CHATWOOT", data=data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    error = re.search(r'id="api_key-error"[^>]*>([^<]*)<', html)
    assert error and "line break" in error.group(1)


@pytest.mark.parametrize(
    "name", ["Evil\x1b]0;pwned\x07", "Row\nforged | row", "Tab\there", *(f"Safe{c}name" for c in BIDI)]
)
def test_integration_names_refuse_controls_and_bidi_overrides(api, name):
    response = api.post(f"{BASE}/create", json={**chatwoot_payload(), "name": name})
    assert response.status_code == 422
    assert "name" in response.get_json()["fields"]


def test_json_credentials_refuse_control_characters_in_values(app):
    from crm.providers.base import FieldError, _as_json_object

    with pytest.raises(FieldError, match="line break"):
        _as_json_object({"apiKey": "abc\r\ndef"})
    with pytest.raises(FieldError, match="JSON object"):
        _as_json_object("[" * 50_000 + "]" * 50_000)  # RecursionError before


@pytest.mark.parametrize("name", ["Ana\x1b[31m", "Ana\nBen", "Ana\x00", "Ana\u202egnp.exe"])
def test_contact_names_refuse_controls_and_bidi_overrides(logged_in, name):
    response = logged_in.post(
        "/contacts", data={"name": name, "email": "", "phone": "", "csrf_token": page_csrf(logged_in)}
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    error = re.search(r'id="name-error"[^>]*>([^<]*)<', html)
    assert error and ("control character" in error.group(1) or "text-direction" in error.group(1))
    assert db.session.scalar(db.select(db.func.count()).select_from(Contact)) == 0


def test_a_nul_byte_anywhere_in_a_contact_is_a_422_not_a_500(logged_in):
    # PostgreSQL refuses NUL in text: this was a 500 there.
    for field in ("name", "email", "phone"):
        data = {"name": "Ana", "email": "ana@example.com", "phone": "+4930123456", "csrf_token": page_csrf(logged_in)}
        data[field] = data[field][:3] + "\x00" + data[field][3:]
        response = logged_in.post("/contacts", data=data)
        assert response.status_code == 422, field
        assert re.search(rf'id="{field}-error"', response.get_data(as_text=True)), field


def test_a_nul_byte_in_an_integration_is_a_422_naming_the_field(api):
    response = api.post(f"{BASE}/create", json={**chatwoot_payload(), "name": "Sup\x00port"})
    assert response.status_code == 422
    assert "NUL" in response.get_json()["fields"]["name"][0]


def test_a_nul_byte_in_a_csv_row_is_reported_by_line(alice):
    report = contacts.import_csv(alice, "name,email\nAna,ana@example.com\nB\x00en,ben@example.com\n")
    assert report.imported == 1
    assert report.errors[0][0] == 3 and "NUL" in report.errors[0][1]


# --- JSON nesting ---------------------------------------------------------------------------------


def test_json_nested_deeper_than_32_levels_is_a_400_naming_the_problem(api):
    nested = {"name": "x"}
    for _ in range(40):
        nested = {"a": nested}
    response = api.post(f"{BASE}/create", json={**chatwoot_payload(), "extra": nested})
    assert response.status_code == 400
    assert "nested deeper than 32 levels" in response.get_json()["error"]


def test_json_of_thousands_of_brackets_is_a_400_not_a_500(api):
    body = '{"name": ' + "[" * 30_000 + "]" * 30_000 + "}"
    response = api.post(f"{BASE}/create", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "nested deeper than 32 levels" in response.get_json()["error"]


def test_brackets_inside_strings_do_not_count_as_nesting(api):
    response = api.post(f"{BASE}/create", json={**chatwoot_payload(), "name": "[[[[" * 20 + '{"'})
    assert response.status_code == 201


# --- CSV field size, oversized files --------------------------------------------------------------


def upload(client, content: bytes, name="contacts.csv"):
    data = {"file": (io.BytesIO(content), name), "csrf_token": page_csrf(client)}
    return client.post("/contacts/import", data=data, content_type="multipart/form-data")


def test_a_csv_field_over_the_csv_size_limit_is_reported_not_a_500(logged_in):
    huge = "x" * (csv.field_size_limit() + 10)
    content = f"name,email\nAna,ana@example.com\n{huge},big@example.com\n".encode()
    response = upload(logged_in, content)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Line 3: A field is longer than 131,072 characters" in html
    assert "Imported 1 new contact" in html


def test_the_import_accepts_files_up_to_the_documented_5_mib(app, logged_in):
    # Between the old app-wide 1 MiB and the promised 5 MiB: a bare 413 before.
    assert app.config["CONTACTS_IMPORT_MAX_BYTES"] == 5 * 1024 * 1024
    padding = "n" * 100_000
    rows = "".join(f"Person {i},p{i}@example.com,{padding}\n" for i in range(20))
    content = f"name,email,note\n{rows}".encode()
    assert len(content) > 1024 * 1024
    response = upload(logged_in, content)
    assert response.status_code == 200
    assert "Imported 20 new contacts" in response.get_data(as_text=True)


def test_a_file_over_the_import_limit_gets_the_message_beside_the_file_field(app, logged_in):
    app.config["CONTACTS_IMPORT_MAX_BYTES"] = 4096
    response = upload(logged_in, b"name\n" + b"x" * 5000)
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    error = re.search(r'id="file-error"[^>]*>([^<]*)<', html)
    assert error and "larger than 4 KiB" in error.group(1)


def test_a_request_over_the_app_wide_limit_gets_the_same_friendly_message(app, logged_in):
    app.config["CONTACTS_IMPORT_MAX_BYTES"] = 4096
    app.config["MAX_CONTENT_LENGTH"] = 8192
    response = upload(logged_in, b"name\n" + b"x" * 20_000)
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert "<h1>Contacts</h1>" in html  # the contacts page, not a bare error page
    error = re.search(r'id="file-error"[^>]*>([^<]*)<', html)
    assert error and "larger than 4 KiB" in error.group(1)


def test_an_oversized_api_body_is_a_413_json_with_a_message(api):
    response = api.post(f"{BASE}/create", data="{" + " " * (2 * 1024 * 1024) + "}", content_type="application/json")
    assert response.status_code == 413
    assert "larger than 64 KiB" in response.get_json()["error"]


def test_a_nul_byte_in_the_search_or_the_ids_is_not_a_500(logged_in, alice):
    contacts.create_contact(alice, {"name": "Ana"})
    response = logged_in.get("/contacts", query_string={"q": "A\x00na"})
    assert response.status_code == 200 and "Ana" in response.get_data(as_text=True)
    confirm = logged_in.get("/contacts/delete", query_string={"ids": ["\x00"]}, follow_redirects=True)
    assert confirm.status_code == 200 and "Tick the contacts to delete first." in confirm.get_data(as_text=True)


def test_a_message_with_a_nul_byte_is_refused_beside_the_field(logged_in, alice):
    contact = contacts.create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    data = {"text": "Hello\x00there", "csrf_token": page_csrf(logged_in)}
    response = logged_in.post(f"/contacts/{contact.id}/message", data=data)
    assert response.status_code == 422
    assert "NUL byte" in response.get_data(as_text=True)


def test_renaming_an_integration_through_the_api_refuses_an_escape(api):
    created = api.post(f"{BASE}/create", json=chatwoot_payload()).get_json()
    response = api.put(f"{BASE}/{created['id']}", json={"name": "Support\x1b[2J"})
    assert response.status_code == 422
    assert "escape" in response.get_json()["fields"]["name"][0]


@pytest.mark.parametrize("page", ["/login", "/register"])
def test_a_nul_byte_in_a_login_or_registration_email_is_refused_not_a_500(client, alice, page):
    form = {"csrf_token": page_csrf(client, page), "email": "alice@example.com\x00", "password": "x" * 20}
    form["confirm"] = form["password"]
    response = client.post(page, data=form)
    assert response.status_code in (200, 422)
    assert "control characters" in response.get_data(as_text=True)
