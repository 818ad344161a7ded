"""Test Connection against real local servers: every outcome code, for Chatwoot and the Custom CRM."""

import json
import logging

import pytest

from crm.integrations import service
from crm.integrations.service import ValidationFailed
from crm.providers.base import OUTCOMES
from tests.conftest import FakeDNS, use_outbound_policy
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.custom_crm import FakeCustomCRM
from tests.fakes.server import RawListener

SEEN_OUTCOMES: dict[str, set[str]] = {"CHATWOOT": set(), "CUSTOM": set()}
SECRETS: set[str] = set()


@pytest.fixture(autouse=True)
def no_secret_in_debug_logs(caplog):
    """Every test here runs with every logger at DEBUG; no secret may reach a log line."""
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "urllib3.connectionpool", "requests", "crm", "crm.net"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield
    text = "\n".join(record.getMessage() for record in caplog.records)
    for secret in SECRETS:
        assert secret not in text


def check(alice, provider, raw, expected, integration_id=None):
    result = service.test_connection(alice, provider, raw, integration_id)
    assert result.outcome == expected, (result.outcome, result.message)
    assert result.message
    SEEN_OUTCOMES[provider or "CHATWOOT"].add(result.outcome)
    for secret in SECRETS:
        assert secret not in result.message
        assert all(secret not in line for line in result.verified)
    return result


def chatwoot_config(server, token=None, **overrides):
    token = token or server.admin_token
    SECRETS.add(token)
    config = {
        "base_url": server.url(),
        "account_id": server.account.id,
        "api_key": token,
        "auto_create_inboxes": True,
        "auto_create_bots": True,
    }
    config.update(overrides)
    return config


# --- Chatwoot ----------------------------------------------------------------------------------


def test_chatwoot_ok_reports_version_role_and_account(alice, allow_local, chatwoot):
    result = check(alice, "CHATWOOT", chatwoot_config(chatwoot), "ok")
    assert result.success
    assert result.details == {"version": "4.15.1", "role": "administrator", "accountName": "Acme Support"}
    assert any("4.15.1" in line for line in result.verified)
    assert "administrator" in result.message
    profile_call = next(r for r in chatwoot.requests if r["path"] == "/api/v1/profile")
    assert profile_call["headers"]["api_access_token"] == chatwoot.admin_token  # the positive control


def test_chatwoot_pasted_dashboard_address_is_normalised(alice, allow_local, chatwoot):
    config = chatwoot_config(chatwoot, base_url=f"{chatwoot.url()}/app/accounts/{chatwoot.account.id}/dashboard")
    config.pop("account_id")
    check(alice, "CHATWOOT", config, "ok")


def test_chatwoot_agent_with_auto_create_is_warned(alice, allow_local, chatwoot):
    result = check(alice, "CHATWOOT", chatwoot_config(chatwoot, chatwoot.agent_token), "insufficient_permissions")
    assert "Auto-create Inboxes and Auto-create Agent Bots will fail" in result.message
    assert not result.success
    relaxed = chatwoot_config(chatwoot, chatwoot.agent_token, auto_create_inboxes=False, auto_create_bots=False)
    check(alice, "CHATWOOT", relaxed, "ok")


def test_chatwoot_wrong_token(alice, allow_local, chatwoot):
    result = check(alice, "CHATWOOT", chatwoot_config(chatwoot, "wrong-token-0000"), "auth_failed")
    assert "Profile Settings → Access Token" in result.message


def test_chatwoot_bot_token(alice, allow_local, chatwoot):
    bot = chatwoot.add_user({chatwoot.account.id: "agent"}, is_bot=True)
    result = check(alice, "CHATWOOT", chatwoot_config(chatwoot, bot), "auth_failed")
    assert "agent bot" in result.message


def test_chatwoot_behind_a_proxy_dropping_underscore_headers(alice, allow_local, chatwoot):
    chatwoot.strip_underscore_headers = True
    check(alice, "CHATWOOT", chatwoot_config(chatwoot), "ok")
    assert any("Api-Access-Token" in r["headers"] for r in chatwoot.requests)


def test_chatwoot_behind_a_proxy_dropping_the_token(alice, allow_local, chatwoot):
    chatwoot.strip_token_headers = True
    result = check(alice, "CHATWOOT", chatwoot_config(chatwoot), "auth_failed")
    assert "underscores_in_headers" in result.message


def test_chatwoot_account_not_found(alice, allow_local, chatwoot):
    other = chatwoot.add_account("Someone else")
    result = check(alice, "CHATWOOT", chatwoot_config(chatwoot, account_id=other.id), "account_not_found")
    assert f"account {other.id}" in result.message
    check(alice, "CHATWOOT", chatwoot_config(chatwoot, account_id=999_999), "account_not_found")


