"""Does a slow CRM slow down other users' pages? gunicorn with the default gunicorn.conf.py; 12
logged-in clients run Test Connection against a server that drips one byte every 0.5 s, again and
again, while another client times `GET /login`. Prints the login latency without and with the
attack (and their ratio), and how long each attack call was held.

Run: .venv/bin/python bench/drip_login.py [--attackers 12] [--seconds 15] [--mode body|headers]
     [--slots N]  (CRM_WEB_CALL_SLOTS; default: the app's own default)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.drip import DripServer  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def register(port: int) -> tuple[str, str]:
    """A new user through the real pages: (session cookie, CSRF token)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/register")
    response = connection.getresponse()
    page = response.read().decode()
    cookie = response.getheader("Set-Cookie").split(";")[0]
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    body = urlencode(
        {
            "email": f"drip{time.time_ns()}@example.com",
            "password": "benchmark password",
            "confirm": "benchmark password",
            "csrf_token": token,
        }
    )
    headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    connection.request("POST", "/register", body, headers)
    response = connection.getresponse()
    response.read()
    cookie = response.getheader("Set-Cookie").split(";")[0]
    connection.request("GET", "/dashboard/integrations", headers={"Cookie": cookie})
    response = connection.getresponse()
    page = response.read().decode()
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    cookie = (response.getheader("Set-Cookie") or cookie).split(";")[0]  # the session now holds the token
    return cookie, token


def login_latency(port: int) -> float:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", "/login")
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 200, response.status
    return time.perf_counter() - started


def sample_logins(port: int, seconds: float, every: float = 0.25) -> list[float]:
    stop = time.perf_counter() + seconds
    latencies = []
    while time.perf_counter() < stop:
        latencies.append(login_latency(port))
        time.sleep(every)
    return latencies


def attack(port: int, cookie: str, token: str, drip_url: str, stop: threading.Event, log: list) -> None:
    body = json.dumps(
        {
            "type": "CRM",
            "configuration": {
                "provider": "CHATWOOT",
                "baseUrl": drip_url,
                "accountId": 1,
                "apiKey": "t" * 24,
                "features": {"autoCreateInboxes": False, "autoCreateBots": False, "syncContacts": False},
            },
        }
    )
    headers = {"Cookie": cookie, "X-CSRFToken": token, "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.is_set():
        started = time.perf_counter()
        connection.request("POST", "/api/dashboard/integrations/test", body, headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status == 200:
            outcome = json.loads(answer).get("outcome")
        else:
            outcome = f"HTTP {response.status} {answer[:120]!r}"
        log.append((outcome, time.perf_counter() - started))


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"n={len(ordered)} median={statistics.median(ordered) * 1000:.0f} ms "
        f"p95={p95 * 1000:.0f} ms max={ordered[-1] * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attackers", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--mode", choices=("body", "headers"), default="body")
    parser.add_argument("--slots", type=int, default=None, help="CRM_WEB_CALL_SLOTS (default: the app's)")
    args = parser.parse_args()

    database = Path(tempfile.mkdtemp()) / "drip.sqlite3"
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": "bench",
        "INTEGRATION_ENCRYPTION_KEY": "ab" * 32,
        "REGISTER_LIMIT": "1000 per minute",
        "TEST_CONNECTION_LIMIT": "100000 per minute",
        "CRM_ALLOW_PRIVATE_HOSTS": "127.0.0.1",  # the drip server runs on this machine
        "CRM_ALLOW_INSECURE_HTTP": "1",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
    }
    for name in ("GUNICORN_WORKERS", "GUNICORN_THREADS"):  # the default config, as shipped
        env.pop(name, None)
    if args.slots is not None:
        env["CRM_WEB_CALL_SLOTS"] = str(args.slots)
    flask = str(Path(sys.executable).with_name("flask"))
    subprocess.run(
        [flask, "db", "upgrade"], env={**env, "FLASK_APP": "app.py"}, cwd=ROOT, check=True, capture_output=True
    )
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py", "app:app"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                login_latency(port)
                break
            except OSError:
                time.sleep(0.1)
        cookie, token = register(port)
        for _ in range(5):  # warm every worker
            login_latency(port)
        baseline = sample_logins(port, 3)

        stop = threading.Event()
        log: list[tuple[str, float]] = []
        with DripServer(args.mode, interval=0.5) as drip:
            attackers = [
                threading.Thread(target=attack, args=(port, cookie, token, drip.url(), stop, log), daemon=True)
                for _ in range(args.attackers)
            ]
            for thread in attackers:
                thread.start()
            time.sleep(1.0)  # let the attack take hold first
            under_attack = sample_logins(port, args.seconds)
            stop.set()
            for thread in attackers:
                thread.join(30)
            drip_connections = drip.connections

        ratio = statistics.median(under_attack) / statistics.median(baseline)
        print(f"gunicorn.conf.py defaults; {args.attackers} attackers, drip mode {args.mode!r}, 1 byte / 0.5 s")
        print(f"GET /login, no attack:    {summary(baseline)}")
        print(f"GET /login, under attack: {summary(under_attack)}")
        print(f"median ratio under attack / no attack: {ratio:.2f}")
        outcomes = Counter(outcome for outcome, _ in log)
        held = [seconds for outcome, seconds in log if outcome == "timeout"]
        print(f"attack answers: {dict(outcomes)}; drip connections opened: {drip_connections}")
        if held:
            print(f"timed-out attack calls held a thread for at most {max(held):.2f} s (deadline 10 s)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
