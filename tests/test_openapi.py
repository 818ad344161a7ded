"""The OpenAPI document: valid 3.1, the same paths as the app, and fuzzed by schemathesis."""

import contextvars
import re
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection, positive_data_acceptance

from crm.contacts.service import create_contact
from crm.teams import service as team_service
from tests.conftest import APIClient, chatwoot_payload

BASE = "/api/dashboard/integrations"


def test_document_is_valid_openapi_3_1(client):
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_document_paths_match_the_url_map(app, client):
    document = client.get("/api/openapi.json").get_json()
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    }
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "{" + camel(m.group(1)) + "}", rule.rule)
        served |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


OPERATIONS = [
    ("GET", "/api/openapi.json"),
    ("GET", "/api/dashboard/providers"),
    ("GET", "/api/dashboard/integrations"),
    ("GET", "/api/dashboard/contacts"),
    ("POST", "/api/dashboard/integrations/create"),
    ("POST", "/api/dashboard/integrations/test"),
    ("GET", "/api/dashboard/integrations/{integrationId}"),
    ("PUT", "/api/dashboard/integrations/{integrationId}"),
    ("DELETE", "/api/dashboard/integrations/{integrationId}"),
    ("GET", "/api/dashboard/integrations/{integrationId}/analytics"),
    ("GET", "/api/dashboard/integrations/{integrationId}/schedule"),
    ("PUT", "/api/dashboard/integrations/{integrationId}/schedule"),
    ("POST", "/api/dashboard/integrations/oauth/start"),
    ("GET", "/api/dashboard/integrations/{integrationId}/webhooks"),
    ("POST", "/api/dashboard/integrations/{integrationId}/webhooks/register"),
    ("POST", "/api/dashboard/integrations/{integrationId}/webhooks/unregister"),
    ("POST", "/api/dashboard/integrations/{integrationId}/webhooks/rotate"),
    ("POST", "/api/dashboard/integrations/{integrationId}/webhooks/test"),
    ("GET", "/api/dashboard/teams"),
    ("POST", "/api/dashboard/teams"),
    ("GET", "/api/dashboard/teams/{teamId}"),
    ("POST", "/api/dashboard/teams/{teamId}/invitations"),
    ("PUT", "/api/dashboard/teams/{teamId}/members/{userId}"),
    ("DELETE", "/api/dashboard/teams/{teamId}/members/{userId}"),
    ("POST", "/api/dashboard/teams/{teamId}/shares"),
    ("DELETE", "/api/dashboard/teams/{teamId}/shares/{integrationId}"),
    ("PUT", "/api/dashboard/teams/{teamId}/designated"),
    ("GET", "/api/dashboard/invitations"),
    ("POST", "/api/dashboard/invitations/{invitationId}/accept"),
    ("POST", "/api/dashboard/invitations/{invitationId}/decline"),
]


def test_fuzzing_covers_every_operation(client):
    document = client.get("/api/openapi.json").get_json()
    documented = {(m.upper(), p) for p, item in document["paths"].items() for m in item if m != "parameters"}
    assert documented == set(OPERATIONS)


