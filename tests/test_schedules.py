"""Schedules: what a user may choose (card, API, CLI), when it runs, and the scheduler that starts each
due slot exactly once however many instances tick: threads, separate processes, a killed one, the
thread `make run` starts. The clock is injected and fast-forwarded; nothing here waits for wall time."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm.contacts import service as contacts
from crm.extensions import db
from crm.models import Integration, ScheduledSlot, SyncRun, SyncSchedule, User
from crm.schedules import service
from crm.schedules.scheduler import start_embedded, tick
from crm.schedules.service import ScheduleInvalid, Spec
from tests.conftest import make_app, use_outbound_policy

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 26, 8, 53)  # naive UTC, like every stored time
MINUTES = 10
MIXED = [
    Spec("cron", cron="* * * * *"),
    Spec("cron", cron="*/2 * * * *"),
    Spec("cron", cron="*/5 * * * *"),
    Spec("every_15_minutes"),
    Spec("hourly"),
    Spec("daily", time_of_day="10:00"),  # 09:00 UTC in Berlin (winter): inside the ten minutes
    Spec("daily", time_of_day="09:00"),  # 09:00 in New York: outside them
    Spec("off"),
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]


# --- helpers -------------------------------------------------------------------------------------


def bare_integration(owner: User, name: str = "Chatwoot") -> Integration:
    """A Chatwoot row that syncs contacts, written directly: the scheduler reads no secret."""
    integration = Integration(
        user_id=owner.id,
        name=name,
        provider="CHATWOOT",
        configuration={"base_url": "https://chat.example.com", "account_id": 7, "sync_contacts": True},
    )
    db.session.add(integration)
    db.session.commit()
    return integration


def many_schedules(count: int = 200) -> dict[str, list[datetime]]:
    """`count` integrations of 20 users in four time zones on mixed schedules, saved at T0; returns
    each integration's due slots in the ten minutes after T0."""
    users = []
    for number in range(20):
        user = User(email=f"s{number}@example.com", password_hash="x", timezone=ZONES[number % len(ZONES)])
        db.session.add(user)
        users.append(user)
    db.session.commit()
    expected = {}
    for number in range(count):
        owner = users[number % len(users)]
        integration = bare_integration(owner, f"I{number}")
        spec = MIXED[number % len(MIXED)]
        if spec.kind == "daily":  # the same wall-clock moment in each zone: 09:00 UTC
            local = service.local(T0 + timedelta(minutes=7), owner)
            spec = Spec("daily", time_of_day=f"{local:%H:%M}") if number % 2 else spec
        service.save_schedule(owner, integration.id, spec, now=T0)
        expected[integration.id] = [
            run for run in service.upcoming(spec, owner, T0, 30) if run <= T0 + timedelta(minutes=MINUTES)
        ]
    return expected


class Recorder:
    """Stands in for the job queue (the port the scheduler starts syncs through): counts starts."""

    def __init__(self):
        self.starts: list[tuple[str, datetime]] = []
        self.lock = threading.Lock()

    def __call__(self, owner, integration, slot):
        with self.lock:
            self.starts.append((integration.id, slot))
        return None


def expected_pairs(expected: dict[str, list[datetime]]) -> Counter:
    return Counter((integration_id, slot) for integration_id, slots in expected.items() for slot in slots)


def ledger() -> Counter:
    db.session.expire_all()
    return Counter(
        (row.integration_id, row.slot_at)
        for row in db.session.scalars(select(ScheduledSlot).where(ScheduledSlot.status == "enqueued"))
    )


# --- choosing a schedule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("off", Spec("off")),
        ("15m", Spec("every_15_minutes")),
        ("hourly", Spec("hourly")),
        ("daily 9:05", Spec("daily", time_of_day="09:05")),
        ("*/30  *  * * *", Spec("cron", cron="*/30 * * * *")),
    ],
)
def test_the_cli_shorthand(app, text, spec):
    assert service.parse_text(text) == spec


