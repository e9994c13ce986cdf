"""The app in a real browser: Debian's Chromium driven by Playwright.

Two servers on copies of the demo graph: `qa-system serve` itself (the real command, Explore), and
the same app built in-process around an ``AskPipeline`` whose models are fakes (``tests/ui/fakes``),
so asking does not need the trained reader. Screenshots of every tab go to ``artifacts/screenshots``
(and to ``docs/screenshots`` with ``UPDATE_DOCS_SCREENSHOTS=1``); first-paint and answer times are
printed and written to ``artifacts/ui-timings.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]
# Test artefacts; `UPDATE_DOCS_SCREENSHOTS=1` (or `QA_SCREENSHOTS_DIR=docs/screenshots`) refreshes the README's pictures.
SCREENSHOTS = Path(os.environ.get("QA_SCREENSHOTS_DIR", ROOT / "artifacts" / "screenshots"))
TIMINGS = ROOT / "artifacts" / "ui-timings.json"
MAINTAINER = ("maintainer", "browser-test-password")


def shoot(page, name: str) -> None:
    targets = [SCREENSHOTS] + ([ROOT / "docs" / "screenshots"] if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1" else [])
    for folder in dict.fromkeys(targets):
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def record_timing(name: str, seconds: float) -> None:
    """Print a timing and append it to artifacts/ui-timings.json ({name: [seconds, ...]})."""

    print(f"\n[ui timing] {name}: {seconds * 1000:.0f} ms")
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(TIMINGS.read_text()) if TIMINGS.is_file() else {}
    values = data.get(name) if isinstance(data.get(name), list) else []
    data[name] = [*values, round(seconds, 3)][-50:]
    TIMINGS.write_text(json.dumps(data, indent=2) + "\n")


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


@pytest.fixture(scope="module")
def fake_app_url(demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app built in-process around a pipeline with fake models (no trained reader needed)."""

    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (scripts/install-system-packages.sh installs it)")
    from graph.embedded import EmbeddedStore
    from tests.ui.fakes import fake_pipeline
    from ui.app import build_app, launch_options
    from ui.auth import MaintainerAuth

    workspace = tmp_path_factory.mktemp("browser-fake") / "ws"
    shutil.copytree(demo_workspace, workspace)
    store = EmbeddedStore.open(workspace)
    app = build_app(store, fake_pipeline(store), auth=MaintainerAuth(*MAINTAINER))
    port = _free_port()
    app.queue(default_concurrency_limit=8).launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                                                  quiet=True, **launch_options())
    yield f"http://127.0.0.1:{port}/"
    app.close()
    store.close()


