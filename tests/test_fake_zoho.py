"""The fake Zoho behaves as Zoho documents: consent with a multi-DC callback, token errors as HTTP 200
with an error field, refresh tokens that do not rotate (unless asked), revocation, and a CRM API that
wants `Zoho-oauthtoken`, answers 401 INVALID_TOKEN on expiry and per record on writes."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests.fakes.vendor_oauth import s256
from tests.fakes.zoho import CLIENT_ID, CLIENT_SECRET, FakeZoho

REDIRECT = "http://127.0.0.1:5000/integrations/oauth/callback"
VERIFIER = "z" * 60


@pytest.fixture
def zoho():
    with FakeZoho() as server:
        yield server


def authorize_url(server, **extra) -> str:
    params = {
        "scope": "ZohoCRM.modules.contacts.ALL,ZohoCRM.users.READ",
        "client_id": CLIENT_ID,
        "response_type": "code",
        "access_type": "offline",
        "prompt": "consent",
        "redirect_uri": REDIRECT,
        "state": "st-9",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{server.url()}/oauth/v2/auth?{urlencode(params)}"


def query_of(location: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(location).query).items()}


def token(server, **form) -> requests.Response:
    base = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    return requests.post(f"{server.url()}/oauth/v2/token", data={**base, **form}, timeout=5)


def crm(server, method: str, path: str, access: str, scheme: str = "Zoho-oauthtoken", **kwargs) -> requests.Response:
    headers = {"Authorization": f"{scheme} {access}"}
    return requests.request(method, f"{server.url()}/crm/v8/{path}", headers=headers, timeout=5, **kwargs)


def test_consent_then_code_exchange(zoho):
    page = requests.get(authorize_url(zoho), timeout=5)
    assert page.status_code == 200 and ">Accept<" in page.text and ">Reject<" in page.text
    approve = re.search(r"id='approve' href='([^']+)'", page.text).group(1)
    back = requests.get(zoho.url() + approve, allow_redirects=False, timeout=5)
    query = query_of(back.headers["Location"])
    assert query["state"] == "st-9" and query["location"] == "us" and query["accounts-server"] == zoho.url()
    answer = token(
        zoho, grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT, code_verifier=VERIFIER
    ).json()
    assert answer["expires_in"] == 3600 and answer["api_domain"] == zoho.url()
    assert answer["access_token"].startswith("1000.") and answer["refresh_token"].startswith("1000.")


def test_reject_redirects_with_access_denied_and_no_code(zoho):
    query = zoho.consent(authorize_url(zoho), approve=False)
    assert query["error"] == "access_denied" and "code" not in query and query["state"] == "st-9"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"code": "1000.code.wrong"}, "invalid_code"),
        ({"code_verifier": "y" * 60}, "invalid_code"),
        ({"client_secret": "wrong"}, "invalid_client_secret"),
        ({"client_id": "1000.OTHER"}, "invalid_client"),
        ({"redirect_uri": "http://127.0.0.1:5000/x"}, "invalid_redirect_uri"),
    ],
)
def test_token_errors_are_http_200_with_an_error_field(zoho, form, error):
    code = zoho.consent(authorize_url(zoho))["code"]
    base = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
    answer = token(zoho, **{**base, **form})
    assert answer.status_code == 200 and answer.json() == {"error": error}


def test_refresh_keeps_the_refresh_token_and_revocation_ends_it(zoho):
    tokens = zoho.issue_tokens()
    refreshed = token(zoho, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    assert "refresh_token" not in refreshed and refreshed["api_domain"] == zoho.url()
    again = token(zoho, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    assert again["access_token"] != refreshed["access_token"]
    revoked = requests.post(f"{zoho.url()}/oauth/v2/token/revoke", params={"token": tokens["refresh_token"]}, timeout=5)
    assert revoked.json() == {"status": "success"}
    assert token(zoho, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json() == {
        "error": "invalid_code"
    }
    assert crm(zoho, "GET", "org", again["access_token"]).status_code == 401


def test_rotation_can_be_switched_on():
    with FakeZoho(rotate_refresh_tokens=True, revoke_on_reuse=True) as server:
        tokens = server.issue_tokens()
        rotated = token(server, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
        assert rotated["refresh_token"] != tokens["refresh_token"]
        replay = token(server, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
        assert replay == {"error": "invalid_code"}
        assert server.oauth.counts["refused"] == 1


def test_the_api_wants_zoho_oauthtoken_and_refuses_expired_tokens(zoho):
    access = zoho.issue_tokens()["access_token"]
    assert crm(zoho, "GET", "users?type=CurrentUser", access).json()["users"][0]["email"] == zoho.user["email"]
    assert crm(zoho, "GET", "org", access, scheme="Bearer").json()["code"] == "INVALID_TOKEN"
    zoho.expire_access_tokens()
    expired = crm(zoho, "GET", "org", access)
    assert expired.status_code == 401
    assert expired.json() == {
        "code": "INVALID_TOKEN",
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    }


def test_a_missing_scope_is_oauth_scope_mismatch(zoho):
    access = zoho.issue_tokens(scopes=("ZohoCRM.users.READ",))["access_token"]
    answer = crm(zoho, "POST", "Contacts/upsert", access, json={"data": [{"Last_Name": "X"}]})
    assert answer.status_code == 401 and answer.json()["code"] == "OAUTH_SCOPE_MISMATCH"


def test_upsert_answers_per_record_in_order(zoho):
    access = zoho.issue_tokens()["access_token"]
    zoho.add_contact("old@example.com")
    data = [
        {"Last_Name": "New", "Email": "new@example.com"},
        {"Last_Name": "Old", "Email": "OLD@example.com"},
        {"First_Name": "NoLast", "Email": "x@example.com"},
        {"Last_Name": "Twin", "Email": "new@example.com"},
    ]
    answer = crm(zoho, "POST", "Contacts/upsert", access, json={"data": data, "duplicate_check_fields": ["Email"]})
    assert answer.status_code == 207
    codes = [(r["code"], r.get("action")) for r in answer.json()["data"]]
    assert codes == [
        ("SUCCESS", "insert"),
        ("SUCCESS", "update"),
        ("MANDATORY_NOT_FOUND", None),
        ("DUPLICATE_DATA", None),
    ]
    too_many = crm(zoho, "POST", "Contacts/upsert", access, json={"data": [{"Last_Name": "X"}] * 101})
    assert too_many.status_code == 400


def test_notes_need_an_existing_contact(zoho):
    access = zoho.issue_tokens()["access_token"]
    existing = zoho.add_contact("a@example.com")
    made = crm(zoho, "POST", f"Contacts/{existing['id']}/Notes", access, json={"data": [{"Note_Content": "Hi"}]})
    assert made.status_code == 201 and made.json()["data"][0]["code"] == "SUCCESS"
    missing = crm(zoho, "POST", "Contacts/999/Notes", access, json={"data": [{"Note_Content": "Hi"}]})
    assert missing.status_code == 400
