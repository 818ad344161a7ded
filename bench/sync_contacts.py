"""Benchmark: sync 10,000 contacts to a local fake of Chatwoot, HubSpot or Pipedrive.

Prints, from one run:
- the server's ceiling: a tight keep-alive loop of contact creates (raw http.client, the same number
  of connections as the sync uses), i.e. what the server can answer at most;
- a naive loop: one request at a time, a new connection each (what a plain `requests.post` loop does);
- our sync: wall time, requests sent, requests per second, and its ratio to both;
- a second, unchanged run: its time and request count (the target is 0 requests).

The fake server runs in its own process so that it does not share a GIL with the client.
Run: .venv/bin/python bench/sync_contacts.py [--provider chatwoot|hubspot|pipedrive] [--contacts 10000]
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
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import TestConfig  # noqa: E402
from crm import create_app  # noqa: E402
from crm.analytics import recorder  # noqa: E402
from crm.auth.service import create_user  # noqa: E402
from crm.contacts.service import add_contacts  # noqa: E402
from crm.crypto import generate_key  # noqa: E402
from crm.extensions import db  # noqa: E402
from crm.integrations import service  # noqa: E402
from crm.models import SyncRun  # noqa: E402
from crm.operations.sync import run_sync  # noqa: E402


@dataclass
class Scenario:
    """One provider's fake in its own process, and the request its contacts are written with."""

    provider: str
    module: str
    batch: int  # contacts per write request (our sync and the ceiling loop alike)
    connections: int  # the sync's parallel calls for this provider (capped by --concurrency)
    port: int = 0
    token: str = ""
    account: int = 0
    process: subprocess.Popen | None = None

    def start(self, latency_ms: float) -> None:
        command = [sys.executable, "-m", self.module, "--delay-ms", str(latency_ms)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        fields = self.process.stdout.readline().split()
        self.port, self.token = int(fields[0]), fields[1]
        self.account = int(fields[2]) if len(fields) > 2 else 0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()

    def integration(self) -> dict:
        base = f"http://127.0.0.1:{self.port}"
        return {
            "CHATWOOT": {"base_url": base, "account_id": self.account, "api_key": self.token,
                         "auto_create_inboxes": False, "auto_create_bots": False},
            "HUBSPOT": {"access_token": self.token},
            "PIPEDRIVE": {"company_domain": "acme", "api_token": self.token},
        }[self.provider]  # fmt: skip

    def write(self, tag: str, count: int) -> tuple[str, str, dict[str, str]]:
        """(path, body, headers) of one write of `count` contacts, as the ceiling and naive loops send it."""
        if self.provider == "HUBSPOT":
            emails = [f"{tag}-{i}@example.com" for i in range(count)]
            inputs = [{"idProperty": "email", "id": e, "properties": {"email": e, "firstname": tag}} for e in emails]
            body = {"inputs": inputs}
            return "/crm/v3/objects/contacts/batch/upsert", json.dumps(body), {"Authorization": f"Bearer {self.token}"}
        if self.provider == "PIPEDRIVE":
            body = {"name": tag, "emails": [{"value": f"{tag}@example.com", "primary": True}]}
            return "/api/v2/persons", json.dumps(body), {"x-api-token": self.token}
        body = {"name": tag, "identifier": tag}
        return f"/api/v1/accounts/{self.account}/contacts", json.dumps(body), {"api_access_token": self.token}


SCENARIOS = {
    "chatwoot": lambda: Scenario("CHATWOOT", "tests.fakes.chatwoot", batch=1, connections=8),
    "hubspot": lambda: Scenario("HUBSPOT", "tests.fakes.hubspot", batch=100, connections=4),
    "pipedrive": lambda: Scenario("PIPEDRIVE", "tests.fakes.pipedrive", batch=1, connections=1),
}


def stats(port: int) -> dict:
    return requests.get(f"http://127.0.0.1:{port}/__stats", timeout=10).json()


def ceiling(scenario: Scenario, contacts: int, connections: int) -> float:
    """Contacts per second of a tight keep-alive loop of writes, `connections` at a time."""
    per_thread = max(1, contacts // (connections * scenario.batch))

    def loop(worker: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", scenario.port)
        for i in range(per_thread):
            path, body, headers = scenario.write(f"ceiling-{worker}-{i}", scenario.batch)
            connection.request("POST", path, body, {**headers, "Content-Type": "application/json"})
            connection.getresponse().read()
        connection.close()

    threads = [threading.Thread(target=loop, args=(w,)) for w in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return per_thread * connections * scenario.batch / (time.perf_counter() - started)


def naive(scenario: Scenario, total: int) -> float:
    """Contacts per second of one contact per request, one at a time, each on a new connection."""
    started = time.perf_counter()
    for i in range(total):
        path, body, headers = scenario.write(f"naive-{i}", 1)
        requests.post(f"http://127.0.0.1:{scenario.port}{path}", data=body, timeout=10,
                      headers={**headers, "Content-Type": "application/json"})  # fmt: skip
    return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--provider", choices=sorted(SCENARIOS), default="chatwoot")
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument(
        "--no-analytics", action="store_true", help="switch the analytics recorder off (to measure its cost)"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--server-latency-ms",
        type=float,
        default=5.0,
        help="how long the fake takes per answer (a real CRM takes tens of ms to write a contact)",
    )
    args = parser.parse_args()

    scenario = SCENARIOS[args.provider]()
    scenario.start(args.server_latency_ms)
    connections = min(scenario.connections, args.concurrency)
    database = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    base = f"http://127.0.0.1:{scenario.port}"
    app = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
            "INTEGRATION_ENCRYPTION_KEY": generate_key(),
            "CRM_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
            "CRM_ALLOW_INSECURE_HTTP": True,
            "CRM_SYNC_CONCURRENCY": args.concurrency,
            "CRM_MAX_INFLIGHT_PER_HOST": args.concurrency,
            "HUBSPOT_API_URL": base,
            "PIPEDRIVE_API_URL": base,
        },
    )
    if args.no_analytics:
        app.extensions.pop(recorder.EXTENSION, None)  # record() finds no recorder and returns at once
    try:
        with app.app_context():
            db.create_all()
            user = create_user("bench@example.com", "benchmark password")
            service.create_integration(user, scenario.provider, {"name": "Bench", **scenario.integration()})
            add_contacts(
                user,
                (
                    {"name": f"Contact {i}", "email": f"contact{i}@example.com", "phone": f"+4930{i:07d}"}
                    for i in range(args.contacts)
                ),
            )

            ceiling_cps = ceiling(scenario, min(args.contacts, 4000 * scenario.batch), connections)
            naive_cps = naive(scenario, 300)

            def timed_sync() -> tuple[float, int, dict[str, int]]:
                before = stats(scenario.port)["count"]
                run = SyncRun(user_id=user.id, status="queued", id=str(uuid.uuid4()))
                db.session.add(run)
                db.session.commit()
                started = time.perf_counter()
                run = run_sync(run.id)
                elapsed = time.perf_counter() - started
                counts = {k: getattr(run, k) for k in ("created", "updated", "unchanged", "failed")}
                return elapsed, stats(scenario.port)["count"] - before - 1, counts  # less the stats call itself

            first_time, first_requests, first = timed_sync()
            second_time, second_requests, second = timed_sync()
    finally:
        scenario.stop()

    cps = args.contacts / first_time
    print(
        f"provider: {args.provider}, contacts: {args.contacts}, {scenario.batch} per request, "
        f"{connections} in parallel, server latency: {args.server_latency_ms:g} ms per answer, "
        f"analytics {'off' if args.no_analytics else 'on'}"
    )
    print(f"server ceiling (keep-alive loop, {connections} connections): {ceiling_cps:,.0f} contacts/s")
    print(f"naive loop (one contact per request, new connection each): {naive_cps:,.0f} contacts/s")
    print(
        f"sync: {first_time:.2f} s, {first_requests} requests, {cps:,.0f} contacts/s, "
        f"{first_requests / first_time:,.0f} req/s "
        f"(created {first['created']}, updated {first['updated']}, failed {first['failed']})"
    )
    print(f"  = {cps / naive_cps:.1f}x the naive loop, {100 * cps / ceiling_cps:.0f}% of the ceiling")
    print(
        f"second, unchanged run: {second_time * 1000:.0f} ms, {second_requests} requests "
        f"(unchanged {second['unchanged']}; target 0 requests)"
    )


if __name__ == "__main__":
    main()
