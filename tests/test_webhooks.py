"""Inbound webhooks: each provider's verification, refusals that run nothing, storing once, acting
(contact updates with loop protection, the conversation log), and the fake Chatwoot delivering
signed webhooks to the running app over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from crm.contacts.service import content_hash, create_contact
from crm.extensions import db
from crm.models import Contact, ContactLink
from crm.providers.chatwoot import Chatwoot
from crm.providers.hubspot import HubSpot, hubspot_signed_uri
from crm.providers.pipedrive import Pipedrive
from crm.providers.zoho import ZohoCRM
from crm.webhooks import service
from crm.webhooks.models import ConversationMessage, WebhookDelivery, WebhookTally
from tests.conftest import use_outbound_policy
from tests.fakes.chatwoot import signed_headers

SECRET = "cw-webhook-secret-0123456789"


# --- the schemes themselves ---------------------------------------------------------------------


def test_chatwoot_signature_vector():
    body = b'{"event":"message_created","id":1}'
    headers = {
        "X-Chatwoot-Signature": "sha256=77a4c9ecab8fe968b13a6cc51d3ddcd4b2d74f50c837661ab5972c9e6791bb15",
        "X-Chatwoot-Timestamp": "1700000000",
        "X-Chatwoot-Delivery": "d-1",
    }
    assert Chatwoot.verify_webhook("test-secret", headers, body, now=1700000000) == (True, True, "d-1")
    assert Chatwoot.verify_webhook("test-secret", headers, body + b" ", now=1700000000)[0] is False
    assert Chatwoot.verify_webhook("other-secret", headers, body, now=1700000000)[0] is False
    assert Chatwoot.verify_webhook("test-secret", headers, body, now=1700000000 + 301)[0] is False
    assert Chatwoot.verify_webhook("test-secret", headers, body, now=1700000000 - 301)[0] is False


def test_hubspot_published_test_vector():
    headers = {
        "X-HubSpot-Signature-v3": "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=",
        "X-HubSpot-Request-Timestamp": "1693657560000",
    }
    body = b"{'example_field':'example_value'}"
    secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
    uri = "https://www.example.com/webhook_uri"
    assert HubSpot.verify_webhook(secret, "POST", uri, headers, body, now=1693657560)[:2] == (True, True)
    assert HubSpot.verify_webhook(secret, "POST", uri, headers, body, now=1693657560 + 301)[0] is False
    assert HubSpot.verify_webhook(secret, "GET", uri, headers, body, now=1693657560)[0] is False
    assert HubSpot.verify_webhook("x" + secret, "POST", uri, headers, body, now=1693657560)[0] is False


def test_hubspot_uri_decoding_rules():
    assert hubspot_signed_uri("https://a.example/p%3Ax%2Fy?q=%40%2c%20") == "https://a.example/p:x/y?q=@,%20"
    assert hubspot_signed_uri("/w?x=%3a%21%24%27%28%29%2A%3B%20%26") == "/w?x=:!$'()*;%20%26"


def test_zoho_channel_token_and_id():
    body = json.dumps({"token": "chan-token", "channel_id": "1000000068001", "ids": ["5"]}).encode()
    assert ZohoCRM.verify_webhook("chan-token", "1000000068001", body)[:2] == (True, True)
    assert ZohoCRM.verify_webhook("other-token", "1000000068001", body)[0] is False
    assert ZohoCRM.verify_webhook("chan-token", "1000000068002", body)[0] is False
    assert ZohoCRM.verify_webhook("chan-token", "1000000068001", b"not json")[0] is False


def test_pipedrive_basic_credentials():
    good = {"Authorization": "Basic " + base64.b64encode(b"hookuser:hookpass").decode()}
    assert Pipedrive.verify_webhook("hookuser", "hookpass", good, b"{}")[:2] == (True, True)
    for value in ("Basic " + base64.b64encode(b"hookuser:wrong").decode(), "Basic !!!", "Bearer x", ""):
        assert Pipedrive.verify_webhook("hookuser", "hookpass", {"Authorization": value}, b"{}")[0] is False


# --- receiving through the route ------------------------------------------------------------------


@pytest.fixture
def chatwoot_hook(app, alice, make_integration):
    integration = make_integration(alice)
    service.save_settings(alice, integration.id, SECRET, False)
    endpoint = service.endpoint_of(integration)
    return integration, endpoint


def wait_processed(timeout: float = 10.0) -> None:
    """Until the runner has taken every queued delivery (it runs in a thread of this process)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        db.session.expire_all()
        pending = db.session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.status.in_(("queued", "processing")))
        )
        if not pending:
            return
        time.sleep(0.02)
    raise AssertionError("deliveries were not processed")


