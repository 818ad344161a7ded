"""The htmx answers, route by route, without a browser: partial or page, retarget, triggers, redirects."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

HX = {"HX-Request": "true"}


@pytest.fixture
def alice_in(client, auth, alice):
    auth.login()
    page = client.get("/dashboard/integrations").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return {"X-CSRFToken": token}


def triggers(response) -> dict:
    return json.loads(response.headers["HX-Trigger"])


def test_the_list_is_a_partial_for_htmx_and_a_page_otherwise(client, alice_in):
    partial = client.get("/dashboard/integrations", headers=HX)
    assert partial.status_code == 200 and "<html" not in partial.get_data(as_text=True)
    assert 'id="integration-list"' in partial.get_data(as_text=True)
    assert "HX-Request" in partial.headers["Vary"]
    boosted = client.get("/dashboard/integrations", headers={**HX, "HX-Boosted": "true"})
    assert "<html" in boosted.get_data(as_text=True)
    assert "<html" in client.get("/dashboard/integrations").get_data(as_text=True)


def test_a_change_closes_the_modal_refreshes_the_list_and_toasts(client, alice_in, alice, make_integration):
    integration = make_integration(alice)
    answer = client.post(f"/dashboard/integrations/{integration.id}/toggle", headers={**HX, **alice_in})
    assert answer.status_code == 204
    events = triggers(answer)
    assert list(events) == ["integrations:changed", "modal:close", "toast"]  # close first: the toast shows on the page
    assert events["toast"]["message"].startswith("Support Chatwoot is now inactive.")
    plain = client.post(f"/dashboard/integrations/{integration.id}/toggle", headers=alice_in)
    assert plain.status_code == 302 and plain.headers["Location"].endswith("/dashboard/integrations")
    assert "HX-Trigger" not in plain.headers


def test_a_refused_primary_is_an_error_toast(client, alice_in, alice, make_integration):
    integration = make_integration(alice)
    client.post(f"/dashboard/integrations/{integration.id}/toggle", headers={**HX, **alice_in})
    answer = client.post(f"/dashboard/integrations/{integration.id}/primary", headers={**HX, **alice_in})
    assert answer.status_code == 204
    assert triggers(answer)["toast"] == {
        "message": "Support Chatwoot cannot be primary: it is inactive.",
        "category": "error",
    }


def test_field_errors_of_a_test_retarget_the_whole_modal(client, alice_in):
    answer = client.post(
        "/dashboard/integrations/new/crm/CHATWOOT/test",
        data={"base_url": "chat.example.com", "account_id": "1", "api_key": "x" * 20},
        headers={**HX, **alice_in},
    )
    assert answer.status_code == 422
    assert answer.headers["HX-Retarget"] == "#modal-root"
    assert answer.headers["HX-Reswap"] == "innerHTML"
    assert "<dialog" in answer.get_data(as_text=True)
    plain = client.post(
        "/dashboard/integrations/new/crm/CHATWOOT/test", data={"base_url": "chat.example.com"}, headers=alice_in
    )
    assert plain.status_code == 422 and "HX-Retarget" not in plain.headers
    assert "<html" in plain.get_data(as_text=True)


def test_the_cards_test_button_swaps_the_card_and_toasts(client, alice_in, alice, make_integration):
    integration = make_integration(alice)
    answer = client.post(f"/dashboard/integrations/{integration.id}/retest", headers={**HX, **alice_in})
    assert answer.status_code == 200
    body = answer.get_data(as_text=True)
    assert body.lstrip().startswith("<article") and f'id="integration-{integration.id}"' in body
    assert triggers(answer)["toast"]["category"] == "error"  # chat.example.com cannot be reached from tests
    plain = client.post(f"/dashboard/integrations/{integration.id}/retest", headers=alice_in)
    assert plain.status_code == 302


def test_the_create_form_carries_a_one_time_id_and_a_replay_creates_nothing(client, alice_in, alice, allow_local):
    page = client.get("/dashboard/integrations/new/crm/CHATWOOT", headers=HX).get_data(as_text=True)
    form_id = re.search(r'name="form_id" value="([^"]+)"', page).group(1)
    values = {
        "form_id": form_id,
        "name": "Desk",
        "base_url": "https://chat.example.com",
        "account_id": "3",
        "api_key": "cw-token-1234567890abcd",
    }
    first = client.post("/dashboard/integrations/new/crm/CHATWOOT", data=values, headers={**HX, **alice_in})
    second = client.post("/dashboard/integrations/new/crm/CHATWOOT", data=values, headers={**HX, **alice_in})
    assert first.status_code == second.status_code == 204
    assert triggers(second)["toast"]["message"] == "Desk was already saved."
    listed = client.get("/api/dashboard/integrations").get_json()
    assert [i["name"] for i in listed["integrations"]] == ["Desk"]


def test_no_view_asks_is_htmx_itself():
    """Every partial-or-page decision lives in crm/htmx.py; the JSON API's no_store comes from crm/http.py."""
    package = Path(__file__).resolve().parent.parent / "crm"
    for module in package.rglob("*.py"):
        if module.name == "htmx.py":
            continue
        text = module.read_text()
        assert "is_htmx" not in text, f"{module} decides htmx answers itself"
        assert "HX-" not in text, f"{module} writes htmx headers itself"
    assert "crm.htmx" not in (package / "api" / "routes.py").read_text()
