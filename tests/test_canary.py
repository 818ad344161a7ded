"""The canary scan: secrets saved through the API never come back out, in any encoding, anywhere."""

import base64
import binascii
import json
import logging
import secrets
from pathlib import Path
from urllib.parse import quote, quote_plus

import sqlalchemy as sa

from crm.extensions import db, limiter
from tests.authorization_matrix import send, url_for_rule
from tests.conftest import APIClient, chatwoot_payload
from tests.fakes.custom_crm import FakeCustomCRM

BASE = "/api/dashboard/integrations"
DESTRUCTIVE = {
    ("auth.logout", "POST"),
    ("api.delete_integration", "DELETE"),
    ("integrations.delete", "POST"),
    ("integrations.delete_now", "DELETE"),
}


def encodings(secret: str) -> dict[str, str]:
    raw = secret.encode()
    return {
        "raw": secret,
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "hex": binascii.hexlify(raw).decode(),
        "url": quote(secret, safe=""),
        "url-plus": quote_plus(secret),
        "json": json.dumps(secret)[1:-1],
        "json-ascii": json.dumps(secret, ensure_ascii=True)[1:-1],
        "first8": secret[:8] + secret[8:12],  # 12 characters: "CANARY-" alone would be noise
        "last8": secret[-8:],
    }


def find_leaks(haystack: str, canaries: list[str]) -> list[str]:
    return [f"{form} of {c[:10]}…" for c in canaries for form, needle in encodings(c).items() if needle in haystack]


def database_text(database_url: str) -> str:
    db.session.remove()
    if database_url.startswith("sqlite"):
        db.engine.dispose()
        path = Path(database_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*")).decode("latin-1")
    with db.engine.connect() as connection:
        tables = sa.inspect(connection).get_table_names()
        return "\n".join(repr(connection.execute(sa.text(f'select * from "{t}"')).all()) for t in tables)


def test_canary_secrets_never_leave(app, alice, allow_local, chatwoot, caplog, capsys, database_url):
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "urllib3.connectionpool", "requests", "crm", "crm.net", "werkzeug", "sqlalchemy"):
        caplog.set_level(logging.DEBUG, logger=name)
    token_canary = "CANARY" + secrets.token_hex(16)  # Chatwoot tokens are alphanumeric
    password_canary = "CANARY-" + secrets.token_hex(12) + '/+&"é'  # changes under every encoding
    canaries = [token_canary, password_canary]
    chatwoot.add_user({chatwoot.account.id: "administrator"}, token=token_canary)

    user = APIClient(app.test_client(), alice.email)
    seen: list[str] = []

    def record(response):
        seen.append(f"{response.status_code}\n{response.headers}\n{response.get_data(as_text=True)}")
        cookie = user.client.get_cookie("session")
        if cookie is not None:  # the decoded session, not only its signed form
            serializer = app.session_interface.get_signing_serializer(app)
            seen.append(json.dumps(serializer.loads(cookie.value)))
        return response

    with FakeCustomCRM() as crm:
        crm.password = password_canary
        chat = record(
            user.post(
                f"{BASE}/create",
                json=chatwoot_payload(baseUrl=chatwoot.url(), accountId=chatwoot.account.id, apiKey=token_canary),
            )
        ).get_json()
        custom = record(
            user.post(
                f"{BASE}/create",
                json={
                    "name": "Acme",
                    "type": "CRM",
                    "configuration": {
                        "provider": "CUSTOM",
                        "crmName": "Acme",
                        "baseUrl": crm.url() + "/v1",
                        "authType": "BASIC",
                        "healthPath": "/me",
                        "credentials": {"username": crm.username, "password": password_canary},
                    },
                },
            )
        ).get_json()
        assert custom["configuration"]["credentials"]["password"] == {"configured": True, "last4": password_canary[-4:]}

        # Every route of the app, as the owner.
        for rule in app.url_map.iter_rules():
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                if (rule.endpoint, method) in DESTRUCTIVE:
                    continue  # run last
                for integration in (chat, custom):
                    url = url_for_rule(rule, integration["id"])
                    body = None
                    if rule.endpoint == "api.test_integration":
                        body = {"type": "CRM", "integrationId": integration["id"]}
                    record(send(user.client, rule, method, url, user.csrf, body))
        limiter.reset()  # the walk above spends more than a minute's write budget
        # Tests that succeed, fail, and errors that name fields.
        for integration in (chat, custom):
            tested = record(user.post(f"{BASE}/test", json={"type": "CRM", "integrationId": integration["id"]}))
            assert tested.get_json()["outcome"] == "ok"
        record(
            user.post(
                f"{BASE}/test",
                json={
                    "type": "CRM",
                    "configuration": {
                        **chatwoot_payload()["configuration"],
                        "baseUrl": chatwoot.url() + "/nowhere",
                        "apiKey": token_canary,
                    },
                },
            )
        )
        record(user.post(f"{BASE}/create", json=chatwoot_payload(baseUrl="bad url", apiKey=token_canary)))
        record(user.put(f"{BASE}/{chat['id']}", json={"configuration": {"baseUrl": "https://x.example.org"}}))
        record(user.put(f"{BASE}/{chat['id']}", json={"name": "Renamed", "configuration": {"apiKey": ""}}))
        record(user.get("/no/such/page"))
        record(user.get(f"{BASE}/{custom['id']}x"))
        stored = database_text(database_url)
        assert "Renamed" in stored  # the scan reads the live rows
        assert find_leaks(stored, canaries) == []
        for integration in (chat, custom):
            record(user.delete(f"{BASE}/{integration['id']}"))
        record(user.post("/logout", data={"csrf_token": user.csrf}))

        # The positive control: the fakes did receive each canary, exactly where expected.
        assert any(r["headers"].get("api_access_token") == token_canary for r in chatwoot.requests)
        basic = base64.b64encode(f"{crm.username}:{password_canary}".encode()).decode()
        assert any(r["headers"].get("Authorization") == f"Basic {basic}" for r in crm.requests)
        assert all(token_canary not in r["path"] and password_canary not in r["path"] for r in chatwoot.requests)

    assert len(seen) > 40
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    output = capsys.readouterr()
    assert "/api/v1/profile" in logs  # the logs were captured at DEBUG
    assert find_leaks("\n".join(seen), canaries) == []
    assert find_leaks(logs, canaries) == []
    assert find_leaks(output.out + output.err, canaries) == []
    assert find_leaks(database_text(database_url), canaries) == []


