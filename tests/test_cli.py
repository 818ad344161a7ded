"""The command line: useful output, never a secret, never a raw control character."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from crm.auth.service import find_user
from crm.contacts import service as contacts_service
from crm.crypto import Binding, Keyring, generate_key
from crm.extensions import db
from crm.integrations import service
from crm.models import AuditEvent, Contact, Integration, User
from tests.conftest import PASSWORD, TEST_KEY
from tests.test_integrations_service import CANARY

FLASK = Path(sys.executable).with_name("flask")
ROOT = Path(__file__).resolve().parent.parent


def test_providers_lists_availability_and_capabilities(runner, coming_soon_provider):
    result = runner.invoke(args=["crm", "providers"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["CHATWOOT", "Chatwoot", "available"]
    assert lines[0].endswith("Inboxes, Agent bots, Contacts sync, Messages")
    assert "coming soon" in next(line for line in lines if line.startswith("UPCOMING"))
    assert len(lines) == 7


def test_list_shows_integrations_without_secrets(runner, alice, bob, make_integration):
    mine = make_integration(alice, api_key=CANARY)
    theirs = make_integration(bob, name="Bob's CRM")
    everyone = runner.invoke(args=["crm", "list"])
    assert everyone.exit_code == 0
    assert mine.id in everyone.output and theirs.id in everyone.output
    only_alice = runner.invoke(args=["crm", "list", "--user", "ALICE@example.com"])
    assert mine.id in only_alice.output and theirs.id not in only_alice.output
    for output in (everyone.output, only_alice.output):
        assert CANARY not in output
        assert "enc:v1" not in output


def test_list_for_unknown_user_fails_clearly(runner):
    result = runner.invoke(args=["crm", "list", "--user", "ghost@example.com"])
    assert result.exit_code != 0
    assert "No user with email ghost@example.com" in result.output


def test_every_command_has_help(runner):
    for args in (["crm", "--help"], ["crm", "providers", "--help"], ["crm", "list", "--help"], ["users", "--help"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0
        assert "Usage" in result.output


# --- polish: header, primary, id prefixes, idempotent import, counts, failures, safe output -------


def chatwoot_values_for(server, **overrides):
    values = {
        "name": "Support",
        "base_url": server.url(),
        "account_id": server.account.id,
        "api_key": server.admin_token,
        "auto_create_inboxes": False,
        "auto_create_bots": False,
        "sync_contacts": True,
    }
    values.update(overrides)
    return values


def set_id(integration, new_id):
    db.session.execute(sa.update(Integration).where(Integration.id == integration.id).values(id=new_id))
    db.session.commit()
    db.session.expire_all()
    return new_id


def test_list_has_a_header_row_and_marks_the_primary(runner, alice, make_integration):
    first = make_integration(alice, name="First")
    second = make_integration(alice, name="Second")
    result = runner.invoke(args=["crm", "list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "USER", "PROVIDER", "STATE", "LAST", "TEST", "NAME"]
    assert lines[1].startswith(f"* {first.id}  alice@example.com") and lines[1].endswith("First")
    assert lines[2].startswith(f"  {second.id}  alice@example.com") and lines[2].endswith("Second")
    assert lines[3].startswith("2 integrations; * marks")
    service.update_integration(alice, first.id, is_active=False)  # an inactive one cannot be primary
    lines = runner.invoke(args=["crm", "list"]).output.splitlines()
    assert lines[1].startswith(f"  {first.id}") and lines[2].startswith(f"* {second.id}")


def test_an_id_prefix_of_eight_characters_is_enough(runner, alice, allow_local, chatwoot):
    mine = service.create_integration(alice, "CHATWOOT", chatwoot_values_for(chatwoot))
    result = runner.invoke(args=["crm", "test", mine.id[:8]])
    assert result.exit_code == 0, result.output
    assert "ok: Connected to Chatwoot account" in result.output
    events = runner.invoke(args=["crm", "audit", "--integration", mine.id[:8].upper()])
    assert events.exit_code == 0 and mine.id in events.output and "test" in events.output


def test_short_or_ambiguous_prefixes_fail_with_one_line(runner, alice, make_integration):
    one, two = make_integration(alice), make_integration(alice)
    set_id(one, "12345678-aaaa-4aaa-8aaa-000000000001")
    set_id(two, "12345678-aaaa-4aaa-8aaa-000000000002")
    for prefix, expected in (("1234567", "at least 8 characters"), ("12345678", "more than one integration")):
        for command in (["crm", "test", prefix], ["crm", "audit", "--integration", prefix]):
            result = runner.invoke(args=command)
            assert result.exit_code == 2, (command, result.output)
            assert expected in result.output
            assert len(result.output.strip().splitlines()) == 1
    missing = runner.invoke(args=["crm", "test", "ffffffff"])
    assert missing.exit_code == 1 and "No integration ffffffff" in missing.output


def test_user_scoped_commands_never_reach_another_users_integration(runner, alice, bob, make_integration):
    set_id(make_integration(alice, name="Mine"), "abcdef01-aaaa-4aaa-8aaa-000000000001")
    theirs = set_id(make_integration(bob, name="Theirs"), "abcdef01-aaaa-4aaa-8aaa-000000000002")
    alice_only = ["--user", "alice@example.com"]
    for command in (["crm", "test", theirs, *alice_only], ["crm", "audit", "--integration", theirs, *alice_only]):
        foreign = runner.invoke(args=command)
        assert foreign.exit_code == 1, foreign.output
        assert f"No integration {theirs} of alice@example.com." in foreign.output
        assert "Theirs" not in foreign.output
    # The shared prefix is unique among Alice's own integrations: Bob's does not make it ambiguous.
    scoped = runner.invoke(args=["crm", "audit", "--integration", "abcdef01", *alice_only])
    assert scoped.exit_code == 0, scoped.output
    assert "bob@example.com" not in scoped.output


def test_import_env_twice_gives_one_integration(app, runner, alice, allow_local, chatwoot):
    app.config.update(
        CHATWOOT_BASE_URL=chatwoot.url(), CHATWOOT_ACCOUNT_ID=str(chatwoot.account.id), CHATWOOT_API_KEY="x" * 24
    )
    first = runner.invoke(args=["crm", "import-env", "--user", alice.email])
    assert first.exit_code == 0, first.output
    again = runner.invoke(args=["crm", "import-env", "--user", alice.email])
    assert again.exit_code == 0, again.output
    assert "already imported" in again.output.lower()
    assert len(service.list_integrations(alice)) == 1


@pytest.mark.parametrize("email", ["not-an-email", "ana@example", "ana@@example.com", "a" * 250 + "@example.com"])
def test_users_create_validates_the_email_like_the_form(app, runner, email):
    result = runner.invoke(args=["users", "create", email, "--password-stdin"], input=f"{PASSWORD}\n")
    assert result.exit_code == 1
    assert result.output.startswith("Error: email: ")
    assert db.session.scalars(sa.select(User)).first() is None
    valid = runner.invoke(args=["users", "create", " Ana@Example.com ", "--password-stdin"], input=f"{PASSWORD}\n")
    assert valid.exit_code == 0, valid.output
    assert find_user("ana@example.com") is not None


def test_a_malformed_key_prints_one_line_not_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTEGRATION_ENCRYPTION", "SECRET_KEY", "FLASK_"))}
    env |= {"APP_ENV": "testing", "FLASK_APP": str(ROOT / "app.py"), "SECRET_KEY": "x"}
    for key, old_keys in (("g" * 64, ""), ("ab" * 32, "not-a-key")):
        result = subprocess.run(
            [str(FLASK), "crm", "list"],
            cwd=tmp_path,
            env=env | {"INTEGRATION_ENCRYPTION_KEY": key, "INTEGRATION_ENCRYPTION_OLD_KEYS": old_keys},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert result.stderr.startswith("Error: INTEGRATION_ENCRYPTION_") and "64 hexadecimal" in result.stderr


def test_an_unreadable_value_prints_one_clear_line(runner, alice, allow_local, chatwoot):
    mine = service.create_integration(alice, "CHATWOOT", chatwoot_values_for(chatwoot))
    contacts_service.create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    stranger = Keyring(bytes.fromhex(generate_key()))  # a key this app does not have
    sealed = stranger.seal("some-token-1234567890", Binding(alice.id, mine.id, "api_key"))
    mine.configuration = {**mine.configuration, "api_key": sealed}
    db.session.commit()
    tested = runner.invoke(args=["crm", "test", mine.id])
    sent = runner.invoke(args=["crm", "send-message", "--user", alice.email, "--to", "ana@example.com", "--text", "t"])
    for result in (tested, sent):
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)  # a handled error, not a crash
        assert len(result.output.strip().splitlines()) == 1
        assert "can't be read" in result.output and "INTEGRATION_ENCRYPTION_OLD_KEYS" in result.output
    assert mine.id in tested.output
    synced = runner.invoke(args=["crm", "sync-contacts", "--user", alice.email])
    assert synced.exit_code == 1 and isinstance(synced.exception, SystemExit)
    assert "failed: 0 created" in synced.output and "can't be read" in synced.output


def test_counts_are_grammatical(app, runner, alice, make_integration, tmp_path):
    make_integration(alice)
    assert "1 integration;" in runner.invoke(args=["crm", "list"]).output
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    one.write_text("name,email,phone\nAna,ana@example.com,\n")
    two.write_text("name,email,phone\nBo,bo@example.com,\nCy,cy@example.com,\n")
    imported = [runner.invoke(args=["crm", "import-contacts", "--user", alice.email, str(f)]) for f in (one, two)]
    assert "Imported 1 contact." in imported[0].output
    assert "Imported 2 contacts." in imported[1].output
    # One sealed value (the API key) under a key that is now the old one.
    app.extensions["crm_keyring"] = Keyring(bytes.fromhex(generate_key()), [bytes.fromhex(TEST_KEY)])
    status = runner.invoke(args=["crm", "key-status"]).output
    assert "1 value still needs" in status
    rotated = runner.invoke(args=["crm", "rotate-key"])
    assert "Re-encrypted 1 value in 1 integration (1 batch)." in rotated.output


def test_sync_contacts_can_list_its_failures(runner, alice, allow_local, chatwoot):
    service.create_integration(alice, "CHATWOOT", chatwoot_values_for(chatwoot))
    contacts_service.create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    refused = {"message": "Phone number is invalid", "attributes": ["phone_number"]}
    chatwoot.fail_next("POST", r"/api/v1/accounts/\d+/contacts", 422, refused)
    plain = runner.invoke(args=["crm", "sync-contacts", "--user", alice.email])
    assert plain.exit_code == 1
    assert "1 failed" in plain.output and "--show-failures" in plain.output
    chatwoot.fail_next("POST", r"/api/v1/accounts/\d+/contacts", 422, refused)
    listed = runner.invoke(args=["crm", "sync-contacts", "--user", alice.email, "--show-failures"])
    assert listed.exit_code == 1
    failure = next(line for line in listed.output.splitlines() if "Ana" in line)
    assert failure.strip().startswith("Ana <ana@example.com>:") and "phone_number" in failure


HOSTILE = "Evil\x1b]0;pwned\x07\nforged-row\u202etxt.exe"


def test_printable_escapes_controls_and_bidi_overrides():
    from crm.cli import printable

    assert printable("Café – ok") == "Café – ok"
    assert printable(HOSTILE) == "Evil\\x1b]0;pwned\\x07\\nforged-row\\u202etxt.exe"
    assert printable("a\u2028b\u200bc\ud800") == "a\\u2028b\\u200bc\\ud800"


def test_cli_output_never_carries_raw_control_characters(runner, alice, allow_local, chatwoot):
    # A hostile CRM may answer anything (its account name is in the test's message) ...
    mine = service.create_integration(alice, "CHATWOOT", chatwoot_values_for(chatwoot))
    chatwoot.account.name = HOSTILE
    tested = runner.invoke(args=["crm", "test", mine.id])
    assert tested.exit_code == 0, tested.output
    # ... and rows saved before names were validated may hold anything.
    mine.name = HOSTILE
    db.session.add(AuditEvent(user_id=alice.id, integration_id=mine.id, action="update", detail=HOSTILE))
    contacts_service.create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    db.session.execute(sa.update(Contact).values(name=HOSTILE))
    db.session.commit()
    retested = runner.invoke(args=["crm", "test", mine.id])
    assert retested.exit_code == 1 and isinstance(retested.exception, SystemExit)
    chatwoot.fail_next("POST", r"/api/v1/accounts/\d+/contacts", 401, {"error": "Invalid Access Token"})
    outputs = [
        tested.output,
        runner.invoke(args=["crm", "list"]).output,
        runner.invoke(args=["crm", "audit"]).output,
        runner.invoke(args=["crm", "sync-contacts", "--user", alice.email, "--show-failures"]).output,
    ]
    for output in outputs:
        assert "Evil\\x1b]0;pwned\\x07\\nforged-row\\u202etxt.exe" in output
        assert not any(ch in output for ch in "\x1b\x07\u202e")
        assert not any(line.startswith("forged-row") for line in output.splitlines())
