"""The HTTP API, served by ``qa-system serve`` in the same process as the app (OpenAPI docs at ``/docs``).

``create_api(store, pipeline, ...)`` returns a FastAPI app with the routes below; ``mount_app(api,
blocks)`` mounts the Gradio app at ``/`` on it (``uvicorn`` then serves both); ``ServerThread`` runs
that on a loopback port for tests and the load test.

Routes (all under ``/v1``):

* ``POST /ask`` ``{"question": str, "fallback": false}`` → the ``Answer`` JSON ``qa-system ask --json`` prints;
* ``GET /entities?q=&limit=`` (name search), ``GET /entities/{id}`` (an id, else an exact name or
  alias, as the CLI resolves them), ``GET /entities/{id}/neighbors?hops=&limit=`` (facts with a
  readable ``relation_name``);
* ``POST /ingest`` ``{"text", "id"?, "title"?, "dry_run"?}`` → what was (or would be) added, through
  the Ingest tab's path (``Ingester.preview`` then ``commit``) — maintainer key;
* ``GET /review/proposed``, ``GET /review/{fact_id}``, ``POST /review/{fact_id}/accept|reject`` —
  maintainer key; ``qa_system.maintain.review.ReviewQueue`` decides (compare-and-set, audit log), 409 on a lost decision;
* ``POST /forget`` ``{"document", "dry_run"?, "reason"?}``, ``POST /merge`` ``{"keep", "duplicates", "reason"?}``,
  ``GET /events?about=``, ``POST /events/{id}/undo`` —
  a curator's key (``ui.api_maintain``);
* OpenAI-compatible: ``GET /models``, ``POST /chat/completions`` (the last user message is the question;
  the reply states the answer with numbered citations of its evidence; the structured ``Answer`` is
  the extra top-level field ``qa_answer``; ``stream: true`` sends ``chat.completion.chunk`` events then
  ``data: [DONE]``; an extra body field ``fallback: true`` asks the LLM fallback when the graph is unsure).

Keys (``ApiConfig.from_settings``): ``QA_API_KEYS`` (``KEY`` or ``NAME:KEY``, comma-separated) unlock
the maintainer routes; the reads are open unless ``QA_API_ASK_REQUIRES_KEY=1``. A key is sent as
``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. A key on an open route is not checked (the
``openai`` client always sends one).

Errors are ``{"error": "one line"}`` with the CLI's messages: 400 bad input, 401 missing or unknown key,
403 maintainer routes off (no keys configured), 404 unknown entity or fact, 409 review conflict, 429
rate limited (``Retry-After``), 503 graph store unreachable or a model not available, 500 a bug (logged).
Rate limiting is a token bucket per key (per client address without a valid one):
``QA_API_RATE_LIMIT_PER_MINUTE`` a minute, bursts up to a tenth of it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa_system.errors import (
    CheckpointError,
    DataFormatError,
    DatasetNotFoundError,
    EntityNotFoundError,
    FactNotFoundError,
    GraphUnavailableError,
    InputError,
    LLMUnavailableError,
    ModelError,
    QAError,
    ReadOnlyViolationError,
    ReviewConflictError,
)
from qa_system.types import Answer, FactStatus
from ui.api_access import ApiKeys, RateLimiter
from ui.api_format import (
    MODEL_ID,
    AskRequest,
    ChatRequest,
    IngestRequest,
    ReviewRequest,
    _document_id,
    _preview_triple,
    fact_json,
    question_of,
    reply_text,
)
from ui.api_server import ServerThread, free_port  # noqa: F401 - the API's serving helpers, imported from here by tests and the load test

log = logging.getLogger(__name__)

MAX_NEIGHBOUR_LIMIT = 1000


# -- keys and rate limits ----------------------------------------------------------------------------
@dataclass
class ApiConfig:
    keys: ApiKeys = field(default_factory=ApiKeys)
    ask_requires_key: bool = False
    rate_limit_per_minute: int = 1200

    @classmethod
    def from_settings(cls, settings: Any) -> ApiConfig:
        return cls(
            keys=ApiKeys.from_settings(settings),  # QA_API_KEYS, account keys, trusted proxies
            ask_requires_key=settings.api_ask_requires_key,
            rate_limit_per_minute=settings.api_rate_limit_per_minute,
        )


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def status_of(error: QAError) -> int:
    if isinstance(error, (InputError, ReadOnlyViolationError, DataFormatError)):
        return getattr(error, "http_status", 400)  # 403: an account's role does not allow it
    if isinstance(error, (EntityNotFoundError, FactNotFoundError, DatasetNotFoundError)):
        return 404
    if isinstance(error, ReviewConflictError):
        return 409
    if isinstance(error, (GraphUnavailableError, LLMUnavailableError, CheckpointError, ModelError)):
        return 503
    return 500


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status, headers=headers)


def _validation_message(error: RequestValidationError) -> str:
    problems = []
    for e in error.errors()[:3]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
        problems.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
    return "bad request: " + "; ".join(problems)


# -- the app ----------------------------------------------------------------------------------------------
class FormAsJson:
    """ASGI middleware: ``curl -d '{...}'`` sends JSON labelled ``application/x-www-form-urlencoded``;
    every ``/v1`` body is JSON, so such a body is read as JSON (a real form then fails as bad JSON, 400)."""

    FORM = b"application/x-www-form-urlencoded"

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            headers = scope["headers"]
            if any(k == b"content-type" and v.split(b";")[0].strip().lower() == self.FORM for k, v in headers):
                scope = dict(scope, headers=[(k, b"application/json" if k == b"content-type" else v) for k, v in headers])
        await self.app(scope, receive, send)


_bearer = HTTPBearer(auto_error=False, description="an API key (QA_API_KEYS)")
_header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (QA_API_KEYS)")


def create_api(
    store: Any,
    pipeline: Any | None,
    *,
    config: ApiConfig | None = None,
    workspace: Path | None = None,
    extractor: Any | None = None,
) -> FastAPI:
    """The API over ``store`` and the app's one shared ``pipeline`` (None: ``/v1/ask`` answers 503).

    ``extractor`` is the app's ``ui.ingest_tab.SharedExtractor`` (or an extractor; default: the
    shipped QIDN, loaded on the first ingest); ``workspace`` holds the review log and passages
    (default: the embedded store's workspace).
    """

    from ui.ingest_tab import SharedExtractor, default_loader

    config = config or ApiConfig()
    if workspace is None:
        from ui.app import workspace_of

        workspace = workspace_of(store)
    if not isinstance(extractor, SharedExtractor):
        extractor = SharedExtractor.of(extractor) if extractor is not None else SharedExtractor(default_loader)
    limiter = RateLimiter(config.rate_limit_per_minute)
    ingest_lock = threading.Lock()

    api = FastAPIOffline(  # /docs (Swagger UI) and /redoc from the package's own JS: no CDN
        title="qa-system API",
        version="1",
        description="Question answering over a knowledge graph. Errors are `{\"error\": \"one line\"}`. "
        "Maintainer routes need an API key (`Authorization: Bearer KEY` or `X-API-Key`); see the README's *HTTP API*.",
    )

    @api.exception_handler(ApiError)
    async def _api_error(_request: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.message, e.headers)

    @api.exception_handler(QAError)
    async def _qa_error(_request: Request, e: QAError) -> JSONResponse:
        return _error(status_of(e), str(e))

    @api.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, e: RequestValidationError) -> JSONResponse:
        return _error(400, _validation_message(e))

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, e: StarletteHTTPException) -> JSONResponse:
        return _error(e.status_code, str(e.detail), getattr(e, "headers", None))

    @api.exception_handler(Exception)
    async def _bug(_request: Request, e: Exception) -> JSONResponse:
        log.error("API request failed", exc_info=e)
        return _error(500, "internal error; it was logged")

    def _identify(request: Request, bearer: HTTPAuthorizationCredentials | None, header_key: str | None) -> tuple[str, str | None]:
        """(the presented key, its name when valid); rate-limited per valid key, else per address."""
        presented = [k for k in ((bearer.credentials if bearer is not None else ""), header_key or "") if k]
        names = [config.keys.match(k) for k in presented] if config.keys.enabled else []
        name = next((n for n in names if n), None)  # either header may carry the key (the openai client always sends a Bearer)
        key = presented[0] if presented else ""
        client = f"key:{name}" if name else f"ip:{config.keys.client(request)}"
        wait = limiter.take(client)
        if wait > 0:
            raise ApiError(429, f"rate limit: at most {config.rate_limit_per_minute} requests a minute; retry in {wait:.1f} s",
                           {"Retry-After": str(max(1, math.ceil(wait)))})
        return key, name

    def _require_key(key: str, name: str | None, what: str) -> str:
        if not config.keys.enabled:
            raise ApiError(403, f"{what} through the API is off on this server: set QA_API_KEYS")
        if not key:
            raise ApiError(401, f"{what} needs an API key (Authorization: Bearer KEY or X-API-Key: KEY)",
                           {"WWW-Authenticate": "Bearer"})
        if name is None:
            raise ApiError(401, "unknown API key", {"WWW-Authenticate": "Bearer"})
        return name

    def reader(request: Request, bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008 (FastAPI's idiom)
               header_key: str | None = Depends(_header_key)) -> None:  # noqa: B008
        key, name = _identify(request, bearer, header_key)
        if config.ask_requires_key:
            _require_key(key, name, "asking")

    def maintainer(request: Request, bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
                   header_key: str | None = Depends(_header_key)) -> str:  # noqa: B008
        key, name = _identify(request, bearer, header_key)
        return _require_key(key, name, "this maintainer action")

    def _ask(question: object, fallback: bool) -> Answer:
        if pipeline is None:
            raise ApiError(503, "the reader model is not available on this server (train one with `qa-system train reader`)")
        return pipeline.ask(question, fallback=fallback)

    def _workspace() -> Path:
        if workspace is None:
            raise ApiError(503, "this server was started without a workspace folder (review log, passages)")
        return Path(workspace)

    v1 = APIRouter(prefix="/v1")
    read = [Depends(reader)]

    # -- asking ---------------------------------------------------------------------------------------
    @v1.post("/ask", response_model=Answer, dependencies=read, tags=["ask"],
             summary="Answer a question (the JSON `qa-system ask --json` prints)")
    def ask(body: AskRequest) -> Response:
        answer = _ask(body.question, body.fallback)
        return Response(answer.model_dump_json(), media_type="application/json")

    # -- entities -------------------------------------------------------------------------------------
    @v1.get("/entities", dependencies=read, tags=["graph"], summary="Search entities by name")
    def search_entities(q: str = Query(min_length=1, max_length=500, description="a name or its beginning"),
                        limit: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
        entities = store.search_entities(q.strip(), limit=limit)
        return {"query": q, "entities": [e.model_dump(mode="json") for e in entities]}

    @v1.get("/entities/{entity_id:path}/neighbors", dependencies=read, tags=["graph"],
            summary="Facts around an entity (readable relation names in `relation_name`)")
    def neighbors(entity_id: str, hops: int = Query(1, ge=1, le=3), limit: int = Query(50, ge=1, le=MAX_NEIGHBOUR_LIMIT,
                  description="at most this many facts per entity per hop (sampled)"),
                  status: list[FactStatus] | None = Query(None, description="statuses to include (default: all but rejected)"),
                  relation: list[str] | None = Query(None, description="only these relation ids")) -> dict[str, Any]:
        from qa_system.explore import resolve_entity

        entity = resolve_entity(store, entity_id)
        subgraph = store.neighbors([entity.id], hops=hops, relations=relation or None, statuses=status or None, limit_per_entity=limit)
        facts = sorted(subgraph.facts, key=lambda f: (f.hop, f.relation, f.subject_name, f.object_name))
        return {"entity": entity.model_dump(mode="json"), "hops": hops, "truncated": subgraph.truncated,
                "facts": [fact_json(f) for f in facts]}

    @v1.get("/entities/{entity_id:path}", dependencies=read, tags=["graph"],
            summary="An entity by id (or exact name or alias); 404 when unknown")
    def get_entity(entity_id: str) -> dict[str, Any]:
        from qa_system.explore import resolve_entity

        return resolve_entity(store, entity_id).model_dump(mode="json")

    # -- maintainers ----------------------------------------------------------------------------------
    @v1.post("/ingest", tags=["maintainers"], summary="Extract facts from a document into the graph (maintainer key)")
    def ingest(body: IngestRequest, user: str = Depends(maintainer)) -> dict[str, Any]:  # noqa: B008
        from qa_system.ingest.documents import Document
        from qa_system.ingest.ingester import Ingester

        config.keys.require(user, "ingest")  # a reviewer's key may decide proposed facts, not ingest (403)
        if not body.text.strip():
            raise InputError("the document has no text")
        model, why = extractor.get()
        if model is None:
            raise ApiError(503, f"extractor not available: {why}")
        document = Document(id=_document_id(body), text=body.text, source=body.title or "api")
        with ingest_lock:
            ingester = Ingester(store, model, workspace=_workspace())
            preview = ingester.preview([document])
            summary = None if body.dry_run else ingester.commit(preview)
        if summary is not None:
            log.info("ingest by %s through the API: %s %s", user, document.id, summary)
        counts = preview.counts()
        return {
            "document_id": document.id, "dry_run": body.dry_run, "extractor": preview.extractor, "checkpoint": preview.checkpoint,
            "sentences": len(preview.sentences), "triples_to_add": counts["add"], "triples_to_merge": counts["merge"],
            "triples_to_skip": counts["skip"], "summary": summary.as_dict() if summary is not None else None,
            "triples": [_preview_triple(t) for t in preview.triples],
        }  # fmt: skip

    @v1.get("/review/proposed", tags=["maintainers"], summary="Proposed facts awaiting review, newest first (maintainer key)")
    def proposed(relation: str | None = None, min_score: float | None = Query(None, ge=0, le=1),
                 max_score: float | None = Query(None, ge=0, le=1), limit: int = Query(50, ge=1, le=500),
                 _user: str = Depends(maintainer)) -> dict[str, Any]:  # noqa: B008
        from qa_system.maintain.review import ReviewQueue

        facts = ReviewQueue(store, _workspace()).list(relation=relation, min_score=min_score, max_score=max_score, limit=limit)
        return {"facts": [fact_json(f) for f in facts]}

    @v1.get("/review/{fact_id}", tags=["maintainers"], summary="A fact with its evidence and review history (maintainer key)")
    def review_item(fact_id: str, _user: str = Depends(maintainer)) -> dict[str, Any]:  # noqa: B008
        from qa_system.maintain.review import ReviewQueue

        item = ReviewQueue(store, _workspace()).show(fact_id)
        return item.model_dump(mode="json") | {"fact": fact_json(item.fact)}

    @v1.post("/review/{fact_id}/accept", tags=["maintainers"], summary="Accept a proposed fact (→ verified; 409 when already decided)")
    def accept(fact_id: str, body: ReviewRequest | None = None, user: str = Depends(maintainer)) -> dict[str, Any]:  # noqa: B008
        from qa_system.maintain.review import ReviewQueue

        return ReviewQueue(store, _workspace()).accept(fact_id, reviewer=user, reason=body.reason if body else "").model_dump(mode="json")

    @v1.post("/review/{fact_id}/reject", tags=["maintainers"], summary="Reject a proposed fact (a reason is required; 409 when already decided)")
    def reject(fact_id: str, body: ReviewRequest, user: str = Depends(maintainer)) -> dict[str, Any]:  # noqa: B008
        from qa_system.maintain.review import ReviewQueue

        return ReviewQueue(store, _workspace()).reject(fact_id, reviewer=user, reason=body.reason).model_dump(mode="json")

    # -- OpenAI-compatible ------------------------------------------------------------------------------
    created = int(time.time())
    card = {"id": MODEL_ID, "object": "model", "created": created, "owned_by": "qa-system"}

    @v1.get("/models", dependencies=read, tags=["openai"], summary="The one model (OpenAI-compatible)")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [card]}

    @v1.get("/models/{model_id}", dependencies=read, tags=["openai"], summary="The model (OpenAI-compatible)")
    def model(model_id: str) -> dict[str, Any]:
        if model_id != MODEL_ID:
            raise ApiError(404, f"unknown model {model_id!r}; this server has {MODEL_ID!r}")
        return card

    @v1.post("/chat/completions", dependencies=read, tags=["openai"],
             summary="Chat completion (OpenAI-compatible): the last user message is the question; "
                     "the structured Answer is in `qa_answer`")
    def chat(body: ChatRequest) -> Response:
        from qa_system.ask.pipeline import validate_question

        question = validate_question(question_of(body.messages))
        completion_id, now, model_name = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), body.model or MODEL_ID
        if not body.stream:
            answer = _ask(question, body.fallback)
            text = reply_text(answer)
            payload = {
                "id": completion_id, "object": "chat.completion", "created": now, "model": model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": _usage(question, text), "qa_answer": answer.model_dump(mode="json"),
            }  # fmt: skip
            return JSONResponse(payload)

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            payload = {"id": completion_id, "object": "chat.completion.chunk", "created": now, "model": model_name,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        def events() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})  # at once: the client knows the answer is coming
            try:
                answer = _ask(question, body.fallback)
            except (QAError, ApiError) as e:
                message = e.message if isinstance(e, ApiError) else str(e)
                yield f"data: {json.dumps({'error': {'message': one_line(message), 'type': type(e).__name__}})}\n\n"
                yield "data: [DONE]\n\n"
                return
            except Exception:
                log.exception("chat completion failed")
                yield f"data: {json.dumps({'error': {'message': 'internal error; it was logged', 'type': 'internal'}})}\n\n"
                yield "data: [DONE]\n\n"
                return
            text = reply_text(answer)
            for piece in re.split(r"(?<=\n)", text):
                if piece:
                    yield chunk({"content": piece})
            yield chunk({}, "stop", usage=_usage(question, text), qa_answer=answer.model_dump(mode="json"))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    from ui.api_maintain import add_maintain_routes

    add_maintain_routes(v1, store, _workspace, maintainer, config.keys)  # forget, merge, the audit trail, undo
    api.include_router(v1)
    api.add_middleware(FormAsJson)
    api.state.limiter = limiter
    return api


def _usage(question: str, text: str) -> dict[str, int]:
    prompt, completion = len(question.split()), len(text.split())  # words, not tokens: there is no tokenizer here
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


# -- serving ------------------------------------------------------------------------------------------------
def mount_app(api: FastAPI, blocks: Any) -> FastAPI:
    """The Gradio app mounted at ``/`` on ``api`` (its own routes, ``/v1`` and ``/docs``, come first).
    Call ``blocks.queue(...)`` first; theme and CSS come from ``ui.app.launch_options``."""

    import gradio as gr

    from ui.app import launch_options

    return gr.mount_gradio_app(api, blocks, path="/", show_error=True, **launch_options())