@pytest.mark.parametrize(
    ("kind", "time_of_day", "cron", "field"),
    [
        ("weekly", None, None, "kind"),
        ("daily", "25:00", None, "timeOfDay"),
        ("daily", "", None, "timeOfDay"),
        ("cron", None, "", "cron"),
        ("cron", None, "61 * * * *", "cron"),
        ("cron", None, "* * * * * *", "cron"),  # a seconds field: not ours
        ("cron", None, "0 9 * *", "cron"),
        ("cron", None, "* " * 60, "cron"),
    ],
)
def test_bad_schedules_name_their_field(app, kind, time_of_day, cron, field):
    with pytest.raises(ScheduleInvalid) as caught:
        service.parse(kind, time_of_day, cron)
    assert list(caught.value.fields) == [field]


def test_daily_runs_at_the_owners_local_time_across_daylight_saving(app, alice):
    alice.timezone = "Europe/Berlin"
    spec = Spec("daily", time_of_day="09:00")
    before_dst = service.upcoming(spec, alice, datetime(2026, 3, 28, 12, 0))
    assert before_dst == [datetime(2026, 3, 29, 7, 0), datetime(2026, 3, 30, 7, 0), datetime(2026, 3, 31, 7, 0)]
    assert service.upcoming(spec, alice, datetime(2026, 3, 27, 12, 0))[0] == datetime(2026, 3, 28, 8, 0)


def test_the_time_zone_setting_is_validated_and_moves_schedules(app, alice):
    integration = bare_integration(alice)
    service.save_schedule(alice, integration.id, Spec("daily", time_of_day="09:00"), now=T0)
    assert service.schedule_for(integration).next_run_at == datetime(2026, 11, 26, 9, 0)
    for bad in ("Mars/Olympus", "", "../etc/passwd", "utc "):
        with pytest.raises(ScheduleInvalid) as caught:
            service.set_timezone(alice, bad)
        assert list(caught.value.fields) == ["timezone"]
    service.set_timezone(alice, "Asia/Tokyo")
    assert alice.timezone == "Asia/Tokyo"
    next_run = service.schedule_for(integration).next_run_at
    assert (next_run.hour, next_run.minute) == (0, 0)  # 09:00 in Tokyo


def test_an_integration_without_contacts_sync_has_no_schedule(app, alice):
    integration = bare_integration(alice)
    integration.configuration = {**integration.configuration, "sync_contacts": False}
    db.session.commit()
    with pytest.raises(service.NoContactsSync):
        service.save_schedule(alice, integration.id, Spec("hourly"))
    service.save_schedule(alice, integration.id, Spec("off"))  # off is always allowed


# --- the API ---------------------------------------------------------------------------------------


def test_api_reads_and_sets_a_schedule_with_its_next_three_runs(app, api, alice, bob):
    integration = bare_integration(alice)
    path = f"/api/dashboard/integrations/{integration.id}/schedule"
    assert api.get(path).get_json()["kind"] == "off"
    saved = api.put(path, json={"kind": "cron", "cron": "*/30 * * * *"})
    assert saved.status_code == 200
    body = saved.get_json()
    assert body["kind"] == "cron" and body["cron"] == "*/30 * * * *" and body["timezone"] == "UTC"
    runs = [datetime.fromisoformat(run.removesuffix("Z")) for run in body["nextRuns"]]
    assert len(runs) == 3 and all(run.minute in (0, 30) for run in runs)
    assert runs == sorted(runs) and body["nextRunAt"] == body["nextRuns"][0]

    refused = api.put(path, json={"kind": "daily", "timeOfDay": "9 o'clock"})
    assert refused.status_code == 422 and list(refused.get_json()["fields"]) == ["timeOfDay"]
    assert api.put(path, json={"kind": "cron", "cron": "every day"}).get_json()["fields"]["cron"]
    assert api.get(path).get_json()["cron"] == "*/30 * * * *"  # unchanged by the refusals

    foreign = bare_integration(bob)
    assert api.get(f"/api/dashboard/integrations/{foreign.id}/schedule").status_code == 404
    assert api.put(f"/api/dashboard/integrations/{foreign.id}/schedule", json={"kind": "hourly"}).status_code == 404
    assert service.schedule_for(foreign) is None


def test_api_list_carries_health(app, api, alice):
    bare_integration(alice)
    listed = api.get("/api/dashboard/integrations").get_json()["integrations"]
    assert listed[0]["health"] == {"status": "grey", "since": None, "message": None, "advice": [], "checkedAt": None}


