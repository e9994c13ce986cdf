"""The Gradio app. Tabs are built by small modules; all logic lives in ``qa_system`` and ``graph``.

``build_app(store, pipeline=None, auth=None)`` returns the ``gr.Blocks``; ``qa-system serve``
launches it with ``launch_options()`` (theme and CSS, which Gradio 6 takes at launch).

* ``pipeline`` is the ONE shared ``AskPipeline`` (thread-safe) serving every asker; ``None`` when
  no reader checkpoint is available — the Ask tab then says so instead of answering.
* ``auth`` is a ``ui.auth.MaintainerAuth`` (credentials from settings); ``None`` disables
  maintainer logins.
* ``workspace`` is the folder of the review audit log and the passage index (the CLI's
  ``settings.workspace``); by default the embedded store's own workspace.
* ``extractor`` is the triple extractor the Ingest tab uses (or a ``ui.ingest_tab.SharedExtractor``,
  to share one with the HTTP API); by default the shipped QIDN checkpoint, loaded on the first
  preview and shared by every session.

Tabs: Ask, Explore, Dashboard (open to everyone); Review, Ingest, Cypher workbench (maintainers);
Maintainer login.

Adding a maintainer-only tab (Review, Ingest, ...)
-------------------------------------------------
Inside ``build_app``, before ``gate.build_login_tab()``::

    with gate.tab("Review"):                 # hidden until this browser session logs in
        build_review_tab(store, gate)

and in the tab module wrap EVERY event handler with ``ui.auth.maintainer_only``, passing
``gate.session`` as the first input (the handler receives the ``ui.auth.Session`` first)::

    accept.click(maintainer_only(do_accept), inputs=[gate.session, fact_id], outputs=[...],
                 api_visibility="private")

The tab's visibility is only cosmetic; ``maintainer_only`` is the check that counts (it refuses
with a ``gr.Error`` toast when the session is not logged in, whatever called the handler).
``gate.session.value``/the handler's first argument carries ``.user`` for audit logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from ui.ask_tab import build_ask_tab
from ui.auth import MaintainerAuth, MaintainerGate
from ui.cypher_tab import build_cypher_tab
from ui.dashboard_tab import build_dashboard_tab
from ui.explore_tab import build_explore_tab
from ui.ingest_tab import SharedExtractor, build_ingest_tab, default_loader
from ui.review_tab import build_review_tab

CSS = """
.gradio-container { max-width: 1280px !important; margin: auto; }
#app-header h1 { margin-bottom: 0; }
#app-header p { color: #6b7280; margin-top: 4px; }
.login-form { max-width: 420px; }
#review-counts, #ingest-status { margin-bottom: 4px; }
#ask-graph svg { display: block; margin: 4px 0 8px; }
"""


def launch_options() -> dict[str, Any]:
    """Theme and CSS for ``Blocks.launch`` (Gradio 6 takes them there, not on ``Blocks``)."""

    return {"theme": gr.themes.Soft(primary_hue="blue", neutral_hue="slate"), "css": CSS}


def workspace_of(store: Any) -> Path | None:
    """The workspace an embedded store lives in (``<workspace>/graph/ladybug.db``); None for Neo4j."""

    db_path = getattr(store, "db_path", None)
    return Path(db_path).resolve().parent.parent if db_path else None


def build_app(
    store: Any,
    pipeline: Any | None = None,
    *,
    auth: MaintainerAuth | None = None,
    workspace: Path | None = None,
    extractor: Any | None = None,
) -> gr.Blocks:
    stats = store.stats()
    auth = auth or MaintainerAuth(user="maintainer", password="")
    workspace = Path(workspace) if workspace is not None else workspace_of(store)
    if isinstance(extractor, SharedExtractor):  # shared with the HTTP API (``qa-system serve``)
        shared_extractor = extractor
    else:
        shared_extractor = SharedExtractor.of(extractor) if extractor is not None else SharedExtractor(default_loader)
    with gr.Blocks(title="qa-system") as app:
        gr.Markdown(
            f"# qa-system\nQuestion answering over a knowledge graph — {stats.entities:,} entities, "
            f"{stats.facts:,} facts ({stats.backend}).",
            elem_id="app-header",
        )
        gate = MaintainerGate(auth)
        with gr.Tab("Ask", elem_id="tab-ask"):
            build_ask_tab(pipeline, store=store)
        with gr.Tab("Explore", elem_id="tab-explore"):
            build_explore_tab(store, gate=gate, workspace=workspace)  # "Merge into…" for curators
        with gr.Tab("Dashboard", elem_id="tab-dashboard") as dashboard:
            build_dashboard_tab(store, dashboard)
        with gate.tab("Review", elem_id="tab-review") as review:
            build_review_tab(store, workspace, gate, review)
        with gate.tab("Ingest", elem_id="tab-ingest", action="ingest"):  # curators
            build_ingest_tab(store, workspace, gate, shared_extractor)
        with gate.tab("Cypher workbench", elem_id="tab-cypher"):
            build_cypher_tab(store, gate)
        gate.build_login_tab()
    return app
