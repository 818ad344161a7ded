"""Inbound webhooks under load: 2,000 signed Chatwoot deliveries (10% of them repeats of earlier ones)
from 16 concurrent senders against gunicorn (gunicorn.conf.py defaults), processed by an RQ worker
on the local Redis that is killed (SIGKILL) midway and started again afterwards.

Checks: every unique delivery stored and processed exactly once (one conversation_messages row each),
every repeat counted as a duplicate, and prints the response times (p50, p99, max).

Run: .venv/bin/python bench/webhooks.py [--deliveries 2000] [--senders 16] [--redis redis://127.0.0.1:6379/15]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import secrets
import signal
import socket
import statistics
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
SECRET = "bench-webhook-secret"  # noqa: S105  # a throwaway signing secret


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flask(env, *args, **kwargs):
    return subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "app", *args], cwd=ROOT, env=env, **kwargs)


def setup(env) -> str:
    """A user, a Chatwoot integration and its webhook endpoint with a known secret: the URL token."""
    script = f"""
from crm import create_app
from crm.auth.service import create_user
from crm.integrations import service
from crm.webhooks import service as webhooks
app = create_app()
with app.app_context():
    from crm.extensions import db
    db.create_all()  # the models as they are (migrations of work in progress may lag)
    user = create_user("bench@example.com", "benchmark password")
    values = {{"name": "Bench", "base_url": "http://127.0.0.1:9", "account_id": 1, "api_key": "t" * 24,
              "auto_create_inboxes": False, "auto_create_bots": False, "sync_contacts": False}}
    integration = service.create_integration(user, "CHATWOOT", values)
    webhooks.save_settings(user, integration.id, {SECRET!r}, False)
    print(webhooks.endpoint_of(integration).token)
"""
    out = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def signed(message_id: int, delivery: str) -> tuple[bytes, dict]:
    body = json.dumps(
        {
            "event": "message_created",
            "id": message_id,
            "content": f"message {message_id}",
            "message_type": "incoming",
            "private": False,
            "sender": {"id": 1, "name": "Load", "email": "load@example.com"},
            "conversation": {"id": 1, "status": "open"},
        }
    ).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-Chatwoot-Signature": f"sha256={digest}",
        "X-Chatwoot-Timestamp": stamp,
        "X-Chatwoot-Delivery": delivery,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument(
        "--postgres",
        default="",
        help="a PostgreSQL server, e.g. postgresql://postgres@127.0.0.1:5432: a database is made there for "
        "the run and dropped after (default: a SQLite file)",
    )
    options = parser.parse_args()
    database = f"bench_webhooks_{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    port = free_port()
    env = {
        **os.environ,
        "SECRET_KEY": secrets.token_hex(16),
        "INTEGRATION_ENCRYPTION_KEY": secrets.token_hex(32),
        "DATABASE_URL": f"{options.postgres}/{database}"
        if options.postgres
        else f"sqlite:///{workdir / 'bench.sqlite3'}",
        "APP_ENV": "development",
        "REDIS_URL": options.redis,
        "CRM_QUEUE_NAME": f"bench-webhooks-{uuid.uuid4().hex[:8]}",
        "RATELIMIT_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "CRM_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
        "CRM_ALLOW_INSECURE_HTTP": "1",
    }
    if options.postgres:
        subprocess.run(["psql", f"{options.postgres}/postgres", "-qc", f"create database {database}"], check=True)
    token = setup(env)
    url = f"http://127.0.0.1:{port}/webhooks/{token}"
    log = open(workdir / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", "app:app"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    worker = subprocess.Popen(
        [str(ROOT / ".venv/bin/flask"), "--app", "app", "crm", "worker"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        for _ in range(200):
            try:
                requests.post(url, data=b"{}", timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.1)
        unique = options.deliveries - options.deliveries // 10
        plan = [(i, f"d-{i}") for i in range(unique)]
        repeats = [random.choice(plan[: max(1, len(plan) // 2)]) for _ in range(options.deliveries - unique)]
        plan += repeats
        random.shuffle(plan)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        cursor = iter(plan)
        sent = [0]
        killed_at = [None]

        def sender():
            session = requests.Session()
            while True:
                with lock:
                    item = next(cursor, None)
                    sent[0] += 1
                    if sent[0] == options.deliveries // 2 and killed_at[0] is None:
                        worker.send_signal(signal.SIGKILL)  # the worker dies midway
                        killed_at[0] = sent[0]
                if item is None:
                    return
                body, headers = signed(*item)
                start = time.perf_counter()
                answer = session.post(url, data=body, headers=headers, timeout=10)
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        started = time.perf_counter()
        threads = [threading.Thread(target=sender) for _ in range(options.senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        worker.wait()
        # Restart: re-queue what the dead worker held or never took, then drain the queue.
        resumed = flask(env, "crm", "webhooks", "resume", "--stale-after", "0", capture_output=True, text=True)
        flask(env, "crm", "worker", "--burst", check=True, capture_output=True)
        figures = count(env)
        latencies.sort()
        print(
            f"deliveries sent: {len(latencies)} ({unique} unique, {options.deliveries - unique} repeats) "
            f"by {options.senders} senders in {wall:.1f} s; answers {dict(sorted(statuses.items()))}"
        )
        print(
            f"response time: p50 {statistics.median(latencies) * 1000:.1f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
        )
        print(f"worker killed (SIGKILL) after {killed_at[0]} sends; resume: {resumed.stdout.strip()}")
        print(
            f"stored deliveries {figures['deliveries']}, processed (done) {figures['done']}, "
            f"still pending {figures['pending']}, messages logged {figures['messages']} "
            f"(distinct {figures['distinct']}), duplicates counted {figures['duplicates']}"
        )
        ok = figures["deliveries"] == figures["done"] == figures["messages"] == figures["distinct"] == unique
        ok = ok and figures["duplicates"] == options.deliveries - unique
        print("EXACTLY ONCE: yes" if ok else "EXACTLY ONCE: NO")
    finally:
        for process in (server, worker):
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        if options.postgres:
            subprocess.run(["psql", f"{options.postgres}/postgres", "-qc", f"drop database {database} with (force)"])
        forget_queue(options.redis, env["CRM_QUEUE_NAME"])


def forget_queue(redis_url: str, queue_name: str) -> None:
    """Delete what this run left in Redis: its queue's keys and the jobs it enqueued."""
    import redis

    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(match="rq:job:*", count=1000):
        if connection.hget(key, "origin") == queue_name.encode():
            connection.delete(key, key.replace(b"rq:job:", b"rq:results:"))
    for key in connection.scan_iter(match=f"*{queue_name}*", count=1000):
        connection.delete(key)


def count(env) -> dict:
    script = """
import json
from sqlalchemy import text
from crm import create_app
from crm.extensions import db
app = create_app()
with app.app_context():
    q = lambda sql: db.session.execute(text(sql)).scalar()
    print(json.dumps({
        "deliveries": q("select count(*) from webhook_deliveries"),
        "done": q("select count(*) from webhook_deliveries where status = 'done'"),
        "pending": q("select count(*) from webhook_deliveries where status in ('queued', 'processing')"),
        "messages": q("select count(*) from conversation_messages"),
        "distinct": q("select count(distinct remote_message_id) from conversation_messages"),
        "duplicates": q("select count(*) from webhook_tallies where kind = 'duplicate'"),
    }))
"""
    out = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