# --- the card's editor, the preview and the settings page --------------------------------------------


def test_card_editor_previews_and_saves(app, api, alice):
    integration = bare_integration(alice)
    alice.timezone = "Europe/Berlin"
    db.session.commit()
    page = api.client.get("/dashboard/integrations").get_data(as_text=True)
    assert "Contacts sync: <span class=\"schedule-text\">No schedule</span>" in page
    assert "Not checked yet" in page
    editor = api.client.get(f"/dashboard/integrations/{integration.id}/schedule", headers={"HX-Request": "true"})
    assert editor.status_code == 200 and "<dialog" in editor.get_data(as_text=True)

    preview_url = f"/dashboard/integrations/{integration.id}/schedule/preview"
    preview = api.client.get(preview_url, query_string={"kind": "daily", "time_of_day": "07:30"})
    shown = re.findall(r"<time datetime=\"([^\"]+)\">", preview.get_data(as_text=True))
    assert len(shown) == 3 and all(moment.endswith("07:30:00+01:00") for moment in shown)
    bad = api.client.get(preview_url, query_string={"kind": "cron", "cron": "*/0 * * *"}).get_data(as_text=True)
    assert "five fields" in bad

    form = {"csrf_token": api.csrf, "kind": "cron", "cron": "nonsense here * * *"}
    refused = api.client.post(f"/dashboard/integrations/{integration.id}/schedule", data=form)
    assert refused.status_code == 422 and "not a valid cron expression" in refused.get_data(as_text=True)
    form.update(kind="daily", time_of_day="07:30", cron="")
    saved = api.client.post(
        f"/dashboard/integrations/{integration.id}/schedule", data=form, headers={"HX-Request": "true"}
    )
    assert saved.status_code == 204 and "integrations:changed" in saved.headers["HX-Trigger"]
    page = api.client.get("/dashboard/integrations").get_data(as_text=True)
    assert "Daily at 07:30" in page