def test_chatwoot_suspended_account(alice, allow_local, chatwoot):
    chatwoot.account.status = "suspended"
    result = check(alice, "CHATWOOT", chatwoot_config(chatwoot), "account_not_found")
    assert "suspended" in result.message


def test_chatwoot_html_answer_is_not_a_crm(alice, allow_local, chatwoot):
    chatwoot.fail_next("GET", "/api/v1/profile", 200, b"<!DOCTYPE html><html><body>Login</body></html>")
    result = check(alice, "CHATWOOT", chatwoot_config(chatwoot), "not_a_crm")
    assert "Login" not in result.message  # a remote body is never echoed


def test_another_server_is_not_a_crm(alice, allow_local):
    with FakeCustomCRM() as other:
        config = {"base_url": other.url(), "account_id": 1, "api_key": "token-for-nobody-123"}
        check(alice, "CHATWOOT", config, "not_a_crm")


def test_chatwoot_rate_limited(alice, allow_local, chatwoot):
    chatwoot.rate_limit_remaining = 1  # GET /api passes, the profile gets "Retry later"
    result = check(alice, "CHATWOOT", chatwoot_config(chatwoot), "rate_limited")
    assert "Retry later" not in result.message


def test_chatwoot_server_error(alice, allow_local, chatwoot):
    chatwoot.fail_next("GET", "/api/v1/profile", 500, {"status": 500, "error": "Internal Server Error"})
    check(alice, "CHATWOOT", chatwoot_config(chatwoot), "server_error")


def test_chatwoot_redirect_is_reported_not_followed(alice, allow_local, chatwoot):
    with RawListener("redirect", location="https://chat.example.com/api?secret=1") as redirector:
        config = chatwoot_config(chatwoot, base_url=redirector.url())
        result = check(alice, "CHATWOOT", config, "redirected")
    assert "https://chat.example.com/api" in result.message
    assert "secret=1" not in result.message


def test_chatwoot_unreachable_dns_blocked_invalid(app, alice, allow_local, chatwoot):
    with RawListener("silent") as closed:
        port = closed.port
    check(alice, "CHATWOOT", chatwoot_config(chatwoot, base_url=f"http://127.0.0.1:{port}"), "unreachable")
    check(alice, "CHATWOOT", chatwoot_config(chatwoot, base_url="https://no-such-host.example.test"), "dns_error")
    use_outbound_policy(app, FakeDNS())  # the default policy: no allowlist, https only
    check(alice, "CHATWOOT", chatwoot_config(chatwoot), "invalid_url")  # plain http
    check(
        alice,
        "CHATWOOT",
        chatwoot_config(chatwoot, base_url=f"https://127.0.0.1:{chatwoot.port}"),
        "blocked_destination",
    )
    assert chatwoot.requests == []


def test_chatwoot_timeout_within_the_budget(app, alice, dns):
    use_outbound_policy(
        app, dns, CRM_ALLOW_PRIVATE_HOSTS="127.0.0.1", CRM_ALLOW_INSECURE_HTTP=True, CRM_TOTAL_TIMEOUT=1.5
    )
    with RawListener("silent") as silent:
        result = check(alice, "CHATWOOT", {"base_url": silent.url(), "account_id": 1, "api_key": "t" * 20}, "timeout")
    assert "did not answer in time" in result.message


def test_chatwoot_tls_error_then_ok_with_the_ca(app, alice, dns, tls_server_context, ca_bundle):
    with FakeChatwoot(tls=tls_server_context) as server:
        server.account = server.add_account("TLS Co")
        server.admin_token = server.add_user({server.account.id: "administrator"})
        config = chatwoot_config(server, base_url=server.url("localhost"))
        use_outbound_policy(app, dns, CRM_ALLOW_PRIVATE_HOSTS="localhost")
        check(alice, "CHATWOOT", config, "tls_error")
        use_outbound_policy(app, dns, CRM_ALLOW_PRIVATE_HOSTS="localhost", CRM_CA_BUNDLE=ca_bundle)
        check(alice, "CHATWOOT", config, "ok")


def test_testing_never_saves_and_validates_first(alice, allow_local, chatwoot):
    with pytest.raises(ValidationFailed) as caught:
        service.test_connection(alice, "CHATWOOT", {"base_url": chatwoot.url(), "api_key": "x"})
    assert "account_id" in caught.value.fields
    check(alice, "CHATWOOT", chatwoot_config(chatwoot), "ok")
    assert service.list_integrations(alice) == []


