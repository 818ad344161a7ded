"""HubSpot and Pipedrive through the whole app: Test Connection outcomes from their fakes by way of the
JSON API (service.test_connection, the operator's HUBSPOT_API_URL / PIPEDRIVE_API_URL), create and
test over the API, `flask crm test`, the dashboard card, capabilities in the API and the CLI, and one
validator for the form and the API. Every token is a canary: no response body may carry it."""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import use_outbound_policy
from tests.fakes.hubspot import READ, FakeHubSpot
from tests.fakes.pipedrive import FakePipedrive
from tests.test_canary import find_leaks

BASE = "/api/dashboard/integrations"
# The modal's requests (htmx). A full page without JavaScript shows a just-typed secret back in its
# input by design (templates/_macros/forms.html), so the leak scan drives the page as the modal does.
MODAL = {"HX-Request": "true"}
OUTCOMES = ("ok", "auth_failed", "insufficient_permissions", "rate_limited", "server_error", "timeout")


@dataclass
class CRM:
    """One provider's fake, wired into the app, with the token the user would paste (a canary)."""

    provider: str
    server: Any
    token: str
    seen: list[str] = field(default_factory=list)  # every body the app answered, for the leak scan

    def configuration(self, token: str | None = None, **overrides: Any) -> dict[str, Any]:
        token = token or self.token
        if self.provider == "HUBSPOT":
            return {"provider": "HUBSPOT", "accessToken": token, **overrides}
        return {"provider": "PIPEDRIVE", "companyDomain": "acme", "apiToken": token, **overrides}

    def record(self, response):
        self.seen.append(f"{response.status_code}\n{response.headers}\n{response.get_data(as_text=True)}")
        return response

    def assert_no_leak(self) -> None:
        assert self.seen, "nothing was scanned"
        assert find_leaks("\n".join(self.seen), [self.token]) == []


@pytest.fixture(params=["HUBSPOT", "PIPEDRIVE"])
def crm(request, app, allow_local) -> Iterator[CRM]:
    """The fake on 127.0.0.1, reached through the operator's API URL setting, as a sandbox would be."""
    if request.param == "HUBSPOT":
        with FakeHubSpot() as server:
            token = server.add_token("pat-eu1-CANARY" + secrets.token_hex(16))
            app.config["HUBSPOT_API_URL"] = server.url()
            yield CRM("HUBSPOT", server, token)
    else:
        with FakePipedrive() as server:
            token = server.add_user(token="CANARY" + secrets.token_hex(17))  # 40 characters, as Pipedrive's
            app.config["PIPEDRIVE_API_URL"] = server.url()
            yield CRM("PIPEDRIVE", server, token)


def arrange(crm: CRM, outcome: str, app, dns) -> str:
    """Make the fake answer so that a test ends with `outcome`; returns the token to test with."""
    server = crm.server
    if outcome == "auth_failed":
        return "pat-eu1-00000000-0000-0000-0000-000000000000" if crm.provider == "HUBSPOT" else "0" * 40
    if outcome == "insufficient_permissions":
        if crm.provider == "HUBSPOT":
            return server.add_token(scopes={"oauth"})  # no contacts scopes
        server.force_status(403, count=10)  # an admin turned API access off for this user
    if outcome == "rate_limited":
        server.force_status(429, count=10)
    if outcome == "server_error":
        server.force_status(500, count=10)
    if outcome == "timeout":
        server.delay = 5
        use_outbound_policy(
            app, dns, CRM_ALLOW_PRIVATE_HOSTS="127.0.0.1", CRM_ALLOW_INSECURE_HTTP=True, CRM_TOTAL_TIMEOUT=1
        )
    return crm.token


