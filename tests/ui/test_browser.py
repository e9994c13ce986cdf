"""The app in a real browser: Debian's Chromium driven by Playwright, against `qa-system serve`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Test artefacts; `QA_SCREENSHOTS_DIR=docs/screenshots` refreshes the README's pictures.
SCREENSHOTS = Path(os.environ.get("QA_SCREENSHOTS_DIR", Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def app_url(demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (scripts/install-system-packages.sh installs it)")
    workspace = tmp_path_factory.mktemp("browser") / "ws"
    shutil.copytree(demo_workspace, workspace)  # the server owns its copy of the graph
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    env.update(QA_WORKSPACE=str(workspace), GRADIO_ANALYTICS_ENABLED="False")
    server = subprocess.Popen([sys.executable, "-m", "qa_system", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"serve exited: {server.stderr.read()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.terminate()
        pytest.fail("serve did not answer within 120 s")
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture()
def page(app_url: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.dialogs = dialogs  # type: ignore[attr-defined]
        started = time.monotonic()
        page.goto(app_url)
        page.get_by_text("Question answering over a knowledge graph").wait_for(timeout=15_000)
        page.first_paint_s = time.monotonic() - started  # type: ignore[attr-defined]
        yield page
        browser.close()


def test_explore_shows_the_card_and_neighbours(page) -> None:
    assert page.first_paint_s < 10
    box = page.locator("#explore-query textarea, #explore-query input").first
    box.fill("Christopher Nolan")
    box.press("Enter")
    card = page.locator("#explore-card")
    card.get_by_text("British–American film director", exact=False).wait_for(timeout=20_000)
    assert "Christopher Nolan" in card.inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "explore.png"), full_page=True)
    page.locator("#explore-status").get_by_text("50 facts", exact=False).wait_for(timeout=20_000)
    table = page.locator("#explore-neighbours")  # rows sorted by hop, relation, subject: award categories first
    table.get_by_text("Independent Spirit Award for Best Director", exact=False).first.wait_for(timeout=20_000)


def test_markup_in_a_search_is_shown_as_text(page) -> None:
    box = page.locator("#explore-query textarea, #explore-query input").first
    box.fill("<img src=x onerror=alert(1)>")
    box.press("Enter")
    page.locator("#explore-status").get_by_text("unknown entity", exact=False).wait_for(timeout=20_000)
    assert "<img src=x onerror=alert(1)>" in page.locator("#explore-status").inner_text()
    assert page.dialogs == []
