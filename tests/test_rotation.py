"""The key-rotation drill: old values keep working, new ones use the new key, rotation converts all,
is idempotent and resumable, the old key can then go, and the app keeps serving meanwhile."""

import json
import threading

import pytest

from crm.auth.service import create_user
from crm.crypto import generate_key, key_id
from crm.extensions import db
from crm.integrations import service
from crm.keys import key_status, rotate
from crm.models import AuditEvent, Integration
from crm.net import client_from_config
from tests.conftest import PUBLIC_IP, FakeDNS, make_app

OLD, NEW = generate_key(), generate_key()
OLD_KID, NEW_KID = key_id(bytes.fromhex(OLD)), key_id(bytes.fromhex(NEW))
SECRETS = {}


def app_with(database_url, key, old=""):
    app = make_app(database_url, INTEGRATION_ENCRYPTION_KEY=key, INTEGRATION_ENCRYPTION_OLD_KEYS=old)
    app.extensions["crm_http"] = client_from_config(app.config, FakeDNS({"chat.example.com": [PUBLIC_IP]}))
    return app


def everything_decrypts():
    for integration in db.session.scalars(db.select(Integration)):
        live = service.live_configuration(integration.owner, integration, purpose="rotation drill")
        expected = SECRETS[integration.id]
        assert (live.get("api_key") or live.get("credentials")) == expected


@pytest.fixture
def seeded(database_url):
    """Twelve integrations of three users, sealed under the old key only."""
    app = app_with(database_url, OLD)
    with app.app_context():
        db.drop_all()
        db.create_all()
        for u in range(3):
            owner = create_user(f"user{u}@example.com", "a long password")
            for n in range(4):
                if n % 2:
                    credentials = {"clientId": f"id-{u}-{n}", "clientSecret": f"secret-{u}-{n}-xxxxxxxx"}
                    integration = service.create_integration(
                        owner,
                        "CUSTOM",
                        {
                            "name": f"c{n}",
                            "crm_name": "Acme",
                            "base_url": "https://chat.example.com",
                            "auth_type": "OAUTH2",
                            "token_url": "https://chat.example.com/token",
                            "credentials": json.dumps(credentials),
                        },
                    )
                    SECRETS[integration.id] = credentials
                else:
                    token = f"token-{u}-{n}-abcdefghijkl"
                    integration = service.create_integration(
                        owner,
                        "CHATWOOT",
                        {
                            "name": f"w{n}",
                            "base_url": "https://chat.example.com",
                            "account_id": 1,
                            "api_key": token,
                            "auto_create_inboxes": False,
                            "auto_create_bots": False,
                        },
                    )
                    SECRETS[integration.id] = token
        assert key_status() == {OLD_KID: 18}
    yield database_url
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def test_rotation_drill(seeded):
    app = app_with(seeded, NEW, OLD)
    with app.app_context():
        everything_decrypts()  # old values still read
        owner = db.session.scalars(db.select(Integration)).first().owner
        fresh = service.create_integration(
            owner,
            "CHATWOOT",
            {
                "name": "new",
                "base_url": "https://chat.example.com",
                "account_id": 1,
                "api_key": "brand-new-token-1234",
                "auto_create_inboxes": False,
                "auto_create_bots": False,
            },
        )
        SECRETS[fresh.id] = "brand-new-token-1234"
        assert fresh.configuration["api_key"].split(":")[2] == NEW_KID  # new writes use the new key
        assert key_status() == {OLD_KID: 18, NEW_KID: 1}

        partial = rotate(batch_size=3, stop_after_batches=2)  # a run stopped midway (batches are transactions)
        assert not partial.finished and partial.batches == 2 and 5 <= partial.rows_changed <= 6
        status = key_status()
        assert status[NEW_KID] == 1 + partial.values_resealed
        assert status[OLD_KID] == 18 - partial.values_resealed > 0
        everything_decrypts()

        resumed = rotate(batch_size=3)
        assert resumed.finished
        assert key_status() == {NEW_KID: 19}
        again = rotate(batch_size=3)
        assert (again.rows_changed, again.values_resealed) == (0, 0)  # a second run changes nothing
        assert (
            db.session.scalar(
                db.select(db.func.count()).select_from(AuditEvent).where(AuditEvent.action == "key_rotated")
            )
            == 12
        )

    without_old = app_with(seeded, NEW)
    with without_old.app_context():
        everything_decrypts()  # the old key is gone and nothing fails