def test_saved_integration_uses_stored_secret_and_records_the_outcome(alice, allow_local, chatwoot):
    saved = service.create_integration(alice, "CHATWOOT", {"name": "Mine", **chatwoot_config(chatwoot)})
    result = check(alice, "CHATWOOT", {}, "ok", integration_id=saved.id)
    assert result.success
    stored = service.get_integration(alice, saved.id)
    assert stored.last_test_outcome == "ok"
    assert stored.last_test_message == result.message
    assert stored.last_tested_at is not None
    # Values in the body override the stored ones; such a trial is not recorded as the card's state.
    check(alice, "CHATWOOT", {"api_key": "wrong-token-0000"}, "auth_failed", integration_id=saved.id)
    assert service.get_integration(alice, saved.id).last_test_outcome == "ok"


def test_saved_integration_refuses_stored_secret_for_a_new_host(alice, allow_local, chatwoot):
    saved = service.create_integration(alice, "CHATWOOT", {"name": "Mine", **chatwoot_config(chatwoot)})
    with RawListener("silent") as evil:
        with pytest.raises(ValidationFailed) as caught:
            service.test_connection(alice, None, {"base_url": f"http://localhost:{evil.port}"}, saved.id)
        assert "api_key" in caught.value.fields
        assert evil.connections == 0


def test_saved_integration_of_another_user_is_not_found(alice, bob, allow_local, chatwoot):
    theirs = service.create_integration(bob, "CHATWOOT", {"name": "Bob", **chatwoot_config(chatwoot)})
    calls_before = len(chatwoot.requests)  # provisioning talked to Chatwoot when Bob saved it
    with pytest.raises(service.IntegrationNotFound):
        service.test_connection(alice, None, {}, theirs.id)
    assert len(chatwoot.requests) == calls_before


def test_cli_test_command(app, runner, alice, allow_local, chatwoot):
    saved = service.create_integration(alice, "CHATWOOT", {"name": "Mine", **chatwoot_config(chatwoot)})
    result = runner.invoke(args=["crm", "test", saved.id])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("ok: Connected to Chatwoot account Acme Support as administrator.")
    chatwoot.tokens.pop(chatwoot.admin_token)
    failed = runner.invoke(args=["crm", "test", saved.id])
    assert failed.exit_code == 1
    assert "auth_failed:" in failed.output
    assert chatwoot.admin_token not in failed.output + result.output
    missing = runner.invoke(args=["crm", "test", "00000000-0000-4000-8000-000000000000"])
    assert missing.exit_code == 1 and "No integration" in missing.output


# --- Custom CRM --------------------------------------------------------------------------------


def custom_config(crm, auth_type, **overrides):
    credentials = {
        "API_KEY": {"apiKey": crm.api_key},
        "BEARER": {"token": crm.bearer},
        "BASIC": {"username": crm.username, "password": crm.password},
        "OAUTH2": {"clientId": crm.client_id, "clientSecret": crm.client_secret},
    }[auth_type]
    SECRETS.update(v for k, v in credentials.items() if k != "username" and k != "clientId")
    config = {
        "crm_name": "Acme CRM",
        "base_url": crm.url() + "/v1",
        "auth_type": auth_type,
        "health_path": "/me",
        "token_url": crm.url() + "/oauth/token",
        "credentials": json.dumps(credentials),
    }
    config.update(overrides)
    return config


@pytest.fixture
def custom_crm():
    with FakeCustomCRM() as crm:
        yield crm


AUTH_TYPES = ["API_KEY", "BEARER", "BASIC", "OAUTH2"]


@pytest.mark.parametrize("auth_type", AUTH_TYPES)
def test_custom_ok_and_auth_failed_for_each_auth_type(alice, allow_local, custom_crm, auth_type):
    result = check(alice, "CUSTOM", custom_config(custom_crm, auth_type), "ok")
    assert any("/v1/me" in line for line in result.verified)
    wrong = {
        "API_KEY": {"apiKey": "nope-nope"},
        "BEARER": {"token": "nope-nope"},
        "BASIC": {"username": custom_crm.username, "password": "nope-nope"},
        "OAUTH2": {"clientId": custom_crm.client_id, "clientSecret": "nope-nope"},
    }[auth_type]
    check(alice, "CUSTOM", custom_config(custom_crm, auth_type, credentials=wrong), "auth_failed")


def test_custom_api_key_header_is_configurable(alice, allow_local, custom_crm):
    custom_crm.api_key_header = "X-Acme-Token"
    check(alice, "CUSTOM", custom_config(custom_crm, "API_KEY"), "auth_failed")
    check(alice, "CUSTOM", custom_config(custom_crm, "API_KEY", api_key_header="X-Acme-Token"), "ok")
    sent = custom_crm.requests[-1]["headers"]
    assert sent["X-Acme-Token"] == custom_crm.api_key


