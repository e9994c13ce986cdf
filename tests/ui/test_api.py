"""The HTTP API (``ui.api``): the routes through FastAPI's TestClient on the tiny real store with the
fake pipeline (``tests.ui.fakes``), then the real thing: the app and the API in one uvicorn server on
a loopback port, driven by the real ``openai`` client (plain and streamed) and plain HTTP.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qa_system.errors import GraphUnavailableError
from qa_system.relations import readable_relation
from qa_system.types import Answer, FactStatus, FactView, Provenance, RankedEntity, SourceKind
from tests.ui.fakes import FakeExtractor, fake_pipeline
from ui.api import ApiConfig, ApiKeys, RateLimiter, create_api, reply_text

KEY = "k-" + "s3cret" * 4
MAINTAINER = {"Authorization": f"Bearer {KEY}"}


def _workspace(store) -> Path:
    return Path(store.db_path).parent.parent


@pytest.fixture()
def client(tiny_store):
    pipeline = fake_pipeline(tiny_store)
    api = create_api(tiny_store, pipeline, config=ApiConfig(keys=ApiKeys.parse(f"alice:{KEY}")), extractor=FakeExtractor())
    with TestClient(api) as c:
        c.pipeline = pipeline
        yield c


# -- asking ---------------------------------------------------------------------------------------------
def test_ask_returns_the_answer_json_the_cli_prints(client) -> None:
    r = client.post("/v1/ask", json={"question": "Who directed Inception?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"]["name"] == "Christopher Nolan" and body["answer"]["id"] == "/m/nolan"
    assert body == client.pipeline.ask("Who directed Inception?").model_dump(mode="json")
    assert body["evidence"] and {"question", "confidence", "source", "alternatives", "topic_entities"} <= set(body)
    curl = client.post("/v1/ask", content=b'{"question":"Who directed Inception?"}',  # what `curl -d` sends
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert curl.status_code == 200 and curl.json() == body


@pytest.mark.parametrize("payload, fragment", [
    ({"question": ""}, "question"), ({"question": "x" * 5000}, "question"), ({}, "question: Field required"),
    ({"question": 3}, "question"),
])
def test_a_bad_question_is_400_with_one_line(client, payload, fragment) -> None:
    r = client.post("/v1/ask", json=payload)
    assert r.status_code == 400 and set(r.json()) == {"error"}
    assert fragment in r.json()["error"] and "\n" not in r.json()["error"]


def test_without_a_reader_asking_is_503(tiny_store) -> None:
    with TestClient(create_api(tiny_store, None, extractor=FakeExtractor())) as c:
        r = c.post("/v1/ask", json={"question": "Who directed Inception?"})
    assert r.status_code == 503 and "reader model is not available" in r.json()["error"]


def test_asking_can_be_put_behind_a_key(tiny_store) -> None:
    config = ApiConfig(keys=ApiKeys.parse(KEY), ask_requires_key=True)
    with TestClient(create_api(tiny_store, fake_pipeline(tiny_store), config=config, extractor=FakeExtractor())) as c:
        r = c.post("/v1/ask", json={"question": "Who directed Inception?"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.post("/v1/ask", json={"question": "Who directed Inception?"}, headers={"X-API-Key": "nope"}).status_code == 401
        assert c.post("/v1/ask", json={"question": "Who directed Inception?"}, headers={"X-API-Key": KEY}).status_code == 200
        assert c.get("/v1/entities", params={"q": "Inc"}).status_code == 401
        assert c.get("/v1/models", headers=MAINTAINER).status_code == 200


# -- entities --------------------------------------------------------------------------------------------
def test_entities_by_id_name_and_search(client) -> None:
    r = client.get("/v1/entities/%2Fm%2Fnolan")
    assert r.status_code == 200 and r.json()["name"] == "Christopher Nolan" and r.json()["aliases"] == ["Chris Nolan", "Nolan"]
    assert client.get("/v1/entities//m/nolan").json()["id"] == "/m/nolan"
    assert client.get("/v1/entities/Chris Nolan").json()["id"] == "/m/nolan"  # an alias, as the CLI resolves it
    missing = client.get("/v1/entities/Christopher Nolen")
    assert missing.status_code == 404 and "unknown entity 'Christopher Nolen'" in missing.json()["error"]
    found = client.get("/v1/entities", params={"q": "Christ", "limit": 5}).json()
    assert found["query"] == "Christ" and [e["id"] for e in found["entities"]][:1] == ["/m/nolan"]
    assert client.get("/v1/entities").status_code == 400
    assert client.get("/v1/entities", params={"q": "x", "limit": 0}).status_code == 400


def test_neighbors_with_readable_relation_names(client) -> None:
    r = client.get("/v1/entities/%2Fm%2Finception/neighbors", params={"hops": 1, "limit": 20})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["entity"]["id"] == "/m/inception" and body["hops"] == 1 and body["truncated"] is False
    triples = {(f["subject_name"], f["relation"], f["object_name"]) for f in body["facts"]}
    assert ("Christopher Nolan", "/film/director/film", "Inception") in triples and len(triples) == 3
    assert all(f["relation_name"] == readable_relation(f["relation"]) and f["status"] == "verified" for f in body["facts"])
    assert client.get("/v1/entities/%2Fm%2Finception/neighbors", params={"hops": 9}).status_code == 400
    assert client.get("/v1/entities/nobody/neighbors").status_code == 404


def test_an_unreachable_graph_store_is_503(tiny_store) -> None:
    class Down:
        db_path = tiny_store.db_path

        def search_entities(self, *_a, **_k):
            raise GraphUnavailableError("cannot reach the graph database at bolt://db:7687")

    with TestClient(create_api(Down(), None, extractor=FakeExtractor())) as c:
        r = c.get("/v1/entities", params={"q": "Inc"})
    assert r.status_code == 503 and r.json() == {"error": "cannot reach the graph database at bolt://db:7687"}


# -- maintainers: keys, review, ingest --------------------------------------------------------------------
def test_maintainer_routes_need_a_key(client, tiny_store) -> None:
    assert client.get("/v1/review/proposed").status_code == 401
    assert client.get("/v1/review/proposed", headers={"Authorization": "Bearer wrong"}).json() == {"error": "unknown API key"}
    assert client.get("/v1/review/proposed", headers=MAINTAINER).status_code == 200
    assert client.get("/v1/review/proposed", headers={"X-API-Key": KEY}).status_code == 200
    assert client.get("/v1/review/proposed", headers={"X-API-Key": KEY, "Authorization": "Bearer x"}).status_code == 200
    with TestClient(create_api(tiny_store, None, extractor=FakeExtractor())) as off:  # no QA_API_KEYS
        r = off.post("/v1/review/abc/accept", headers=MAINTAINER)
        assert r.status_code == 403 and "QA_API_KEYS" in r.json()["error"]


def test_curator_routes_merge_list_events_undo_and_forget(client, tiny_store) -> None:
    from tests.maintain.test_forget_merge import _with_duplicate

    before = tiny_store.stats()
    dup = _with_duplicate(tiny_store)
    assert client.post("/v1/merge", json={"keep": "/m/inception", "duplicates": [dup.id]}).status_code == 401  # no key
    assert client.post("/v1/merge", headers=MAINTAINER, json={"keep": "/m/inception", "duplicates": ["/m/inception"]}).status_code == 400
    merged = client.post("/v1/merge", headers=MAINTAINER, json={"keep": "/m/inception", "duplicates": [dup.id], "reason": "same film"})
    assert merged.status_code == 200, merged.text
    assert tiny_store.get_entity(dup.id) is None and "Inception (film)" in tiny_store.get_entity("/m/inception").aliases
    trail = client.get("/v1/events", headers=MAINTAINER, params={"about": "/m/inception"}).json()
    assert trail and trail[0]["action"] == "merge" and trail[0]["actor"] == "alice"
    undone = client.post(f"/v1/events/{trail[0]['id']}/undo", headers=MAINTAINER, json={"reason": "not the same"})
    assert undone.status_code == 200, undone.text
    assert tiny_store.get_entity(dup.id) is not None
    assert client.post(f"/v1/events/{trail[0]['id']}/undo", headers=MAINTAINER).status_code in (400, 409)  # undone already
    assert client.post("/v1/forget", headers=MAINTAINER, json={"document": "no-such-doc", "dry_run": True}).status_code == 400
    assert tiny_store.stats().facts == before.facts + 4


def test_review_accept_reject_and_conflicts(client, tiny_store) -> None:
    from evaluation.load_test import seed_proposed_facts
    from qa_system.maintain.review import read_jsonl

    first, second = seed_proposed_facts(tiny_store, 2)
    listed = client.get("/v1/review/proposed", headers=MAINTAINER).json()["facts"]
    assert {f["id"] for f in listed} == {first, second} and all(f["status"] == "proposed" and f["relation_name"] for f in listed)
    shown = client.get(f"/v1/review/{first}", headers=MAINTAINER).json()
    assert shown["fact"]["id"] == first and shown["evidence"] and shown["history"] == []

    r = client.post(f"/v1/review/{first}/accept", headers=MAINTAINER)
    assert r.status_code == 200 and r.json()["outcome"] == "applied" and r.json()["status"] == "verified" and r.json()["reviewer"] == "alice"
    again = client.post(f"/v1/review/{first}/accept", headers=MAINTAINER, json={"reason": "twice"})
    assert again.status_code == 409 and "already verified by alice" in again.json()["error"]
    assert client.post(f"/v1/review/{second}/reject", headers=MAINTAINER, json={"reason": " "}).status_code == 400
    assert client.post(f"/v1/review/{second}/reject", headers=MAINTAINER, json={"reason": "not true"}).json()["status"] == "rejected"
    assert client.post("/v1/review/0000/accept", headers=MAINTAINER).status_code == 404
    assert tiny_store.get_fact(first).status == FactStatus.VERIFIED and tiny_store.get_fact(second).status == FactStatus.REJECTED
    audit = read_jsonl(_workspace(tiny_store) / "review" / "audit.jsonl")
    assert [(a["fact_id"], a["action"], a["outcome"]) for a in audit] == [
        (first, "accept", "applied"), (first, "accept", "conflict"), (second, "reject", "applied")]


def test_ingest_a_document(client, tiny_store) -> None:
    text = "Christopher Nolan directed Titanic. It was long.\n\nLeonardo DiCaprio starred in Memento."
    assert client.post("/v1/ingest", json={"text": text}).status_code == 401
    before = tiny_store.stats().facts
    dry = client.post("/v1/ingest", headers=MAINTAINER, json={"text": text, "title": "notes.md", "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert dry.json()["triples_to_add"] == 2 and dry.json()["summary"] is None and tiny_store.stats().facts == before
    r = client.post("/v1/ingest", headers=MAINTAINER, json={"text": text, "title": "notes.md"})
    body = r.json()
    assert r.status_code == 200 and body["document_id"].startswith("notes.md-") and body["extractor"] == "fake"
    assert body["summary"]["triples_added"] == 2 and tiny_store.stats().facts == before + 2
    added = {(t["subject"]["name"], t["relation"], t["object"]["name"]) for t in body["triples"] if t["action"] == "add"}
    assert added == {("Christopher Nolan", "director", "Titanic"), ("Leonardo DiCaprio", "starring", "Memento")}
    assert client.post("/v1/ingest", headers=MAINTAINER, json={"text": text, "title": "notes.md"}).json()["summary"]["triples_added"] == 0
    assert client.post("/v1/ingest", headers=MAINTAINER, json={"text": ""}).status_code == 400


# -- rate limits --------------------------------------------------------------------------------------------
def test_the_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(60, burst=2, clock=lambda: now[0])
    assert limiter.take("a") == 0 and limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(1.0) and limiter.take("b") == 0  # one client's burst is not another's
    now[0] = 1.0
    assert limiter.take("a") == 0 and limiter.take("a") > 0
    assert RateLimiter(0).take("a") == 0  # off


def test_rate_limited_requests_are_429_with_retry_after(tiny_store) -> None:
    config = ApiConfig(keys=ApiKeys.parse(KEY), rate_limit_per_minute=20)  # bursts of 2
    with TestClient(create_api(tiny_store, None, config=config, extractor=FakeExtractor())) as c:
        codes = [c.get("/v1/models").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = c.get("/v1/models")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "rate limit" in r.json()["error"]
        assert c.get("/v1/models", headers=MAINTAINER).status_code == 200  # a key has its own bucket


# -- OpenAI-compatible -----------------------------------------------------------------------------------------
def test_reply_text_cites_the_evidence() -> None:
    fact = FactView(id="f1", subject="/m/inception", subject_name="Inception", relation="/film/film/directed_by",
                    object="/m/nolan", object_name="Christopher Nolan", status=FactStatus.VERIFIED, confidence=1.0,
                    provenance=Provenance(source_kind=SourceKind.DATASET, dataset="FB15k-237"))
    answer = Answer(question="Who directed Inception?", answer=RankedEntity(id="/m/nolan", name="Christopher Nolan", confidence=0.9),
                    confidence=0.9, source="graph", evidence=[fact])
    assert reply_text(answer) == "Christopher Nolan [1]\n\n[1] Inception — directed by → Christopher Nolan (verified; FB15k-237)"
    unsure = answer.model_copy(update={"source": "graph-unsure", "confidence": 0.3})
    assert "Not sure: confidence 30%." in reply_text(unsure)
    none = Answer(question="Who?", message="No entity of the graph is named in the question.")
    assert reply_text(none) == "No entity of the graph is named in the question."


def test_chat_completion_through_the_test_client(client) -> None:
    r = client.post("/v1/chat/completions", json={"model": "qa-system", "temperature": 0.2, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who directed Titanic?"},
        {"role": "assistant", "content": "James Cameron"}, {"role": "user", "content": [{"type": "text", "text": "Who directed Inception?"}]}]})
    body = r.json()
    assert r.status_code == 200 and body["object"] == "chat.completion" and body["qa_answer"]["answer"]["name"] == "Christopher Nolan"
    assert body["choices"][0]["message"]["content"].startswith("Christopher Nolan [1]")
    assert client.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "hi"}]}).status_code == 400
    assert client.post("/v1/chat/completions", json={"messages": []}).status_code == 400
    assert client.get("/v1/models/gpt-4").status_code == 404


def test_openai_client_against_the_real_server(tiny_store) -> None:
    """``qa-system serve``'s assembly (the app at /, the API at /v1) in a real uvicorn server, the real openai client."""

    import openai

    from ui.api import ServerThread, mount_app
    from ui.app import build_app
    from ui.auth import MaintainerAuth

    pipeline = fake_pipeline(tiny_store)
    blocks = build_app(tiny_store, pipeline, auth=MaintainerAuth("maintainer", "pw"), extractor=FakeExtractor())
    api = create_api(tiny_store, pipeline, config=ApiConfig(keys=ApiKeys.parse(KEY)), extractor=FakeExtractor())
    server = ServerThread(mount_app(api, blocks.queue(default_concurrency_limit=8)))
    url = server.start()
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=60)
        assert [m.id for m in client.models.list()] == ["qa-system"]
        completion = client.chat.completions.create(model="qa-system", messages=[{"role": "user", "content": "Who directed Inception?"}])
        text = completion.choices[0].message.content
        assert text.startswith("Christopher Nolan [1]") and "\n\n[1] Christopher Nolan — film → Inception (verified; " in text
        assert completion.qa_answer["answer"]["id"] == "/m/nolan" and completion.choices[0].finish_reason == "stop"

        stream = client.chat.completions.create(model="qa-system", stream=True, messages=[{"role": "user", "content": "Who directed Inception?"}])
        chunks = list(stream)
        assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason == "stop"
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
        assert chunks[-1].qa_answer["answer"]["name"] == "Christopher Nolan"

        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="qa-system", messages=[{"role": "user", "content": "   "}])

        request = urllib.request.Request(f"{url}/v1/ask", data=json.dumps({"question": "Who directed Inception?"}).encode())
        with urllib.request.urlopen(request, timeout=30) as r:  # sent as a form, as `curl -d` does
            assert json.load(r)["answer"]["name"] == "Christopher Nolan"
        with urllib.request.urlopen(f"{url}/docs", timeout=30) as r:
            page = r.read().decode()
        scripts = re.findall(r'src="([^"]+\.js)"', page)
        assert scripts and all(s.startswith("/") for s in scripts), scripts  # served by the app: no CDN
        with urllib.request.urlopen(f"{url}{scripts[0]}", timeout=30) as r:
            assert "swagger" in r.read(200_000).decode(errors="replace").lower()
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=30) as r:
            paths = json.load(r)["paths"]
            assert {"/v1/ask", "/v1/chat/completions", "/v1/review/{fact_id}/accept", "/v1/ingest"} <= set(paths)
        with urllib.request.urlopen(f"{url}/", timeout=30) as r:  # the Gradio app is still there
            assert "gradio" in r.read().decode().lower()
    finally:
        server.stop()
        blocks.close()


