"""How heavy is the dashboard? Ratios against a bare route of the same app, in the same run.

In-process with Flask's test client (no network, no server): a logged-in user with N Chatwoot
integrations, then for each route the requests per second, the ratio to a bare route, the HTML
size per card, the SQL statements per request and the secrets opened per request.

Goals (issue 11): dashboard ≥ 0.25× the bare route with 50 integrations, API list ≥ 0.4×,
HTML ≤ 1.2 KB per card, SQL statements the same from 1 to 500 integrations, 0 decrypts.

Run: .venv/bin/python bench/dashboard.py [--seconds 3] [--integrations 50]
     .venv/bin/python bench/dashboard.py --gunicorn   # the same app served by gunicorn (default config:
                                                       # one sync worker), loaded over HTTP by threads
"""

from __future__ import annotations

import argparse
import contextvars
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import TestConfig  # noqa: E402
from crm import create_app  # noqa: E402
from crm.auth.guards import public  # noqa: E402
from crm.auth.service import create_user  # noqa: E402
from crm.crypto import generate_key  # noqa: E402
from crm.extensions import db  # noqa: E402
from crm.integrations import service  # noqa: E402
from crm.models import Integration  # noqa: E402

DASHBOARD = "/dashboard/integrations"
API_LIST = "/api/dashboard/integrations"
BARE = "/bench/bare"


class Counters:
    def __init__(self):
        self.statements = 0
        self.decrypts = 0


def make_app(database: Path, counters: Counters | None = None, key: str | None = None):
    app = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
            "INTEGRATION_ENCRYPTION_KEY": key or generate_key(),
            "TESTING": False,
        },
    )

    @app.get(BARE)
    @public
    def bare():
        return "ok"

    if counters is None:
        return app
    ring = app.extensions["crm_keyring"]
    opened = ring.open

    def counting_open(*args, **kwargs):
        counters.decrypts += 1
        return opened(*args, **kwargs)

    ring.open = counting_open  # instrumentation only: counts, then opens as before
    with app.app_context():
        db.create_all()

        @event.listens_for(db.engine, "before_cursor_execute")
        def count(*_args):
            counters.statements += 1

    return app


def add_integrations(owner, how_many: int) -> None:
    """Rows as the service writes them (sealed secret, hints), without provisioning's network calls."""
    provider = service.get_provider("CHATWOOT")
    for number in range(how_many):
        integration = Integration(id=str(uuid.uuid4()), user_id=owner.id, provider="CHATWOOT", is_active=True)
        values = {
            "name": f"Support desk {number}",
            "base_url": f"https://chat{number}.example.com",
            "account_id": number + 1,
            "api_key": f"cw-token-{number:04d}-abcdefghijkl",
            "auto_create_inboxes": True,
            "auto_create_bots": False,
            "sync_contacts": True,
        }
        service._apply(integration, provider, values)
        integration.is_primary = number == 0
        db.session.add(integration)
    db.session.commit()


class FreshContextClient(FlaskClient):
    """Each request in an empty context, as under a real server: its own app context and DB session."""

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


def logged_in_client(app, owner):
    app.test_client_class = FreshContextClient
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = owner.session_token
        session["_fresh"] = True
    return client


def rate(client, url: str, seconds: float) -> float:
    client.get(url)  # warm up (templates compiled, connections open)
    count, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        count += 1
    return count / seconds


def per_request(client, url: str, counters: Counters) -> tuple[int, int, int]:
    """(bytes, SQL statements, decrypts) of one request."""
    counters.statements = counters.decrypts = 0
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(response.data), counters.statements, counters.decrypts


def served_app():
    """For gunicorn: the app on the database main() prepared (BENCH_DATABASE, BENCH_KEY)."""
    return make_app(Path(os.environ["BENCH_DATABASE"]), key=os.environ["BENCH_KEY"])


