"""`flask crm providers` and `flask crm list`: useful output, never a secret."""

from tests.test_integrations_service import CANARY


def test_providers_lists_availability(runner):
    result = runner.invoke(args=["crm", "providers"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:2] == ["CHATWOOT", "Chatwoot"] and lines[0].endswith("available")
    assert any(line.startswith("HUBSPOT") and line.endswith("coming soon") for line in lines)
    assert len(lines) == 6


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