def test_qa_system_serve_serves_the_app_and_the_api(tiny_kg_dir: Path, tmp_path: Path) -> None:
    """The real command on a tiny workspace: the page at /, the API under /v1 with the configured key."""

    import os
    import subprocess
    import sys
    import time

    from graph.embedded import EmbeddedStore
    from graph.importers import import_kg
    from ui.api import free_port

    store = EmbeddedStore.open(tmp_path / "ws")
    import_kg(store, tiny_kg_dir)
    store.close()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "QA_"))}
    env.update(QA_WORKSPACE=str(tmp_path / "ws"), QA_API_KEYS=f"bob:{KEY}", GRADIO_ANALYTICS_ENABLED="False")
    server = subprocess.Popen([sys.executable, "-m", "qa_system", "serve", "--no-reader", "--no-llm", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read()[-2000:]
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                    assert json.load(r)["data"][0]["id"] == "qa-system"
                break
            except OSError:
                assert time.monotonic() < deadline, "serve did not answer within 120 s"
                time.sleep(0.5)
        with urllib.request.urlopen(f"{url}/v1/entities/Inception", timeout=10) as r:
            assert json.load(r)["id"] == "/m/inception"
        request = urllib.request.Request(f"{url}/v1/review/proposed", headers={"Authorization": f"Bearer {KEY}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert json.load(r) == {"facts": []}
        with pytest.raises(urllib.error.HTTPError) as refused:  # no reader: asking says so
            urllib.request.urlopen(urllib.request.Request(f"{url}/v1/ask", data=b'{"question": "Who directed Inception?"}'), timeout=10)
        assert refused.value.code == 503 and "reader model is not available" in json.load(refused.value)["error"]
        with urllib.request.urlopen(f"{url}/", timeout=10) as r:
            assert "gradio" in r.read().decode().lower()
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert f"Running on http://127.0.0.1:{port}" in server.stdout.read()