def count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def message_event(message_id=101, text="Hello from the widget", email="ana@example.com", kind="incoming"):
    return {
        "event": "message_created",
        "id": message_id,
        "content": text,
        "message_type": kind,
        "private": False,
        "sender": {"id": 55, "name": "Ana", "email": email, "identifier": None, "type": "contact"},
        "conversation": {"id": 9, "display_id": 9, "status": "open"},
    }


def post(client, endpoint, body: bytes, headers: dict):
    return client.post(f"/webhooks/{endpoint.token}", data=body, headers=headers)


def test_a_signed_message_is_stored_once_and_logged(client, chatwoot_hook, alice):
    _, endpoint = chatwoot_hook
    contact = create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    body = json.dumps(message_event()).encode()
    headers = signed_headers(SECRET, body, delivery="delivery-1")
    first = post(client, endpoint, body, headers)
    again = post(client, endpoint, body, headers)  # a replay of the very same delivery
    assert (first.status_code, again.status_code) == (200, 200)
    wait_processed()
    assert count(WebhookDelivery) == 1
    assert count(WebhookTally, WebhookTally.kind == "duplicate") == 1
    logged = db.session.scalars(select(ConversationMessage)).all()
    assert [(m.contact_id, m.content, m.conversation_status) for m in logged] == [
        (contact.id, "Hello from the widget", "open")
    ]
    status = json.dumps(
        {"event": "conversation_status_changed", "id": 9, "display_id": 9, "status": "resolved"}
    ).encode()
    assert post(client, endpoint, status, signed_headers(SECRET, status)).status_code == 200
    wait_processed()
    db.session.expire_all()
    assert db.session.scalars(select(ConversationMessage.conversation_status)).all() == ["resolved"]
    page = client.get("/contacts")
    assert page.status_code in (200, 302)


def rejected_cases(body: bytes):
    now = int(time.time())
    good = signed_headers(SECRET, body)
    return {
        "tampered body": (body.replace(b"Hello", b"Hellp"), good),
        "wrong secret": (body, signed_headers("not-the-secret", body)),
        "old timestamp": (body, signed_headers(SECRET, body, timestamp=now - 301)),
        "future timestamp": (body, signed_headers(SECRET, body, timestamp=now + 301)),
        "no signature": (body, {"Content-Type": "application/json", "X-Chatwoot-Delivery": "x"}),
        "signature of the body only": (
            body,
            {**good, "X-Chatwoot-Signature": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()},
        ),
    }


def test_refused_deliveries_answer_401_and_run_nothing(client, chatwoot_hook, alice):
    integration, endpoint = chatwoot_hook
    create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    body = json.dumps(message_event()).encode()
    cases = rejected_cases(body)
    for name, (sent, headers) in cases.items():
        answer = post(client, endpoint, sent, headers)
        assert answer.status_code == 401, name
        assert answer.get_data() == b"", name  # no detail
    unknown = client.post("/webhooks/" + "x" * 43, data=body, headers=signed_headers(SECRET, body))
    assert unknown.status_code == 401
    oversize = b'{"event":"message_created","pad":"' + b"a" * (2 * 1024 * 1024) + b'"}'
    assert post(client, endpoint, oversize, signed_headers(SECRET, oversize)).status_code == 413
    assert count(WebhookDelivery) == 0
    assert count(ConversationMessage) == 0
    assert count(WebhookTally, WebhookTally.kind == "rejected") == len(cases)
    db.session.expire_all()
    assert "failed verification" in (service.endpoint_of(integration).last_error or "")