def test_the_app_serves_during_a_rotation(seeded):
    app = app_with(seeded, NEW, OLD)
    errors: list[BaseException] = []
    done = threading.Event()
    operations = {"reads": 0, "writes": 0}

    def reader_writer(number: int):
        with app.app_context():
            try:
                while not done.is_set():
                    for integration in db.session.scalars(db.select(Integration)).all():
                        service.live_configuration(integration.owner, integration, purpose="drill read")
                        operations["reads"] += 1
                    integration = db.session.scalars(db.select(Integration).offset(number).limit(1)).first()
                    service.update_integration(integration.owner, integration.id, name=f"renamed {number}")
                    operations["writes"] += 1
                    db.session.expire_all()
            except BaseException as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=reader_writer, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    try:
        with app.app_context():
            for _ in range(3):  # several passes, so the rotation overlaps the traffic
                rotate(batch_size=2)
            report = rotate(batch_size=2)
            assert report.rows_changed == 0
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert operations["reads"] > 0 and operations["writes"] > 0
    with app.app_context():
        everything_decrypts()
        rotate()
        assert set(key_status()) == {NEW_KID}


def test_cli_key_status_and_rotate(seeded):
    app = app_with(seeded, NEW, OLD)
    runner = app.test_cli_runner()
    status = runner.invoke(args=["crm", "key-status"])
    assert f"{OLD_KID}      18 values  (old, decrypt only)" in status.output
    assert "need `flask crm rotate-key`" in status.output
    rotated = runner.invoke(args=["crm", "rotate-key", "--batch-size", "5"])
    assert rotated.exit_code == 0 and "Re-encrypted 18 values in 12 integrations" in rotated.output
    status = runner.invoke(args=["crm", "key-status"])
    assert f"{NEW_KID}      18 values  (current)" in status.output
    assert "old keys may be removed" in status.output


