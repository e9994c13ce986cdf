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
from qa_system.fallback.answer import LLMFallback
from qa_system.fallback.llm import (
    LLMClient,
    LocalLLMServer,
    free_port,
    idle_cores,
    llama_server_installed,
)


def completion(text: str) -> dict:
    return {
        "id": "c1", "object": "chat.completion", "created": 0, "model": "stub",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }  # fmt: skip


class Stub:
    """An OpenAI-compatible stand-in: ``mode`` is ok | error500 | slow | no_response_format."""

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


def test_500_is_retried_a_bounded_number_of_times(stub_factory, tmp_path):
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
