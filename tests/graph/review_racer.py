"""One "app server" of the review race (``tests/graph/test_review_race.py``), run as its own process:
its own ``Neo4jStore`` and its own workspace (no shared file lock), deciding every fact of each round
as soon as the test says go.

``python -m tests.graph.review_racer FOLDER NAME ACTION ROUNDS`` with ``NEO4J_*`` set: for each round
``r`` it waits for ``FOLDER/go-r``, then ``accept``s (or ``reject``s) each fact id of
``FOLDER/facts-r.json`` (even rounds in the given order, odd ones in an order of its own), and writes ``FOLDER/out-r-NAME.json``: one record per fact
(outcome ``applied`` with its event id, or ``conflict`` with the message).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path


def main(folder: Path, name: str, action: str, rounds: int) -> None:
    from graph.neo4j_store import Neo4jStore
    from qa_system.errors import ReviewConflictError
    from qa_system.maintain.review import ReviewQueue

    store = Neo4jStore(
        os.environ["NEO4J_URI"], os.environ.get("NEO4J_USER", "neo4j"), os.environ.get("NEO4J_PASSWORD", ""),
        os.environ.get("NEO4J_DATABASE") or None, connect_timeout_s=10,
    )  # fmt: skip
    queue = ReviewQueue(store, folder / f"workspace-{name}")
    (folder / f"ready-{name}").touch()
    try:
        for r in range(rounds):
            go = folder / f"go-{r}"
            deadline = time.monotonic() + 300
            while not go.exists():
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}: no go for round {r}")
                time.sleep(0.002)
            out = []
            fact_ids = json.loads((folder / f"facts-{r}.json").read_text(encoding="utf-8"))
            if r % 2:  # odd rounds: each server its own order (wins are mixed); even: the same order (head to head)
                random.Random(f"{name}-{r}").shuffle(fact_ids)
            for fact_id in fact_ids:
                try:
                    if action == "accept":
                        outcome = queue.accept(fact_id, reviewer=name)
                    else:
                        outcome = queue.reject(fact_id, reviewer=name, reason=f"rejected by {name}")
                    out.append({"fact_id": fact_id, "outcome": "applied", "event_id": outcome.event_id})
                except ReviewConflictError as e:
                    out.append({"fact_id": fact_id, "outcome": "conflict", "message": str(e)})
            tmp = folder / f"out-{r}-{name}.tmp"
            tmp.write_text(json.dumps(out), encoding="utf-8")
            tmp.rename(folder / f"out-{r}-{name}.json")
    finally:
        store.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]))