def test_a_rotation_killed_midway_completes_when_run_again(database_url):
    """A real crash: `flask crm rotate-key --batch-size 1` in another process, killed with SIGKILL."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    app = app_with(database_url, OLD)
    with app.app_context():
        db.drop_all()
        db.create_all()
        owner = create_user("many@example.com", "a long password")
        for n in range(400):
            service.create_integration(
                owner,
                "CHATWOOT",
                {
                    "name": f"w{n}",
                    "base_url": "https://chat.example.com",
                    "account_id": 1,
                    "api_key": f"token-{n}-abcdefghijkl",
                    "auto_create_inboxes": False,
                    "auto_create_bots": False,
                },
            )
        db.session.remove()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "x",
        "INTEGRATION_ENCRYPTION_KEY": NEW,
        "INTEGRATION_ENCRYPTION_OLD_KEYS": OLD,
        "FLASK_APP": str(root / "app.py"),
    }
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("flask")), "crm", "rotate-key", "--batch-size", "1"],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rotated_app = app_with(database_url, NEW, OLD)
    with rotated_app.app_context():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            count = db.session.scalar(
                db.select(db.func.count()).select_from(AuditEvent).where(AuditEvent.action == "key_rotated")
            )
            db.session.rollback()
            if count >= 40:
                break
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        status = key_status()
        assert status.get(OLD_KID, 0) > 0 and status.get(NEW_KID, 0) > 0, "the crash must land midway"
        report = rotate(batch_size=50)
        assert report.finished
        assert key_status() == {NEW_KID: 400}
        assert rotate().rows_changed == 0
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


LOST = generate_key()  # a key nobody configured any more
LOST_KID = key_id(bytes.fromhex(LOST))


def chatwoot_values(name, token):
    return {
        "name": name,
        "base_url": "https://chat.example.com",
        "account_id": 1,
        "api_key": token,
        "auto_create_inboxes": False,
        "auto_create_bots": False,
    }


def oauth_values(name, client_id, client_secret):
    return {
        "name": name,
        "crm_name": "Acme",
        "base_url": "https://chat.example.com",
        "auth_type": "OAUTH2",
        "token_url": "https://chat.example.com/token",
        "credentials": json.dumps({"clientId": client_id, "clientSecret": client_secret}),
    }


def stored_configuration(integration_id):
    db.session.expire_all()
    return json.loads(json.dumps(db.session.get(Integration, integration_id).configuration))


def test_rotation_keeps_and_lists_values_it_cannot_read(database_url):
    """Values under a key no longer configured: rotation keeps them byte for byte (top-level and
    inside JSON credentials), finishes the rest, lists each one, exits 1; key-status counts them."""
    from crm.crypto import Binding, Keyring

    lost_app = app_with(database_url, LOST)
    with lost_app.app_context():
        db.drop_all()
        db.create_all()
        owner = create_user("lost@example.com", "a long password")
        lost_token = service.create_integration(owner, "CHATWOOT", chatwoot_values("w-lost", "lost-token-abcdefghij"))
        lost_oauth = service.create_integration(owner, "CUSTOM", oauth_values("c-lost", "id-lost", "secret-lost-xxxx"))
        ids = {"token": lost_token.id, "oauth": lost_oauth.id, "user": owner.id}
    old_app = app_with(database_url, OLD)
    with old_app.app_context():
        owner = db.session.get(Integration, ids["token"]).owner
        ids["good"] = service.create_integration(owner, "CHATWOOT", chatwoot_values("w-ok", "good-token-abcdefgh")).id
        mixed = service.create_integration(owner, "CUSTOM", oauth_values("c-mixed", "id-mixed", "secret-mixed-xxxx"))
        ids["mixed"] = mixed.id
        # One entry of the JSON credentials sealed under the lost key, the other under the old one.
        configuration = dict(mixed.configuration)
        credentials = dict(configuration["credentials"])
        credentials["clientId"] = Keyring(bytes.fromhex(LOST)).seal(
            "id-mixed", Binding(owner.id, mixed.id, "credentials.clientId")
        )
        configuration["credentials"] = credentials
        mixed.configuration = configuration
        db.session.commit()

    app = app_with(database_url, NEW, OLD)
    runner = app.test_cli_runner()
    with app.app_context():
        before = {name: stored_configuration(ids[name]) for name in ("token", "oauth", "mixed")}
        assert key_status() == {"unreadable": 4, OLD_KID: 2}
    status = runner.invoke(args=["crm", "key-status"])
    assert status.exit_code == 0
    assert "unreadable      4 values" in status.output
    assert LOST_KID not in status.output  # no row for the lost key: those values count as unreadable

    rotated = runner.invoke(args=["crm", "rotate-key", "--batch-size", "2"])
    assert rotated.exit_code == 1, rotated.output
    assert rotated.exception is None or isinstance(rotated.exception, SystemExit)
    assert "Traceback" not in rotated.output and "KeyError" not in rotated.output
    assert "Re-encrypted 2 values in 2 integrations" in rotated.output
    assert "4 values can't be read" in rotated.output
    for integration_id, field in [
        (ids["token"], "api_key"),
        (ids["oauth"], "credentials.clientId"),
        (ids["oauth"], "credentials.clientSecret"),
        (ids["mixed"], "credentials.clientId"),
    ]:
        assert f"integration {integration_id}  field {field}  key id {LOST_KID}" in rotated.output

    with app.app_context():
        assert stored_configuration(ids["token"]) == before["token"]  # untouched, byte for byte
        assert stored_configuration(ids["oauth"]) == before["oauth"]
        mixed_now = stored_configuration(ids["mixed"])
        assert mixed_now["credentials"]["clientId"] == before["mixed"]["credentials"]["clientId"]  # kept, not dropped
        assert mixed_now["credentials"]["clientSecret"].split(":")[2] == NEW_KID  # the readable one moved on
        good = service.live_configuration(
            db.session.get(Integration, ids["good"]).owner, db.session.get(Integration, ids["good"])
        )
        assert good["api_key"] == "good-token-abcdefgh"
        assert key_status() == {"unreadable": 4, NEW_KID: 2}

    again = runner.invoke(args=["crm", "rotate-key"])
    assert again.exit_code == 1 and "Re-encrypted 0 values" in again.output  # still listed, nothing changed

    # Once the lost key is configured again, the kept values read and rotate like any other.
    found = app_with(database_url, NEW, f"{OLD},{LOST}")
    with found.app_context():
        report = rotate()
        assert report.unreadable == [] and report.values_resealed == 4
        assert key_status() == {NEW_KID: 6}
        mixed = db.session.get(Integration, ids["mixed"])
        assert service.live_configuration(mixed.owner, mixed)["credentials"]["clientId"] == "id-mixed"
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def test_rotation_covers_webhook_secrets(database_url):
    """A webhook endpoint's sealed secrets (Chatwoot's webhook secret, Pipedrive's Basic credentials)
    are counted and re-sealed with the rest, so the old key can go without losing them."""
    from crm.webhooks import service as webhooks

    app = app_with(database_url, OLD)
    with app.app_context():
        db.drop_all()
        db.create_all()
        owner = create_user("hooks@example.com", "a long password")
        integration = service.create_integration(
            owner,
            "CHATWOOT",
            {"name": "w", "base_url": "https://chat.example.com", "account_id": 1, "api_key": "token-abcdefghijkl",
             "auto_create_inboxes": False, "auto_create_bots": False},
        )  # fmt: skip
        endpoint = webhooks.endpoint_of(integration)
        endpoint.secret = webhooks.seal(endpoint, "secret", "chatwoot-webhook-secret")
        db.session.commit()
        assert key_status() == {OLD_KID: 2}
    app = app_with(database_url, NEW, OLD)
    with app.app_context():
        assert rotate().finished
        assert key_status() == {NEW_KID: 2}
    app = app_with(database_url, NEW)  # the old key is gone
    with app.app_context():
        endpoint = webhooks.endpoint_of(db.session.scalars(db.select(Integration)).one(), create=False)
        assert webhooks.opened(endpoint, "secret") == "chatwoot-webhook-secret"
        db.session.remove()
        db.drop_all()