def test_a_team_member_never_sees_a_shared_secret(app, alice, bob, allow_local, chatwoot, caplog, capsys, database_url):
    """The canary scan as a team member: every route of the app, called with the shared integration's
    id (and the team's), after using it for a sync and a message."""
    from crm.contacts.service import create_contact
    from crm.operations.messages import send_message
    from crm.teams import service as teams
    from tests.test_teams import sync_now

    caplog.set_level(logging.DEBUG)
    canary = "CANARY" + secrets.token_hex(16)
    chatwoot.add_user({chatwoot.account.id: "administrator"}, token=canary)
    owner = APIClient(app.test_client(), alice.email)
    shared = owner.post(
        f"{BASE}/create",
        json=chatwoot_payload(baseUrl=chatwoot.url(), accountId=chatwoot.account.id, apiKey=canary),
    ).get_json()
    team = teams.create_team(alice, "Team")
    teams.accept(bob, teams.invite(alice, team.id, bob.email).id)
    teams.share(alice, team.id, shared["id"])
    teams.designate(alice, team.id, shared["id"])
    contact = create_contact(bob, {"name": "Bea", "email": "bea@example.com"})
    assert sync_now(bob).status == "done"
    send_message(bob, contact.id, "hello")

    member = APIClient(app.test_client(), bob.email)
    seen: list[str] = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if (rule.endpoint, method) in DESTRUCTIVE:
                continue
            for object_id in (shared["id"], team.id):
                response = send(member.client, rule, method, url_for_rule(rule, object_id), member.csrf)
                seen.append(f"{response.status_code}\n{response.headers}\n{response.get_data(as_text=True)}")
    for path in (f"{BASE}/{shared['id']}", f"/dashboard/teams/{team.id}", "/contacts"):
        seen.append(member.client.get(path).get_data(as_text=True))
    assert any(r["headers"].get("api_access_token") == canary for r in chatwoot.requests)  # it was used
    everything = "\n".join(seen)
    assert "Support" in everything  # the member sees the shared integration's name
    assert find_leaks(everything, [canary]) == [] and canary[-4:] not in everything
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    output = capsys.readouterr()
    assert find_leaks(logs, [canary]) == []
    assert find_leaks(output.out + output.err, [canary]) == []
    assert find_leaks(database_text(database_url), [canary]) == []