# What each outcome's message says, in the provider's words (never the remote's).
EXPECTED = {
    ("HUBSPOT", "ok"): ["Connected to HubSpot account 146000123."],
    ("PIPEDRIVE", "ok"): ["Connected to Pipedrive (Acme Ltd) as Ann Admin."],
    ("HUBSPOT", "auth_failed"): ["HubSpot rejected the access token", "Private Apps"],
    ("PIPEDRIVE", "auth_failed"): ["Pipedrive rejected the API token", "Personal preferences → API"],
    ("HUBSPOT", "insufficient_permissions"): [READ],
    ("PIPEDRIVE", "insufficient_permissions"): ["API access"],
    ("HUBSPOT", "rate_limited"): ["HubSpot is limiting requests"],
    ("PIPEDRIVE", "rate_limited"): ["Pipedrive is limiting requests"],
    ("HUBSPOT", "server_error"): ["HubSpot answered with a server error"],
    ("PIPEDRIVE", "server_error"): ["Pipedrive answered with a server error"],
    ("HUBSPOT", "timeout"): ["HubSpot did not answer in time"],
    ("PIPEDRIVE", "timeout"): ["Pipedrive did not answer in time"],
}


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_connection_outcomes_through_the_api(app, dns, api, crm, outcome):
    token = arrange(crm, outcome, app, dns)
    response = crm.record(api.post(f"{BASE}/test", json={"type": "CRM", "configuration": crm.configuration(token)}))
    assert response.status_code == 200
    body = response.get_json()
    assert body["outcome"] == outcome, body["message"]
    assert body["success"] is (outcome == "ok")
    for words in EXPECTED[(crm.provider, outcome)]:
        assert words in body["message"]
    assert crm.server.count >= 1  # the operator's API URL was used, not the vendor's
    assert api.get(BASE).get_json()["integrations"] == []  # testing never saves
    crm.assert_no_leak()


def test_create_test_and_cli_test(app, api, runner, crm):
    created = crm.record(api.post(f"{BASE}/create", json={"name": "My CRM", "configuration": crm.configuration()}))
    assert created.status_code == 201, created.get_json()
    integration = created.get_json()
    secret_key = "accessToken" if crm.provider == "HUBSPOT" else "apiToken"
    assert integration["configuration"][secret_key] == {"configured": True, "last4": crm.token[-4:]}
    if crm.provider == "PIPEDRIVE":
        assert integration["configuration"]["companyDomain"] == "acme"

    tested = crm.record(api.post(f"{BASE}/test", json={"type": "CRM", "integrationId": integration["id"]}))
    assert tested.get_json()["outcome"] == "ok"
    again = crm.record(api.get(f"{BASE}/{integration['id']}")).get_json()
    assert again["lastTest"]["outcome"] == "ok"

    cli = runner.invoke(args=["crm", "test", integration["id"][:8]])
    assert cli.exit_code == 0, cli.output
    assert f"ok: {EXPECTED[(crm.provider, 'ok')][0]}" in cli.output
    # The token is revoked in the CRM: the CLI says so and fails.
    del crm.server.tokens[crm.token]
    revoked = runner.invoke(args=["crm", "test", integration["id"]])
    assert revoked.exit_code == 1
    assert "auth_failed: " in revoked.output
    crm.seen += [cli.output, revoked.output]

    page = crm.record(api.get("/dashboard/integrations"))
    card = re.search(r'<article class="integration-card".*?</article>', page.get_data(as_text=True), re.S).group()
    assert "Contacts sync · Notes" in card
    assert "Failing:" in card  # the CLI's test of the saved integration was recorded
    if crm.provider == "PIPEDRIVE":
        assert "acme.pipedrive.com" in card.replace("<wbr>", "")
    crm.assert_no_leak()


def test_the_proposed_name_names_the_portal_or_company(app, api, crm):
    """A green test in the page form with the name left empty proposes one from what the CRM said."""
    url = f"/dashboard/integrations/new/crm/{crm.provider}"
    form = {"csrf_token": api.csrf, "name": ""}
    if crm.provider == "HUBSPOT":
        form["access_token"] = crm.token
    else:
        form.update(company_domain="https://acme.pipedrive.com/", api_token=crm.token)
    answer = crm.record(api.client.post(f"{url}/test", data=form, headers=MODAL))
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert 'data-outcome="ok"' in text
    proposed = "HubSpot – portal 146000123" if crm.provider == "HUBSPOT" else "Pipedrive – Acme Ltd"
    assert f'value="{proposed}"' in text
    crm.assert_no_leak()


