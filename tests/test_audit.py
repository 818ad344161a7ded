"""The audit log: every action recorded with user, integration, time and client; never a secret."""

from crm import audit
from crm.integrations import service
from tests.conftest import chatwoot_payload


def test_each_action_is_recorded(app, api, alice, allow_local, chatwoot):
    created = api.post(
        "/api/dashboard/integrations/create",
        json=chatwoot_payload(baseUrl=chatwoot.url(), accountId=chatwoot.account.id, apiKey=chatwoot.admin_token),
    ).get_json()
    integration_id = created["id"]
    api.put(f"/api/dashboard/integrations/{integration_id}", json={"name": "Renamed"})
    api.put(f"/api/dashboard/integrations/{integration_id}", json={"isActive": False})
    api.put(f"/api/dashboard/integrations/{integration_id}", json={"isActive": True})
    api.post("/api/dashboard/integrations/test", json={"type": "CRM", "integrationId": integration_id})
    api.post(
        "/api/dashboard/integrations/test",
        json={
            "type": "CRM",
            "configuration": {**chatwoot_payload()["configuration"], "baseUrl": chatwoot.url(), "apiKey": "wrong"},
        },
    )
    api.delete(f"/api/dashboard/integrations/{integration_id}")
    events = list(reversed(audit.history(alice)))
    actions = [(e.action, e.outcome) for e in events]
    assert actions[0] == ("create", None)
    for expected in [
        ("update", None),
        ("deactivate", None),
        ("activate", None),
        ("test", "ok"),
        ("test", "auth_failed"),
        ("delete", None),
        ("provision", "ok"),
    ]:
        assert expected in actions, expected
    used = [e for e in events if e.action == "secret_used"]
    assert {e.detail for e in used} >= {"provisioning", "connection test"}
    for event in events:
        assert event.user_id == alice.id and event.client == "127.0.0.1" and event.created_at
        if event.action != "test" or event.detail != "unsaved values":
            assert event.integration_id == integration_id and event.provider == "CHATWOOT"
        assert chatwoot.admin_token not in f"{event.detail} {event.outcome}"


def test_history_page_and_cli(app, api, alice, bob, runner, dns):
    mine = api.post("/api/dashboard/integrations/create", json=chatwoot_payload()).get_json()
    service.create_integration(
        bob,
        "CHATWOOT",
        {"name": "Bob's", "base_url": "https://chat.example.com", "account_id": 1, "api_key": "bob-token-123456789"},
    )
    page = api.get(f"/dashboard/integrations/{mine['id']}/history").get_data(as_text=True)
    assert "History of Support" in page and "Created" in page
    everyone = runner.invoke(args=["crm", "audit"])
    assert everyone.exit_code == 0
    assert "alice@example.com" in everyone.output and "bob@example.com" in everyone.output
    only_alice = runner.invoke(args=["crm", "audit", "--user", "alice@example.com"])
    assert "bob@example.com" not in only_alice.output and mine["id"] in only_alice.output
    assert "bob-token" not in everyone.output
