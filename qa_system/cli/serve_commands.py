"""``qa-system serve``: the Gradio app and the HTTP API (``ui.api``) on the configured graph, in one
uvicorn server (demo graph imported on first start).

The ask pipeline is loaded once, when a reader checkpoint exists, and shared by every asker; without
one the app starts anyway and its Ask tab says so. Maintainer credentials come from settings; outside
production mode a missing password is generated for this run and printed once on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from qa_system.errors import InputError, QAError

log = logging.getLogger(__name__)


def _load_pipeline(settings: Any, store: Any, *, llm: bool = True) -> Any | None:
    from qa_system.ask.pipeline import freeze_loaded_heap, load_pipeline
    from qa_system.ask.reader_loading import shipped_reader

    if not (shipped_reader() / "card.json").is_file():
        log.warning("no reader checkpoint at %s: serving without the Ask pipeline (train one with `qa-system train reader`)", shipped_reader())
        return None
    try:
        pipeline = load_pipeline(settings, store, background_index=True, read_topics=settings.read_topics)  # serve at once; fuzzy matching joins when ready
    except QAError as e:  # a missing or unreadable checkpoint: ask is off, the rest works
        log.warning("serving without the Ask pipeline: %s", e)
        return None
    log.info("ask pipeline loaded from %s", shipped_reader())
    if llm:  # the LLM (embedded SmolLM2 unless OPENAI_BASE_URL is set) starts on the first unsure answer
        from qa_system.fallback.step import build_fallback_step

        pipeline.fallback = build_fallback_step(settings, store, warm_up=True)
    freeze_loaded_heap()  # a server answers many questions: keep the collector off the loaded models
    return pipeline


def start_llm(pipeline: Any | None, *, no_llm: bool = False) -> Callable[[float], str]:
    """Start the embedded LLM (model load + one short completion) in the background while the app
    is built; the returned function waits up to its timeout and gives serve's one line about the LLM:
    which one, and where its endpoint is (or why there is none)."""

    step = getattr(pipeline, "fallback", None) if pipeline is not None else None
    client = getattr(getattr(step, "fallback", None), "client", None)
    if client is None or not hasattr(client, "describe"):
        reason = "--no-llm" if no_llm else "no Ask pipeline" if pipeline is None else "no fallback"
        return lambda _timeout: f"LLM: off ({reason})"
    if not client.embedded:
        return lambda _timeout: f"LLM: {client.describe()} (OPENAI_BASE_URL; reached on the first unsure answer)"
    errors: list[QAError] = []

    def start() -> None:
        try:
            client.server.start()
        except QAError as e:  # named in the line below; the fallback tries again on the next unsure answer
            errors.append(e)

    thread = threading.Thread(target=start, name="llm-start", daemon=True)
    thread.start()

    def line(timeout_s: float) -> str:
        thread.join(timeout_s)
        if errors:
            return f"LLM: {errors[0]} (unsure answers stay the graph's best guess until this is fixed)"
        if thread.is_alive():
            return f"LLM: {client.describe()}, still starting (its endpoint will be in {client.server.dir / 'server.json'})"
        return f"LLM: {client.describe()} (answered its start-up check in {client.server.check_s or 0:.1f} s)"

    return line


def _maintainer_auth(settings: Any) -> Any:
    from qa_system.maintain.accounts import AccountStore
    from ui.auth import MaintainerAuth, generate_password

    accounts = AccountStore(settings.workspace)
    if accounts.configured():  # named accounts (qa-system users add): only they log in
        log.info("maintainer logins: %d named account(s) in %s", len(accounts.list()), accounts.path)
        return MaintainerAuth.from_settings(settings)
    if settings.maintainer_password.get_secret_value():
        return MaintainerAuth.from_settings(settings)
    if settings.production:
        log.warning("production mode and no maintainer account (`qa-system users add NAME --role curator`) "
                    "nor QA_MAINTAINER_PASSWORD: maintainer logins are disabled")
        return MaintainerAuth.from_settings(settings)
    generated = generate_password()
    print(
        f"maintainer login for this run (add named accounts with `qa-system users add`, or set QA_MAINTAINER_PASSWORD): "
        f"user {settings.maintainer_user!r}, password {generated!r}",
        file=sys.stderr,
        flush=True,
    )
    return MaintainerAuth.from_settings(settings, generated_password=generated)


def _serve(args: argparse.Namespace, settings: Any) -> int:
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be between 1 and 65535, got {args.port}")
    from graph.open import open_store
    from qa_system.explore import ensure_demo_graph
    from qa_system.fallback.local_server import exit_on_sigterm
    from ui.api import ApiConfig, create_api, mount_app
    from ui.app import build_app
    from ui.ingest_tab import SharedExtractor, default_loader

    api_config = ApiConfig.from_settings(settings)  # a bad QA_API_KEYS fails before anything loads
    exit_on_sigterm()  # a supervisor's SIGTERM must also stop the embedded LLM server
    store = open_store(settings)
    try:
        if not args.no_demo:
            ensure_demo_graph(store)
        pipeline = None if args.no_reader else _load_pipeline(settings, store, llm=not args.no_llm)
        llm_line = start_llm(pipeline, no_llm=args.no_llm)  # loads while the app is built
        extractor = SharedExtractor(default_loader)  # one extractor for the Ingest tab and POST /v1/ingest
        app = build_app(store, pipeline, auth=_maintainer_auth(settings), workspace=settings.workspace, extractor=extractor)
        api = create_api(store, pipeline, config=api_config, workspace=settings.workspace, extractor=extractor)
        server = mount_app(api, app.queue(default_concurrency_limit=8))  # the app at /, the HTTP API at /v1, its docs at /docs
        import uvicorn

        print(llm_line(60.0), flush=True)
        print(f"Running on http://{args.host}:{args.port} (HTTP API under /v1, docs at /docs)", flush=True)
        uvicorn.run(server, host=args.host, port=args.port, log_level="warning", proxy_headers=False)  # X-Forwarded-For: QA_TRUSTED_PROXIES only
    finally:
        store.close()
    return 0


def register(commands: Any, train: Any, evaluate: Any) -> None:
    p = commands.add_parser("serve", help="start the web app")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--no-demo", action="store_true", help="do not import the demo graph into an empty workspace")
    p.add_argument("--no-reader", action="store_true", help="start without loading the reader (the Ask tab says so)")
    p.add_argument("--no-llm", action="store_true", help="no LLM fallback: unsure answers stay the graph's best guess")
    p.set_defaults(func=_serve)