def test_failed_tests_on_the_page_give_the_providers_advice(app, dns, api, crm):
    url = f"/dashboard/integrations/new/crm/{crm.provider}/test"
    token = arrange(crm, "auth_failed", app, dns)
    form = {"csrf_token": api.csrf, "name": "x"}
    form.update(
        {"access_token": token} if crm.provider == "HUBSPOT" else {"company_domain": "acme", "api_token": token}
    )
    text = crm.record(api.client.post(url, data=form, headers=MODAL)).get_data(as_text=True)
    assert 'data-outcome="auth_failed"' in text
    where = "Private Apps → your app → Auth" if crm.provider == "HUBSPOT" else "Personal preferences → API"
    advice = re.search(r'<ul class="advice">.*?</ul>', text, re.S).group()
    assert where in advice and "Chatwoot" not in advice
    crm.assert_no_leak()


# Bad input per provider: (form field, API key, value). Each must get one message, form and API alike.
BAD_INPUT = {
    "PIPEDRIVE": [
        ("company_domain", "companyDomain", value) for value in ("acme corp!", "-acme", "acme_ltd", "a" * 64, "")
    ],
    "HUBSPOT": [("access_token", "accessToken", value) for value in ("x" * 513, "pat-eu1-\nsplit", "")],
}


def form_values(crm: CRM) -> dict[str, str]:
    if crm.provider == "HUBSPOT":
        return {"access_token": crm.token}
    return {"company_domain": "acme", "api_token": crm.token}


def test_one_validator_the_form_and_the_api_say_the_same(app, api, crm):
    for name, api_name, value in BAD_INPUT[crm.provider]:
        configuration = crm.configuration(**{api_name: value})
        api_answer = crm.record(api.post(f"{BASE}/create", json={"name": "P", "configuration": configuration}))
        assert api_answer.status_code == 422, value
        [api_message] = api_answer.get_json()["fields"][api_name]

        form = {"csrf_token": api.csrf, "name": "P", **form_values(crm), name: value}
        page = crm.record(api.client.post(f"/dashboard/integrations/new/crm/{crm.provider}", data=form, headers=MODAL))
        assert page.status_code == 422, value
        shown = re.search(rf'id="{name}-error"[^>]*>(.*?)</', page.get_data(as_text=True), re.S)
        assert shown is not None, f"no message beside {name} for {value!r}"
        assert html.unescape(shown.group(1).strip()) == api_message
    assert api.get(BASE).get_json()["integrations"] == []
    crm.assert_no_leak()


def test_providers_endpoint_lists_capabilities(api):
    providers = {p["id"]: p for p in api.get("/api/dashboard/providers").get_json()["providers"]}
    for provider_id in ("HUBSPOT", "PIPEDRIVE"):
        described = providers[provider_id]
        assert described["availability"] == "available"
        assert described["capabilities"] == [
            {"id": "contacts", "label": "Contacts sync"},
            {"id": "notes", "label": "Notes"},
        ]
    assert [f["name"] for f in providers["HUBSPOT"]["fields"]] == ["name", "accessToken"]
    assert [f["label"] for f in providers["PIPEDRIVE"]["fields"]] == ["Integration Name", "Company Domain", "API Token"]
    for described in providers.values():  # every provider: one capability per declared feature
        assert [c["id"] for c in described["capabilities"]] == described["features"]
    assert {"id": "inboxes", "label": "Inboxes"} in providers["CHATWOOT"]["capabilities"]


def test_cli_providers_lists_capabilities(runner):
    result = runner.invoke(args=["crm", "providers"])
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.output.splitlines()}
    for provider_id in ("HUBSPOT", "PIPEDRIVE"):
        assert rows[provider_id].split()[2] == "available"
        assert rows[provider_id].endswith("Contacts sync, Notes")
    assert rows["CUSTOM"].endswith("Connection test, OAuth")  # OAuth: the authorization code grant
