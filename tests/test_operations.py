"""Chatwoot operations against a local Chatwoot-compatible server: resolver, provisioning, contact
sync (422, 429, 500, crash and resume), background jobs (thread and RQ), messages, CLI."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from crm.contacts import service as contacts
from crm.extensions import db
from crm.integrations import service
from crm.models import SyncRun
from crm.operations import jobs
from crm.operations.messages import send_message
from crm.operations.resolver import NO_CRM_MESSAGE, NoCRMConfigured, crm_for
from crm.operations.sync import run_sync
from crm.providers.chatwoot import BOT_NAME, INBOX_NAME
from tests.conftest import PASSWORD, TEST_KEY, link_of, remote_id, sync_error

ROOT = Path(__file__).resolve().parent.parent


def chatwoot_integration(owner, server, token=None, **overrides):
    values = {
        "name": "Support",
        "base_url": server.url(),
        "account_id": server.account.id,
        "api_key": token or server.admin_token,
        "auto_create_inboxes": True,
        "auto_create_bots": True,
        "sync_contacts": True,
    }
    values.update(overrides)
    return service.create_integration(owner, "CHATWOOT", values)


def sync_now(owner) -> SyncRun:
    run = SyncRun(user_id=owner.id, status="queued")
    db.session.add(run)
    db.session.commit()
    return run_sync(run.id)


def make_contacts(owner, count, prefix="c"):
    contacts.add_contacts(
        owner, [{"name": f"Contact {i}", "email": f"{prefix}{i}@example.com", "phone": None} for i in range(count)]
    )


# --- the resolver ------------------------------------------------------------------------------


def test_fallback_order_integration_then_environment_then_error(app, alice, allow_local, chatwoot):
    with pytest.raises(NoCRMConfigured) as caught:
        crm_for(alice)
    assert str(caught.value) == NO_CRM_MESSAGE
    app.config.update(CHATWOOT_BASE_URL=chatwoot.url(), CHATWOOT_ACCOUNT_ID=str(chatwoot.account.id))
    with pytest.raises(NoCRMConfigured):
        crm_for(alice)  # two of three settings count as none
    app.config.update(CHATWOOT_API_KEY=chatwoot.agent_token)
    target = crm_for(alice)
    assert target.source == "environment" and target.connection.api.token == chatwoot.agent_token
    mine = chatwoot_integration(alice, chatwoot)
    target = crm_for(alice)
    assert target.source == "integration" and target.integration.id == mine.id
    assert target.connection.api.token == chatwoot.admin_token
    service.update_integration(alice, mine.id, is_active=False)
    assert crm_for(alice).source == "environment"


def test_primary_integration_is_used_and_changeable(alice, allow_local, chatwoot):
    first = chatwoot_integration(alice, chatwoot, name="First")
    second = chatwoot_integration(alice, chatwoot, name="Second", auto_create_bots=False)
    assert first.is_primary and not second.is_primary
    assert crm_for(alice).integration.id == first.id
    service.make_primary(alice, second.id)
    assert crm_for(alice).integration.id == second.id
    service.delete_integration(alice, second.id)
    assert service.get_integration(alice, first.id).is_primary


def test_a_user_never_reaches_another_users_integration(alice, bob, allow_local, chatwoot):
    chatwoot_integration(bob, chatwoot)
    with pytest.raises(NoCRMConfigured):
        crm_for(alice)
    with pytest.raises(contacts.ContactNotFound):
        theirs = contacts.create_contact(bob, {"name": "B", "email": "b@example.com"})
        send_message(alice, theirs.id, "hello")


# --- provisioning ------------------------------------------------------------------------------


def test_provisioning_is_idempotent(app, alice, allow_local, chatwoot):
    app.config["PUBLIC_BASE_URL"] = "https://platform.example.com"  # the bot can call us: nothing to say
    integration = chatwoot_integration(alice, chatwoot)
    account = chatwoot.account
    assert integration.provision_message is None
    assert set(integration.remote) == {"inbox_id", "agent_bot_id"}
    assert [i["name"] for i in account.inboxes.values()] == [INBOX_NAME]
    assert [b["name"] for b in account.bots.values()] == [BOT_NAME]
    assert account.inbox_bot == {integration.remote["inbox_id"]: integration.remote["agent_bot_id"]}
    # Saving again, deactivating and activating create nothing new.
    service.update_integration(alice, integration.id, raw={"name": "Support 2"})
    service.update_integration(alice, integration.id, is_active=False)
    service.update_integration(alice, integration.id, is_active=True)
    assert len(account.inboxes) == 1 and len(account.bots) == 1
    # A second integration on the same account finds the same inbox and bot by name.
    other = chatwoot_integration(alice, chatwoot, name="Again")
    assert other.remote == integration.remote
    assert len(account.inboxes) == 1 and len(account.bots) == 1


def test_provisioning_failures_say_cause_and_fix(alice, allow_local, chatwoot):
    agent = chatwoot_integration(alice, chatwoot, token=chatwoot.agent_token)
    assert "administrator" in agent.provision_message
    chatwoot.fail_next("GET", r"/api/v1/accounts/\d+/agent_bots", 404, {"status": 404, "error": "Not Found"})
    old = chatwoot_integration(alice, chatwoot, name="Old Chatwoot")
    assert "older than 1.17" in old.provision_message and "Auto-create Agent Bots" in old.provision_message
    chatwoot.account.inboxes.clear()
    chatwoot.fail_next(
        "POST", r"/api/v1/accounts/\d+/inboxes", 402, {"error": "Account limit exceeded. Upgrade to a higher plan"}
    )
    limited = chatwoot_integration(alice, chatwoot, name="Cloud")
    assert "plan" in limited.provision_message and "Upgrade" not in limited.provision_message.split("plan")[0]


# --- contact sync ------------------------------------------------------------------------------


def test_sync_creates_updates_and_skips_unchanged(alice, allow_local, chatwoot):
    chatwoot_integration(alice, chatwoot)
    make_contacts(alice, 40)
    first = sync_now(alice)
    assert (first.status, first.created, first.updated, first.unchanged, first.failed) == ("done", 40, 0, 0, 0)
    remote = chatwoot.account.contacts
    assert len(remote) == 40
    assert {c["identifier"] for c in remote.values()} == {c.id for c in contacts.list_contacts(alice)}
    requests_before = chatwoot.count
    again = sync_now(alice)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 40)
    assert chatwoot.count == requests_before  # not one request for unchanged contacts
    changed = contacts.list_contacts(alice)[0]
    contacts.update_contact(alice, changed.id, {"name": "Renamed", "email": changed.email})
    third = sync_now(alice)
    assert (third.created, third.updated, third.unchanged) == (0, 1, 39)
    assert remote[remote_id(changed)]["name"] == "Renamed"
    assert chatwoot.count == requests_before + 1  # one PATCH


def test_sync_422_duplicate_is_looked_up_and_updated(alice, allow_local, chatwoot):
    chatwoot_integration(alice, chatwoot)
    contact = contacts.create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    # Chatwoot already has her (created earlier by someone, without our identifier).
    chatwoot.add_remote_contact(chatwoot.account, id=999, name="Ana B.", email="ana@example.com")
    run = sync_now(alice)
    assert (run.created, run.updated, run.failed) == (0, 1, 0)
    assert len(chatwoot.account.contacts) == 1
    assert chatwoot.account.contacts[999]["identifier"] == contact.id
    assert remote_id(contact) == 999


def test_sync_conflict_on_another_key_is_reported(alice, allow_local, chatwoot):
    chatwoot_integration(alice, chatwoot)
    contacts.create_contact(alice, {"name": "Ana", "email": "ana@example.com"})
    chatwoot.add_remote_contact(
        chatwoot.account, id=5, name="Other", email="ana@example.com", identifier="someone-else"
    )
    run = sync_now(alice)
    assert run.failed == 1
    assert "belongs to another Chatwoot contact" in sync_error(contacts.list_contacts(alice)[0])


def test_sync_backs_off_on_429(alice, allow_local, chatwoot):
    chatwoot_integration(alice, chatwoot)
    make_contacts(alice, 30)
    chatwoot.throttle_every = 4  # "Retry later", no Retry-After
    run = sync_now(alice)
    assert (run.created, run.failed) == (30, 0)
    assert len(chatwoot.account.contacts) == 30


def test_sync_500_on_create_is_checked_again(alice, allow_local, chatwoot):
    chatwoot_integration(alice, chatwoot)
    make_contacts(alice, 5)
    chatwoot.create_then_fail = 3  # created, but the answer is lost
    run = sync_now(alice)
    assert run.failed == 0 and run.created + run.updated == 5
    assert len(chatwoot.account.contacts) == 5
    assert all(remote_id(c) for c in contacts.list_contacts(alice))


def test_sync_without_a_crm_fails_clearly(alice):
    make_contacts(alice, 2)
    run = sync_now(alice)
    assert run.status == "failed" and run.message == NO_CRM_MESSAGE


def test_a_sync_killed_halfway_resumes_without_duplicates(app, alice, allow_local, chatwoot, database_url):
    """A real crash: `flask crm sync-contacts` in another process, killed with SIGKILL mid-run."""
    chatwoot_integration(alice, chatwoot)
    make_contacts(alice, 300)
    chatwoot.delay = 0.01
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "x",
        "INTEGRATION_ENCRYPTION_KEY": TEST_KEY,
        "CRM_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
        "CRM_ALLOW_INSECURE_HTTP": "1",
        "FLASK_APP": str(ROOT / "app.py"),
        "CRM_SYNC_CONCURRENCY": "4",
    }
    env["APP_ENV"] = "development"
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("flask")), "crm", "sync-contacts", "--user", alice.email],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(chatwoot.account.contacts) < 100 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    created_before_crash = len(chatwoot.account.contacts)
    assert 0 < created_before_crash < 300, "the crash must land midway"
    chatwoot.delay = 0
    db.session.expire_all()
    resumed = sync_now(alice)
    assert resumed.failed == 0
    local = {c.id: c for c in contacts.list_contacts(alice)}
    remote = [
        c
        for c in chatwoot.account.contacts.values()
        if c["identifier"] in local or c["email"] in {x.email for x in local.values()}
    ]
    # Exactly one remote contact per local contact: by our identifier, and by email.
    assert sorted(c["identifier"] for c in remote) == sorted(local)
    assert len({c["email"] for c in remote}) == len(remote) == 300
    assert all(chatwoot.account.contacts[remote_id(local[c["identifier"]])] is c for c in remote)
    assert all(remote_id(c) and link_of(c).synced_hash for c in contacts.list_contacts(alice))


# --- background jobs ---------------------------------------------------------------------------


def wait_for(run_id, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.expire_all()
        run = db.session.get(SyncRun, run_id)
        if run.finished:
            return run
        time.sleep(0.05)
    raise AssertionError("the sync did not finish")


def test_thread_path_runs_in_the_background(app, alice, allow_local, chatwoot):
    chatwoot_integration(alice, chatwoot)
    make_contacts(alice, 20)
    run = jobs.start_sync(alice)
    assert run.status in ("queued", "running")
    assert jobs.start_sync(alice).id == run.id or wait_for(run.id).status == "done"  # no second sync at once
    finished = wait_for(run.id)
    assert (finished.status, finished.created) == ("done", 20)


def test_rq_path_runs_through_redis(app, alice, allow_local, chatwoot):
    queue_name = f"crm-test-{uuid.uuid4().hex[:8]}"
    app.config.update(REDIS_URL="redis://127.0.0.1:6379/0", CRM_QUEUE_NAME=queue_name)
    try:
        redis.Redis.from_url(app.config["REDIS_URL"]).ping()
    except redis.exceptions.ConnectionError:
        pytest.fail("Redis at 127.0.0.1:6379 is required for the RQ path")
    chatwoot_integration(alice, chatwoot)
    make_contacts(alice, 15)
    run = jobs.start_sync(alice)
    assert jobs.queue().count == 1
    assert db.session.get(SyncRun, run.id).status == "queued"
    jobs.run_worker(burst=True)  # what `flask crm worker` does, until the queue is empty
    finished = wait_for(run.id)
    assert (finished.status, finished.created) == ("done", 15)
    jobs.queue().delete(delete_jobs=True)


def test_a_stale_run_is_marked_interrupted(alice):
    from datetime import timedelta

    from crm.models import utcnow

    stale = SyncRun(user_id=alice.id, status="running", heartbeat_at=utcnow() - timedelta(minutes=5))
    db.session.add(stale)
    db.session.commit()
    assert jobs.active_run(alice) is None
    assert db.session.get(SyncRun, stale.id).status == "interrupted"


# --- messages ----------------------------------------------------------------------------------


def test_send_message_finds_or_creates_contact_and_conversation(alice, allow_local, chatwoot):
    integration = chatwoot_integration(alice, chatwoot)
    contact = contacts.create_contact(alice, {"name": "Ana", "email": "ana@example.com", "phone": "+4930123456"})
    first = send_message(alice, contact.id, "Hello Ana")
    second = send_message(alice, contact.id, "Second message")
    account = chatwoot.account
    assert len(account.contacts) == 1 and len(account.conversations) == 1
    assert first.conversation_id == second.conversation_id
    conversation = account.conversations[first.conversation_id]
    assert conversation["inbox_id"] == integration.remote["inbox_id"]
    assert [m["content"] for m in account.messages] == ["Hello Ana", "Second message"]
    with pytest.raises(ValueError, match="Write a message"):
        send_message(alice, contact.id, "   ")


def test_send_message_through_the_environment_fallback(app, alice, allow_local, chatwoot):
    app.config.update(
        CHATWOOT_BASE_URL=chatwoot.url(),
        CHATWOOT_ACCOUNT_ID=str(chatwoot.account.id),
        CHATWOOT_API_KEY=chatwoot.admin_token,
    )
    contact = contacts.create_contact(alice, {"name": "Ben", "email": "ben@example.com"})
    sent = send_message(alice, contact.id, "From the platform's Chatwoot")
    assert sent.target == "the platform's default Chatwoot"
    assert [i["name"] for i in chatwoot.account.inboxes.values()] == [INBOX_NAME]


# --- contacts: CSV, pages and commands ----------------------------------------------------------


def test_csv_import_keeps_good_rows_and_reports_bad_ones_by_line(alice):
    text = (
        "name,email,phone\n"
        "Ana,ana@example.com,+49 30 123456\n"
        "Bad Email,not-an-email,\n"
        ",,\n"
        "Ben,,0049301234567\n"
        "Bad Phone,,12345\n"
    )
    report = contacts.import_csv(alice, text)
    assert report.imported == 2
    assert [line for line, _ in report.errors] == [3, 4, 6]
    assert "email" in report.errors[0][1] and "phone" in report.errors[2][1]
    stored = {c.name: c for c in contacts.list_contacts(alice)}
    assert stored["Ana"].phone == "+4930123456" and stored["Ben"].phone == "+49301234567"


def test_contacts_page_add_sync_and_progress(app, alice, auth, client, allow_local, chatwoot):
    chatwoot_integration(alice, chatwoot)
    auth.login()
    page = client.get("/contacts").get_data(as_text=True)
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    added = client.post("/contacts", data={"name": "Ana", "email": "ana@example.com", "csrf_token": token})
    assert added.status_code == 302
    bad = client.post("/contacts", data={"name": "X", "phone": "12", "csrf_token": token})
    assert bad.status_code == 422 and "international format" in bad.get_data(as_text=True)
    started = client.post("/contacts/sync", headers={"HX-Request": "true", "X-CSRFToken": token})
    assert started.status_code == 200 and "<progress" in started.get_data(as_text=True)
    run_id = jobs.latest_run(alice).id
    wait_for(run_id)
    progress = client.get(f"/contacts/sync/{run_id}", headers={"HX-Request": "true"})
    assert progress.status_code == 286  # htmx stops polling
    assert "1 created" in progress.get_data(as_text=True)


def test_cli_commands(app, runner, alice, allow_local, chatwoot, tmp_path):
    app.config.update(
        CHATWOOT_BASE_URL=chatwoot.url() + "/app/accounts/1",
        CHATWOOT_ACCOUNT_ID=str(chatwoot.account.id),
        CHATWOOT_API_KEY=chatwoot.admin_token,
    )
    imported = runner.invoke(args=["crm", "import-env", "--user", alice.email])
    assert imported.exit_code == 0, imported.output
    assert chatwoot.admin_token not in imported.output
    assert crm_for(alice).source == "integration"
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("name,email,phone\nAna,ana@example.com,\nBad,bad,\n")
    result = runner.invoke(args=["crm", "import-contacts", "--user", alice.email, str(csv_file)])
    assert result.exit_code == 1 and "Imported 1 contact." in result.output and "line 3" in result.output
    synced = runner.invoke(args=["crm", "sync-contacts", "--user", alice.email])
    assert synced.exit_code == 0, synced.output
    assert "done: 1 created, 0 updated, 0 unchanged, 0 failed" in synced.output
    sent = runner.invoke(
        args=["crm", "send-message", "--user", alice.email, "--to", "ANA@example.com", "--text", "Hi from the CLI"]
    )
    assert sent.exit_code == 0, sent.output and "Sent message" in sent.output
    missing = runner.invoke(args=["crm", "send-message", "--user", alice.email, "--to", "x@example.com", "--text", "t"])
    assert missing.exit_code == 1 and "has no contact" in missing.output
    assert PASSWORD not in synced.output
