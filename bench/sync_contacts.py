"""Benchmark: sync 10,000 contacts to a local Chatwoot-compatible server.

Prints, from one run:
- the server's ceiling: a tight keep-alive loop of contact creates (raw http.client, the same number
  of connections as the sync uses), i.e. what the server can answer at most;
- a naive loop: one request at a time, a new connection each (what a plain `requests.post` loop does);
- our sync: wall time, requests sent, requests per second, and its ratio to both;
- a second, unchanged run: its time and request count (the target is 0 requests).

The fake server runs in its own process so that it does not share a GIL with the client.
Run: .venv/bin/python bench/sync_contacts.py [--contacts 10000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import TestConfig  # noqa: E402
from crm import create_app  # noqa: E402
from crm.auth.service import create_user  # noqa: E402
from crm.contacts.service import add_contacts  # noqa: E402
from crm.crypto import generate_key  # noqa: E402
from crm.extensions import db  # noqa: E402
from crm.integrations import service  # noqa: E402
from crm.models import SyncRun  # noqa: E402
from crm.operations.sync import run_sync  # noqa: E402


def start_fake(latency_ms: float) -> tuple[subprocess.Popen, int, str, int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.chatwoot", "--delay-ms", str(latency_ms)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    port, token, account = process.stdout.readline().split()
    return process, int(port), token, int(account)


def stats(port: int) -> dict:
    return requests.get(f"http://127.0.0.1:{port}/__stats", timeout=10).json()


def ceiling(port: int, token: str, account: int, total: int, connections: int) -> float:
    """Requests per second of a tight keep-alive loop of creates, `connections` at a time."""
    per_thread = total // connections
    path = f"/api/v1/accounts/{account}/contacts"
    headers = {"api_access_token": token, "Content-Type": "application/json", "Accept": "application/json"}

    def loop(worker: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        for i in range(per_thread):
            body = json.dumps({"name": f"Ceiling {worker}-{i}", "identifier": f"ceiling-{worker}-{i}"})
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read()
        connection.close()

    threads = [threading.Thread(target=loop, args=(w,)) for w in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return per_thread * connections / (time.perf_counter() - started)


def naive(port: int, token: str, account: int, total: int) -> float:
    """Requests per second of one request at a time, each on a new connection."""
    url = f"http://127.0.0.1:{port}/api/v1/accounts/{account}/contacts"
    started = time.perf_counter()
    for i in range(total):
        requests.post(
            url,
            json={"name": f"Naive {i}", "identifier": f"naive-{i}"},
            headers={"api_access_token": token},
            timeout=10,
        )
    return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--server-latency-ms",
        type=float,
        default=5.0,
        help="how long the fake takes per answer (a real Chatwoot takes tens of ms to insert a contact)",
    )
    args = parser.parse_args()

    process, port, token, account = start_fake(args.server_latency_ms)
    database = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    app = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
            "INTEGRATION_ENCRYPTION_KEY": generate_key(),
            "CRM_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
            "CRM_ALLOW_INSECURE_HTTP": True,
            "CRM_SYNC_CONCURRENCY": args.concurrency,
            "CRM_MAX_INFLIGHT_PER_HOST": args.concurrency,
        },
    )
    try:
        with app.app_context():
            db.create_all()
            user = create_user("bench@example.com", "benchmark password")
            service.create_integration(
                user,
                "CHATWOOT",
                {
                    "name": "Bench",
                    "base_url": f"http://127.0.0.1:{port}",
                    "account_id": account,
                    "api_key": token,
                    "auto_create_inboxes": False,
                    "auto_create_bots": False,
                },
            )
            add_contacts(
                user,
                (
                    {"name": f"Contact {i}", "email": f"contact{i}@example.com", "phone": f"+4930{i:07d}"}
                    for i in range(args.contacts)
                ),
            )

            ceiling_rps = ceiling(port, token, account, 4000, args.concurrency)
            naive_rps = naive(port, token, account, 300)

            def timed_sync() -> tuple[float, int, dict[str, int]]:
                before = stats(port)["count"]
                run = SyncRun(user_id=user.id, status="queued", id=str(uuid.uuid4()))
                db.session.add(run)
                db.session.commit()
                started = time.perf_counter()
                run = run_sync(run.id)
                elapsed = time.perf_counter() - started
                counts = {k: getattr(run, k) for k in ("created", "updated", "unchanged", "failed")}
                return elapsed, stats(port)["count"] - before - 1, counts  # less the stats call itself

            first_time, first_requests, first = timed_sync()
            second_time, second_requests, second = timed_sync()
    finally:
        process.terminate()
        process.wait()

    rps = first_requests / first_time
    print(
        f"contacts: {args.contacts}, concurrency: {args.concurrency}, "
        f"server latency: {args.server_latency_ms:g} ms per answer"
    )
    print(f"server ceiling (keep-alive loop, {args.concurrency} connections): {ceiling_rps:,.0f} req/s")
    print(f"naive loop (one request at a time, new connection each): {naive_rps:,.0f} req/s")
    print(
        f"sync: {first_time:.2f} s, {first_requests} requests, {rps:,.0f} req/s "
        f"(created {first['created']}, updated {first['updated']}, failed {first['failed']})"
    )
    print(
        f"  = {rps / naive_rps:.1f}x the naive loop (target >= 5x), "
        f"{100 * rps / ceiling_rps:.0f}% of the ceiling (target >= 70%)"
    )
    print(
        f"second, unchanged run: {second_time * 1000:.0f} ms, {second_requests} requests "
        f"(unchanged {second['unchanged']}; target 0 requests)"
    )


if __name__ == "__main__":
    main()
