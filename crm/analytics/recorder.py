"""Recording what each integration did, without slowing it down.

Call sites (each one line; `record` only appends a tuple to an in-process buffer, no I/O):

    from crm.analytics import recorder
    recorder.record("test", integration.id, owner.id, result.outcome, duration_ms)
    recorder.record("sync_batch", integration.id, owner.id, outcome, duration_ms,
                    {"created": 3, "updated": 1, "unchanged": 40, "failed": 0})
    recorder.record("message", integration.id, owner.id, outcome, duration_ms)
    recorder.record("provision", integration.id, owner.id, outcome, duration_ms)
    recorder.record("webhook", integration.id, owner.id, "ok" or the reason it was rejected, duration_ms)
    recorder.note_rate_limit_wait(seconds, provider="HUBSPOT")   # from wait_before_retry
    recorder.flush()                                             # at the end of every job

Kinds: test, sync_batch, message, provision, webhook (received: outcome "ok"; anything else counts as
rejected) and rate_limit_wait (recorded by note_rate_limit_wait). `outcome` is an outcome code
(crm.providers.base.OUTCOMES: ok, auth_failed, rate_limited, ...). A wait's integration comes from
`attributed_to(...)` when the caller set one, e.g. around a job: `with recorder.attributed_to(integration):`.

A background thread of each process flushes the buffer every ANALYTICS_FLUSH_SECONDS (or sooner when
it fills) in one transaction: raw events (kept 7 days) and hourly rollups upserted by adding (kept 90
days; see crm.analytics.store), and once more at a normal exit. An RQ work horse is forked per job and
leaves with os._exit, so a job calls flush() at its end. ANALYTICS_FLUSH_SECONDS=0 (the tests) starts
no thread: only flush() calls write, and a page or /metrics flushes before it reads.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

from flask import Flask, current_app, has_app_context

from crm.providers import contract

log = logging.getLogger(__name__)

KINDS = ("test", "sync_batch", "message", "provision", "webhook", "rate_limit_wait")
OUTBOUND_KINDS = ("test", "sync_batch", "message", "provision")
BUFFER_LIMIT = 200_000  # events held at most while the database is unreachable; older ones are dropped
FLUSH_AT = 5_000  # a buffer this full wakes the flusher before its interval ends
EXTENSION = "crm_analytics"


class Event(NamedTuple):
    at: float  # seconds since the epoch (UTC)
    kind: str
    integration_id: str
    user_id: int
    outcome: str
    duration_ms: int
    counts: dict[str, int] | None
    provider: str | None


class Attribution(NamedTuple):
    integration_id: str
    user_id: int
    provider: str | None


_attribution: contextvars.ContextVar[Attribution | None] = contextvars.ContextVar("analytics_attribution", default=None)


class Recorder:
    """One per app: a thread-safe buffer (deque appends are atomic) and the thread that empties it."""

    def __init__(self, app: Flask, clock: Callable[[], float] = time.time):
        self.app = app
        self.clock = clock
        self.buffer: deque[Event] = deque(maxlen=BUFFER_LIMIT)
        self.interval = float(app.config.get("ANALYTICS_FLUSH_SECONDS", 5) or 0)
        self.flushed = 0
        self.failed_flushes = 0
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread_pid: int | None = None

    def append(self, event: Event) -> None:
        self.buffer.append(event)
        if self.interval and self._thread_pid != os.getpid():
            self._start_flusher()
        if len(self.buffer) >= FLUSH_AT:
            self._wake.set()

    # --- flushing -----------------------------------------------------------------------------

    def drain(self) -> list[Event]:
        events = []
        pop = self.buffer.popleft
        for _ in range(len(self.buffer)):
            try:
                events.append(pop())
            except IndexError:
                break
        return events

    def flush(self) -> int:
        """Write what is buffered now; the number of events written. Never raises: analytics must not
        break the operation that recorded them (a failure is logged; the events wait for the next flush)."""
        from crm.analytics import store

        with self._flush_lock:
            events = self.drain()
            if not events:
                return 0
            try:
                if has_app_context() and current_app._get_current_object() is self.app:
                    store.write(events, self.clock())
                else:
                    with self.app.app_context():
                        store.write(events, self.clock())
            except Exception:
                # Kept for the next flush (a locked database passes); the buffer's limit bounds them.
                self.failed_flushes += 1
                self.buffer.extendleft(reversed(events))
                log.exception("analytics: %d events could not be written yet", len(events))
                return 0
            self.flushed += len(events)
            return len(events)

    def _start_flusher(self) -> None:
        with self._flush_lock:
            if self._thread_pid == os.getpid():
                return
            self._thread_pid = os.getpid()  # a forked worker starts its own
            threading.Thread(target=self._run, name="analytics-flusher", daemon=True).start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()


def init_app(app: Flask) -> Recorder:
    recorder = Recorder(app)
    app.extensions[EXTENSION] = recorder
    if _observe_wait not in contract.WAIT_OBSERVERS:
        contract.WAIT_OBSERVERS.append(_observe_wait)
    return recorder


def _observe_wait(seconds: float, provider_name: str) -> None:
    note_rate_limit_wait(seconds, provider=provider_name)


def current() -> Recorder | None:
    if not has_app_context():
        return None
    return current_app.extensions.get(EXTENSION)


def record(
    kind: str,
    integration_id: str | None,
    user_id: int | None,
    outcome: str,
    duration_ms: float,
    counts: dict[str, int] | None = None,
    provider: str | None = None,
    at: datetime | None = None,
) -> None:
    """Note one operation. Cheap (an append); the figures reach the database at the next flush.
    `counts` (sync batches): created, updated, unchanged, failed. `at`: for back-filling and tests."""
    recorder = current()
    if recorder is None:
        return
    stamp = at.replace(tzinfo=at.tzinfo or UTC).timestamp() if at else recorder.clock()
    recorder.append(Event(stamp, kind, integration_id or "", user_id or 0, outcome, int(duration_ms), counts, provider))


def note_rate_limit_wait(
    seconds: float, provider: str | None = None, integration_id: str | None = None, user_id: int | None = None
) -> None:
    """A wait after a 429 (call it from wait_before_retry): counted per integration when one is attributed."""
    attribution = _attribution.get()
    if attribution and integration_id is None:
        integration_id, user_id = attribution.integration_id, attribution.user_id
        provider = provider or attribution.provider
    record("rate_limit_wait", integration_id, user_id, "waited", seconds * 1000, provider=provider)


@contextlib.contextmanager
def attributed_to(integration: Any) -> Iterator[None]:
    """Rate-limit waits noted inside this block (same thread or a copied context) count for `integration`."""
    token = _attribution.set(Attribution(integration.id, integration.user_id, integration.provider))
    try:
        yield
    finally:
        _attribution.reset(token)


def flush() -> int:
    recorder = current()
    return recorder.flush() if recorder else 0