def _open(url: str, timing: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.dialogs = dialogs  # type: ignore[attr-defined]
        started = time.monotonic()
        page.goto(url)
        page.get_by_text("Question answering over a knowledge graph").wait_for(timeout=15_000)
        page.first_paint_s = time.monotonic() - started  # type: ignore[attr-defined]
        record_timing(timing, page.first_paint_s)
        yield page
        browser.close()


@pytest.fixture()
def page(app_url: str):
    yield from _open(app_url, "first_paint_serve_s")


@pytest.fixture()
def fake_page(fake_app_url: str):
    yield from _open(fake_app_url, "first_paint_s")


def _ask(page, question: str) -> None:
    box = page.locator("#ask-question textarea").first
    box.fill(question)
    box.press("Enter")


def _login(page, user: str, password: str) -> None:
    page.get_by_role("tab", name="Maintainer login").click()
    page.locator("#login-user input, #login-user textarea").first.fill(user)
    page.locator("#login-password input").first.fill(password)
    page.locator("#login-button").click()


def test_explore_shows_the_card_and_neighbours(page) -> None:
    assert page.first_paint_s < 10
    page.get_by_role("tab", name="Explore").click()
    box = page.locator("#explore-query textarea, #explore-query input").first
    box.fill("Christopher Nolan")
    box.press("Enter")
    card = page.locator("#explore-card")
    card.get_by_text("British–American film director", exact=False).wait_for(timeout=20_000)
    assert "Christopher Nolan" in card.inner_text()
    shoot(page, "explore")
    page.locator("#explore-status").get_by_text("50 facts", exact=False).wait_for(timeout=20_000)
    page.get_by_role("tab", name="Table", exact=True).click()  # the second view; the graph is the first
    table = page.locator("#explore-neighbours")  # rows sorted by hop, relation, subject: award categories first
    table.get_by_text("Independent Spirit Award for Best Director", exact=False).first.wait_for(timeout=20_000)
    assert "/award/" not in table.inner_text()  # readable relation names, not raw ids


GRAPH = "window.qaExploreGraph"


def _graph_size(page) -> tuple[int, int]:
    return tuple(page.evaluate(f"() => {{ const g = {GRAPH}; return g && g.nodes ? [g.nodes.length, g.edges.length] : [0, 0]; }}"))


def _click_graph_at(page, point_js: str, arg: str) -> None:
    """A real mouse click on the graph's canvas at a point of the drawing (``point_js`` maps ``arg``
    to canvas coordinates); the network settles first so the point stays put."""

    page.wait_for_function(f"() => {GRAPH}.stable", timeout=20_000)
    x, y = page.evaluate(f"(arg) => {{ const g = {GRAPH}; const p = g.network.canvasToDOM(({point_js})(g, arg)); return [p.x, p.y]; }}", arg)
    canvas = page.locator("#explore-graph .qa-graph-canvas canvas")
    box = canvas.bounding_box()
    assert box and 0 <= x <= box["width"] and 0 <= y <= box["height"]
    canvas.click(position={"x": x, "y": y})  # scrolls the canvas into view first


def test_explore_graph_expands_on_a_node_click_and_shows_a_fact_on_an_edge_click(page) -> None:
    page.get_by_role("tab", name="Explore").click()
    box = page.locator("#explore-query textarea, #explore-query input").first
    box.fill("Christopher Nolan")
    box.press("Enter")
    info = page.locator("#explore-graph .qa-graph-info")
    expect(info).to_contain_text("50 facts", timeout=30_000)
    nodes, edges = _graph_size(page)
    assert edges == 50 and nodes > 10
    labels = page.evaluate(f"() => {GRAPH}.edges.get().map(e => e.label)")
    assert labels and not any(label.startswith("/") for label in labels)  # readable relation names
    assert page.evaluate(f"() => {GRAPH}.nodes.get({GRAPH}.focus).name") == "Christopher Nolan"  # drawn as the focus
    scripts = page.evaluate("() => [...document.scripts].map(s => s.src).filter(src => src.includes('vis-network'))")
    assert scripts and all(src.startswith(page.url.rstrip("/") + "/gradio_api/file=") for src in scripts)  # from the app, no CDN
    shoot(page, "explore-graph")
    # a click on a neighbour adds its own neighbours to the picture
    target = page.evaluate(f"() => {GRAPH}.nodes.get().find(n => !n.focus && !n.literal).id")
    name = page.evaluate(f"(id) => {GRAPH}.nodes.get(id).name", target)
    _click_graph_at(page, "(g, id) => g.network.getPosition(id)", target)
    expect(info).to_contain_text(f"Expanded {name}", timeout=30_000)
    more_nodes, more_edges = _graph_size(page)
    assert more_nodes > nodes and more_edges > edges
    assert page.evaluate(f"(id) => {GRAPH}.nodes.get(id).expanded", target)
    # a click on an edge (the middle of its curve) shows its fact
    fact = page.locator("#explore-graph .qa-graph-fact")
    for edge_id in page.evaluate(f"() => {GRAPH}.edges.getIds().slice(0, 8)"):
        _click_graph_at(page, "(g, id) => g.network.body.edges[id].edgeType.getPoint(0.5)", edge_id)
        if fact.locator(".qa-graph-panel").count():
            break
    expect(fact).to_contain_text("provenance", timeout=10_000)
    shown = page.evaluate(f"() => {GRAPH}.edges.get({GRAPH}.network.getSelectedEdges()[0]).fact")
    text = fact.inner_text()
    for value in (shown["subject"], shown["relation"], shown["object"], shown["status"], shown["provenance"]):
        assert value in text
    assert shown["status"] == "verified" and "dataset fb15k-237" in text and not shown["relation"].startswith("/")
    assert page.dialogs == []
    shoot(page, "explore-graph-fact")


def test_markup_in_a_search_is_shown_as_text(page) -> None:
    page.get_by_role("tab", name="Explore").click()
    box = page.locator("#explore-query textarea, #explore-query input").first
    box.fill("<img src=x onerror=alert(1)>")
    box.press("Enter")
    page.locator("#explore-status").get_by_text("unknown entity", exact=False).wait_for(timeout=20_000)
    assert "<img src=x onerror=alert(1)>" in page.locator("#explore-status").inner_text()
    assert page.dialogs == []


def test_ask_shows_answer_evidence_and_card(fake_page) -> None:
    page = fake_page
    assert page.first_paint_s < 10
    answer = page.locator("#ask-answer")
    _ask(page, "What is the nationality of Christopher Nolan?")  # warm-up: first request of the session
    answer.get_by_text("England").wait_for(timeout=20_000)
    started = time.monotonic()
    _ask(page, "Who directed Inception?")
    answer.locator(".qa-answer-name", has_text="Christopher Nolan").wait_for(timeout=20_000)
    took = time.monotonic() - started
    record_timing("answer_visible_warm_s", took)
    assert took < 5  # target 1 s (issue 7); a generous bound for a loaded CI machine
    assert "Graph" in answer.locator(".qa-badge").inner_text() and "confidence" in answer.inner_text()
    graph = page.locator("#ask-graph svg").text_content() or ""
    assert "Inception" in graph and "Christopher Nolan" in graph and "TOPIC" in graph and "ANSWER" in graph
    evidence = page.locator("#ask-evidence")
    expect(evidence).to_contain_text("dataset fb15k-237 (train)", timeout=10_000)
    assert "Inception" in evidence.inner_text()
    card = page.locator("#ask-card")
    assert "Christopher Nolan" in card.inner_text() and "film director" in card.inner_text()
    page.locator("#ask-history-box").get_by_text("This session's questions").click()
    expect(page.locator("#ask-history")).to_contain_text("Who directed Inception?", timeout=10_000)
    shoot(page, "ask")


def test_ask_bad_input_is_a_clear_message_and_markup_is_text(fake_page) -> None:
    page = fake_page
    answer = page.locator("#ask-answer")
    _ask(page, "   ")
    answer.get_by_text("the question is empty").wait_for(timeout=20_000)
    _ask(page, "why " * 800)
    answer.get_by_text("the limit is 2,000").wait_for(timeout=20_000)
    markup = "<img src=x onerror=alert(1)><script>alert(2)</script> Who directed Inception?"
    _ask(page, markup)
    answer.locator(".qa-answer-name", has_text="Christopher Nolan").wait_for(timeout=20_000)
    page.locator("#ask-history-box").get_by_text("This session's questions").click()
    expect(page.locator("#ask-history")).to_contain_text("<img src=x onerror=alert(1)><script>alert(2)</script>", timeout=10_000)
    assert page.dialogs == []


def test_dashboard_shows_counts_and_charts(fake_page) -> None:
    page = fake_page
    page.get_by_role("tab", name="Dashboard").click()
    tiles = page.locator("#dashboard-tiles")
    tiles.get_by_text("310,116").first.wait_for(timeout=30_000)
    assert "14,541" in tiles.inner_text()
    page.locator("#dashboard-relations canvas, #dashboard-relations svg").first.wait_for(timeout=20_000)
    expect(page.locator("#dashboard-recent")).to_contain_text("dataset fb15k-237", timeout=20_000)
    page.wait_for_timeout(800)  # let the charts finish drawing before the picture
    shoot(page, "dashboard")


def test_wrong_password_is_refused(fake_page) -> None:
    page = fake_page
    assert page.get_by_role("tab", name="Cypher workbench").count() == 0  # hidden before login
    _login(page, MAINTAINER[0], "not-the-password")
    page.locator("#login-message").get_by_text("Wrong user name or password").wait_for(timeout=10_000)
    assert page.get_by_role("tab", name="Cypher workbench").count() == 0
    shoot(page, "login")


def test_workbench_refuses_writes_after_login(fake_page) -> None:
    page = fake_page
    _login(page, *MAINTAINER)
    page.locator("#login-message").get_by_text("Logged in as maintainer").wait_for(timeout=10_000)
    page.get_by_role("tab", name="Cypher workbench").click()
    editor = page.locator("#cypher-query .cm-content")
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("MATCH (e:Entity) DETACH DELETE e")
    page.locator("#cypher-run").click()
    status = page.locator("#cypher-status")
    status.get_by_text("Refused", exact=False).wait_for(timeout=20_000)
    assert "read-only" in status.inner_text()
    shoot(page, "cypher-refused")
    # a template runs and fills the table
    page.locator("#cypher-template input").click()
    page.locator("#cypher-template input").fill("Facts about")
    page.get_by_role("option", name="Facts about an entity").click()
    page.locator("#cypher-params textarea, #cypher-params input").first.fill('{"name": "Inception"}')
    page.wait_for_timeout(300)
    page.locator("#cypher-run").click()
    status.get_by_text("rows", exact=False).wait_for(timeout=20_000)
    expect(page.locator("#cypher-table")).to_contain_text("Christopher Nolan", timeout=20_000)
    shoot(page, "cypher")


def test_serve_ask_tab_answers_or_says_the_reader_is_missing(page) -> None:
    """Against `qa-system serve`: with the shipped reader it answers; without one it says so."""

    from qa_system.ask.reader_loading import shipped_reader

    if not (shipped_reader() / "card.json").is_file():
        page.locator("#ask-no-reader").get_by_text("reader model is not available", exact=False).wait_for(timeout=10_000)
        shoot(page, "ask-no-reader")
        return
    _ask(page, "Who directed Inception?")  # warm-up
    page.locator("#ask-answer .qa-answer").wait_for(timeout=60_000)
    started = time.monotonic()
    _ask(page, "What is the nationality of Christopher Nolan?")
    # the graph may be unsure of it: then the embedded LLM answers and its claims are checked, while
    # the fresh workspace still embeds its indexes in the background (minutes of CPU on 2 cores)
    expect(page.locator("#ask-answer")).to_contain_text("about: Christopher Nolan", timeout=180_000)
    record_timing("answer_visible_real_reader_s", time.monotonic() - started)
    shoot(page, "ask-real-reader")
