"""The fake Salesforce behaves as Salesforce documents: the web-server flow with PKCE (consent, one-use
codes, client and redirect checks), rotating refresh tokens with replay detection, revocation, and a
REST API that refuses expired sessions, bad SOQL literals and oversized collections."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests.fakes.salesforce import CLIENT_ID, CLIENT_SECRET, FakeSalesforce
from tests.fakes.vendor_oauth import s256

REDIRECT = "http://127.0.0.1:5000/integrations/oauth/callback"
VERIFIER = "v" * 50


@pytest.fixture
def salesforce():
    with FakeSalesforce() as server:
        yield server


def authorize_url(server, verifier: str = VERIFIER, **extra) -> str:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "state": "st-1",
        "scope": "api refresh_token id",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{server.url()}/services/oauth2/authorize?{urlencode(params)}"


def callback_query(location: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(server, code: str, verifier: str = VERIFIER, **overrides) -> requests.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **overrides,
    }
    return requests.post(f"{server.url()}/services/oauth2/token", data=form, timeout=5)


def refresh(server, token: str) -> requests.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    return requests.post(f"{server.url()}/services/oauth2/token", data=form, timeout=5)


def code_from_consent(server) -> str:
    return server.consent(authorize_url(server))["code"]


def test_the_consent_page_approves_over_http(salesforce):
    page = requests.get(authorize_url(salesforce), timeout=5)
    assert page.status_code == 200 and "id='approve'" in page.text
    approve = re.search(r"id='approve' href='([^']+)'", page.text).group(1)
    back = requests.get(salesforce.url() + approve, allow_redirects=False, timeout=5)
    assert back.status_code == 302 and back.headers["Location"].startswith(REDIRECT)
    query = callback_query(back.headers["Location"])
    assert query["state"] == "st-1" and query["code"]
    answer = exchange(salesforce, query["code"]).json()
    assert {"access_token", "refresh_token", "instance_url", "id", "issued_at", "signature"} <= set(answer)
    assert "expires_in" not in answer  # Salesforce does not say
    assert answer["instance_url"] == salesforce.url()


def test_deny_redirects_with_access_denied(salesforce):
    page = requests.get(authorize_url(salesforce), timeout=5)
    deny = re.search(r"id='deny' href='([^']+)'", page.text).group(1)
    back = requests.get(salesforce.url() + deny, allow_redirects=False, timeout=5)
    query = callback_query(back.headers["Location"])
    assert query == {"error": "access_denied", "error_description": "end-user denied authorization", "state": "st-1"}
    assert salesforce.oauth.counts["deny"] == 1


def test_an_unknown_client_or_redirect_is_refused_on_the_page(salesforce):
    for url in (authorize_url(salesforce, client_id="other"), authorize_url(salesforce, redirect_uri="")):
        answer = requests.get(url, allow_redirects=False, timeout=5)
        assert answer.status_code == 400 and "Location" not in answer.headers


def test_pkce_is_required_and_checked(salesforce):
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "state": "s"}
    without = salesforce.consent(f"{salesforce.url()}/services/oauth2/authorize?{urlencode(params)}")
    assert without["error"] == "invalid_request"
    answer = exchange(salesforce, code_from_consent(salesforce), verifier="w" * 50)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"redirect_uri": "http://127.0.0.1:5000/other"}, "redirect_uri_mismatch"),
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_id": "other"}, "invalid_client_id"),
        ({"code_verifier": ""}, "invalid_grant"),
    ],
)
def test_the_token_endpoint_checks_the_code_request(salesforce, overrides, error):
    answer = exchange(salesforce, code_from_consent(salesforce), **overrides)
    assert answer.status_code == 400 and answer.json()["error"] == error


def test_client_secret_basic_is_accepted(salesforce):
    code = code_from_consent(salesforce)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
    answer = requests.post(
        f"{salesforce.url()}/services/oauth2/token", data=form, auth=(CLIENT_ID, CLIENT_SECRET), timeout=5
    )
    assert answer.status_code == 200


def test_a_replayed_code_is_refused_and_revokes_what_it_gave(salesforce):
    code = code_from_consent(salesforce)
    first = exchange(salesforce, code).json()
    assert exchange(salesforce, code).json()["error"] == "invalid_grant"
    assert refresh(salesforce, first["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_tokens_rotate_and_a_replay_revokes_the_family(salesforce):
    tokens = salesforce.issue_tokens()
    rotated = refresh(salesforce, tokens["refresh_token"]).json()
    assert rotated["refresh_token"] != tokens["refresh_token"] and rotated["access_token"]
    replay = refresh(salesforce, tokens["refresh_token"])
    assert replay.status_code == 400
    assert replay.json() == {"error": "invalid_grant", "error_description": "expired access/refresh token"}
    assert refresh(salesforce, rotated["refresh_token"]).json()["error"] == "invalid_grant"
    assert salesforce.token_requests["refresh_token"] == 3


def test_revocation_ends_the_grant(salesforce):
    tokens = salesforce.issue_tokens()
    revoked = requests.post(
        f"{salesforce.url()}/services/oauth2/revoke", data={"token": tokens["refresh_token"]}, timeout=5
    )
    assert revoked.status_code == 200
    api = requests.get(
        f"{salesforce.url()}/services/data/v62.0/limits",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=5,
    )
    assert api.status_code == 401
    assert refresh(salesforce, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    again = requests.post(f"{salesforce.url()}/services/oauth2/revoke", data={"token": "unknown"}, timeout=5)
    assert again.status_code == 400


def test_an_expired_session_is_401_on_the_api_and_403_on_userinfo(salesforce):
    tokens = salesforce.issue_tokens()
    salesforce.expire_access_tokens()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    api = requests.get(f"{salesforce.url()}/services/data/v62.0/limits", headers=headers, timeout=5)
    assert api.status_code == 401 and api.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    info = requests.get(f"{salesforce.url()}/services/oauth2/userinfo", headers=headers, timeout=5)
    assert info.status_code == 403 and info.text == "Bad_OAuth_Token"


def test_an_unescaped_quote_is_a_malformed_query(salesforce):
    tokens = salesforce.issue_tokens()
    soql = "SELECT Id, Email FROM Contact WHERE Email IN ('o'brien@example.com')"
    answer = requests.get(
        f"{salesforce.url()}/services/data/v62.0/query",
        params={"q": soql},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=5,
    )
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_collections_take_at_most_200_records_and_answer_in_order(salesforce):
    tokens = salesforce.issue_tokens()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    url = f"{salesforce.url()}/services/data/v62.0/composite/sobjects"
    record = {"attributes": {"type": "Contact"}, "LastName": "X"}
    too_many = requests.post(url, json={"allOrNone": False, "records": [record] * 201}, headers=headers, timeout=5)
    assert too_many.status_code == 400
    mixed = [record, {"attributes": {"type": "Contact"}, "FirstName": "NoLast"}, record]
    answer = requests.post(url, json={"allOrNone": False, "records": mixed}, headers=headers, timeout=5).json()
    assert [a["success"] for a in answer] == [True, False, True]
    assert answer[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    rolled = requests.post(url, json={"allOrNone": True, "records": mixed}, headers=headers, timeout=5).json()
    assert not any(a["success"] for a in rolled)
    assert len(salesforce.contacts) == 2
    assert (
        "api-usage="
        in requests.post(url, json={"records": [record]}, headers=headers, timeout=5).headers["Sforce-Limit-Info"]
    )
