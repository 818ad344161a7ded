"""Benchmark: what recording analytics costs an operation, in one process.

Prints, from one run (N calls, default 100,000):
- a baseline loop: each iteration does the least work a sync batch does on our side (serialise a
  batch of 100 contacts to JSON), no recording;
- the same loop plus `recorder.record("sync_batch", ...)`: its extra cost per call and the ratio;
- the flush: writing the N buffered events (raw rows + hourly rollups) into SQLite in batches of
  FLUSH_AT, per event, and the ratio of record + flush to the baseline;
- the same ratios against a real batch round trip: the figure to compare with the 5 % budget is
  (record + flush per event) / (time of one sync batch); --batch-ms sets that time (default: 25 ms,
  a fast CRM on a LAN; bench/sync_contacts.py measures it against the fakes).

Run: .venv/bin/python bench/analytics_overhead.py [--calls 100000] [--batch-ms 25]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import TestConfig  # noqa: E402
from crm import create_app  # noqa: E402
from crm.analytics import recorder  # noqa: E402
from crm.analytics.recorder import FLUSH_AT  # noqa: E402
from crm.auth.service import create_user  # noqa: E402
from crm.crypto import generate_key  # noqa: E402
from crm.extensions import db  # noqa: E402
from crm.integrations import service  # noqa: E402

BATCH = [{"name": f"Contact {n}", "email": f"c{n}@example.com", "phone": f"+4930{n:07d}"} for n in range(100)]
COUNTS = {"created": 3, "updated": 1, "unchanged": 96, "failed": 0}


def baseline(calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        json.dumps(BATCH)
    return time.perf_counter() - started


def with_recording(calls: int, integration_id: str, user_id: int) -> float:
    started = time.perf_counter()
    for n in range(calls):
        json.dumps(BATCH)
        recorder.record("sync_batch", integration_id, user_id, "ok", 20 + n % 300, COUNTS, provider="CHATWOOT")
    return time.perf_counter() - started


def record_only(calls: int, integration_id: str, user_id: int) -> float:
    started = time.perf_counter()
    for n in range(calls):
        recorder.record("sync_batch", integration_id, user_id, "ok", 20 + n % 300, COUNTS, provider="CHATWOOT")
    return time.perf_counter() - started


def flush_all() -> float:
    """As the flusher does it: a batch of at most FLUSH_AT events per transaction."""
    buffer = recorder.current().buffer
    pending = list(buffer)
    buffer.clear()
    started = time.perf_counter()
    for start in range(0, len(pending), FLUSH_AT):
        buffer.extend(pending[start : start + FLUSH_AT])
        recorder.flush()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--batch-ms", type=float, default=25.0)
    args = parser.parse_args()
    calls = args.calls
    with tempfile.TemporaryDirectory() as folder:
        settings = {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/bench.sqlite3",
            "INTEGRATION_ENCRYPTION_KEY": generate_key(),
            "ANALYTICS_FLUSH_SECONDS": 0,  # flushes are timed by hand below
        }
        app = create_app(TestConfig, settings)
        with app.app_context():
            db.create_all()
            user = create_user("bench@example.com", "correct horse battery")
            values = {
                "name": "Bench",
                "base_url": "https://chat.example.com",
                "account_id": 7,
                "auto_create_inboxes": False,
            }
            integration = service.create_integration(user, "CHATWOOT", {**values, "api_key": "cw-token-1234567890abcd"})
            integration_id, user_id = integration.id, user.id

            baseline(1000)  # warm up
            with_recording(1000, integration_id, user_id)
            recorder.current().buffer.clear()

            plain = min(baseline(calls) for _ in range(3))
            recorded = []
            for _ in range(3):
                recorded.append(with_recording(calls, integration_id, user_id))
                recorder.current().buffer.clear()
            recorded_time = min(recorded)
            alone_runs = []
            for _ in range(3):
                alone_runs.append(record_only(calls, integration_id, user_id))
                recorder.current().buffer.clear()
            alone = min(alone_runs)
            record_only(calls, integration_id, user_id)
            flushed = flush_all()
            written = db.session.execute(db.text("select count(*) from analytics_events")).scalar()

    per_call_us = alone / calls * 1e6
    flush_us = flushed / calls * 1e6
    print(f"calls: {calls:,}   events written by the flush: {written:,}")
    print(f"baseline loop (serialise a 100-contact batch):    {plain:.3f} s   {plain / calls * 1e6:.2f} us/iteration")
    print(
        f"same loop + record():                             {recorded_time:.3f} s   ratio {recorded_time / plain:.4f}"
    )
    print(f"record() alone:                                   {alone:.3f} s   {per_call_us:.2f} us/call")
    print(f"flush (raw rows + hourly upserts, SQLite):        {flushed:.3f} s   {flush_us:.2f} us/event")
    print(f"(record + flush) / baseline iteration:            {(per_call_us + flush_us) / (plain / calls * 1e6):.4f}")
    batch_us = args.batch_ms * 1000
    share = (per_call_us + flush_us) / batch_us
    print(f"(record + flush) / one {args.batch_ms:g} ms sync batch:           {share:.6f}  ({share * 100:.4f} %)")


if __name__ == "__main__":
    main()
