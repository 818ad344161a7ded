"""A real server on 127.0.0.1 and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium is required for the browser tests: apt-get install -y chromium ({CHROMIUM})")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


class Recorder:
    """Everything the browser received from our server, and every console problem."""

    def __init__(self, base: str):
        self.base = base
        self.responses = []
        self.problems: list[str] = []

    def attach(self, page):
        page.on(
            "response", lambda response: self.responses.append(response) if response.url.startswith(self.base) else None
        )
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        return page

    def on_console(self, message) -> None:
        # A 422 answer is our validation speaking; Chromium logs every 4xx as a console error.
        if message.type == "error" and "status of 422" not in message.text:
            self.problems.append(message.text)

    def bodies(self) -> list[tuple[str, str]]:
        seen = []
        for response in self.responses:
            try:
                seen.append((response.url, response.text() + "\n" + repr(response.headers)))
            except Exception:  # a redirect has no body
                seen.append((response.url, repr(response.headers)))
        return seen


@pytest.fixture
def page_factory(browser, live_server):
    contexts = []

    def make(javascript: bool = True, viewport=None):
        context = browser.new_context(
            java_script_enabled=javascript, viewport=viewport or {"width": 1280, "height": 900}
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        recorder = Recorder(live_server)
        recorder.attach(page)
        return page, recorder

    yield make
    for context in contexts:
        context.close()
