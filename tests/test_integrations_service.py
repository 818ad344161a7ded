"""The integration service: validation, sealing, redaction hints, owner scoping, host rules."""

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from crm.crypto import CredentialUnreadable, is_sealed
from crm.extensions import db
from crm.integrations import service
from crm.integrations.service import IntegrationNotFound, ValidationFailed
from crm.models import Integration
from tests.conftest import chatwoot_values, use_outbound_policy

CANARY = "CANARY-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
SEALED_RE = re.compile(r"^enc:v1:[a-z0-9]{1,16}:[A-Za-z0-9_-]+={0,2}$")


def stored_row(integration_id: str) -> dict:
    """The row as the database holds it, read past the ORM."""
    row = db.session.execute(
        sa.text("select configuration, secret_hints from integrations where id = :id"), {"id": integration_id}
    ).one()
    return {"configuration": _json(row[0]), "secret_hints": _json(row[1])}


def _json(value):
    return value if isinstance(value, dict) else json.loads(value)


def test_create_seals_sensitive_fields_and_keeps_the_rest_readable(alice, make_integration):
    integration = make_integration(alice)
    row = stored_row(integration.id)["configuration"]
    assert SEALED_RE.match(row["api_key"])
    assert row["base_url"] == "https://chat.example.com"
    assert row["account_id"] == 7
    assert row["auto_create_inboxes"] is True
    assert integration.type == "CRM"
    assert integration.is_active
    assert re.fullmatch(r"[0-9a-f-]{36}", integration.id)
    assert service.live_configuration(alice, integration)["api_key"] == "cw-token-1234567890abcd"


def test_secret_hint_is_last_four_only_for_long_secrets(alice, make_integration):
    long_secret = make_integration(alice, api_key="abcdefghijklmnop1234")
    short_secret = make_integration(alice, api_key="short123")
    assert service.secret_summary(long_secret, long_secret and service.provider_of(long_secret).field("api_key")) == {
        "configured": True,
        "last4": "1234",
    }
    assert service.secret_summary(short_secret, service.provider_of(short_secret).field("api_key")) == {
        "configured": True
    }


def test_custom_crm_credentials_are_sealed_per_key(alice):
    integration = service.create_integration(
        alice,
        "CUSTOM",
        {
            "name": "Acme",
            "crm_name": "Acme CRM",
            "base_url": "https://api.acme.example/v2/",
            "auth_type": "OAUTH2",
            "token_url": "https://auth.acme.example/token",
            "credentials": json.dumps({"clientId": "client-abc", "clientSecret": CANARY}),
        },
    )
    stored = stored_row(integration.id)["configuration"]
    assert stored["base_url"] == "https://api.acme.example/v2"
    assert set(stored["credentials"]) == {"clientId", "clientSecret"}
    assert all(SEALED_RE.match(value) for value in stored["credentials"].values())
    assert "api_key_header" not in stored  # belongs to another auth type
    live = service.live_configuration(alice, integration)
    assert live["credentials"] == {"clientId": "client-abc", "clientSecret": CANARY}
    summary = service.secret_summary(integration, service.provider_of(integration).field("credentials"))
    assert summary == {"clientId": {"configured": True}, "clientSecret": {"configured": True, "last4": CANARY[-4:]}}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"base_url": ""}, "base_url", "Chatwoot Base URL is required."),
        ({"base_url": "ftp://chat.example.com"}, "base_url", "starting with https://"),
        ({"base_url": "https://user:pw@chat.example.com"}, "base_url", "not in the URL"),
        ({"base_url": "https://chat.example.com/?token=x"}, "base_url", "?query"),
        ({"base_url": "https://chat.example.com:99999"}, "base_url", "port"),
        ({"base_url": "chat.example.com"}, "base_url", "starting with https://"),
        ({"account_id": "seven"}, "account_id", "whole number"),
        ({"account_id": 0}, "account_id", "greater than zero"),
        ({"account_id": True}, "account_id", "whole number"),
        ({"api_key": ""}, "api_key", "API Access Token is required."),
        ({"api_key": "x" * 300}, "api_key", "at most 256"),
        ({"auto_create_inboxes": "maybe"}, "auto_create_inboxes", "on or off"),
        ({"name": ""}, "name", "Integration Name is required."),
        ({"name": "n" * 101}, "name", "at most 100"),
        ({"name": ["list"]}, "name", "Enter text."),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(alice, make_integration, overrides, field, message):
    with pytest.raises(ValidationFailed) as caught:
        make_integration(alice, **overrides)
    assert field in caught.value.fields
    assert any(message in text for text in caught.value.fields[field])
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Integration)) == 0


