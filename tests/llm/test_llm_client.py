"""``LLMClient`` over real HTTP against small stand-in OpenAI servers: success, 500, timeout, refusal,
endpoint down; and the embedded server's failure paths."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from qa_system.config import load_settings
from qa_system.errors import LLMUnavailableError
from qa_system.fallback.answer import LLMFallback, response_format, response_schema
from qa_system.fallback.llm import LLMClient, response_formats
from qa_system.fallback.local_server import LLMCrashedError, LocalLLMServer, describe_exit, free_port, idle_cores, llama_server_installed


def completion(text: str) -> dict:
    return {
        "id": "c1", "object": "chat.completion", "created": 0, "model": "stub",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }  # fmt: skip


class Stub:
    """An OpenAI-compatible stand-in: ``mode`` is ok | error500 | slow | no_response_format |
    no_json_schema (400, as some OpenAI-compatible servers) | llama_cpp_python (500 naming
    response_format for ``json_schema``, as llama-cpp-python 0.3.36's server answers: its request
    model allows only text/json_object)."""

    def __init__(self, mode: str, text: str = '{"answer": "Nolan", "triples": []}') -> None:
        self.mode, self.text, self.requests = mode, text, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                if stub.mode == "error500":
                    return self._send(500, {"error": {"message": "boom"}})
                if stub.mode == "slow":
                    time.sleep(3)
                if stub.mode == "no_response_format" and "response_format" in body:
                    return self._send(400, {"error": {"message": "response_format not supported"}})
                kind = (body.get("response_format") or {}).get("type")
                if stub.mode == "no_json_schema" and kind == "json_schema":
                    return self._send(400, {"error": {"message": "response_format json_schema not supported"}})
                if stub.mode == "llama_cpp_python" and kind == "json_schema":
                    return self._send(500, {"error": {"message": "1 validation error: {'loc': ('body', 'response_format', 'type'), "
                                                           "'msg': \"Input should be 'text' or 'json_object'\"}"}})
                if stub.mode == "length":  # cut at max_tokens in the middle of the JSON
                    payload = completion(stub.text[:12])
                    payload["choices"][0]["finish_reason"] = "length"
                    return self._send(200, payload)
                return self._send(200, completion(stub.text))

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def stub_factory():
    stubs = []

    def make(mode: str, **kw) -> Stub:
        stubs.append(Stub(mode, **kw))
        return stubs[-1]

    yield make
    for s in stubs:
        s.close()


def settings_for(url: str, tmp_path: Path, **kw):
    return load_settings(workspace=tmp_path / "ws", OPENAI_BASE_URL=url, OPENAI_API_KEY="k", llm_model="stub-model", **kw)


def test_configured_endpoint_is_used(stub_factory, tmp_path):
    stub = stub_factory("ok")
    client = LLMClient(settings_for(stub.url, tmp_path))
    assert not client.embedded and client.endpoint == stub.url
    reply = client.complete([("system", "s"), ("user", "u")], max_tokens=20, response_format={"type": "json_object"})
    assert reply.text.startswith('{"answer"') and reply.model == "stub-model"
    (request,) = stub.requests
    assert request["model"] == "stub-model" and request.get("max_completion_tokens", request.get("max_tokens")) == 20
    assert request["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in request["messages"]] == ["system", "user"]


def test_500_is_retried_a_bounded_number_of_times(stub_factory, tmp_path):  # and never read as a refused format
    stub = stub_factory("error500")
    client = LLMClient(settings_for(stub.url, tmp_path, llm_max_retries=1))
    with pytest.raises(LLMUnavailableError, match="unavailable after 1 retries"):
        client.complete([("user", "hi")])
    assert len(stub.requests) == 2  # the first try and one retry


def test_timeout_gives_unavailable(stub_factory, tmp_path):
    stub = stub_factory("slow")
    client = LLMClient(settings_for(stub.url, tmp_path, llm_timeout_s=0.5, llm_max_retries=0))
    began = time.monotonic()
    with pytest.raises(LLMUnavailableError, match="Timeout"):
        client.complete([("user", "hi")])
    assert time.monotonic() - began < 2.5


def test_endpoint_down_gives_unavailable_and_fallback_message(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    client = LLMClient(settings_for(url, tmp_path, llm_max_retries=0))
    with pytest.raises(LLMUnavailableError, match="Connection"):
        client.complete([("user", "hi")])
    result = LLMFallback(client, None, vocabulary=[]).ask("Who directed Inception?")
    assert result.status == "unavailable" and url in result.message


def test_refused_response_format_is_dropped_once(stub_factory, tmp_path):
    stub = stub_factory("no_response_format")
    client = LLMClient(settings_for(stub.url, tmp_path))
    reply = client.complete([("user", "hi")], response_format={"type": "json_object"})
    assert reply.text.startswith('{"answer"')
    assert ["response_format" in r for r in stub.requests] == [True, False]


def test_embedded_default_is_chosen_without_configuration(llm_settings):
    client = LLMClient(llm_settings)
    assert client.embedded and client.model == "smollm2"
    assert client.server is not None and not client.server.is_running()  # started on first use only
    assert client.status()["available"] is False


def test_idle_cores_is_at_least_one():
    assert idle_cores() >= 1


@pytest.mark.skipif(not llama_server_installed(), reason="llama-cpp-python[server] is not installed (pip install 'qa-system[llm]')")
def test_embedded_server_that_cannot_start_reports_its_log(tmp_path):
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a gguf file")
    server = LocalLLMServer(tmp_path / "ws", model_path=bogus, n_threads=1, start_timeout_s=60)
    with pytest.raises(LLMUnavailableError, match="exited with code"):
        server.start()
    assert not server.is_running()
    assert (tmp_path / "ws" / "llm" / "server.log").read_text().strip()


# -- one reply schema, in each endpoint's form ------------------------------------------------------
def test_openai_style_endpoint_gets_the_strict_json_schema(stub_factory, tmp_path):
    stub = stub_factory("ok")
    client = LLMClient(settings_for(stub.url, tmp_path))
    assert client.schema_style == "openai"
    result = LLMFallback(client, None, vocabulary=[]).ask("Who directed Inception?")
    assert result.status == "ok" and result.answer == "Nolan"
    (request,) = stub.requests
    assert request["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "fallback_reply", "strict": True, "schema": response_schema()}}


@pytest.mark.parametrize("mode", ["no_json_schema", "llama_cpp_python"])
def test_refused_json_schema_is_probed_in_llama_form_and_remembered(stub_factory, tmp_path, mode):
    stub = stub_factory(mode)
    client = LLMClient(settings_for(stub.url, tmp_path, llm_max_retries=1))
    for _ in range(2):
        reply = client.complete([("user", "hi")], response_format=response_format())
        assert reply.text.startswith('{"answer"')
    kinds = [r.get("response_format", {}).get("type") for r in stub.requests]
    retried = ["json_schema"] * (2 if mode == "llama_cpp_python" else 1)  # a 500 is retried once (llm_max_retries=1)
    assert kinds == [*retried, "json_object", "json_object"]  # the second call goes straight to what worked
    assert stub.requests[len(retried)]["response_format"] == {"type": "json_object", "schema": response_schema()}
    assert client.schema_style == "llama.cpp"


def test_embedded_server_gets_llama_form_first_and_plain_formats_pass_through():
    fmt = response_format()
    llama = {"type": "json_object", "schema": fmt["json_schema"]["schema"]}
    assert response_formats(fmt, "llama.cpp") == [llama, fmt, None]
    assert response_formats(fmt, "openai") == [fmt, llama, None]
    assert response_formats({"type": "json_object"}, "openai") == [{"type": "json_object"}, None]
    assert response_formats(None, "openai") == [None]


def test_embedded_client_sends_the_llama_cpp_form(llm_settings):
    assert LLMClient(llm_settings).schema_style == "llama.cpp"
    with pytest.raises(ValueError, match="schema_style"):
        LLMClient(llm_settings, schema_style="xml")


# -- a crashing embedded server is named as such -----------------------------------------------------
CRASHING_SERVER = """
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, alias, crash_at = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
chats = []
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def _send(self, payload):
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self._send({"object": "list", "data": [{"id": alias, "object": "model"}]})
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        chats.append(1)
        if len(chats) >= crash_at:  # what llama.cpp built with AMX kernels did on its first chat reply
            print("segfault in llama_decode", flush=True)
            os.kill(os.getpid(), signal.SIGSEGV)
        self._send(%s)
