"""The JSON API: the guide's endpoints, redaction, errors, and no-store caching."""

import pytest

from tests.conftest import chatwoot_payload

BASE = "/api/dashboard/integrations"


def create(api, **configuration):
    response = api.post(f"{BASE}/create", json=chatwoot_payload(**configuration))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_returns_the_integration_redacted(api):
    body = create(api)
    assert body["name"] == "Support"
    assert body["type"] == "CRM"
    assert body["isActive"] is True
    assert body["lastTest"] is None
    configuration = body["configuration"]
    assert configuration == {
        "provider": "CHATWOOT",
        "baseUrl": "https://chat.example.com",
        "accountId": 7,
        "apiKey": {"configured": True, "last4": "1234"},
        "features": {"autoCreateInboxes": True, "autoCreateBots": False, "syncContacts": True},
    }


def test_features_default_on_and_custom_crm(api):
    payload = chatwoot_payload()
    del payload["configuration"]["features"]
    body = api.post(f"{BASE}/create", json=payload).get_json()
    assert body["configuration"]["features"] == {
        "autoCreateInboxes": True,
        "autoCreateBots": True,
        "syncContacts": True,
    }
    custom = api.post(
        f"{BASE}/create",
        json={
            "name": "Acme",
            "type": "CRM",
            "configuration": {
                "provider": "CUSTOM",
                "crmName": "Acme CRM",
                "baseUrl": "https://api.acme.example",
                "authType": "OAUTH2",
                "tokenUrl": "https://api.acme.example/oauth/token",
                "credentials": {"clientId": "client-1", "clientSecret": "very-secret-client-value"},
            },
        },
    )
    assert custom.status_code == 201, custom.get_json()
    credentials = custom.get_json()["configuration"]["credentials"]
    assert credentials == {"clientId": {"configured": True}, "clientSecret": {"configured": True, "last4": "alue"}}


def test_list_get_update_delete(api):
    created = create(api)
    listed = api.get(BASE).get_json()["integrations"]
    assert [i["id"] for i in listed] == [created["id"]]
    assert api.get(f"{BASE}/{created['id']}").get_json() == created
    renamed = api.put(f"{BASE}/{created['id']}", json={"name": "Renamed", "isActive": False})
    assert renamed.status_code == 200
    assert renamed.get_json()["name"] == "Renamed" and renamed.get_json()["isActive"] is False
    # A blank or omitted secret keeps the stored one; the redacted object sent back does too.
    for configuration in ({"apiKey": ""}, {"accountId": 8}, {"apiKey": {"configured": True, "last4": "1234"}}):
        updated = api.put(f"{BASE}/{created['id']}", json={"configuration": configuration})
        assert updated.status_code == 200, updated.get_json()
        assert updated.get_json()["configuration"]["apiKey"] == {"configured": True, "last4": "1234"}
    assert api.delete(f"{BASE}/{created['id']}").status_code == 204
    assert api.get(f"{BASE}/{created['id']}").status_code == 404


def test_host_change_requires_the_secret(api):
    created = create(api)
    moved = api.put(f"{BASE}/{created['id']}", json={"configuration": {"baseUrl": "https://evil.example.net"}})
    assert moved.status_code == 422
    assert "apiKey" in moved.get_json()["fields"]


def test_validation_errors_name_the_fields(api):
    response = api.post(f"{BASE}/create", json=chatwoot_payload(baseUrl="not a url", accountId="x", apiKey=""))
    assert response.status_code == 422
    body = response.get_json()
    assert set(body["fields"]) == {"baseUrl", "accountId", "apiKey"}
    assert body["error"]
    bad_feature = api.post(f"{BASE}/create", json=chatwoot_payload(features={"autoCreateBots": "maybe"}))
    assert set(bad_feature.get_json()["fields"]) == {"features.autoCreateBots"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x", "type": "EMAIL", "configuration": {"provider": "CHATWOOT"}}, "type"),
        ({"name": "x", "configuration": {"provider": "UPCOMING"}}, "provider"),
        ({"name": "x", "configuration": {"provider": "NOPE"}}, "provider"),
        ({"name": "x", "configuration": "CHATWOOT"}, "configuration"),
        ({"name": "x"}, "configuration"),
    ],
)
def test_bad_shapes_are_422(api, coming_soon_provider, payload, field):
    response = api.post(f"{BASE}/create", json=payload)
    assert response.status_code == 422
    assert field in response.get_json()["fields"]