# Negative data (values outside the document) exists only where there is input to spoil.
PAGINATED = {"/api/dashboard/integrations", "/api/dashboard/contacts"}  # their ?page and ?perPage can be spoilt
# Team routes read their few fields leniently, so a spoilt case may differ only in the auth put back.
TEAM_PATHS = ("/api/dashboard/teams", "/api/dashboard/invitations")
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if m != "GET" or "{" in p or p in PAGINATED
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_api_conforms_to_its_document(app, alice, bob, dns, method, path, mode):
    """schemathesis, 100 examples per operation and mode, as a logged-in user with the CSRF header:
    no server error, and every answer (status, headers, body) as the document says."""
    user = APIClient(app.test_client(), alice.email)
    ids = [user.post(f"{BASE}/create", json=chatwoot_payload()).get_json()["id"] for _ in range(3)]
    session_cookie = user.client.get_cookie("session").value
    # Real team objects of this user's, so that team routes are reached and not only refused.
    teams = [team_service.create_team(alice, f"Team {n}").id for n in range(2)]
    for team_id in teams:
        team_service.share(alice, team_id, ids[0])
    invitations = [team_service.invite(bob, team_service.create_team(bob, "Bob's").id, alice.email).id]
    real = {"teamId": teams, "invitationId": invitations, "userId": [alice.id, bob.id]}
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operation = schema[path][method]
    statuses: Counter = Counter()

    @given(case=operation.as_strategy(generation_mode=mode), pick=st.sampled_from(ids))
    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case, pick):
        # The document names the session cookie and the CSRF header as security schemes, so
        # schemathesis fills them with junk; put the real ones back (its ignored_auth check still
        # replays each call without them).
        case.cookies = {"session": session_cookie}
        case.headers = {**(case.headers or {}), "X-CSRFToken": user.csrf}
        if "integrationId" in (case.path_parameters or {}) and mode is GenerationMode.POSITIVE:
            case.path_parameters["integrationId"] = pick  # an id of this user's, not only junk
        for name, values in real.items():
            if name in (case.path_parameters or {}) and mode is GenerationMode.POSITIVE:
                case.path_parameters[name] = values[0]
        # Values the document allows may still be refused (422) for their meaning, and values
        # outside it are read leniently (e.g. "7" as an account id): the document is a contract
        # for shapes, so those two checks are left out; every other check runs.
        excluded = [negative_data_rejection, positive_data_acceptance]
        if mode is GenerationMode.NEGATIVE and (path in PAGINATED or path.startswith(TEAM_PATHS)):
            # Spoilt values may land in the session cookie that was put back above: a 200 then proves
            # nothing about auth (the positive run and test_authorization.py check it).
            excluded.append(ignored_auth)
        response = case.call_and_validate(excluded_checks=excluded)
        statuses[response.status_code] += 1

    # Each call runs in a fresh context, as on a real server (the test's app context would share `g`).
    contextvars.Context().run(check)
    assert 401 not in statuses  # the calls really were authenticated
    assert 500 not in statuses
    if mode is GenerationMode.POSITIVE and "{" in path:
        assert statuses[404] < sum(statuses.values())  # real ids were reached


def test_successful_calls_conform_to_the_document(app, alice, dns, allow_local, chatwoot):
    """Random bodies are mostly refused (422), so the success answers are checked here with valid
    calls, through the same schemathesis checks."""
    user = APIClient(app.test_client(), alice.email)
    cookie = user.client.get_cookie("session").value
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    live = chatwoot_payload(baseUrl=chatwoot.url(), accountId=chatwoot.account.id, apiKey=chatwoot.admin_token)

    def call(method, path, **kwargs):
        case = schema[path][method].Case(cookies={"session": cookie}, headers={"X-CSRFToken": user.csrf}, **kwargs)
        return contextvars.Context().run(case.call_and_validate)

    created = call("POST", f"{BASE}/create", body=live)
    assert created.status_code == 201
    integration_id = created.json()["id"]
    assert call("POST", f"{BASE}/test", body={"type": "CRM", "integrationId": integration_id}).json()["success"]
    assert call("POST", f"{BASE}/test", body={"type": "CRM", "configuration": live["configuration"]}).status_code == 200
    assert call("GET", BASE).status_code == 200
    for name in ("Ana", "Bo"):
        create_contact(alice, {"name": name, "email": f"{name.lower()}@example.com"})
    paged = call("GET", "/api/dashboard/contacts", query={"perPage": 1, "search": "@example.com"})
    assert paged.json()["pagination"]["total"] == 2 and 'rel="next"' in str(paged.headers["link"])
    assert call("GET", "/api/dashboard/providers").status_code == 200
    by_id = {"integrationId": integration_id}
    assert call("GET", f"{BASE}/{{integrationId}}", path_parameters=by_id).json()["lastTest"]["outcome"] == "ok"
    assert call("PUT", f"{BASE}/{{integrationId}}", path_parameters=by_id, body={"name": "New"}).status_code == 200
    assert call("DELETE", f"{BASE}/{{integrationId}}", path_parameters=by_id).status_code == 204