def test_custom_oauth_client_auth_in_body(alice, allow_local, custom_crm):
    check(alice, "CUSTOM", custom_config(custom_crm, "OAUTH2", client_auth="BODY"), "ok")
    token_call = [r for r in custom_crm.requests if r["path"] == "/oauth/token"][-1]
    assert "Authorization" not in token_call["headers"]
    assert b"client_secret=" in token_call["body"]


def test_custom_oauth_scope_refused(alice, allow_local, custom_crm):
    check(alice, "CUSTOM", custom_config(custom_crm, "OAUTH2", scope="admin.everything"), "insufficient_permissions")


def test_custom_oauth_token_url_not_oauth(alice, allow_local, custom_crm):
    custom_crm.fail_next("POST", "/oauth/token", 200, b"<html>sign in</html>")
    check(alice, "CUSTOM", custom_config(custom_crm, "OAUTH2"), "not_a_crm")


@pytest.mark.parametrize("auth_type", AUTH_TYPES)
def test_custom_http_outcomes_for_each_auth_type(alice, allow_local, custom_crm, auth_type):
    check(alice, "CUSTOM", custom_config(custom_crm, auth_type, health_path="/accounts/42"), "account_not_found")
    custom_crm.fail_next("GET", "/v1/me", 404, b"<html>Not Found</html>")
    check(alice, "CUSTOM", custom_config(custom_crm, auth_type), "not_a_crm")
    custom_crm.fail_next("GET", "/v1/me", 429, {"error": "slow down"})
    check(alice, "CUSTOM", custom_config(custom_crm, auth_type), "rate_limited")
    custom_crm.fail_next("GET", "/v1/me", 503, {"error": "down"})
    check(alice, "CUSTOM", custom_config(custom_crm, auth_type), "server_error")


@pytest.mark.parametrize("auth_type", AUTH_TYPES)
def test_custom_network_outcomes_for_each_auth_type(app, alice, allow_local, custom_crm, auth_type):
    with RawListener("redirect", location="https://login.example.com/") as redirector:
        check(
            alice,
            "CUSTOM",
            custom_config(
                custom_crm, auth_type, base_url=redirector.url() + "/v1", token_url=redirector.url() + "/token"
            ),
            "redirected",
        )
    with RawListener("silent") as closed:
        port = closed.port
    check(
        alice,
        "CUSTOM",
        custom_config(
            custom_crm, auth_type, base_url=f"http://127.0.0.1:{port}", token_url=f"http://127.0.0.1:{port}/t"
        ),
        "unreachable",
    )
    check(
        alice,
        "CUSTOM",
        custom_config(
            custom_crm, auth_type, base_url="https://nowhere.example.test", token_url="https://nowhere.example.test/t"
        ),
        "dns_error",
    )
    use_outbound_policy(app, FakeDNS())
    check(alice, "CUSTOM", custom_config(custom_crm, auth_type), "invalid_url")
    check(
        alice,
        "CUSTOM",
        custom_config(
            custom_crm,
            auth_type,
            base_url=f"https://127.0.0.1:{custom_crm.port}/v1",
            token_url=f"https://127.0.0.1:{custom_crm.port}/t",
        ),
        "blocked_destination",
    )


@pytest.mark.parametrize("auth_type", AUTH_TYPES)
def test_custom_tls_and_timeout_for_each_auth_type(app, alice, dns, auth_type, tls_server_context, ca_bundle):
    with FakeCustomCRM(tls=tls_server_context) as crm:
        config = custom_config(
            crm, auth_type, base_url=crm.url("localhost") + "/v1", token_url=crm.url("localhost") + "/oauth/token"
        )
        use_outbound_policy(app, dns, CRM_ALLOW_PRIVATE_HOSTS="localhost")
        check(alice, "CUSTOM", config, "tls_error")
        use_outbound_policy(app, dns, CRM_ALLOW_PRIVATE_HOSTS="localhost", CRM_CA_BUNDLE=ca_bundle)
        check(alice, "CUSTOM", config, "ok")
    use_outbound_policy(
        app, dns, CRM_ALLOW_PRIVATE_HOSTS="127.0.0.1", CRM_ALLOW_INSECURE_HTTP=True, CRM_TOTAL_TIMEOUT=1
    )
    with RawListener("silent") as silent:
        check(
            alice,
            "CUSTOM",
            custom_config(crm, auth_type, base_url=silent.url(), token_url=silent.url() + "/t"),
            "timeout",
        )


def test_every_outcome_code_was_produced():
    """Runs last in this module: the tests above produced every code for each provider."""
    assert SEEN_OUTCOMES["CHATWOOT"] == set(OUTCOMES)
    assert SEEN_OUTCOMES["CUSTOM"] == set(OUTCOMES)
