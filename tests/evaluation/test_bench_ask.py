"""The benchmark's stage clock: stages timed inside the measured calls, summed per question, and put back."""

from __future__ import annotations

import time

from evaluation.bench_ask import StageClock


class Retriever:
    def retrieve(self, topic: str) -> str:
        time.sleep(0.002)
        return topic


def test_stage_times_are_summed_per_question_and_the_methods_put_back() -> None:
    retriever, other = Retriever(), Retriever()
    linker = type("Linker", (), {})()
    linker.link = lambda text: text.upper()  # an instance attribute, not a method of the class
    original_link = linker.link
    clock = StageClock()
    clock.wrap(retriever, "retrieve", "retrieve")
    clock.wrap(linker, "link", "link")
    assert retriever.retrieve("a") == "a" and linker.link("q") == "Q"  # same results through the clock
    retriever.retrieve("b")  # a second topic of the same question
    other.retrieve("c")  # another instance is not timed
    first = clock.take()
    assert set(first) == {"retrieve", "link"} and first["retrieve"] >= 0.004
    assert clock.take() == {}  # taken: the next question starts from zero
    linker.link("q")
    assert set(clock.take()) == {"link"}  # a question that stopped after linking has no other stage
    clock.unwrap()
    assert "retrieve" not in vars(retriever) and linker.link is original_link
    retriever.retrieve("d")
    assert clock.take() == {}
