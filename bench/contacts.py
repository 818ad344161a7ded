"""Benchmark: the contacts page and the CSV import at the per-user cap (100,000 contacts).

Prints, from one run on a file-backed SQLite database (or DATABASE_URL's PostgreSQL with --postgres):
- importing a CSV of N rows (new contacts), then the same file again (all matched, none added);
- GET /contacts: the first page, the last page, and a search, each against a bare route in the same
  run (ratio), and the SQL statements each one ran (constant in N is the target).
Run: .venv/bin/python bench/contacts.py [--contacts 100000]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import TestConfig  # noqa: E402
from crm import create_app  # noqa: E402
from crm.auth.service import create_user  # noqa: E402
from crm.contacts import service  # noqa: E402
from crm.crypto import generate_key  # noqa: E402
from crm.extensions import db  # noqa: E402

PASSWORD = "correct horse battery"  # noqa: S105 - a throwaway benchmark account


def timed(label: str, action, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        action()
    seconds = (time.perf_counter() - start) / repeat
    print(f"{label:<42} {seconds * 1000:9.1f} ms")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true", help="use DATABASE_URL (PostgreSQL)")
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    url = os.environ["DATABASE_URL"] if args.postgres else f"sqlite:///{folder}/bench.sqlite3"
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
    app = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": url, "INTEGRATION_ENCRYPTION_KEY": generate_key()})
    app.add_url_rule("/bare", "bare", lambda: "ok")
    statements: list[str] = []
    with app.app_context():
        db.drop_all()
        db.create_all()
        sa.event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        user = create_user("bench@example.com", PASSWORD)
        text = "name,email,phone\n" + "".join(f"Contact {i},c{i}@example.com,\n" for i in range(args.contacts))
        print(f"CSV of {args.contacts:,} rows: {len(text.encode()) / 1024 / 1024:.2f} MiB")
        timed("import (all new)", lambda: service.import_csv(user, text))
        timed("import again (all matched, none added)", lambda: service.import_csv(user, text))
        assert service.count_contacts(user) == args.contacts

    client = app.test_client()
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"email": "bench@example.com", "password": PASSWORD, "csrf_token": token})
    last = -(-args.contacts // service.PER_PAGE)
    bare = timed("GET /bare", lambda: client.get("/bare"), repeat=50)
    for label, path in (
        ("GET /contacts (page 1)", "/contacts"),
        (f"GET /contacts?page={last} (last)", f"/contacts?page={last}"),
        ("GET /contacts?q=contact 9999 (search)", "/contacts?q=contact%209999"),
    ):
        assert client.get(path).status_code == 200
        statements.clear()
        client.get(path)
        count = len(statements)
        seconds = timed(label, lambda path=path: client.get(path), repeat=10)
        print(f"{'':<42} {bare / seconds:9.3f}x the bare route, {count} SQL statements")


if __name__ == "__main__":
    main()