def test_unsigned_events_only_when_allowed_and_then_unverified(client, chatwoot_hook, alice):
    integration, endpoint = chatwoot_hook
    body = json.dumps(message_event(message_id=7)).encode()
    headers = {"Content-Type": "application/json", "X-Chatwoot-Delivery": "old-chatwoot-1"}
    assert post(client, endpoint, body, headers).status_code == 401
    service.save_settings(alice, integration.id, None, True)
    assert post(client, endpoint, body, headers).status_code == 200
    wait_processed()
    delivery = db.session.scalars(select(WebhookDelivery)).one()
    assert delivery.verified is False


def test_rotating_the_url_stops_the_old_one_at_once(client, chatwoot_hook, alice):
    integration, endpoint = chatwoot_hook
    old_token = endpoint.token
    service.rotate(alice, integration.id)
    body = json.dumps(message_event()).encode()
    assert client.post(f"/webhooks/{old_token}", data=body, headers=signed_headers(SECRET, body)).status_code == 401
    db.session.expire_all()
    assert post(client, service.endpoint_of(integration), body, signed_headers(SECRET, body)).status_code == 200


def test_contact_updates_apply_and_our_own_writes_do_not_echo(client, chatwoot_hook, alice):
    integration, endpoint = chatwoot_hook
    contact = create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    ours = {"name": "Ana Ours", "email": "ana@example.com", "phone": None}
    link = ContactLink(contact_id=contact.id, target="t", integration_id=integration.id, remote_id="55")
    link.synced_hash = content_hash(ours)  # what our sync last sent
    db.session.add(link)
    db.session.commit()
    echo = {"event": "contact_updated", "id": 55, "identifier": contact.id, **ours, "phone_number": None}
    body = json.dumps(echo).encode()
    assert post(client, endpoint, body, signed_headers(SECRET, body)).status_code == 200
    wait_processed()
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).name == "Ana"  # our own write coming back: not applied
    change = {**echo, "name": "Ana Changed", "phone_number": "+4930123456"}
    body = json.dumps(change).encode()
    assert post(client, endpoint, body, signed_headers(SECRET, body)).status_code == 200
    wait_processed()
    db.session.expire_all()
    updated = db.session.get(Contact, contact.id)
    assert (updated.name, updated.phone) == ("Ana Changed", "+4930123456")
    link = db.session.get(ContactLink, link.id)
    assert link.synced_hash == content_hash(updated)  # the next sync will not send it back


def test_pipedrive_wrong_basic_credentials_are_refused(client, app, alice, make_integration):
    integration = make_integration(alice, "PIPEDRIVE", name="Deals", company_domain="acme", api_token="p" * 40)
    endpoint = service.endpoint_of(integration)
    endpoint.auth_user = service.seal(endpoint, "auth_user", "hookuser")
    endpoint.auth_password = service.seal(endpoint, "auth_password", "hookpass")
    db.session.commit()
    contact = create_contact(alice, {"name": "Bo", "email": "bo@example.com"})
    body = json.dumps(
        {
            "meta": {"id": "m-1", "entity": "person", "action": "change"},
            "data": {"id": 3, "name": "Bo Renamed", "emails": [{"value": "bo@example.com"}]},
        }
    ).encode()
    wrong = {"Authorization": "Basic " + base64.b64encode(b"hookuser:nope").decode()}
    assert post(client, endpoint, body, wrong).status_code == 401
    assert count(WebhookDelivery) == 0
    right = {"Authorization": "Basic " + base64.b64encode(b"hookuser:hookpass").decode()}
    assert post(client, endpoint, body, right).status_code == 200
    wait_processed()
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).name == "Bo Renamed"


