"""Two app servers (two processes, each with its own store connection and workspace) on one Bolt
server race to decide the same proposed facts: one accepts every fact, the other rejects every fact,
in the same order, at the same moment. Exactly one decision per fact wins, the other gets "already
<status> by <winner> at <time>", the fact's status is the winner's, and the store's audit trail holds
exactly the winners' events (none lost, none doubled). Once in the default run; 20 rounds under ``slow``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from qa_system.types import Entity, Fact, FactStatus, Provenance, SourceKind

pytestmark = pytest.mark.neo4j

FACTS_PER_ROUND = 12
ROOT = Path(__file__).resolve().parents[2]


def _wait_for(paths: list[Path], what: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _propose(store, r: int) -> list[str]:
    prov = Provenance(source_kind=SourceKind.LLM, model="fake", question=f"round {r}?", premises=["p"], scores=[0.9], score=0.9)
    facts = [Fact(subject=f"/race/e{i}", relation=f"/race/round_{r}", object="/race/target", status=FactStatus.PROPOSED,
                  confidence=0.9, provenance=prov) for i in range(FACTS_PER_ROUND)]  # fmt: skip
    store.upsert_facts(facts)
    return [f.id for f in facts]


@pytest.mark.parametrize("rounds", [1, pytest.param(20, marks=pytest.mark.slow)])
def test_two_servers_never_double_decide_a_fact(neo4j_store, bolt_server, tmp_path: Path, rounds: int) -> None:
    store = neo4j_store
    store.upsert_entities([Entity(id="/race/target", name="Race target")] + [Entity(id=f"/race/e{i}", name=f"Racer {i}") for i in range(FACTS_PER_ROUND)])
    env = dict(os.environ, NEO4J_URI=bolt_server.uri, NEO4J_USER=bolt_server.user, NEO4J_PASSWORD=bolt_server.password,
               NEO4J_DATABASE=bolt_server.database or "", PYTHONPATH=str(ROOT))  # fmt: skip
    servers = {"ada": "accept", "bob": "reject"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "tests.graph.review_racer", str(tmp_path), name, action, str(rounds)], cwd=ROOT, env=env)
        for name, action in servers.items()
    ]
    try:
        _wait_for([tmp_path / f"ready-{n}" for n in servers], "both servers to start")
        wins: Counter[str] = Counter()
        for r in range(rounds):
            fact_ids = _propose(store, r)
            (tmp_path / f"facts-{r}.json").write_text(json.dumps(fact_ids), encoding="utf-8")
            (tmp_path / f"go-{r}").touch()
            outs = {n: tmp_path / f"out-{r}-{n}.json" for n in servers}
            _wait_for(list(outs.values()), f"round {r}")
            results = {n: {o["fact_id"]: o for o in json.loads(p.read_text(encoding="utf-8"))} for n, p in outs.items()}
            events = {}
            for event in store.events_touching(fact_ids):
                assert event.targets[0] not in events, f"round {r}: two events for fact {event.targets[0]}"
                events[event.targets[0]] = event
            for fid in fact_ids:
                applied = [n for n in servers if results[n][fid]["outcome"] == "applied"]
                assert len(applied) == 1, f"round {r}: fact {fid} decided by {applied or 'nobody'}"
                (winner,) = applied
                (loser,) = [n for n in servers if n != winner]
                wins[winner] += 1
                status = "verified" if servers[winner] == "accept" else "rejected"
                assert store.get_fact(fid).status.value == status
                assert results[loser][fid]["outcome"] == "conflict"
                assert f"already {status} by {winner} at " in results[loser][fid]["message"]
                event = events[fid]  # the winner's event, in the store: none lost
                assert (event.id, event.actor, event.action) == (results[winner][fid]["event_id"], winner, servers[winner])
            assert len(events) == FACTS_PER_ROUND
        print(f"review race: {rounds} round(s) x {FACTS_PER_ROUND} facts, wins {dict(wins)}")
    finally:
        for proc in procs:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert [p.returncode for p in procs] == [0, 0]