def test_malformed_json_wrong_type_and_too_large(api):
    malformed = api.post(f"{BASE}/create", data="{not json", content_type="application/json")
    assert malformed.status_code == 400 and "valid JSON" in malformed.get_json()["error"]
    not_object = api.post(f"{BASE}/create", json=[1, 2])
    assert not_object.status_code == 400
    form = api.post(f"{BASE}/create", data={"name": "x"})
    assert form.status_code == 415
    large = api.post(f"{BASE}/create", json={"name": "x" * (70 * 1024)})
    assert large.status_code == 413
    assert large.is_json


def test_unknown_and_foreign_ids_answer_identically(api, bob_api):
    theirs = bob_api.post(f"{BASE}/create", json=chatwoot_payload()).get_json()
    unknown = "00000000-0000-4000-8000-000000000000"
    for method in ("GET", "PUT", "DELETE"):
        a = api.call(method, f"{BASE}/{theirs['id']}", json={"name": "pwned"} if method == "PUT" else None)
        b = api.call(method, f"{BASE}/{unknown}", json={"name": "pwned"} if method == "PUT" else None)
        assert a.status_code == b.status_code == 404
        assert a.get_data() == b.get_data()
    tested = api.post(f"{BASE}/test", json={"type": "CRM", "integrationId": theirs["id"]})
    assert tested.status_code == 404
    assert bob_api.get(f"{BASE}/{theirs['id']}").get_json()["name"] == "Support"


def test_not_logged_in_is_401_json(client):
    for method, path in (("GET", BASE), ("POST", f"{BASE}/create"), ("GET", "/api/dashboard/providers")):
        response = client.open(path, method=method, json={})
        assert response.status_code == 401
        assert "Log in" in response.get_json()["error"]


def test_writes_need_the_csrf_header(api):
    response = api.post(f"{BASE}/create", json=chatwoot_payload(), csrf=False)
    assert response.status_code == 400
    assert "X-CSRFToken" in response.get_json()["error"]


def test_method_not_allowed_is_json(api):
    response = api.call("PATCH", BASE)
    assert response.status_code == 405
    assert response.is_json and "Allow" in response.headers


def test_every_api_response_is_no_store(api):
    created = create(api)
    for response in (
        api.get(BASE),
        api.get(f"{BASE}/{created['id']}"),
        api.get("/api/dashboard/providers"),
        api.post(f"{BASE}/create", json={}),
        api.get(f"{BASE}/00000000-0000-4000-8000-000000000000"),
    ):
        assert response.headers["Cache-Control"] == "no-store"


def test_mass_assignment_is_ignored(api, bob_api, bob):
    body = chatwoot_payload()
    body.update(id="11111111-1111-4111-8111-111111111111", userId=bob.id, ownerId=bob.id, user_id=bob.id)
    body["configuration"]["userId"] = bob.id
    created = api.post(f"{BASE}/create", json=body).get_json()
    assert created["id"] != body["id"]
    assert bob_api.get(BASE).get_json()["integrations"] == []
    api.put(f"{BASE}/{created['id']}", json={"userId": bob.id, "user_id": bob.id, "id": body["id"]})
    assert bob_api.get(BASE).get_json()["integrations"] == []
    assert api.get(f"{BASE}/{created['id']}").status_code == 200


def test_providers_describe_their_schemas(api, coming_soon_provider):
    providers = api.get("/api/dashboard/providers").get_json()["providers"]
    chatwoot = next(p for p in providers if p["id"] == "CHATWOOT")
    assert [f["name"] for f in chatwoot["fields"]] == [
        "name",
        "baseUrl",
        "accountId",
        "apiKey",
        "autoCreateInboxes",
        "autoCreateBots",
        "syncContacts",
    ]
    api_key = next(f for f in chatwoot["fields"] if f["name"] == "apiKey")
    assert api_key["sensitive"] and api_key["label"] == "API Access Token"
    assert {p["id"]: p["availability"] for p in providers}["UPCOMING"] == "coming_soon"


def test_test_endpoint_reports_and_never_saves(api, allow_local, chatwoot):
    payload = chatwoot_payload(baseUrl=chatwoot.url(), accountId=chatwoot.account.id, apiKey=chatwoot.admin_token)
    response = api.post(f"{BASE}/test", json={"type": "CRM", "configuration": payload["configuration"]})
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True and body["outcome"] == "ok" and body["message"]
    assert api.get(BASE).get_json()["integrations"] == []
    wrong = api.post(f"{BASE}/test", json={"type": "CRM", "configuration": {**payload["configuration"], "apiKey": "x"}})
    assert wrong.get_json()["outcome"] == "auth_failed" and wrong.get_json()["success"] is False


