"""Turning QA examples into reader inputs: tokenised question, topic context, candidates, labels.

The relation labels (training only) are the relations of the hop-1 facts linking the gold topic
and a gold answer in the graph (reciprocal ids when the fact points at the topic): distant
supervision from the training questions, never read at inference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from qa_system.models.hitter import neighbour_batch_from_pairs
from retrievers.subgraph import RetrievedContext, SubgraphRetriever

QUESTION_MAX_LENGTH = 64  # word pieces per question, in training and at inference


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
    relation_labels: list[int]  # relations linking topic and a gold answer; [] when none (or at inference)
    candidate_relations: list[list[int]] | None = None  # relations linking the topic to each candidate


def load_vocab(checkpoint: Path) -> tuple[list[str], list[str]]:
    vocab = json.loads((Path(checkpoint) / "vocab.json").read_text())
    return list(vocab["entities"]), list(vocab["relations"])


def relation_labels(ctx: RetrievedContext, answers: set[str]) -> list[int]:
    """Relations (reciprocal ids) from the topic to any gold answer, in candidate order."""

    found: list[int] = []
    for candidate, relations in zip(ctx.candidates, ctx.candidate_relations):
        if candidate in answers:
            found += [r for r in relations if r not in found]
    return found


def featurize(examples: Sequence, retriever: SubgraphRetriever, *, topic_of=None, desc: str = "retrieve") -> list[ReaderFeatures]:
    """Retrieve the context of each example's topic (``topic_of(example)``; default: the gold topic)."""

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
                relation_labels=relation_labels(ctx, answers),
                candidate_relations=ctx.candidate_relations,
            )
        )
    return features


def tokenize_questions(questions: Sequence[str], tokenizer, *, max_length: int = QUESTION_MAX_LENGTH) -> Any:
    """The reader's input ids and attention mask for ``questions`` (padded to the longest, cut at
    ``max_length``): one place, so a pass started ahead of ``collate`` sees exactly its input."""

    return tokenizer(list(questions), padding=True, truncation=True, max_length=max_length, return_tensors="pt")


def collate(features: Sequence[ReaderFeatures], tokenizer, *, max_length: int = QUESTION_MAX_LENGTH) -> dict[str, torch.Tensor]:
    """Pad a batch. Candidates are padded with index 0 and masked out; relation lists with -1."""

    encoded = tokenize_questions([f.question for f in features], tokenizer, max_length=max_length)
    width = max([len(f.candidate_indices) for f in features] + [1])
    candidates = torch.zeros(len(features), width, dtype=torch.long)
    candidate_mask = torch.zeros(len(features), width, dtype=torch.bool)
    answers = torch.zeros(len(features), width, dtype=torch.bool)
    for i, f in enumerate(features):
        n = len(f.candidate_indices)
        candidates[i, :n] = torch.tensor(f.candidate_indices, dtype=torch.long)
        candidate_mask[i, :n] = True
        answers[i, :n] = torch.tensor([c in f.answers for c in f.candidates], dtype=torch.bool)
    links = [f.candidate_relations or [[] for _ in f.candidates] for f in features]
    depth = max([len(r) for row in links for r in row] + [1])
    # one scatter, not a tensor per candidate: a hub topic has thousands of candidates (ms on the ask path)
    at = [(i, j, k, r) for i, row in enumerate(links) for j, relations in enumerate(row) for k, r in enumerate(relations or ())]
    filled = np.full((len(features), width, depth), -1, dtype=np.int64)
    if at:
        rows, cols, slots, values = (np.asarray(column, dtype=np.int64) for column in zip(*at))
        filled[rows, cols, slots] = values
    candidate_relations = torch.from_numpy(filled)
    label_width = max([len(f.relation_labels) for f in features] + [1])
    relation_targets = torch.full((len(features), label_width), -1, dtype=torch.long)
    for i, f in enumerate(features):
        if f.relation_labels:
            relation_targets[i, : len(f.relation_labels)] = torch.tensor(f.relation_labels, dtype=torch.long)
    return {
        "input_ids": encoded["input_ids"],
        "attention_mask": encoded["attention_mask"],
        "topics": torch.tensor([f.topic_index for f in features], dtype=torch.long),
        "neighbours": neighbour_batch_from_pairs([f.neighbour_pairs for f in features]),
        "candidates": candidates,
        "candidate_mask": candidate_mask,
        "candidate_relations": candidate_relations,
        "answers": answers,
        "relation_targets": relation_targets,
    }
