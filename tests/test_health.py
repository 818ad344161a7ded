"""Health checks: each integration tested on its own phase of the interval, claimed once, its badge
and the dashboard's "need attention" line, an audit event and one email per change (to a real SMTP
server on 127.0.0.1), against a fake Chatwoot that starts failing and recovers."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from crm.extensions import db
from crm.models import AuditEvent, Integration, IntegrationHealth, utcnow
from crm.providers import get_provider
from crm.schedules import health
from crm.schedules.scheduler import tick
from tests.fakes.smtp import FakeSMTP
from tests.test_operations import chatwoot_integration

DAY = 24 * 3600
T0 = datetime(2026, 11, 26, 0, 0)


@pytest.fixture
def smtp(app):
    with FakeSMTP() as server:
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=server.port, MAIL_FROM="crm@localboxs.test")
        yield server


def row_of(integration) -> IntegrationHealth:
    db.session.expire_all()
    return db.session.scalars(select(IntegrationHealth).where(IntegrationHealth.integration_id == integration.id)).one()


def run_check(now: datetime):
    """One scheduler tick at `now` (nothing else: no syncs are scheduled in these tests)."""
    return tick(now=now, dispatch=lambda *args: None)


# --- spread over the interval ----------------------------------------------------------------------


def test_ten_thousand_integrations_are_spread_over_the_day():
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"integration-{n}")) for n in range(10_000)]
    per_minute = Counter(health.phase(i, DAY) // 60 for i in ids)
    assert len(per_minute) > 1400  # nearly every minute of the day has some (1440 minutes)
    assert max(per_minute.values()) <= 25  # and none has a crowd: 10,000 / 1440 ≈ 7 on average
    for integration_id in ids[:50]:
        first = health.next_slot(integration_id, T0, DAY)
        assert T0 < first <= T0 + timedelta(seconds=DAY)
        assert health.next_slot(integration_id, first, DAY) == first + timedelta(seconds=DAY)


def test_each_check_is_claimed_once_by_three_instances(app, alice, make_integration, chatwoot, allow_local):
    """Three scheduler threads tick the same moments: every integration is tested exactly once."""
    app.config["CRM_HEALTH_CHECK_INTERVAL"] = 3600
    integrations = [chatwoot_integration(alice, chatwoot, name=f"I{n}") for n in range(12)]
    start = utcnow().replace(microsecond=0)
    barrier = threading.Barrier(3)
    checked: list[str] = []
    lock = threading.Lock()

    def instance():
        with app.app_context():
            for step in range(3):
                barrier.wait(timeout=60)
                report = tick(now=start + timedelta(minutes=step * 30), dispatch=lambda *args: None)
                with lock:
                    checked.extend(report.checked)
            db.session.remove()

    threads = [threading.Thread(target=instance) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The rows are made at the first tick, each first check within the hour: two ticks reach them all once.
    assert Counter(checked) == Counter({i.id: 1 for i in integrations})
    assert all(row_of(i).status == "green" for i in integrations)


def test_a_provider_gets_at_most_its_budget_per_minute(app, alice, chatwoot, allow_local):
    app.config.update(CRM_HEALTH_CHECK_INTERVAL=DAY, CRM_HEALTH_CHECKS_PER_MINUTE=2)
    integrations = [chatwoot_integration(alice, chatwoot, name=f"I{n}") for n in range(5)]
    start = utcnow().replace(microsecond=0)
    run_check(start)
    later = start + timedelta(days=1)  # every one is due now
    first = run_check(later).checked
    assert len(first) == 2
    assert run_check(later + timedelta(seconds=30)).checked == []  # the same minute: its budget is spent
    seen = set(first)
    for minute in range(1, 6):
        checked = run_check(later + timedelta(minutes=minute)).checked
        assert len(checked) <= 2
        seen |= set(checked)
    assert seen == {i.id for i in integrations}  # the rest waited, none was dropped


# --- failing, then recovering ----------------------------------------------------------------------


def test_a_failing_crm_turns_red_within_one_interval_emails_once_and_recovers(
    app, api, alice, chatwoot, allow_local, smtp
):
    interval = 3600
    app.config["CRM_HEALTH_CHECK_INTERVAL"] = interval
    integration = chatwoot_integration(alice, chatwoot)
    token = chatwoot.admin_token
    now = utcnow().replace(microsecond=0)
    run_check(now)  # the row: first check at this integration's phase of the hour
    first = row_of(integration).next_check_at
    assert now < first <= now + timedelta(seconds=interval)
    assert run_check(first).checked == [integration.id]
    assert row_of(integration).status == "green" and smtp.messages == []  # first check: nothing to tell

    user = chatwoot.tokens.pop(token)  # the token is revoked in Chatwoot
    failing_from = first + timedelta(minutes=1)
    assert run_check(failing_from).checked == []  # not due before its next slot
    second = row_of(integration).next_check_at
    assert second - failing_from <= timedelta(seconds=interval)  # within one interval of failing
    run_check(second)
    state = row_of(integration)
    assert (state.status, state.since, state.last_outcome) == ("red", second, "auth_failed")
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail["To"] == "alice@example.com" and mail["From"] == "crm@localboxs.test"
    assert "Support needs attention" in mail["Subject"]
    body = mail.get_content()
    assert "failing since" in body and get_provider("CHATWOOT").advice("auth_failed")[0] in body
    assert token not in body and token[-6:] not in body

    page = api.client.get("/dashboard/integrations").get_data(as_text=True)
    assert "1 integration needs attention" in page
    assert 'data-health="red"' in page and "Failing</span> since" in page
    listed = api.get("/api/dashboard/integrations").get_json()["integrations"][0]["health"]
    assert listed["status"] == "red" and listed["since"] == second.isoformat() + "Z" and listed["advice"]

    run_check(state.next_check_at)  # still failing: still red, no second email
    assert row_of(integration).status == "red" and len(smtp.messages) == 1
    assert row_of(integration).since == second

    chatwoot.tokens[token] = user  # fixed
    run_check(row_of(integration).next_check_at)
    assert row_of(integration).status == "green"
    assert len(smtp.messages) == 2 and "works again" in smtp.messages[1]["Subject"]
    assert "need attention" not in api.client.get("/dashboard/integrations").get_data(as_text=True)
    changes = db.session.scalars(
        select(AuditEvent.outcome).where(AuditEvent.action == "health").order_by(AuditEvent.id)
    ).all()
    assert changes == ["green", "red", "green"]


def test_one_transient_failure_is_amber_checked_again_soon_then_red_since_the_first(
    app, alice, chatwoot, allow_local, smtp
):
    app.config["CRM_HEALTH_CHECK_INTERVAL"] = DAY
    integration = chatwoot_integration(alice, chatwoot)
    now = utcnow().replace(microsecond=0)
    run_check(now)
    run_check(row_of(integration).next_check_at)
    assert row_of(integration).status == "green"

    chatwoot.fail_next("GET", r"/api/v1/profile", 503)
    failed_at = row_of(integration).next_check_at
    run_check(failed_at)
    state = row_of(integration)
    assert (state.status, state.failures, state.last_outcome) == ("amber", 1, "server_error")
    assert state.next_check_at <= failed_at + timedelta(minutes=15)  # not a day later
    assert smtp.messages == []  # amber is shown, not emailed

    chatwoot.fail_next("GET", r"/api/v1/profile", 503)
    run_check(state.next_check_at)
    state = row_of(integration)
    assert (state.status, state.failures, state.since) == ("red", 2, failed_at)
    assert len(smtp.messages) == 1


def test_a_warning_is_amber(app, alice, chatwoot, allow_local):
    app.config["CRM_HEALTH_CHECK_INTERVAL"] = 3600
    integration = chatwoot_integration(alice, chatwoot, token=chatwoot.agent_token)  # may not create inboxes
    now = utcnow().replace(microsecond=0)
    run_check(now)
    run_check(row_of(integration).next_check_at)
    badge = health.badge_of(integration, row_of(integration))
    assert badge.status == "amber" and badge.message


def test_needs_reconnect_is_red_and_never_checked_is_grey(app, alice, chatwoot, allow_local):
    integration = chatwoot_integration(alice, chatwoot)
    assert health.badge_of(integration, None).status == "grey"
    integration.auth_state = "needs_reconnect"
    db.session.commit()
    badge = health.badge_of(integration, None)
    assert badge.status == "red" and "Reconnect" in badge.message
    assert health.attention_count(alice) == 1


def test_without_mail_server_nothing_is_sent_and_checks_go_on(app, alice, chatwoot, allow_local):
    app.config.update(CRM_HEALTH_CHECK_INTERVAL=3600, MAIL_SERVER="")
    integration = chatwoot_integration(alice, chatwoot)
    chatwoot.tokens.pop(chatwoot.admin_token)
    now = utcnow().replace(microsecond=0)
    run_check(now)
    run_check(row_of(integration).next_check_at)
    assert row_of(integration).status == "red" and row_of(integration).notified_status == "red"


def test_inactive_integrations_are_not_checked(app, alice, chatwoot, allow_local):
    app.config["CRM_HEALTH_CHECK_INTERVAL"] = 3600
    integration = chatwoot_integration(alice, chatwoot)
    now = utcnow().replace(microsecond=0)
    run_check(now)
    due = row_of(integration).next_check_at
    db.session.get(Integration, integration.id).is_active = False
    db.session.commit()
    assert run_check(due).checked == []


def test_cli_health_prints_the_table(app, runner, alice, bob, chatwoot, allow_local):
    app.config["CRM_HEALTH_CHECK_INTERVAL"] = 3600
    mine = chatwoot_integration(alice, chatwoot, name="Alice CRM")
    chatwoot_integration(bob, chatwoot, name="Bob CRM")
    chatwoot.tokens.pop(chatwoot.admin_token)
    now = utcnow().replace(microsecond=0)
    run_check(now)
    run_check(now + timedelta(hours=1))
    result = runner.invoke(args=["crm", "health", "--user", "alice@example.com"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["ID", "USER", "HEALTH"]
    assert mine.id in result.output and "red" in lines[1] and "Bob CRM" not in result.output
    assert "1 integration; 1 needs attention" in result.output
    assert runner.invoke(args=["crm", "health", "--user", "nobody@example.com"]).exit_code == 1


def test_the_dashboard_counts_the_integrations_that_need_attention(app, api, alice, chatwoot, allow_local):
    app.config["CRM_HEALTH_CHECK_INTERVAL"] = 3600
    healthy = chatwoot_integration(alice, chatwoot, name="Healthy")
    reconnect = chatwoot_integration(alice, chatwoot, name="Expired")
    inactive = chatwoot_integration(alice, chatwoot, name="Off")
    now = utcnow().replace(microsecond=0)
    run_check(now)
    run_check(now + timedelta(hours=1))
    assert "need attention" not in api.client.get("/dashboard/integrations").get_data(as_text=True)
    reconnect.auth_state = "needs_reconnect"
    inactive.is_active = False
    db.session.commit()
    row_of(reconnect).next_check_at = now + timedelta(days=10)  # only Healthy is checked next
    db.session.commit()
    chatwoot.fail_next("GET", r"/api/v1/profile", 503)
    run_check(row_of(healthy).next_check_at)  # one failure: amber
    assert row_of(healthy).status == "amber"
    page = api.client.get("/dashboard/integrations").get_data(as_text=True)
    assert "2 integrations need attention." in page
    assert page.count('data-health="amber"') == 1 and page.count('data-health="red"') == 1
