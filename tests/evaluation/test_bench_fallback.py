"""The fallback benchmark's pure parts: which questions it times, and how it summarises times."""

from __future__ import annotations

from types import SimpleNamespace

from evaluation.bench_fallback import percentiles, time_one, unsure_questions


class FakePipeline:
    """Unsure of questions ending in '?'; the fallback answers with a fixed summary."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def ask(self, question: str, *, fallback: bool = True):
        self.asked.append(question)
        return SimpleNamespace(source="graph-unsure" if question.endswith("?") else "graph", question=question)

    def wants_fallback(self, answer) -> bool:
        return answer.source == "graph-unsure"

    def fall_back(self, answer):
        summary = SimpleNamespace(latency_s=0.0, status="ok", decisions=[{}, {}], proposed=["f1"])
        return SimpleNamespace(fallback=summary, validated=True, source="llm")


def test_only_questions_the_graph_is_unsure_of_are_picked_and_the_scan_stops_early() -> None:
    pipeline = FakePipeline()
    questions = ["a?", "b", "c?", "d?", "e?"]
    assert unsure_questions(pipeline, questions, 2) == ["a?", "c?"]
    assert pipeline.asked == ["a?", "b", "c?"]


def test_time_one_splits_the_parts_and_counts_triples() -> None:
    run = time_one(FakePipeline(), "who?")
    assert run["status"] == "ok" and run["triples"] == 2 and run["proposed"] == 1 and run["validated"]
    assert run["total_s"] >= run["graph_s"] >= 0.0 and run["validation_s"] >= 0.0


def test_percentiles() -> None:
    got = percentiles([float(i) for i in range(1, 101)])
    assert got["p50_s"] == 51.0 and got["p95_s"] == 96.0 and got["max_s"] == 100.0 and got["mean_s"] == 50.5
    assert percentiles([]) == {}