def test_hubspot_v3_through_the_route(client, app, alice, make_integration):
    app.config.update(HUBSPOT_CLIENT_SECRET="hs-app-secret", PUBLIC_BASE_URL="https://crm.example.org")
    integration = make_integration(alice, "HUBSPOT", name="HS", access_token="pat-na1-" + "a" * 36)
    endpoint = service.endpoint_of(integration)
    body = json.dumps([{"eventId": 1, "subscriptionType": "contact.propertyChange", "objectId": 5}]).encode()
    stamp = str(int(time.time() * 1000))
    uri = f"https://crm.example.org/webhooks/{endpoint.token}"
    signature = base64.b64encode(
        hmac.new(b"hs-app-secret", b"POST" + uri.encode() + body + stamp.encode(), hashlib.sha256).digest()
    ).decode()
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}
    assert post(client, endpoint, body, headers).status_code == 200
    assert post(client, endpoint, body, headers).status_code == 200  # same eventId: a duplicate
    old = str(int(time.time() * 1000) - 301_000)
    assert post(client, endpoint, body, {**headers, "X-HubSpot-Request-Timestamp": old}).status_code == 401
    assert count(WebhookDelivery) == 1
    assert count(WebhookTally, WebhookTally.kind == "duplicate") == 1


def test_send_test_event_goes_through_verification(client, chatwoot_hook, alice, auth):
    integration, _ = chatwoot_hook
    received = service.send_test(alice, integration.id)
    assert received.status == 200
    wait_processed()
    delivery = db.session.scalars(select(WebhookDelivery)).one()
    assert (delivery.event, delivery.verified, delivery.status) == ("localboxs_test", True, "ignored")


def test_purge_deletes_old_payloads(app, chatwoot_hook, runner):
    integration, _ = chatwoot_hook
    from datetime import timedelta

    from crm.models import utcnow

    db.session.add(
        WebhookDelivery(
            user_id=integration.user_id,
            integration_id=integration.id,
            delivery_key="old",
            received_at=utcnow() - timedelta(days=8),
            payload={"x": 1},
            status="done",
        )
    )
    db.session.commit()
    result = runner.invoke(args=["crm", "webhooks", "purge"])
    assert result.exit_code == 0, result.output
    assert "Deleted 1" in result.output
    assert count(WebhookDelivery) == 0


def test_another_users_webhooks_are_not_found(app, api, bob, make_integration):
    theirs = make_integration(bob)
    assert api.get(f"/api/dashboard/integrations/{theirs.id}/webhooks").status_code == 404
    assert api.post(f"/api/dashboard/integrations/{theirs.id}/webhooks/rotate").status_code == 404


# --- end to end: the fake Chatwoot calls the running app --------------------------------------------


