"""Analytics: recorded operations reach the hourly rollups, the page, the API and /metrics with the
right counts; a day of operations is scripted with an injected clock, then real Test Connections run
against the fake Chatwoot."""

from __future__ import annotations

import contextvars
import math
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from crm.analytics import recorder
from crm.analytics.recorder import Recorder
from crm.extensions import db
from crm.integrations import service
from crm.models import LATENCY_BUCKETS_MS, AnalyticsEvent, AnalyticsHour
from tests.conftest import APIClient, make_app

NOW = datetime(2026, 3, 10, 23, 30)  # the end of the scripted day (UTC)
DAY = NOW.replace(hour=0, minute=0)
API = "/api/dashboard/integrations"


@pytest.fixture
def clock(app):
    """The recorder's clock (and so the page's "now"), set by the test."""
    moment = {"now": NOW}
    recorder.current().clock = lambda: moment["now"].replace(tzinfo=UTC).timestamp()
    return moment


# No inbox or bot to provision: these tests count exactly the events they record themselves.
QUIET_CHATWOOT = {
    "name": "x",
    "base_url": "https://chat.example.com",
    "account_id": 7,
    "api_key": "cw-token-1234567890abcd",
    "auto_create_inboxes": False,
    "auto_create_bots": False,
}


def script_day(integration, seed: int = 0) -> list[dict]:
    """A day of operations of one integration, recorded as the operations would; returns what was done."""
    done = []
    for hour in range(24):
        at = DAY + timedelta(hours=hour, minutes=5)
        ops = [("sync_batch", "ok", 40 + hour, {"created": 2, "updated": 1, "unchanged": 7, "failed": hour % 3 == 0})]
        ops.append(("message", "ok" if hour % 4 else "rate_limited", 120 + 10 * hour, None))
        if hour % 6 == seed:
            ops.append(("provision", "server_error", 3000, None))
        if hour % 2:
            ops.append(("webhook", "ok" if hour % 3 else "bad_signature", 3, None))
        if hour in (9, 17):
            ops.append(("rate_limit_wait", "waited", 1500, None))
        for kind, outcome, duration, counts in ops:
            counts = {k: int(v) for k, v in counts.items()} if counts else None
            if kind == "rate_limit_wait":
                recorder.note_rate_limit_wait(
                    duration / 1000, integration_id=integration.id, user_id=integration.user_id
                )
                # its stamp: the recorder's clock; put it in the scripted hour instead
            else:
                recorder.record(kind, integration.id, integration.user_id, outcome, duration, counts, at=at)
            done.append({"kind": kind, "outcome": outcome, "duration": duration, "counts": counts or {}, "at": at})
    return done


def expected(done: list[dict], since: datetime) -> dict:
    outbound = [d for d in done if d["kind"] in ("test", "sync_batch", "message", "provision") and d["at"] >= since]
    hooks = [d for d in done if d["kind"] == "webhook" and d["at"] >= since]
    waits = [d for d in done if d["kind"] == "rate_limit_wait"]
    outcomes: dict[str, int] = {}
    for d in outbound:
        outcomes[d["outcome"]] = outcomes.get(d["outcome"], 0) + 1
    return {
        "requests": len(outbound),
        "errors": sum(d["outcome"] != "ok" for d in outbound),
        "byOutcome": outcomes,
        "contacts": {
            n: sum(d["counts"].get(n, 0) for d in outbound) for n in ("created", "updated", "unchanged", "failed")
        },
        "webhooks": {
            "received": sum(d["outcome"] == "ok" for d in hooks),
            "rejected": sum(d["outcome"] != "ok" for d in hooks),
        },
        "rateLimitWaits": {"count": len(waits), "seconds": sum(d["duration"] for d in waits) / 1000},
        "latencyMs": {
            "p50": bucket_percentile([d["duration"] for d in outbound], 0.5),
            "p95": bucket_percentile([d["duration"] for d in outbound], 0.95),
        },
    }


def bucket_percentile(durations: list[int], share: float) -> int:
    """Nearest rank, reported as the latency bucket bound it falls in."""
    ordered = sorted(durations)
    value = ordered[math.ceil(share * len(ordered)) - 1]
    return next((bound for bound in LATENCY_BUCKETS_MS if value <= bound), max(ordered))


def saved_chatwoot(owner, chatwoot, name="Live Chatwoot"):
    values = {
        "name": name,
        "base_url": chatwoot.url(),
        "account_id": chatwoot.account.id,
        "api_key": chatwoot.admin_token,
        "auto_create_inboxes": False,
        "auto_create_bots": False,
        "sync_contacts": True,
    }
    return service.create_integration(owner, "CHATWOOT", values)


