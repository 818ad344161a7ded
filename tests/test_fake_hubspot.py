"""The fake HubSpot answers as HubSpot documents: driven with plain `requests` (and once through the
project's guarded client) and compared with example bodies in tests/fakes/examples/hubspot.json."""

from __future__ import annotations

import pytest
import requests

from crm.net import GuardedClient, Policy
from tests.fakes.examples import assert_shape, example
from tests.fakes.hubspot import READ, WRITE, FakeHubSpot

CONTACTS = "/crm/v3/objects/contacts"
UPSERT = f"{CONTACTS}/batch/upsert"
CREATE = f"{CONTACTS}/batch/create"
UPDATE = f"{CONTACTS}/batch/update"
NOTES = "/crm/v3/objects/notes"


class Clock:
    """A clock the test moves by hand, so rate windows pass without sleeping."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hubspot():
    with FakeHubSpot() as server:
        server.token = server.add_token()
        yield server


def call(server, method, path, token=None, **kwargs):
    token = server.token if token is None else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, server.url() + path, headers=headers, timeout=5, **kwargs)


def upsert_input(email, **properties):
    return {"idProperty": "email", "id": email, "properties": {"email": email, **properties}}


def check(response, name):
    expected = example("hubspot", name)
    assert response.status_code == expected["status"], response.text
    assert_shape(response.json(), expected["body"])
    for header, value in expected.get("headers", {}).items():
        assert response.headers[header] == value
    return response.json()


# --- reading and auth --------------------------------------------------------------------------


def test_contacts_page_and_account_details_match_the_documented_shapes(hubspot):
    hubspot.seed_contacts(3)
    first = check(call(hubspot, "GET", f"{CONTACTS}?limit=1&archived=false"), "contacts_page")
    after = first["paging"]["next"]["after"]
    rest = call(hubspot, "GET", f"{CONTACTS}?limit=10&after={after}").json()
    emails = [c["properties"]["email"] for c in first["results"] + rest["results"]]
    assert emails == ["existing0@example.com", "existing1@example.com", "existing2@example.com"]
    assert "paging" not in rest  # the last page has no next cursor

    details = check(call(hubspot, "GET", "/account-info/v3/details"), "account_details")
    assert details["portalId"] == hubspot.portal_id


def test_unknown_or_missing_token_is_401_invalid_authentication(hubspot):
    for token in ("pat-eu1-not-a-real-token", ""):
        body = check(call(hubspot, "GET", f"{CONTACTS}?limit=1", token=token), "error_401")
        assert body["category"] == "INVALID_AUTHENTICATION"


def test_token_without_write_scope_reads_but_gets_403_naming_the_scope(hubspot):
    read_only = hubspot.add_token(scopes={READ})
    assert call(hubspot, "GET", f"{CONTACTS}?limit=1", token=read_only).status_code == 200
    response = call(hubspot, "POST", UPSERT, token=read_only, json=example("hubspot", "batch_upsert_request"))
    body = check(response, "error_403_missing_scopes")
    assert body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"]["requiredGranularScopes"] == [WRITE]
    no_scopes = hubspot.add_token(scopes=set())
    body = call(hubspot, "GET", f"{CONTACTS}?limit=1", token=no_scopes).json()
    assert body["errors"][0]["context"]["requiredGranularScopes"] == [READ]
    assert not hubspot.contacts  # nothing was written


# --- batch upsert ---------------------------------------------------------------------------------


def test_batch_upsert_creates_then_updates_the_same_contact_by_email(hubspot):
    created = check(call(hubspot, "POST", UPSERT, json=example("hubspot", "batch_upsert_request")), "batch_upsert_200")
    [first] = created["results"]
    assert first["new"] is True
    changed = upsert_input("ANN@Example.com", firstname="Ann", lastname="Jones", phone="+442071234567")
    again = call(hubspot, "POST", UPSERT, json={"inputs": [changed]})
    [second] = check(again, "batch_upsert_200")["results"]
    assert second["new"] is False and second["id"] == first["id"]
    assert hubspot.contact_by_email("ann@example.com")["properties"]["lastname"] == "Jones"
    assert len(hubspot.contacts) == 1


def test_batch_upsert_results_are_not_in_input_order(hubspot):
    emails = [f"person{i}@example.com" for i in range(5)]
    body = call(hubspot, "POST", UPSERT, json={"inputs": [upsert_input(e) for e in emails]}).json()
    answered = [r["properties"]["email"] for r in body["results"]]
    assert sorted(answered) == emails and answered != emails  # pair results by email, never by position


def test_batch_upsert_207_reports_invalid_inputs_and_writes_the_others(hubspot):
    hubspot.add_contact("ann@example.com", firstname="Ann")
    inputs = [upsert_input("ann@example.com", firstname="Ann"), upsert_input("not-an-email")]
    body = check(call(hubspot, "POST", UPSERT, json={"inputs": inputs}), "batch_upsert_207")
    assert body["numErrors"] == 1
    [error] = body["errors"]
    assert error["category"] == "VALIDATION_ERROR" and "INVALID_EMAIL" in error["message"]
    assert error["context"]["ids"] == ["not-an-email"]
    assert [r["properties"]["email"] for r in body["results"]] == ["ann@example.com"]
    assert hubspot.contact_by_email("not-an-email") is None


def test_unknown_property_is_a_per_input_error(hubspot):
    body = call(hubspot, "POST", UPSERT, json={"inputs": [upsert_input("a@example.com", favourite="tea")]}).json()
    assert "PROPERTY_DOESNT_EXIST" in body["errors"][0]["message"]


def test_strict_batches_fail_the_whole_batch_and_write_nothing(hubspot):
    hubspot.strict_batches = True
    inputs = [upsert_input("good@example.com"), upsert_input("bad@")]
    response = call(hubspot, "POST", UPSERT, json={"inputs": inputs})
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert not hubspot.contacts


def test_more_than_100_inputs_or_duplicate_ids_are_400(hubspot):
    too_many = {"inputs": [upsert_input(f"p{i}@example.com") for i in range(101)]}
    response = call(hubspot, "POST", UPSERT, json=too_many)
    assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"
    exactly_100 = {"inputs": [upsert_input(f"p{i}@example.com") for i in range(100)]}
    assert call(hubspot, "POST", UPSERT, json=exactly_100).status_code == 200

    duplicated = {"inputs": [upsert_input("ann@example.com"), upsert_input("Ann@example.com")]}
    body = check(call(hubspot, "POST", UPSERT, json=duplicated), "error_400_duplicate_ids")
    assert body["message"].startswith("Duplicate IDs found in batch input")
    assert body["context"]["ids"] == ["ann@example.com"]
    assert hubspot.contact_by_email("ann@example.com") is None


# --- batch create and update -------------------------------------------------------------------


def test_batch_create_for_contacts_without_email_then_update_by_id(hubspot):
    created = check(call(hubspot, "POST", CREATE, json=example("hubspot", "batch_create_request")), "batch_create_201")
    [record] = created["results"]
    assert record["objectWriteTraceId"] == "c-17"
    update = {"inputs": [{"id": record["id"], "properties": {"phone": "+4930999999"}}]}
    updated = check(call(hubspot, "POST", UPDATE, json=update), "batch_update_200")
    assert updated["results"][0]["properties"]["phone"] == "+4930999999"
    assert hubspot.contacts[record["id"]]["properties"]["phone"] == "+4930999999"


def test_batch_create_of_an_existing_email_is_409_with_the_existing_id(hubspot):
    existing = hubspot.add_contact("ann@example.com")
    inputs = [{"properties": {"email": "new@example.com"}}, {"properties": {"email": "Ann@example.com"}}]
    body = check(call(hubspot, "POST", CREATE, json={"inputs": inputs}), "error_409_conflict")
    assert body["message"] == f"Contact already exists. Existing ID: {existing['id']}"
    assert hubspot.contact_by_email("new@example.com") is None  # the whole batch failed


def test_batch_create_is_multi_status_only_with_trace_ids(hubspot):
    inputs = [{"properties": {"firstname": "Ok"}}, {"properties": {"email": "bad@"}}]
    assert call(hubspot, "POST", CREATE, json={"inputs": inputs}).status_code == 400
    assert not hubspot.contacts
    traced = [dict(item, objectWriteTraceId=str(i)) for i, item in enumerate(inputs)]
    body = call(hubspot, "POST", CREATE, json={"inputs": traced})
    assert body.status_code == 207
    assert body.json()["errors"][0]["context"] == {"objectWriteTraceId": ["1"]}
    assert [r["objectWriteTraceId"] for r in body.json()["results"]] == ["0"]


def test_batch_update_of_unknown_id_is_reported_per_input(hubspot):
    known = hubspot.add_contact("ann@example.com")
    inputs = [{"id": known["id"], "properties": {"firstname": "Anna"}}, {"id": "999999", "properties": {}}]
    response = call(hubspot, "POST", UPDATE, json={"inputs": inputs})
    assert response.status_code == 207
    [error] = response.json()["errors"]
    assert error["category"] == "OBJECT_NOT_FOUND" and error["context"]["ids"] == ["999999"]
    assert known["properties"]["firstname"] == "Anna"


# --- notes --------------------------------------------------------------------------------------


def test_note_associated_with_a_contact_is_201(hubspot):
    contact = hubspot.add_contact("ann@example.com")
    request = example("hubspot", "note_request")
    request["associations"][0]["to"]["id"] = contact["id"]
    body = check(call(hubspot, "POST", NOTES, json=request), "note_201")
    assert body["properties"]["hs_note_body"] == "Called about the order."
    assert hubspot.notes[body["id"]]["contact_ids"] == [contact["id"]]


def test_note_for_unknown_contact_or_without_timestamp_is_400(hubspot):
    request = example("hubspot", "note_request")
    request["associations"][0]["to"]["id"] = "424242"
    assert call(hubspot, "POST", NOTES, json=request).json()["category"] == "VALIDATION_ERROR"
    del request["properties"]["hs_timestamp"]
    assert call(hubspot, "POST", NOTES, json=request).status_code == 400
    assert not hubspot.notes


# --- rate limits ----------------------------------------------------------------------------------


def test_every_authenticated_answer_carries_the_rate_limit_headers(hubspot):
    expected = example("hubspot", "rate_limit_headers")
    for response in (
        call(hubspot, "GET", f"{CONTACTS}?limit=1"),
        call(hubspot, "POST", UPSERT, json={"inputs": [upsert_input("bad@")]}),
        call(hubspot, "GET", "/crm/v3/objects/unknown"),
    ):
        assert set(expected) <= set(response.headers), response.status_code
    details = [call(hubspot, "GET", "/account-info/v3/details") for _ in range(2)]
    daily = [int(r.headers["X-HubSpot-RateLimit-Daily-Remaining"]) for r in details]
    assert daily[1] == daily[0] - 1


def test_burst_limit_answers_429_until_the_window_rolls_on():
    clock = Clock()
    with FakeHubSpot(burst_limit=3, window_seconds=10, clock=clock) as server:
        server.token = server.add_token()
        answers = [call(server, "GET", f"{CONTACTS}?limit=1") for _ in range(3)]
        remaining = [r.headers["X-HubSpot-RateLimit-Remaining"] for r in answers]
        assert remaining == ["2", "1", "0"]
        limited = call(server, "GET", f"{CONTACTS}?limit=1")
        body = check(limited, "error_429_ten_secondly")
        assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
        assert limited.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        clock.now += 9.9
        assert call(server, "GET", f"{CONTACTS}?limit=1").status_code == 429
        clock.now += 0.2
        assert call(server, "GET", f"{CONTACTS}?limit=1").status_code == 200
        assert server.rate_limited == 2


def test_daily_limit_answers_429_with_policy_daily(hubspot):
    hubspot.exhaust_daily()
    response = call(hubspot, "GET", f"{CONTACTS}?limit=1")
    assert check(response, "error_429_daily")["policyName"] == "DAILY"
    assert response.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"


# --- faults, recording, counters ----------------------------------------------------------------


def test_forced_answers_apply_to_the_next_n_matching_requests(hubspot):
    hubspot.force_status(500, count=2, method="POST", path=r".*/batch/upsert")
    hubspot.force_status(429, path=r"/account-info/.*")
    request = {"inputs": [upsert_input("ann@example.com")]}
    assert call(hubspot, "GET", f"{CONTACTS}?limit=1").status_code == 200  # another path: untouched
    assert [call(hubspot, "POST", UPSERT, json=request).status_code for _ in range(3)] == [500, 500, 200]
    assert call(hubspot, "GET", "/account-info/v3/details").json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert call(hubspot, "GET", "/account-info/v3/details").status_code == 200
    hubspot.force_status(502, body=b"<html>Bad gateway</html>")
    html = call(hubspot, "GET", f"{CONTACTS}?limit=1")
    assert html.status_code == 502 and html.headers["Content-Type"].startswith("text/html")


def test_a_slow_answer_times_the_client_out(hubspot):
    hubspot.delay = 30  # cut short when the server stops
    with pytest.raises(requests.Timeout):
        requests.get(hubspot.url() + f"{CONTACTS}?limit=1", headers={"Authorization": "Bearer x"}, timeout=0.2)


def test_requests_are_recorded_and_counted_by_route(hubspot):
    contact = hubspot.add_contact("ann@example.com")
    call(hubspot, "GET", f"{CONTACTS}?limit=1")
    call(hubspot, "GET", f"{CONTACTS}/{contact['id']}")
    call(hubspot, "POST", UPSERT, json={"inputs": [upsert_input("bob@example.com")]})
    assert hubspot.calls("GET", CONTACTS) == 1
    assert hubspot.calls("GET", f"{CONTACTS}/{{id}}") == 1
    assert hubspot.calls("POST", UPSERT) == 1
    assert hubspot.statuses[200] == 3 and hubspot.count == 3
    sent = hubspot.requests[-1]
    assert sent["headers"]["Authorization"] == f"Bearer {hubspot.token}"
    assert b"bob@example.com" in sent["body"]
    hubspot.reset_counters()
    assert hubspot.count == 0 and not hubspot.requests and not hubspot.requests_by_path
    stats = requests.get(hubspot.url() + "/__stats", timeout=5).json()
    assert stats["contacts"] == 2


def test_the_projects_guarded_client_talks_to_it_over_loopback(hubspot):
    client = GuardedClient(Policy(allow_http=True, allowed_hosts=frozenset({"127.0.0.1"})))
    headers = {"Authorization": f"Bearer {hubspot.token}"}
    response = client.request(
        "POST", hubspot.url() + UPSERT, headers=headers, json={"inputs": [upsert_input("a@b.io")]}
    )
    assert response.status == 200
    assert response.json()["results"][0]["new"] is True
    assert response.headers["X-HubSpot-RateLimit-Max"] == "190"


def test_bodies_of_the_wrong_shape_are_400_not_a_dropped_connection(hubspot):
    assert call(hubspot, "POST", UPSERT, data=b"{not json").status_code == 400
    assert call(hubspot, "POST", UPSERT, json={"inputs": "ann@example.com"}).status_code == 400
    odd = call(hubspot, "POST", UPSERT, json={"inputs": [{"idProperty": "email", "id": "a@b.io", "properties": ["x"]}]})
    assert odd.status_code == 207 and not hubspot.contacts
    for body in ({"properties": ["x"]}, {"properties": {"hs_timestamp": "1"}, "associations": ["x"]}):
        response = call(hubspot, "POST", NOTES, json=body)
        assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"