@pytest.mark.parametrize(
    ("auth_type", "credentials", "ok"),
    [
        ("API_KEY", {"apiKey": "k"}, True),
        ("API_KEY", {"token": "k"}, False),
        ("BEARER", {"token": "t"}, True),
        ("BASIC", {"username": "u", "password": "p"}, True),
        ("BASIC", {"username": "u"}, False),
        ("OAUTH2", {"clientId": "i", "clientSecret": "s"}, True),
        ("OAUTH2", {"clientId": "i"}, False),
    ],
)
def test_custom_crm_credentials_must_suit_the_auth_type(alice, auth_type, credentials, ok):
    values = {
        "name": "Acme",
        "crm_name": "Acme",
        "base_url": "https://api.acme.example",
        "auth_type": auth_type,
        "token_url": "https://auth.acme.example/token",
        "credentials": credentials,
    }
    if ok:
        service.create_integration(alice, "CUSTOM", values)
    else:
        with pytest.raises(ValidationFailed) as caught:
            service.create_integration(alice, "CUSTOM", values)
        assert all(name.startswith("credentials.") for name in caught.value.fields)  # beside the missing key


@pytest.mark.parametrize("provider", ["UPCOMING", "NOPE"])
def test_unavailable_or_unknown_providers_are_refused(alice, coming_soon_provider, provider):
    with pytest.raises(ValidationFailed) as caught:
        service.create_integration(alice, provider, chatwoot_values())
    assert "provider" in caught.value.fields


def test_update_keeps_a_blank_secret_and_changes_the_rest(alice, make_integration):
    integration = make_integration(alice)
    sealed_before = stored_row(integration.id)["configuration"]["api_key"]
    service.update_integration(alice, integration.id, raw={"api_key": "", "account_id": "8"}, name="Renamed")
    row = stored_row(integration.id)["configuration"]
    assert row["api_key"] == sealed_before
    assert row["account_id"] == 8
    assert integration.name == "Renamed"
    assert service.live_configuration(alice, integration)["api_key"] == "cw-token-1234567890abcd"


def test_update_replaces_a_secret_that_is_entered(alice, make_integration):
    integration = make_integration(alice)
    service.update_integration(alice, integration.id, raw={"api_key": "new-token-abcdefghijkl"})
    assert service.live_configuration(alice, integration)["api_key"] == "new-token-abcdefghijkl"
    assert integration.secret_hints["api_key"] == "ijkl"


@pytest.mark.parametrize(
    "new_url",
    ["https://evil.example.net", "https://chat.example.com:8443", "https://CHAT.example.com.evil.example"],
    ids=["host", "port", "suffix"],
)
def test_changing_the_host_requires_the_secret_again(app, dns, alice, make_integration, new_url):
    use_outbound_policy(app, dns, CRM_ALLOWED_PORTS="8443")  # the port itself is allowed: only the secret is asked
    integration = make_integration(alice)
    with pytest.raises(ValidationFailed) as caught:
        service.update_integration(alice, integration.id, raw={"base_url": new_url})
    assert "enter the API Access Token again" in caught.value.fields["api_key"][0]
    db.session.refresh(integration)
    assert integration.configuration["base_url"] == "https://chat.example.com"
    # With the secret typed again the change goes through.
    service.update_integration(alice, integration.id, raw={"base_url": new_url, "api_key": "fresh-token-value-1"})
    assert integration.configuration["base_url"] == new_url.lower()


