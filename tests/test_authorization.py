"""The authorization matrix, driven by the app's URL map: isolation, login and CSRF on every route."""

import hashlib
import json
import re

import pytest
import sqlalchemy as sa

from crm.contacts.service import create_contact
from crm.extensions import db, limiter
from crm.models import SyncRun
from crm.teams import service as team_service
from tests.authorization_matrix import CSRF_EXEMPT, MATRIX, send, url_for_rule
from tests.conftest import APIClient, chatwoot_payload

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule, method


def row_fingerprint(table, object_id):
    row = db.session.execute(sa.text(f"select * from {table} where id = :id"), {"id": object_id}).one()
    return hashlib.sha256(repr(tuple(row)).encode()).hexdigest()


def test_every_route_is_classified(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - set(MATRIX) == set(), "classify these routes in tests/authorization_matrix.py"
    assert set(MATRIX) - endpoints == set(), "remove routes that no longer exist from the matrix"


def test_object_routes_hide_other_users_objects(app, api, bob_api, bob):
    victims = {
        "owner": (
            "integrations",
            bob_api.post("/api/dashboard/integrations/create", json=chatwoot_payload()).get_json()["id"],
        ),
        "contact": ("contacts", create_contact(bob, {"name": "Bob's friend", "email": "friend@example.com"}).id),
        "run": ("sync_runs", make_run(bob)),
        "team": ("teams", team_service.create_team(bob, "Bob's team").id),
    }
    victims["invitation"] = (
        "team_invitations",
        team_service.invite(bob, victims["team"][1], "carol@example.com").id,
    )
    before = {kind: row_fingerprint(*victim) for kind, victim in victims.items()}
    checked = 0
    for rule, method in routes(app):
        kind = MATRIX[rule.endpoint]
        if kind not in victims:
            continue
        limiter.reset()  # more routes than one minute's write budget: each pair starts afresh
        foreign = send(api.client, rule, method, url_for_rule(rule, victims[kind][1]), api.csrf)
        unknown = send(api.client, rule, method, url_for_rule(rule), api.csrf)
        assert foreign.status_code == 404, (rule.rule, method)
        assert comparable(foreign.get_data()) == comparable(unknown.get_data()), (rule.rule, method)
        checked += 1
    db.session.expire_all()
    assert {kind: row_fingerprint(*victim) for kind, victim in victims.items()} == before
    assert checked >= 15


def comparable(body: bytes) -> bytes:
    """A page without its CSRF token: the token is signed with the time, so two pages rendered in
    different seconds differ there and nowhere else."""
    body = re.sub(rb'name="csrf-token" content="[^"]*"', b'name="csrf-token" content=""', body)
    return re.sub(rb'name="csrf_token" value="[^"]*"', b'name="csrf_token" value=""', body)


def make_run(owner) -> str:
    run = SyncRun(user_id=owner.id, status="done")
    db.session.add(run)
    db.session.commit()
    return run.id


def test_non_public_routes_need_a_session(app, client):
    for rule, method in routes(app):
        if MATRIX[rule.endpoint] == "public":
            continue
        response = send(client, rule, method, url_for_rule(rule))
        if rule.endpoint.startswith("api."):
            assert response.status_code == 401, (rule.rule, method)
            assert response.is_json
        else:
            assert response.status_code == 302, (rule.rule, method)
            assert response.headers["Location"].startswith("/login")


def test_state_changing_routes_need_the_csrf_token(app, alice, dns):
    api = APIClient(app.test_client(), alice.email)
    mine = api.post("/api/dashboard/integrations/create", json=chatwoot_payload()).get_json()["id"]
    before = row_fingerprint("integrations", mine)
    checked = 0
    for rule, method in routes(app):
        if method not in STATE_CHANGING or rule.endpoint in CSRF_EXEMPT:
            continue
        response = send(api.client, rule, method, url_for_rule(rule, mine))
        assert response.status_code == 400, (rule.rule, method)
        body = response.get_data(as_text=True)
        assert "CSRF" in body or "expired" in body
        checked += 1
    db.session.expire_all()
    assert row_fingerprint("integrations", mine) == before
    assert api.get("/api/dashboard/integrations").status_code == 200  # still logged in: logout was refused
    assert checked >= 6


@pytest.mark.parametrize("header", ["X-CSRFToken", "X-CSRF-Token"])
def test_the_csrf_header_is_accepted(api, header):
    response = api.client.post(
        "/api/dashboard/integrations/create", json=chatwoot_payload(), headers={header: api.csrf}
    )
    assert response.status_code == 201
    assert json.loads(response.get_data())["name"] == "Support"