def test_test_endpoint_with_a_saved_integration(api, allow_local, chatwoot):
    created = create(api, baseUrl=chatwoot.url(), accountId=chatwoot.account.id, apiKey=chatwoot.admin_token)
    tested = api.post(f"{BASE}/test", json={"type": "CRM", "integrationId": created["id"]}).get_json()
    assert tested["outcome"] == "ok"
    assert api.get(f"{BASE}/{created['id']}").get_json()["lastTest"]["outcome"] == "ok"
    moved = api.post(
        f"{BASE}/test",
        json={"integrationId": created["id"], "configuration": {"baseUrl": "https://elsewhere.example.com"}},
    )
    assert moved.status_code == 422 and "apiKey" in moved.get_json()["fields"]


# --- pagination ---------------------------------------------------------------------------------

CONTACTS = "/api/dashboard/contacts"


def test_integrations_list_paginates_with_links(api):
    created = [create(api)["id"] for _ in range(3)]
    everything = api.get(BASE)
    assert [i["id"] for i in everything.get_json()["integrations"]] == created  # oldest first, as before
    assert everything.get_json()["pagination"] == {"page": 1, "perPage": 50, "total": 3, "next": None, "prev": None}
    assert "Link" not in everything.headers
    first = api.get(f"{BASE}?perPage=2")
    body = first.get_json()
    assert [i["id"] for i in body["integrations"]] == created[:2]
    assert body["pagination"] == {
        "page": 1,
        "perPage": 2,
        "total": 3,
        "next": f"{BASE}?page=2&perPage=2",
        "prev": None,
    }
    assert first.headers["Link"] == f'<{BASE}?page=2&perPage=2>; rel="next"'
    second = api.get(body["pagination"]["next"])
    assert [i["id"] for i in second.get_json()["integrations"]] == created[2:]
    assert second.get_json()["pagination"]["next"] is None
    assert second.headers["Link"] == f'<{BASE}?page=1&perPage=2>; rel="prev"'
    beyond = api.get(f"{BASE}?page=9&perPage=2").get_json()
    assert beyond["integrations"] == [] and beyond["pagination"]["prev"] == f"{BASE}?page=2&perPage=2"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("page=", "page"),
        ("page=99999999999999999999", "page"),
        ("perPage=0", "perPage"),
        ("perPage=101", "perPage"),
        ("perPage=ten", "perPage"),
    ],
)
@pytest.mark.parametrize("path", [BASE, CONTACTS])
def test_bad_page_parameters_are_422_naming_the_field(api, path, query, field):
    response = api.get(f"{path}?{query}")
    assert response.status_code == 422
    assert list(response.get_json()["fields"]) == [field]


@pytest.mark.parametrize("search", ["x" * 101, "a%00b", "%1b[2J", "%E2%80%AEtxt"])
def test_bad_contact_search_is_422_naming_the_field(api, search):
    response = api.get(f"{CONTACTS}?search={search}")
    assert response.status_code == 422
    assert list(response.get_json()["fields"]) == ["search"]


def test_contacts_list_is_mine_paginated_and_searchable(api, alice, bob):
    from crm.contacts.service import create_contact

    for number in (10, 2, 1):
        create_contact(alice, {"name": f"Client {number}", "email": f"client{number}@example.com"})
    create_contact(alice, {"name": "Ana", "email": "ana@example.com", "phone": "+4930123456"})
    create_contact(bob, {"name": "Ana of Bob", "email": "ana@bob.example"})
    create_contact(bob, {"name": "Client 3", "email": "client3@bob.example"})
    listed = api.get(CONTACTS).get_json()
    assert [c["name"] for c in listed["contacts"]] == ["Ana", "Client 1", "Client 2", "Client 10"]
    assert listed["pagination"]["total"] == 4
    assert set(listed["contacts"][0]) == {"id", "name", "email", "phone", "sync", "createdAt", "updatedAt"}
    page = api.get(f"{CONTACTS}?perPage=2&page=2&search=client")
    assert [c["name"] for c in page.get_json()["contacts"]] == ["Client 10"]
    assert page.get_json()["pagination"]["total"] == 3
    assert page.headers["Link"] == f'<{CONTACTS}?page=1&perPage=2&search=client>; rel="prev"'
    found = api.get(f"{CONTACTS}?search=ANA").get_json()
    assert [c["name"] for c in found["contacts"]] == ["Ana"]  # never Bob's "Ana of Bob"
    assert "bob.example" not in api.get(f"{CONTACTS}?perPage=100").get_data(as_text=True)
