"""One scheduler instance as a separate process, for tests/test_schedules.py: it ticks whenever the
shared clock file (minutes past T0, written by the test) moves on, and writes every sync it starts
to its own file, so the test counts starts across processes without trusting the database.

    python -m tests.scheduler_process DATABASE_URL WORKDIR NAME T0
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path


def main() -> None:
    database_url, workdir, name, start = sys.argv[1:5]
    from crm.schedules.scheduler import tick
    from tests.conftest import make_app

    app = make_app(database_url, CRM_HEALTH_CHECKS_PER_MINUTE=0)  # syncs only: no connection checks
    t0 = datetime.fromisoformat(start)
    folder = Path(workdir)
    clock, ack = folder / "clock", folder / f"ack-{name}"
    started = (folder / f"started-{name}").open("a")

    def record_start(owner, integration, slot):
        started.write(f"{integration.id} {slot.isoformat()}\n")
        started.flush()
        os.fsync(started.fileno())

    seen = -1
    with app.app_context():
        while True:
            text = clock.read_text().strip() if clock.exists() else ""
            if text == "stop":
                return
            minute = int(text) if text.isdigit() else -1
            if minute > seen:
                tick(now=t0 + timedelta(minutes=minute), instance=name, dispatch=record_start)
                seen = minute
                ack.write_text(str(minute))
            else:
                time.sleep(0.01)


if __name__ == "__main__":
    main()