def figure(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">(.*?)</dd>', page, re.S)
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


# --- a scripted day, then real operations ----------------------------------------------------------


def test_a_scripted_day_and_real_tests_show_the_right_counts(app, alice, bob, allow_local, chatwoot, clock):
    live = saved_chatwoot(alice, chatwoot)
    other = saved_chatwoot(alice, chatwoot, name="Second")
    theirs = saved_chatwoot(bob, chatwoot, name="Bob's")
    done = script_day(live)
    other_done = script_day(other, seed=3)
    script_day(theirs)  # another user's: never in alice's figures
    # Waits were stamped by the clock (23:30); record that in the script.
    for d in done + other_done:
        if d["kind"] == "rate_limit_wait":
            d["at"] = NOW

    # Real Test Connections through the API, against the fake Chatwoot: one ok, one refused.
    alice_api = APIClient(app.test_client(), alice.email)
    assert alice_api.post(f"{API}/test", json={"integrationId": live.id}).get_json()["outcome"] == "ok"
    chatwoot.tokens.pop(chatwoot.admin_token)
    assert alice_api.post(f"{API}/test", json={"integrationId": live.id}).get_json()["outcome"] == "auth_failed"
    tests = [e for e in recorder.current().buffer if e.kind == "test" and e.integration_id == live.id]
    assert [e.outcome for e in tests] == ["ok", "auth_failed"]
    for event in tests:
        done.append({"kind": "test", "outcome": event.outcome, "duration": event.duration_ms, "counts": {}, "at": NOW})

    answer = alice_api.get(f"{API}/{live.id}/analytics?range=24h")
    assert answer.status_code == 200
    figures = answer.get_json()
    want = expected(done, DAY)
    for key, value in want.items():
        assert figures[key] == value, key
    assert figures["byKind"]["test"] == {"ok": 1, "auth_failed": 1}
    assert figures["slot"] == "hour" and len(figures["series"]) == 24
    nine = figures["series"][9]
    assert nine["start"] == "2026-03-10T09:00:00Z"
    assert nine["requests"] == sum(
        1 for d in done if d["at"].hour == 9 and d["kind"] not in ("webhook", "rate_limit_wait")
    )
    assert nine["contacts"] == {"created": 2, "updated": 1, "unchanged": 7, "failed": 1}
    assert figures["nextScheduledRun"] is None

    # The same day in the 7-day and 30-day views (daily slots): the totals agree.
    for range_name, slots in (("7d", 7), ("30d", 30)):
        wider = alice_api.get(f"{API}/{live.id}/analytics?range={range_name}").get_json()
        assert len(wider["series"]) == slots and wider["slot"] == "day"
        assert wider["series"][-1]["start"] == "2026-03-10T00:00:00Z"
        assert (wider["requests"], wider["errors"], wider["contacts"]) == (
            want["requests"],
            want["errors"],
            want["contacts"],
        )

    # The page shows the same figures; the user's page sums both integrations and never bob's.
    page = alice_api.client.get(f"/dashboard/integrations/{live.id}/analytics?range=24h").get_data(as_text=True)
    assert figure(page, "stat-requests") == str(want["requests"])
    assert figure(page, "stat-errors") == str(want["errors"])
    assert figure(page, "stat-p50") == f"≤ {want['latencyMs']['p50']} ms"
    assert figure(page, "stat-p95") == f"≤ {want['latencyMs']['p95']} ms"
    assert (
        figure(page, "stat-webhooks")
        == f"{want['webhooks']['received']} received · {want['webhooks']['rejected']} rejected"
    )
    assert figure(page, "stat-waits").startswith("2 ")
    assert figure(page, "stat-next-run") == "not scheduled"
    assert '<tr><th scope="row">09:00</th><td>2</td><td>1</td><td>7</td><td>1</td></tr>' in page  # contacts table
    assert "auth_failed" in page  # the outcome table and the recent failures
    assert "<svg" in page and "style=" not in page and "<script>" not in page

    both = expected(done + other_done, DAY)
    user_page = alice_api.client.get("/dashboard/analytics?range=24h").get_data(as_text=True)
    assert figure(user_page, "stat-requests") == str(both["requests"])
    assert figure(user_page, "stat-errors") == str(both["errors"])
    assert "Second" in user_page and "Bob&#39;s" not in user_page and "Bob's" not in user_page
    assert chatwoot.admin_token not in page + user_page + answer.get_data(as_text=True)


def test_bad_range_is_422_in_the_api_and_a_message_on_the_page(app, alice, dns, clock):
    integration = service.create_integration(
        alice,
        "CHATWOOT",
        QUIET_CHATWOOT,
    )
    user = APIClient(app.test_client(), alice.email)
    for bad in ("1y", "", "7D", "24h;"):
        answer = user.get(f"{API}/{integration.id}/analytics?range={bad}")
        if bad == "":
            assert answer.status_code == 200 and answer.get_json()["range"] == "7d"
            continue
        assert answer.status_code == 422
        assert answer.get_json()["fields"] == {"range": ["Choose 24h, 7d or 30d."]}
    page = user.client.get(f"/dashboard/integrations/{integration.id}/analytics?range=1y")
    assert page.status_code == 200
    assert "Choose 24h, 7d or 30d." in page.get_data(as_text=True)


def test_another_users_integration_is_404(app, alice, bob, dns, clock):
    theirs = service.create_integration(
        bob,
        "CHATWOOT",
        {"name": "b", "base_url": "https://chat.example.com", "account_id": 7, "api_key": "cw-token-1234567890abcd"},
    )
    recorder.record("test", theirs.id, bob.id, "ok", 12)
    user = APIClient(app.test_client(), alice.email)
    assert user.get(f"{API}/{theirs.id}/analytics").status_code == 404
    assert user.client.get(f"/dashboard/integrations/{theirs.id}/analytics").status_code == 404
    assert figure(user.client.get("/dashboard/analytics").get_data(as_text=True), "stat-requests") == "0"


def test_next_scheduled_run_comes_from_the_schedule(app, alice, dns, clock):
    from crm import models

    schedule = getattr(models, "SyncSchedule", None)
    if schedule is None:
        pytest.skip("no schedules table in this tree")
    integration = service.create_integration(
        alice,
        "CHATWOOT",
        QUIET_CHATWOOT,
    )
    db.session.add(schedule(integration_id=integration.id, kind="hourly", next_run_at=datetime(2026, 3, 11, 0, 0)))
    db.session.commit()
    user = APIClient(app.test_client(), alice.email)
    assert user.get(f"{API}/{integration.id}/analytics").get_json()["nextScheduledRun"] == "2026-03-11T00:00:00Z"
    page = user.client.get(f"/dashboard/integrations/{integration.id}/analytics").get_data(as_text=True)
    assert figure(page, "stat-next-run") == "Mar 11 00:00 UTC"


# --- the recorder and the store --------------------------------------------------------------------


def test_two_processes_flushing_the_same_hour_add_up(app, alice, dns, clock):
    """Two recorders (as two workers would have) write into one rollup row: the upsert adds."""
    integration = service.create_integration(
        alice,
        "CHATWOOT",
        QUIET_CHATWOOT,
    )
    first, second = Recorder(app, clock=recorder.current().clock), Recorder(app, clock=recorder.current().clock)
    for n, (target, duration) in enumerate([(first, 5), (second, 40_000), (first, 300), (second, 20)]):
        app.extensions["crm_analytics"] = target
        recorder.record("sync_batch", integration.id, alice.id, "ok", duration, {"created": n, "failed": 1})
        target.flush()
    rows = db.session.scalars(sa.select(AnalyticsHour)).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.count, row.created, row.failed, row.duration_ms_total, row.duration_ms_max) == (4, 6, 4, 40_325, 40_000)
    assert (row.provider, row.le_10, row.le_25, row.le_500, row.le_inf) == ("CHATWOOT", 1, 1, 1, 1)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AnalyticsEvent)) == 4