def test_plain_http_is_refused_unless_the_operator_allows_it(app, alice, make_integration, dns):
    with pytest.raises(ValidationFailed) as caught:
        make_integration(alice, base_url="http://chat.example.com")
    assert "https://" in caught.value.fields["base_url"][0]
    use_outbound_policy(app, dns, CRM_ALLOW_INSECURE_HTTP=True)
    assert make_integration(alice, base_url="http://chat.example.com").configuration["base_url"].startswith("http://")


def test_private_destinations_are_refused_at_save_time(app, alice, make_integration, dns):
    dns.records["intranet.example.com"] = ["10.1.2.3"]
    for url in ("https://intranet.example.com", "https://127.0.0.1", "https://[::1]", "https://169.254.169.254"):
        with pytest.raises(ValidationFailed) as caught:
            make_integration(alice, base_url=url)
        assert "private or internal network" in caught.value.fields["base_url"][0]
    use_outbound_policy(app, dns, CRM_ALLOW_PRIVATE_HOSTS="10.0.0.0/8")
    assert make_integration(alice, base_url="https://intranet.example.com")


def test_an_unknown_host_name_may_be_saved(alice, make_integration):
    assert make_integration(alice, base_url="https://not-yet-in-dns.example.org")


def test_a_path_change_on_the_same_host_keeps_the_secret(alice, make_integration):
    integration = make_integration(alice)
    service.update_integration(alice, integration.id, raw={"base_url": "https://chat.example.com/chatwoot"})
    assert integration.configuration["base_url"] == "https://chat.example.com/chatwoot"


def test_activation_toggle(alice, make_integration):
    integration = make_integration(alice)
    service.update_integration(alice, integration.id, is_active=False)
    assert not service.get_integration(alice, integration.id).is_active


def test_pasted_ciphertext_is_not_stored_as_a_secret(alice, bob, make_integration):
    victim = make_integration(bob)
    stolen = stored_row(victim.id)["configuration"]["api_key"]
    with pytest.raises(ValidationFailed) as caught:
        make_integration(alice, api_key=stolen)
    assert "encrypted value" in caught.value.fields["api_key"][0]


def test_ciphertext_swapped_between_users_rows_or_fields_fails(alice, bob, make_integration):
    mine = make_integration(alice, api_key="alice-secret-token-1")
    theirs = make_integration(bob, api_key="bob-secret-token-22")
    stolen = stored_row(theirs.id)["configuration"]
    config = dict(mine.configuration)
    config["api_key"] = stolen["api_key"]
    db.session.execute(sa.update(Integration).where(Integration.id == mine.id).values(configuration=config))
    db.session.commit()
    db.session.refresh(mine)
    with pytest.raises(CredentialUnreadable):
        service.live_configuration(alice, mine)


def test_owner_scoping(alice, bob, make_integration):
    theirs = make_integration(bob)
    for attempt in (
        lambda: service.get_integration(alice, theirs.id),
        lambda: service.update_integration(alice, theirs.id, name="pwned"),
        lambda: service.update_integration(alice, theirs.id, is_active=False),
        lambda: service.delete_integration(alice, theirs.id),
        lambda: service.record_test_result(alice, theirs.id, "ok", "fine"),
        lambda: service.live_configuration(alice, theirs),
        lambda: service.get_integration(alice, "not-a-uuid"),
    ):
        with pytest.raises(IntegrationNotFound):
            attempt()
    db.session.refresh(theirs)
    assert theirs.name == "Support Chatwoot"
    assert theirs.is_active
    assert service.list_integrations(alice) == []
    assert [i.id for i in service.list_integrations(bob)] == [theirs.id]


def test_delete(alice, make_integration):
    integration = make_integration(alice)
    service.delete_integration(alice, integration.id)
    with pytest.raises(IntegrationNotFound):
        service.get_integration(alice, integration.id)


def test_every_stored_secret_is_sealed(alice, bob, make_integration):
    for owner in (alice, bob):
        make_integration(owner)
        make_integration(owner, api_key="x" * 40)
    for integration in db.session.scalars(sa.select(Integration)):
        assert is_sealed(stored_row(integration.id)["configuration"]["api_key"])