@pytest.fixture
def live_app(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config.update(PUBLIC_BASE_URL=f"http://127.0.0.1:{server.server_port}", CRM_ALLOW_INSECURE_HTTP=True)
    yield app
    server.shutdown()
    thread.join()


def test_fake_chatwoot_delivers_signed_webhooks_end_to_end(live_app, api, alice, chatwoot, dns):
    use_outbound_policy(live_app, dns, CRM_ALLOW_PRIVATE_HOSTS="127.0.0.1", CRM_ALLOW_INSECURE_HTTP=True)
    created = api.post(
        "/api/dashboard/integrations/create",
        json={
            "name": "Own",
            "type": "CRM",
            "configuration": {
                "provider": "CHATWOOT",
                "baseUrl": chatwoot.url(),
                "accountId": chatwoot.account.id,
                "apiKey": chatwoot.admin_token,
                "features": {"autoCreateInboxes": False, "autoCreateBots": False, "syncContacts": True},
            },
        },
    )
    assert created.status_code == 201, created.get_json()
    integration_id = created.get_json()["id"]
    registered = api.post(f"/api/dashboard/integrations/{integration_id}/webhooks/register")
    assert registered.status_code == 200, registered.get_json()
    assert registered.get_json()["registered"] is True
    webhook = next(iter(chatwoot.account.webhooks.values()))
    assert webhook["url"] == registered.get_json()["url"]
    contact = create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    assert chatwoot.emit(
        chatwoot.account,
        "contact_updated",
        {
            "id": 55,
            "name": "Ana Lima",
            "email": "ana@example.com",
            "identifier": contact.id,
            "phone_number": "+351912345678",
        },
    ) == [200]
    assert chatwoot.emit(chatwoot.account, "message_created", message_event(text="Is my order ready?")) == [200]
    wait_processed()
    db.session.expire_all()
    updated = db.session.get(Contact, contact.id)
    assert (updated.name, updated.phone) == ("Ana Lima", "+351912345678")
    assert db.session.scalars(select(ConversationMessage.content)).all() == ["Is my order ready?"]
    status = api.get(f"/api/dashboard/integrations/{integration_id}/webhooks").get_json()
    assert status["last24h"]["received"] == 2
    assert {d["verified"] for d in status["deliveries"]} == {True}
    assert SECRET not in json.dumps(status) and webhook["secret"] not in json.dumps(status)
    page = api.client.get("/contacts").get_data(as_text=True)
    assert "Is my order ready?" in page
    assert api.post(f"/api/dashboard/integrations/{integration_id}/webhooks/unregister").status_code == 200
    assert chatwoot.account.webhooks == {}


def test_the_panel_shows_url_status_and_deliveries_without_secrets(client, chatwoot_hook, alice, auth):
    integration, endpoint = chatwoot_hook
    body = json.dumps(message_event()).encode()
    post(client, endpoint, body, signed_headers(SECRET, body))
    wait_processed()
    auth.login()
    cards = client.get("/dashboard/integrations").get_data(as_text=True)
    assert f"/dashboard/integrations/{integration.id}/webhooks" in cards
    page = client.get(f"/dashboard/integrations/{integration.id}/webhooks").get_data(as_text=True)
    assert f"/webhooks/{endpoint.token}" in page
    assert "source of truth" in page and "verified" in page and "1 received" in page
    assert SECRET not in page


def test_inbound_url_only_for_a_public_https_address(app, chatwoot_hook):
    integration, endpoint = chatwoot_hook
    assert service.inbound_url(integration) is None  # the default http://127.0.0.1:5000
    for base in ("https://10.0.0.5", "https://localhost:8443", "http://crm.example.org"):
        app.config["PUBLIC_BASE_URL"] = base
        assert service.inbound_url(integration) is None, base
    app.config["PUBLIC_BASE_URL"] = "https://crm.example.org"
    assert service.inbound_url(integration) == f"https://crm.example.org/webhooks/{endpoint.token}"


def test_credentials_in_payloads_are_not_stored(client, chatwoot_hook):
    _, endpoint = chatwoot_hook
    body = json.dumps({"event": "conversation_updated", "meta": {"access_token": "leak-me-1234", "x": 1}}).encode()
    assert post(client, endpoint, body, signed_headers(SECRET, body)).status_code == 200
    wait_processed()
    stored = db.session.scalars(select(WebhookDelivery)).one()
    assert stored.payload["meta"] == {"access_token": "[redacted]", "x": 1}


def test_cli_lists_rotates_and_registers(runner, chatwoot_hook):
    integration, endpoint = chatwoot_hook
    old_token = endpoint.token
    listed = runner.invoke(args=["crm", "webhooks", "list", "--integration", integration.id])
    assert listed.exit_code == 0, listed.output
    assert f"/webhooks/{old_token}" in listed.output and "registered: no" in listed.output
    rotated = runner.invoke(args=["crm", "webhooks", "rotate", "--integration", integration.id[:8]])
    assert rotated.exit_code == 0 and old_token not in rotated.output
    refused = runner.invoke(args=["crm", "webhooks", "register", "--integration", integration.id])
    assert refused.exit_code == 1
    assert "PUBLIC_BASE_URL" in refused.output and "Traceback" not in refused.output


def test_fake_pipedrive_registration_and_basic_auth_delivery_end_to_end(live_app, api, alice, dns):
    from tests.fakes.pipedrive import FakePipedrive

    use_outbound_policy(live_app, dns, CRM_ALLOW_PRIVATE_HOSTS="127.0.0.1", CRM_ALLOW_INSECURE_HTTP=True)
    with FakePipedrive(company_domain="acme") as pipedrive:
        live_app.config["PIPEDRIVE_API_URL"] = pipedrive.url()
        token = pipedrive.add_user()
        created = api.post(
            "/api/dashboard/integrations/create",
            json={
                "name": "Deals",
                "type": "CRM",
                "configuration": {"provider": "PIPEDRIVE", "companyDomain": "acme", "apiToken": token},
            },
        )
        assert created.status_code == 201, created.get_json()
        integration_id = created.get_json()["id"]
        registered = api.post(f"/api/dashboard/integrations/{integration_id}/webhooks/register")
        assert registered.status_code == 200, registered.get_json()
        hook = next(iter(pipedrive.webhooks.values()))
        assert (hook["version"], hook["event_object"], hook["subscription_url"]) == (
            "2.0",
            "person",
            registered.get_json()["url"],
        )
        assert len(hook["http_auth_password"]) >= 40
        contact = create_contact(alice, {"name": "Bo", "email": "bo@example.com"})
        person = {"id": 3, "name": "Bo Renamed", "emails": [{"value": "bo@example.com", "primary": True}]}
        assert pipedrive.deliver("person", "change", person) == [200]
        hook["http_auth_password"] = "guessed"
        assert pipedrive.deliver("person", "change", {**person, "name": "Mallory"}) == [401]
        wait_processed()
        db.session.expire_all()
        assert db.session.get(Contact, contact.id).name == "Bo Renamed"
        status = api.get(f"/api/dashboard/integrations/{integration_id}/webhooks").get_json()
        assert status["last24h"] == {"received": 1, "duplicate": 0, "rejected": 1}
        assert api.post(f"/api/dashboard/integrations/{integration_id}/webhooks/unregister").status_code == 200
        assert pipedrive.webhooks == {}


def test_agent_bot_events_verify_with_the_bots_own_secret(client, chatwoot_hook, alice):
    integration, endpoint = chatwoot_hook
    body = json.dumps(message_event(message_id=900)).encode()
    assert post(client, endpoint, body, signed_headers("bot-secret-abc123", body)).status_code == 401
    service.set_bot_secret(integration, "bot-secret-abc123")
    assert post(client, endpoint, body, signed_headers("bot-secret-abc123", body)).status_code == 200
    assert post(client, endpoint, body, signed_headers(SECRET, body)).status_code == 200  # the account webhook's too
    wait_processed()
    assert count(ConversationMessage) == 1  # two deliveries of one message: logged once


def test_provisioning_points_the_agent_bot_at_the_inbound_url_and_keeps_its_secret(app, alice, allow_local, chatwoot):
    from crm.integrations import service as integrations_service
    from crm.webhooks import service as webhooks_service

    values = {
        "name": "Support",
        "base_url": chatwoot.url(),
        "account_id": chatwoot.account.id,
        "api_key": chatwoot.admin_token,
        "auto_create_inboxes": True,
        "auto_create_bots": True,
    }
    app.config["PUBLIC_BASE_URL"] = "http://127.0.0.1:5000"  # not public: the bot is made, and told why
    integration = integrations_service.create_integration(alice, "CHATWOOT", values)
    [bot] = chatwoot.account.bots.values()
    assert not bot.get("outgoing_url")
    assert "PUBLIC_BASE_URL" in integration.provision_message
    app.config["PUBLIC_BASE_URL"] = "https://platform.example.com"
    integrations_service.update_integration(alice, integration.id, raw={"name": "Support"})
    url = webhooks_service.inbound_url(integration)
    assert url and url.startswith("https://platform.example.com/webhooks/")
    assert bot["outgoing_url"] == url  # the same bot, now pointing at us
    assert len(chatwoot.account.bots) == 1
    assert integration.provision_message is None
    endpoint = webhooks_service.endpoint_of(integration, create=False)
    assert endpoint.bot_secret and bot["secret"] not in endpoint.bot_secret  # sealed