def test_buffered_writes_many_threads_lose_nothing(app, alice, dns, clock):
    integration = service.create_integration(
        alice,
        "CHATWOOT",
        QUIET_CHATWOOT,
    )

    ids = integration.id, alice.id  # read here: the threads share this test's session, which is not thread-safe

    def work():
        for _ in range(500):
            recorder.record("message", *ids, "ok", 10)

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(work,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(5):
        recorder.flush()  # while they record
    for thread in threads:
        thread.join()
    recorder.flush()
    assert recorder.current().failed_flushes == 0
    assert db.session.scalar(sa.select(sa.func.sum(AnalyticsHour.count))) == 4000


def test_rate_limit_waits_count_for_the_attributed_integration(app, alice, dns, clock):
    integration = service.create_integration(
        alice,
        "CHATWOOT",
        QUIET_CHATWOOT,
    )
    recorder.note_rate_limit_wait(2.0, provider="CHATWOOT")  # outside any job: counted for no one
    with recorder.attributed_to(integration):
        recorder.note_rate_limit_wait(1.5)
        worker = threading.Thread(target=contextvars.copy_context().run, args=(recorder.note_rate_limit_wait, 0.25))
        worker.start()
        worker.join()
    user = APIClient(app.test_client(), alice.email)
    figures = user.get(f"{API}/{integration.id}/analytics?range=24h").get_json()
    assert figures["rateLimitWaits"] == {"count": 2, "seconds": 1.8}
    assert figures["requests"] == 0  # waits are not requests
    unattributed = db.session.scalars(sa.select(AnalyticsHour).where(AnalyticsHour.integration_id == "")).one()
    assert (unattributed.kind, unattributed.provider, unattributed.count) == ("rate_limit_wait", "CHATWOOT", 1)


def test_raw_events_are_kept_7_days_and_rollups_90(app, alice, dns, clock):
    integration = service.create_integration(
        alice,
        "CHATWOOT",
        QUIET_CHATWOOT,
    )
    for days in (1, 8, 89, 91):
        recorder.record("test", integration.id, alice.id, "ok", 10, at=NOW - timedelta(days=days))
    clock["now"] = NOW + timedelta(hours=2)  # a later flush purges (the first of a process does too)
    recorder.flush()
    kept_events = db.session.scalars(sa.select(AnalyticsEvent.occurred_at)).all()
    kept_hours = db.session.scalars(sa.select(AnalyticsHour.hour)).all()
    assert sorted(kept_events) == [NOW - timedelta(days=1)]
    assert sorted(h.date() for h in kept_hours) == [(NOW - timedelta(days=d)).date() for d in (89, 8, 1)]


def test_recording_outside_an_app_is_ignored_and_a_failed_flush_keeps_the_events(app, alice, dns, clock, caplog):
    outside = contextvars.Context()
    outside.run(recorder.record, "test", "x", 1, "ok", 5)  # no app context: nothing to record into
    assert len(recorder.current().buffer) == 0
    recorder.record("test", "x", alice.id, "ok", 5)
    db.session.execute(sa.text("DROP TABLE analytics_hours"))
    db.session.commit()
    assert recorder.flush() == 0
    assert recorder.current().failed_flushes == 1
    assert "could not be written yet" in caplog.text
    AnalyticsHour.__table__.create(db.engine)
    assert recorder.flush() == 1  # kept, and written once the database is back


# --- /metrics --------------------------------------------------------------------------------------


def test_metrics_need_the_token_and_name_no_one(app, alice, dns, clock):
    integration = service.create_integration(
        alice,
        "CHATWOOT",
        {
            "name": "Secret name",
            "base_url": "https://chat.example.com",
            "account_id": 7,
            "api_key": "cw-token-1234567890abcd",
        },
    )
    client = app.test_client()
    assert client.get("/metrics").status_code == 404  # METRICS_TOKEN unset: no such page
    app.config["METRICS_TOKEN"] = "metrics-token-0123456789"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer metrics-token-012345678"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "metrics-token-0123456789"}).status_code == 401
    for outcome, duration in (("ok", 40), ("ok", 400), ("auth_failed", 90)):
        recorder.record("test", integration.id, alice.id, outcome, duration)
    recorder.record("sync_batch", integration.id, alice.id, "ok", 700, {"created": 5, "unchanged": 2})
    answer = client.get("/metrics", headers={"Authorization": "Bearer metrics-token-0123456789"})
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain")
    text = answer.get_data(as_text=True)
    assert 'crm_operations_total{kind="test",outcome="ok",provider="CHATWOOT"} 2.0' in text
    assert 'crm_operations_total{kind="test",outcome="auth_failed",provider="CHATWOOT"} 1.0' in text
    assert 'crm_operation_duration_seconds_bucket{kind="test",le="0.1",outcome="ok",provider="CHATWOOT"} 1.0' in text
    assert 'crm_sync_contacts_total{kind="sync_batch",outcome="created",provider="CHATWOOT"} 5.0' in text
    labels = set(re.findall(r"[{,]([a-z_]+)=", text))
    assert labels <= {"provider", "kind", "outcome", "le"}
    for private in (alice.email, integration.id, "Secret name", "cw-token"):
        assert private not in text


def test_the_background_flusher_writes_without_being_asked(database_url):
    """With ANALYTICS_FLUSH_SECONDS set (production), a thread of the process writes the buffer."""
    app = make_app(database_url, ANALYTICS_FLUSH_SECONDS=0.05)
    with app.app_context():
        db.drop_all()
        db.create_all()
        try:
            recorder.record("message", "00000000-0000-4000-8000-000000000001", 1, "ok", 12, provider="CHATWOOT")
            assert recorder.current()._thread_pid is not None
            for _ in range(200):  # the flusher's pace, not a timing assertion: it either writes or the test fails
                if db.session.scalar(sa.select(sa.func.count()).select_from(AnalyticsHour)):
                    break
                threading.Event().wait(0.05)
            assert db.session.scalar(sa.select(AnalyticsHour.count)) == 1
            assert len(recorder.current().buffer) == 0
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()