def test_canary_never_reaches_the_database(app, alice, make_integration, database_url):
    make_integration(alice, api_key=CANARY)
    service.create_integration(
        alice,
        "CUSTOM",
        {
            "name": "c",
            "crm_name": "c",
            "base_url": "https://a.example",
            "auth_type": "BASIC",
            "credentials": {"username": CANARY + "-user", "password": CANARY},
        },
    )
    db.session.remove()
    if database_url.startswith("sqlite"):
        db.engine.dispose()
        path = Path(database_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))  # with -wal, -journal
        assert b"Support Chatwoot" in raw  # the rows we look through are really there
    else:
        with db.engine.connect() as connection:
            rows = connection.execute(sa.text("select * from integrations")).all()
        raw = repr(rows).encode()
        assert b"Support Chatwoot" in raw
    assert CANARY.encode() not in raw
    assert CANARY[-8:].encode() not in raw
    assert CANARY[:12].encode() not in raw


# --- issue 11: one integration per create key, a meaningful primary, tests bound to a configuration -----


def test_a_creation_key_creates_one_integration(alice, bob, dns):
    values = chatwoot_values()
    first, created = service.create_once(alice, "CHATWOOT", values, creation_key="form-1")
    again, created_again = service.create_once(alice, "CHATWOOT", values, creation_key="form-1")
    assert created and not created_again and again.id == first.id
    theirs, created_for_bob = service.create_once(bob, "CHATWOOT", values, creation_key="form-1")
    assert created_for_bob and theirs.id != first.id  # keys are per user
    assert len(service.list_integrations(alice)) == 1
    with pytest.raises(service.BadCreationKey):
        service.create_once(alice, "CHATWOOT", values, creation_key="k" * 65)


def test_only_an_active_operable_integration_is_primary(alice, dns):
    custom = service.create_integration(
        alice,
        "CUSTOM",
        {
            "name": "Acme",
            "crm_name": "Acme CRM",
            "base_url": "https://api.acme.example",
            "auth_type": "OAUTH2",
            "token_url": "https://api.acme.example/token",
            "credentials": json.dumps({"clientId": "client-abc", "clientSecret": "secret-value-123"}),
        },
    )
    assert not custom.is_primary and service.primary_integration(alice) is None
    with pytest.raises(service.CannotBePrimary):
        service.make_primary(alice, custom.id)
    a = service.create_integration(alice, "CHATWOOT", chatwoot_values(name="A"))
    b = service.create_integration(alice, "CHATWOOT", chatwoot_values(name="B"))
    assert [i.name for i in service.list_integrations(alice) if i.is_primary] == ["A"]
    service.update_integration(alice, a.id, is_active=False)
    assert service.primary_integration(alice).id == b.id
    assert [i.name for i in service.list_integrations(alice) if i.is_primary] == ["B"]
    assert service.delete_integration(alice, b.id) is None  # A is inactive: nobody can be primary
    assert not any(i.is_primary for i in service.list_integrations(alice))


def test_a_test_result_follows_its_exact_configuration(app, alice, dns):
    provider = service.get_provider("CHATWOOT")
    values = chatwoot_values()
    validated = provider.validate(values).values
    tested = {service.fingerprint(provider, validated): {"outcome": "ok", "message": "Connected."}}
    other_secret = provider.validate(chatwoot_values(api_key="another-token-0987654321")).values
    assert service.fingerprint(provider, other_secret) not in tested

    integration = service.create_integration(alice, "CHATWOOT", values, tests=tested)
    assert integration.last_test_outcome == "ok" and integration.last_tested_at is not None
    renamed = service.update_integration(alice, integration.id, raw={"name": "Renamed"})
    assert renamed.last_test_outcome == "ok"  # a new name keeps the test
    moved = service.update_integration(alice, integration.id, raw={"account_id": 8})
    assert moved.last_tested_at is None  # another account has not been tested
    untested = service.create_integration(alice, "CHATWOOT", chatwoot_values(api_key="another-token-0987654321"))
    assert untested.last_tested_at is None
