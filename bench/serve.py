"""Measure gunicorn worker/thread settings on this machine: requests per second and latency of a
logged-in dashboard page (a template, the session, a database query) under concurrent load.

Run: .venv/bin/python bench/serve.py [--seconds 8] [--connections 16]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [(1, 1), (2, 1), (2, 4), (3, 4), (4, 1), (4, 4), (6, 2)]


def session_cookie(port: int) -> str:
    """Register a user through the real pages and answer its session cookie."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("GET", "/register")
    response = connection.getresponse()
    page = response.read().decode()
    cookie = response.getheader("Set-Cookie").split(";")[0]
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    body = urlencode(
        {
            "email": f"bench{time.time_ns()}@example.com",
            "password": "benchmark password",
            "confirm": "benchmark password",
            "csrf_token": token,
        }
    )
    connection.request(
        "POST", "/register", body, {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    )
    response = connection.getresponse()
    response.read()
    return response.getheader("Set-Cookie").split(";")[0]


def load(port: int, cookie: str, seconds: float, connections: int) -> tuple[float, float, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        mine = []
        while time.perf_counter() < stop:
            started = time.perf_counter()
            connection.request("GET", "/dashboard/integrations", headers={"Cookie": cookie})
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    return len(latencies) / seconds, statistics.median(latencies) * 1000, latencies[int(len(latencies) * 0.95)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    database = Path(tempfile.mkdtemp()) / "serve.sqlite3"
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": "bench",
        "INTEGRATION_ENCRYPTION_KEY": "ab" * 32,
        "REGISTER_LIMIT": "1000 per minute",
    }
    flask = str(Path(sys.executable).with_name("flask"))
    subprocess.run(
        [flask, "db", "upgrade"], env={**env, "FLASK_APP": "app.py"}, cwd=ROOT, check=True, capture_output=True
    )
    print(f"{'workers':>7} {'threads':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for workers, threads in CONFIGS:
        port = 8100 + workers * 10 + threads
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py", "app:app"],
            env={
                **env,
                "GUNICORN_BIND": f"127.0.0.1:{port}",
                "GUNICORN_WORKERS": str(workers),
                "GUNICORN_THREADS": str(threads),
            },
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/login")
                    break
                except OSError:
                    time.sleep(0.1)
            cookie = session_cookie(port)
            rps, p50, p95 = load(port, cookie, args.seconds, args.connections)
            print(f"{workers:>7} {threads:>7} {rps:>8.0f} {p50:>8.1f} {p95:>8.1f}", flush=True)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