def http_rate(port: int, url: str, cookie: str | None, seconds: float, threads: int = 4) -> float:
    """Requests per second: with wrk when installed (apt-get install wrk), else Python threads (whose
    own cost caps the bare route, so the ratios then flatter the heavier routes)."""
    if shutil.which("wrk"):
        command = ["wrk", "-t2", "-c8", f"-d{max(1, round(seconds))}s", f"http://127.0.0.1:{port}{url}"]
        if cookie:
            command[1:1] = ["-H", f"Cookie: {cookie}"]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        if "Non-2xx" in output:
            raise SystemExit(f"{url} answered errors:\n{output}")
        return float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))
    counts = []
    stop = time.perf_counter() + seconds

    def worker() -> None:
        done = 0
        headers = {"Cookie": cookie} if cookie else {}
        while time.perf_counter() < stop:
            connection = http.client.HTTPConnection("127.0.0.1", port)  # sync workers close each one
            connection.request("GET", url, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, (url, response.status)
            connection.close()
            done += 1
        counts.append(done)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / seconds


def over_gunicorn(args) -> None:
    folder = Path(tempfile.mkdtemp())
    database, key = folder / "bench.sqlite3", generate_key()
    app = make_app(database, key=key)
    with app.app_context():
        db.create_all()
        owner = create_user("bench@example.com", "benchmark password")
        add_integrations(owner, args.integrations)
        session = {"_user_id": owner.session_token, "_fresh": True}
        cookie = f"{app.config['SESSION_COOKIE_NAME']}=" + app.session_interface.get_signing_serializer(app).dumps(
            session
        )
    port = 8790
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-b", f"127.0.0.1:{port}", "bench.dashboard:served_app()"],
        env={**os.environ, "BENCH_DATABASE": str(database), "BENCH_KEY": key},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", BARE)
                break
            except OSError:
                time.sleep(0.1)
        bare = http_rate(port, BARE, None, args.seconds)
        bare_user = http_rate(port, BARE, cookie, args.seconds)
        tool = "wrk -t2 -c8" if shutil.which("wrk") else "Python threads"
        print(f"{args.integrations} integrations, {args.seconds:g} s per route, gunicorn (1 sync worker), {tool}")
        print(f"{'route':34} {'req/s':>8} {'÷bare':>7} {'÷bare+user':>10}")
        print(f"{BARE + ' (no session)':34} {bare:8.0f} {1:7.2f}x")
        print(f"{BARE + ' (logged in)':34} {bare_user:8.0f} {bare_user / bare:7.2f}x {1:10.2f}x")
        for url in (DASHBOARD, API_LIST):
            speed = http_rate(port, url, cookie, args.seconds)
            print(f"{url:34} {speed:8.0f} {speed / bare:7.2f}x {speed / bare_user:10.2f}x")
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--integrations", type=int, default=50)
    parser.add_argument("--gunicorn", action="store_true", help="serve with gunicorn and load it over HTTP")
    args = parser.parse_args()
    if args.gunicorn:
        over_gunicorn(args)
        return

    counters = Counters()
    with tempfile.TemporaryDirectory() as folder:
        app = make_app(Path(folder) / "bench.sqlite3", counters)
        with app.app_context():
            owner = create_user("bench@example.com", "benchmark password")
            add_integrations(owner, args.integrations)
            client = logged_in_client(app, owner)
            html = client.get(DASHBOARD).get_data(as_text=True)
            cards = html.count('class="integration-card"')
            assert cards == args.integrations, f"{cards} cards on the page"

            # Two bare routes: without a session (the app's hooks only), and with the session of the
            # user (its cookie opened and the user loaded: the floor of any page a user sees).
            anonymous = app.test_client()
            bare = rate(anonymous, BARE, args.seconds)
            bare_user = rate(client, BARE, args.seconds)
            print(f"{args.integrations} integrations, {args.seconds:g} s per route, in-process (Flask test client)")
            print(f"{'route':34} {'req/s':>8} {'÷bare':>7} {'÷bare+user':>10} {'bytes':>8} {'SQL':>4} {'decrypts':>8}")
            print(f"{BARE + ' (no session)':34} {bare:8.0f} {1:7.2f}x")
            print(f"{BARE + ' (logged in)':34} {bare_user:8.0f} {bare_user / bare:7.2f}x {1:10.2f}x")
            for url in (DASHBOARD, API_LIST):
                speed = rate(client, url, args.seconds)
                size, statements, decrypts = per_request(client, url, counters)
                print(
                    f"{url:34} {speed:8.0f} {speed / bare:7.2f}x {speed / bare_user:10.2f}x"
                    f" {size:8d} {statements:4d} {decrypts:8d}"
                )
            print(f"HTML per card: {len(html.encode()) / cards / 1024:.2f} KB (page {len(html.encode())} bytes)")

            print("SQL statements per request by number of integrations:")
            for target in (1, 50, 500):
                db.session.execute(db.delete(Integration).where(Integration.user_id == owner.id))
                db.session.commit()
                add_integrations(owner, target)
                page = per_request(client, DASHBOARD, counters)
                api = per_request(client, API_LIST, counters)
                print(
                    f"  {target:4d}: dashboard {page[1]} statements, {page[2]} decrypts;"
                    f" API list {api[1]} statements, {api[2]} decrypts"
                )


if __name__ == "__main__":
    main()