HTTPServer(("127.0.0.1", port), Handler).serve_forever()
""" % json.dumps(completion("OK"))


class CrashingServer(LocalLLMServer):
    """Answers ``/v1/models`` like llama-cpp-python's server, then dies by SIGSEGV on chat reply ``crash_at``."""

    def __init__(self, workspace: Path, crash_at: int) -> None:
        super().__init__(workspace, model_path=Path(__file__), n_threads=1, start_timeout_s=30)
        self.crash_at = crash_at

    def command(self, model: Path, port: int, threads: int) -> list[str]:
        import sys

        return [sys.executable, "-c", CRASHING_SERVER, str(port), self.alias, str(self.crash_at)]


def test_describe_exit():
    assert describe_exit(-11) == "was killed by signal SIGSEGV (11)"
    assert describe_exit(3) == "exited with code 3"


def test_server_crashing_on_its_start_up_completion_is_reported_with_the_fix(tmp_path):
    server = CrashingServer(tmp_path / "ws", crash_at=1)
    with pytest.raises(LLMCrashedError) as crashed:
        server.start()
    message = str(crashed.value)
    assert message.startswith("the embedded LLM crashed:") and "SIGSEGV" in message and "start-up check" in message
    assert "./scripts/install.sh" in message and "OPENAI_BASE_URL" in message and str(server.log_path) in message
    assert not server.is_running() and "segfault in llama_decode" in server.log_path.read_text()


