"""Turning QA examples into reader inputs: tokenised question, topic context, candidates, labels.

The relation label (training only) is the relation of the hop-1 fact linking the gold topic and a
gold answer in the graph (reciprocal id when the fact points at the topic): distant supervision
from the training questions, never read at inference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from qa_system.models.hitter import neighbour_batch_from_pairs
from retrievers.subgraph import RetrievedContext, SubgraphRetriever


@dataclass
class ReaderFeatures:
    """One question ready for the reader."""

    example_id: str
    question: str
    topic: str
    topic_index: int
    neighbour_pairs: list[tuple[int, int]]
    candidates: list[str]
    candidate_indices: list[int]
    answers: set[str]
    relation_label: int  # -100 when no linking fact was found


def load_vocab(checkpoint: Path) -> tuple[list[str], list[str]]:
    vocab = json.loads((Path(checkpoint) / "vocab.json").read_text())
    return list(vocab["entities"]), list(vocab["relations"])


def relation_label(ctx: RetrievedContext, topic: str, answers: set[str], relation_index: dict[str, int]) -> int:
    r = len(relation_index)
    for fact in ctx.subgraph.facts:
        if fact.hop != 1 or fact.relation not in relation_index:
            continue
        if fact.subject == topic and fact.object in answers:
            return relation_index[fact.relation]
        if fact.object == topic and fact.subject in answers:
            return relation_index[fact.relation] + r
    return -100


def featurize(examples: Sequence, retriever: SubgraphRetriever, *, topic_of=None, desc: str = "retrieve") -> list[ReaderFeatures]:
    """Retrieve the context of each example's topic (``topic_of(example)``; default: the gold topic)."""

    relation_index = dict(retriever.relation_index)
    features = []
    for example in tqdm(examples, desc=desc, unit="q", leave=False):
        topics = topic_of(example) if topic_of else list(example.topic_ids)
        if not topics:
            continue
        ctx = retriever.retrieve(topics)
        if ctx.topic_index is None:
            continue
        answers = set(example.answer_ids)
        features.append(
            ReaderFeatures(
                example_id=example.id,
                question=example.question,
                topic=ctx.topics[0],
                topic_index=ctx.topic_index,
                neighbour_pairs=ctx.neighbour_pairs,
                candidates=ctx.candidates,
                candidate_indices=ctx.candidate_indices,
                answers=answers,
                relation_label=relation_label(ctx, ctx.topics[0], answers, relation_index),
            )
        )
    return features


def collate(features: Sequence[ReaderFeatures], tokenizer, *, max_length: int = 64) -> dict[str, torch.Tensor]:
    """Pad a batch. Candidates are padded with index 0 and masked out."""

    encoded = tokenizer([f.question for f in features], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    width = max([len(f.candidate_indices) for f in features] + [1])
    candidates = torch.zeros(len(features), width, dtype=torch.long)
    candidate_mask = torch.zeros(len(features), width, dtype=torch.bool)
    answers = torch.zeros(len(features), width, dtype=torch.bool)
    for i, f in enumerate(features):
        n = len(f.candidate_indices)
        candidates[i, :n] = torch.tensor(f.candidate_indices, dtype=torch.long)
        candidate_mask[i, :n] = True
        answers[i, :n] = torch.tensor([c in f.answers for c in f.candidates], dtype=torch.bool)
    return {
        "input_ids": encoded["input_ids"],
        "attention_mask": encoded["attention_mask"],
        "topics": torch.tensor([f.topic_index for f in features], dtype=torch.long),
        "neighbours": neighbour_batch_from_pairs([f.neighbour_pairs for f in features]),
        "candidates": candidates,
        "candidate_mask": candidate_mask,
        "answers": answers,
        "relation_labels": torch.tensor([f.relation_label for f in features], dtype=torch.long),
    }
