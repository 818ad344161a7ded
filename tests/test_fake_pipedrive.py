"""The fake Pipedrive answers as Pipedrive documents: driven with plain `requests` (and once through the
project's guarded client) and compared with example bodies in tests/fakes/examples/pipedrive.json."""

from __future__ import annotations

import pytest
import requests

from crm.net import GuardedClient, Policy
from tests.fakes.examples import assert_shape, example
from tests.fakes.pipedrive import FakePipedrive

PERSONS = "/api/v2/persons"
SEARCH = f"{PERSONS}/search"


class Clock:
    """A clock the test moves by hand, so rate windows pass without sleeping."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pipedrive():
    with FakePipedrive(company_domain="acme") as server:
        server.token = server.add_user()
        yield server


def call(server, method, path, token=None, **kwargs):
    token = server.token if token is None else token
    headers = {"x-api-token": token} if token else {}
    return requests.request(method, server.url() + path, headers=headers, timeout=5, **kwargs)


def check(response, name):
    expected = example("pipedrive", name)
    assert response.status_code == expected["status"], response.text
    assert_shape(response.json(), expected["body"])
    for header, value in expected.get("headers", {}).items():
        assert response.headers[header] == value
    return response.json()


# --- auth and the current user ---------------------------------------------------------------------


def test_users_me_names_the_user_and_the_company_domain(pipedrive):
    me = check(call(pipedrive, "GET", "/v1/users/me"), "users_me")["data"]
    assert (me["name"], me["company_domain"], me["company_name"]) == ("Ann Admin", "acme", "Acme Ltd")
    other = pipedrive.add_user(company_domain="globex")
    theirs = call(pipedrive, "GET", "/v1/users/me", token=other).json()["data"]
    assert theirs["company_domain"] == "globex" and theirs["company_id"] != me["company_id"]


def test_unknown_or_missing_token_is_401_from_the_gateway(pipedrive):
    for token in ("0" * 40, ""):
        response = call(pipedrive, "GET", "/v1/users/me", token=token)
        body = check(response, "error_401")
        assert body["error"] == "unauthorized access"
        assert response.headers["x-correlation-id"]


def test_token_in_the_query_works_but_is_counted(pipedrive):
    response = requests.get(f"{pipedrive.url()}/v1/users/me?api_token={pipedrive.token}", timeout=5)
    assert response.status_code == 200
    assert pipedrive.query_token_uses == 1
    assert "api_token=" in pipedrive.requests[-1]["path"]  # so a test can prove our requests never do this
    call(pipedrive, "GET", "/v1/users/me")
    assert pipedrive.query_token_uses == 1


# --- persons ------------------------------------------------------------------------------------


def test_2000_existing_persons_are_read_in_four_cursor_pages(pipedrive):
    pipedrive.seed_persons(2000)
    seen, cursor, pages = [], None, 0
    while True:
        query = f"?limit=500&cursor={cursor}" if cursor else "?limit=500"
        response = call(pipedrive, "GET", PERSONS + query)
        body = check(response, "persons_page") if pages == 0 else response.json()  # a null cursor ends it
        seen += [p["emails"][0]["value"] for p in body["data"]]
        pages += 1
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            break
    assert pages == 4 and len(seen) == len(set(seen)) == 2000
    assert pipedrive.calls("GET", PERSONS) == 4 and pipedrive.search_calls == 0


def test_list_limit_over_500_or_a_bad_cursor_is_400(pipedrive):
    assert call(pipedrive, "GET", f"{PERSONS}?limit=501").status_code == 400
    assert call(pipedrive, "GET", f"{PERSONS}?cursor=not-a-cursor").json()["success"] is False


def test_create_then_patch_a_person(pipedrive):
    created = check(call(pipedrive, "POST", PERSONS, json=example("pipedrive", "person_create_request")), "person_200")
    person = created["data"]
    assert person["emails"] == [{"value": "ann@example.com", "primary": True, "label": "work"}]
    patch = example("pipedrive", "person_update_request")
    updated = check(call(pipedrive, "PATCH", f"{PERSONS}/{person['id']}", json=patch), "person_200")["data"]
    assert updated["phones"] == [{"value": "+4930999999", "primary": True, "label": "work"}]
    assert updated["emails"] == person["emails"]  # fields left out stay as they were
    assert pipedrive.calls("PATCH", f"{PERSONS}/{{id}}") == 1


def test_person_without_name_is_400_and_unknown_id_is_404(pipedrive):
    nameless = {"emails": [{"value": "x@example.com", "primary": True, "label": "work"}]}
    check(call(pipedrive, "POST", PERSONS, json=nameless), "error_400")
    check(call(pipedrive, "PATCH", f"{PERSONS}/999", json={"name": "Nobody"}), "error_404")
    check(call(pipedrive, "GET", f"{PERSONS}/999"), "error_404")
    assert not pipedrive.persons


def test_pipedrive_keeps_duplicates_there_is_no_upsert(pipedrive):
    request = example("pipedrive", "person_create_request")
    first = call(pipedrive, "POST", PERSONS, json=request).json()["data"]
    second = call(pipedrive, "POST", PERSONS, json=request).json()["data"]
    assert first["id"] != second["id"]
    assert len(pipedrive.persons_with_email("ANN@example.com")) == 2


def test_search_by_email_has_its_own_limit_of_10_per_2_seconds():
    clock = Clock()
    with FakePipedrive(clock=clock) as server:
        token = server.add_user()
        server.add_person("Ann Smith", "ann@example.com", "+442071234567")
        found = call(server, "GET", f"{SEARCH}?term=ann@example.com&fields=email&exact_match=true", token=token)
        item = check(found, "search_200")["data"]["items"][0]["item"]
        assert item["emails"] == ["ann@example.com"]  # plain strings here, unlike a person's objects
        answers = [call(server, "GET", f"{SEARCH}?term=ann@example.com", token=token) for _ in range(10)]
        assert [a.status_code for a in answers] == [200] * 9 + [429]
        check(answers[-1], "error_429")
        assert answers[-1].headers["x-ratelimit-limit"] == "10"
        assert call(server, "GET", f"{PERSONS}?limit=1", token=token).status_code == 200  # others still pass
        clock.now += 2
        assert call(server, "GET", f"{SEARCH}?term=ann@example.com", token=token).status_code == 200
        assert server.search_calls == 12 and server.rate_limited == 1


# --- notes --------------------------------------------------------------------------------------


def test_note_on_a_person_is_201(pipedrive):
    person = pipedrive.add_person("Ann Smith", "ann@example.com")
    request = dict(example("pipedrive", "note_request"), person_id=person["id"])
    note = check(call(pipedrive, "POST", "/v1/notes", json=request), "note_201")["data"]
    assert (note["person_id"], note["content"]) == (person["id"], "Called about the order.")
    assert pipedrive.notes[note["id"]]["user_id"] == note["user_id"]


def test_note_for_unknown_person_is_404_and_without_content_400(pipedrive):
    assert call(pipedrive, "POST", "/v1/notes", json={"content": "hi", "person_id": 999}).status_code == 404
    person = pipedrive.add_person("Ann Smith")
    assert call(pipedrive, "POST", "/v1/notes", json={"content": " ", "person_id": person["id"]}).status_code == 400
    assert not pipedrive.notes


# --- rate limits ----------------------------------------------------------------------------------


def test_every_answer_carries_the_rate_limit_headers(pipedrive):
    expected = example("pipedrive", "rate_limit_headers")
    for response in (
        call(pipedrive, "GET", "/v1/users/me"),
        call(pipedrive, "GET", f"{PERSONS}/12345"),
        call(pipedrive, "POST", PERSONS, json={}),
    ):
        assert set(expected) <= set(response.headers), response.status_code
        assert response.headers["x-ratelimit-reset"] in ("1", "2")


def test_burst_budget_answers_429_until_the_2_second_window_resets():
    clock = Clock()
    with FakePipedrive(burst_limit=2, clock=clock) as server:
        token = server.add_user()
        answers = [call(server, "GET", "/v1/users/me", token=token) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["1", "0", "0"]
        clock.now += 1.5
        assert call(server, "GET", "/v1/users/me", token=token).headers["x-ratelimit-reset"] == "1"
        clock.now += 0.5
        fresh = call(server, "GET", "/v1/users/me", token=token)
        assert fresh.status_code == 200 and fresh.headers["x-ratelimit-remaining"] == "1"


def test_a_sub_second_window_reports_a_fractional_reset():
    clock = Clock()
    with FakePipedrive(burst_limit=1, window_seconds=0.25, clock=clock) as server:
        token = server.add_user()
        call(server, "GET", "/v1/users/me", token=token)
        clock.now += 0.1
        assert call(server, "GET", "/v1/users/me", token=token).headers["x-ratelimit-reset"] == "0.150"


# --- faults, recording, counters ----------------------------------------------------------------


def test_forced_answers_apply_to_the_next_n_matching_requests(pipedrive):
    pipedrive.force_status(500, count=2, method="POST", path=PERSONS)
    request = example("pipedrive", "person_create_request")
    assert [call(pipedrive, "POST", PERSONS, json=request).status_code for _ in range(3)] == [500, 500, 200]
    assert len(pipedrive.persons) == 1  # the forced answers wrote nothing
    pipedrive.force_status(429)
    assert call(pipedrive, "GET", "/v1/users/me").json()["errorCode"] == 429
    assert call(pipedrive, "GET", "/v1/users/me").status_code == 200


def test_a_slow_answer_times_the_client_out(pipedrive):
    pipedrive.delay = 30  # cut short when the server stops
    with pytest.raises(requests.Timeout):
        requests.get(pipedrive.url() + "/v1/users/me", headers={"x-api-token": pipedrive.token}, timeout=0.2)


def test_requests_are_recorded_and_counted_by_route(pipedrive):
    person = pipedrive.add_person("Ann Smith", "ann@example.com")
    call(pipedrive, "PATCH", f"{PERSONS}/{person['id']}", json={"name": "Ann Jones"})
    call(pipedrive, "POST", "/v1/notes", json={"content": "hi", "person_id": person["id"]})
    assert pipedrive.calls("PATCH", f"{PERSONS}/{{id}}") == 1 and pipedrive.calls("POST", "/v1/notes") == 1
    assert pipedrive.requests[0]["headers"]["x-api-token"] == pipedrive.token
    assert b"Ann Jones" in pipedrive.requests[0]["body"]
    pipedrive.reset_counters()
    assert pipedrive.count == 0 and not pipedrive.requests and pipedrive.search_calls == 0
    assert requests.get(pipedrive.url() + "/__stats", timeout=5).json()["persons"] == 1


def test_the_projects_guarded_client_talks_to_it_over_loopback(pipedrive):
    client = GuardedClient(Policy(allow_http=True, allowed_hosts=frozenset({"127.0.0.1"})))
    response = client.request(
        "POST",
        pipedrive.url() + PERSONS,
        headers={"x-api-token": pipedrive.token},
        json=example("pipedrive", "person_create_request"),
    )
    assert response.status == 200 and response.json()["data"]["name"] == "Ann Smith"
    assert response.headers["x-ratelimit-limit"] == "80"


def test_bodies_of_the_wrong_shape_are_400_not_a_dropped_connection(pipedrive):
    assert call(pipedrive, "POST", PERSONS, data=b"{not json").status_code == 400
    assert call(pipedrive, "POST", PERSONS, json=["Ann"]).status_code == 400
    odd_label = {"name": "Ann", "emails": [{"value": "a@b.io", "label": ["work"]}]}
    assert call(pipedrive, "POST", PERSONS, json=odd_label).json()["success"] is False
    assert call(pipedrive, "POST", PERSONS, json={"name": "Ann", "emails": "a@b.io"}).status_code == 400
    assert not pipedrive.persons