def test_server_crashing_on_a_question_is_reported_not_as_a_connection_error(llm_settings):
    server = CrashingServer(llm_settings.workspace, crash_at=2)  # passes the start-up check, dies on the question
    client = LLMClient(llm_settings, server=server)
    try:
        with pytest.raises(LLMCrashedError, match=r"^the embedded LLM crashed: .*SIGSEGV.*scripts/install\.sh"):
            client.complete([("user", "hi")])
        assert "the embedded LLM crashed" in client.status()["error"]
        result = LLMFallback(client, None, vocabulary=[]).ask("Who directed Inception?")  # restarts it; it dies again
        assert result.status == "unavailable" and result.message.startswith("LLM unavailable: the embedded LLM crashed:")
        assert "Connection error" not in result.message
    finally:
        server.stop()


def test_describe_says_which_llm_and_where(stub_factory, tmp_path, llm_settings):
    stub = stub_factory("ok")
    assert LLMClient(settings_for(stub.url, tmp_path)).describe() == f"stub-model at {stub.url}"
    client = LLMClient(llm_settings, server=CrashingServer(llm_settings.workspace, crash_at=99))
    assert client.describe().startswith("embedded smollm2 (") and client.describe().endswith("not started")
    try:
        client.server.start()
        assert client.describe().endswith(f"at {client.server.base_url}")
    finally:
        client.server.stop()


def test_serve_says_in_one_line_which_llm_and_where(stub_factory, tmp_path, llm_settings):
    from types import SimpleNamespace

    from qa_system.cli.serve_commands import start_llm

    def pipeline_with(client):
        return SimpleNamespace(fallback=SimpleNamespace(fallback=SimpleNamespace(client=client)))

    assert start_llm(None)(1) == "LLM: off (no Ask pipeline)"
    assert start_llm(SimpleNamespace(fallback=None), no_llm=True)(1) == "LLM: off (--no-llm)"
    stub = stub_factory("ok")
    line = start_llm(pipeline_with(LLMClient(settings_for(stub.url, tmp_path))))(1)
    assert line.startswith(f"LLM: stub-model at {stub.url}") and not stub.requests  # nothing sent at start
    good = LLMClient(llm_settings, server=CrashingServer(llm_settings.workspace, crash_at=99))
    bad = LLMClient(llm_settings, server=CrashingServer(tmp_path / "ws2", crash_at=1))
    try:
        line = start_llm(pipeline_with(good))(60)
        assert line.startswith("LLM: embedded smollm2 (") and f"at {good.server.base_url} (answered its start-up check" in line
        line = start_llm(pipeline_with(bad))(60)
        assert line.startswith("LLM: the embedded LLM crashed:") and "SIGSEGV" in line and "\n" not in line
    finally:
        good.server.stop()
        bad.server.stop()



def test_stop_does_not_hang_on_a_start_in_progress_and_leaves_nothing_behind(tmp_path):
    """Exit while another thread is still starting the server (a long model load or start-up check
    on a busy CPU; measured: ``serve``'s exit hung on it): ``stop`` waits a moment, then stops the
    process anyway."""

    server = CrashingServer(tmp_path / "ws", crash_at=99)
    server._lock.acquire()  # as a starting thread holds it
    try:
        server._start_locked()  # the process is up, the start still "in progress"
        proc = server._proc
        began = time.monotonic()
        server.stop(lock_timeout_s=0.5)
        assert time.monotonic() - began < 10 and proc.poll() is not None and not server.is_running()
        assert server.crash() is None  # stopped, not crashed
    finally:
        server._lock.release()


def test_check_command_names_a_missing_install(monkeypatch, capsys):
    from qa_system.fallback import local_server as llm

    monkeypatch.setattr(llm, "llama_server_installed", lambda: False)
    monkeypatch.setattr(llm, "local_gguf_path", lambda: Path(__file__))
    assert llm.main(["--check"]) == 1
    assert "not installed" in capsys.readouterr().err and "./scripts/install.sh" in llm.REBUILD_HINT


def test_a_reply_cut_at_max_tokens_is_a_parse_error_not_a_crash(stub_factory, tmp_path):
    """With a response_format, the openai client raises LengthFinishReasonError on a cut reply; the
    fallback handles its partial text as any unparsable reply: clear message, no triples."""

    stub = stub_factory("length")
    client = LLMClient(settings_for(stub.url, tmp_path))
    assert client.complete([("user", "hi")], response_format=response_format()).text == '{"answer": "'
    result = LLMFallback(client, None, vocabulary=[]).ask("Who directed Inception?")
    assert result.status == "parse_error" and "could not be parsed" in result.message and result.triples == []