def test_settings_page_saves_a_time_zone_and_refuses_others(app, api, alice):
    page = api.client.get("/settings").get_data(as_text=True)
    assert "<option selected>UTC</option>" in page and "Europe/Berlin" in page
    refused = api.client.post("/settings", data={"csrf_token": api.csrf, "timezone": "Nowhere/Land"})
    assert refused.status_code == 422 and "Choose a time zone" in refused.get_data(as_text=True)
    assert api.client.post("/settings", data={"csrf_token": api.csrf, "timezone": "Europe/Berlin"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(User, alice.id).timezone == "Europe/Berlin"


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_sets_every_kind_and_refuses_nonsense(app, runner, alice):
    integration = bare_integration(alice)
    for text, shown in (
        ("*/30 * * * *", "Cron */30 * * * *"),
        ("15m", "Every 15 minutes"),
        ("hourly", "Hourly"),
        ("daily 09:00", "Daily at 09:00"),
        ("off", "Off"),
    ):
        result = runner.invoke(args=["crm", "schedule", "--integration", integration.id, text])
        assert result.exit_code == 0, result.output
        assert shown in result.output
        assert result.output.count("next:") == (0 if text == "off" else 3)
    result = runner.invoke(args=["crm", "schedule", "--integration", integration.id[:8], "61 * * * *"])
    assert result.exit_code == 2 and "not a valid cron expression" in result.output
    result = runner.invoke(args=["crm", "schedule", "--integration", integration.id, "--user", "bob@x.com", "off"])
    assert result.exit_code == 1


# --- the scheduler ---------------------------------------------------------------------------------


def test_three_scheduler_threads_start_each_due_slot_once(app):
    """200 integrations, mixed schedules, 3 instances ticking the same minutes for ten minutes."""
    app.config["CRM_HEALTH_CHECKS_PER_MINUTE"] = 0
    expected = many_schedules(200)
    recorder = Recorder()
    barrier = threading.Barrier(3)
    errors = []

    def instance(name):
        with app.app_context():
            try:
                for minute in range(MINUTES + 1):
                    barrier.wait(timeout=60)  # all three contend for the same slots
                    tick(now=T0 + timedelta(minutes=minute), instance=name, dispatch=recorder)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
                barrier.abort()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=instance, args=(f"s{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    want = expected_pairs(expected)
    assert sum(want.values()) > 300  # the mix really has many due slots
    assert Counter(recorder.starts) == want  # each due slot once, none missed
    assert ledger() == want
    claimed_by = Counter(row.instance for row in db.session.scalars(select(ScheduledSlot)))
    assert len(claimed_by) >= 2  # the instances really competed


def test_a_missed_stretch_runs_once_on_return(app, alice):
    integration = bare_integration(alice)
    service.save_schedule(alice, integration.id, Spec("cron", cron="* * * * *"), now=T0)
    recorder = Recorder()
    tick(now=T0 + timedelta(minutes=45), dispatch=recorder)  # every scheduler was down for 44 slots
    tick(now=T0 + timedelta(minutes=45, seconds=30), dispatch=recorder)
    assert recorder.starts == [(integration.id, T0 + timedelta(minutes=1))]
    assert service.schedule_for(integration).next_run_at == T0 + timedelta(minutes=46)


def test_a_slot_whose_previous_run_is_going_is_skipped_and_recorded(app, api, alice):
    integration = bare_integration(alice)
    service.save_schedule(alice, integration.id, Spec("every_15_minutes"), now=T0)
    running = SyncRun(user_id=alice.id, status="running", integration_id=integration.id, trigger="schedule")
    db.session.add(running)
    db.session.commit()
    recorder = Recorder()
    tick(now=T0 + timedelta(minutes=7), dispatch=recorder)
    assert recorder.starts == []
    schedule = service.schedule_for(integration)
    assert schedule.last_status == "skipped" and "still running" in schedule.last_message
    slot = db.session.scalars(select(ScheduledSlot)).one()
    assert (slot.slot_at, slot.status) == (datetime(2026, 11, 26, 9, 0), "skipped")
    page = api.client.get("/dashboard/integrations").get_data(as_text=True)
    assert "last slot skipped: A sync of these contacts was still running." in page

    running.status = "done"
    db.session.commit()
    tick(now=T0 + timedelta(minutes=22), dispatch=recorder)
    assert recorder.starts == [(integration.id, datetime(2026, 11, 26, 9, 15))]
    assert service.schedule_for(integration).last_status == "enqueued"


def test_an_inactive_integration_is_skipped(app, alice):
    integration = bare_integration(alice)
    service.save_schedule(alice, integration.id, Spec("hourly"), now=T0)
    integration.is_active = False
    db.session.commit()
    recorder = Recorder()
    tick(now=T0 + timedelta(hours=1), dispatch=recorder)
    assert recorder.starts == [] and service.schedule_for(integration).last_status == "skipped"


def wait_until(condition, seconds=30.0, step=0.05):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.expire_all()
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("gave up waiting")


class FakeClock:
    def __init__(self, now: datetime):
        self.moment = now
        self.lock = threading.Lock()

    def now(self) -> datetime:
        with self.lock:
            return self.moment

    def advance(self, **delta) -> None:
        with self.lock:
            self.moment += timedelta(**delta)


def test_the_embedded_scheduler_runs_a_15_minute_schedule(app, database_url, alice, allow_local, chatwoot):
    """What `make run` does (SCHEDULER_EMBEDDED=1): the web process's own thread starts the sync, and
    the contacts reach the CRM, with no other process. The clock is injected and moved 15 minutes."""
    from tests.test_operations import chatwoot_integration

    integration = chatwoot_integration(alice, chatwoot)
    contacts.add_contacts(alice, [{"name": "Ann", "email": "ann@example.com", "phone": None}])
    clock = FakeClock(T0)
    service.save_schedule(alice, integration.id, Spec("every_15_minutes"), now=T0)
    web = make_app(database_url, SCHEDULER_EMBEDDED=True, SCHEDULER_CLOCK=clock, SCHEDULER_TICK_SECONDS=0.05)
    use_outbound_policy(web, None, CRM_ALLOW_PRIVATE_HOSTS="127.0.0.1", CRM_ALLOW_INSECURE_HTTP=True)
    try:
        time.sleep(0.3)  # a few ticks before the slot: nothing is due yet
        assert db.session.scalar(select(func.count()).select_from(SyncRun)) == 0
        clock.advance(minutes=15)
        run = wait_until(lambda: db.session.scalars(select(SyncRun).where(SyncRun.trigger == "schedule")).first())
        assert run.integration_id == integration.id
        done = wait_until(lambda: (r := db.session.get(SyncRun, run.id)).finished and r)
        assert (done.status, done.created) == ("done", 1)
        account = chatwoot.account
        assert [c["email"] for c in account.contacts.values()] == ["ann@example.com"]
        time.sleep(0.3)  # more ticks in the same slot start nothing more
        assert db.session.scalar(select(func.count()).select_from(SyncRun)) == 1
    finally:
        web.extensions["crm_scheduler_stop"].set()
    assert start_embedded(make_app(database_url)) is None  # off unless switched on


# --- separate processes, one killed and replaced -------------------------------------------------


def spawn(database_url: str, workdir: Path, name: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.scheduler_process", database_url, str(workdir), name, T0.isoformat()],
        cwd=ROOT,
        env=env,
    )


def acked(workdir: Path, name: str) -> int:
    try:
        return int((workdir / f"ack-{name}").read_text() or -1)
    except (FileNotFoundError, ValueError):
        return -1


def test_scheduler_processes_with_one_killed_and_replaced_start_each_slot_once(app, database_url, tmp_path):
    """Three `flask crm scheduler`-like processes on one database (PostgreSQL with TEST_DATABASE_URL),
    the clock fast-forwarded minute by minute; one is SIGKILLed after minute 4 and a fresh one takes
    its place. Each process logs the syncs it started to its own file: every due slot appears once."""
    expected = many_schedules(200)
    workdir = tmp_path / "schedulers"
    workdir.mkdir()
    clock = workdir / "clock"
    clock.write_text("0")
    live = {name: spawn(database_url, workdir, name) for name in ("a", "b", "c")}
    try:
        for minute in range(MINUTES + 1):
            clock.write_text(str(minute))
            deadline = time.monotonic() + 120
            while any(acked(workdir, name) < minute for name in live):
                assert time.monotonic() < deadline, "a scheduler process stopped answering"
                assert all(process.poll() is None for process in live.values())
                time.sleep(0.02)
            if minute == 4:
                live["b"].send_signal(signal.SIGKILL)
                live["b"].wait()
                del live["b"]
                live["d"] = spawn(database_url, workdir, "d")  # the replacement
    finally:
        clock.write_text("stop")
        for process in live.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    starts = Counter()
    for log in workdir.glob("started-*"):
        for line in log.read_text().splitlines():
            integration_id, slot = line.split()
            starts[(integration_id, datetime.fromisoformat(slot))] += 1
    want = expected_pairs(expected)
    assert starts == want
    assert ledger() == want
    assert {path.name for path in workdir.glob("started-*")} >= {"started-a", "started-c", "started-d"}


def test_schedules_of_a_deleted_integration_go_with_it(app, alice):
    integration = bare_integration(alice)
    service.save_schedule(alice, integration.id, Spec("hourly"), now=T0)
    tick(now=T0 + timedelta(hours=1), dispatch=Recorder())
    db.session.delete(integration)
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(SyncSchedule)) == 0
    assert db.session.scalar(select(func.count()).select_from(ScheduledSlot)) == 0


def test_cli_scheduler_once_runs_one_tick(app, runner):
    app.config["CRM_HEALTH_CHECKS_PER_MINUTE"] = 0
    result = runner.invoke(args=["crm", "scheduler", "--once"])
    assert result.exit_code == 0, result.output
    assert "0 sync(s) started, 0 skipped, 0 failed; 0 connection check(s)" in result.output


def test_one_tick_drains_more_due_rows_than_one_batch(app, alice, monkeypatch):
    from crm.schedules import scheduler

    monkeypatch.setattr(scheduler, "BATCH", 7)
    for number in range(30):
        integration = bare_integration(alice, f"I{number}")
        service.save_schedule(alice, integration.id, Spec("hourly"), now=T0)
    recorder = Recorder()
    tick(now=T0 + timedelta(hours=1), dispatch=recorder)
    assert len(recorder.starts) == 30 and len(set(recorder.starts)) == 30
