"""``qa-system serve``: the Gradio app on the configured graph (demo graph imported on first start)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from qa_system.errors import InputError

log = logging.getLogger(__name__)


def _serve(args: argparse.Namespace, settings: Any) -> int:
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be between 1 and 65535, got {args.port}")
    from graph.store import open_store
    from qa_system.explore import ensure_demo_graph
    from ui.app import build_app

    store = open_store(settings)
    try:
        if not args.no_demo:
            ensure_demo_graph(store)
        app = build_app(store)
        log.info("serving on http://%s:%d", args.host, args.port)
        app.queue(default_concurrency_limit=8).launch(server_name=args.host, server_port=args.port, show_error=True)
    finally:
        store.close()
    return 0


def register(commands: Any, train: Any, evaluate: Any) -> None:
    p = commands.add_parser("serve", help="start the web app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--no-demo", action="store_true", help="do not import the demo graph into an empty workspace")
    p.set_defaults(func=_serve)
