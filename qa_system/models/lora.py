"""LoRA at inference: fold the adapters into the weights they adapt.

Every fine-tuned MiniLM of the product (QIDN and cascade extractors, answer reranker, entailment
model, reader) is a frozen backbone plus peft LoRA adapters. Unmerged, each adapted linear layer
costs two extra small matmuls per call (~14% of QIDN's CPU time at batch 32, more for the
reranker's short batches); merged, the outputs are the same up to float rounding.
"""

from __future__ import annotations

from typing import Any


def merge_lora_for_inference(model: Any, attribute: str = "encoder") -> bool:
    """Replace ``model.<attribute>`` (a peft model) by its base model with the adapters merged;
    True when there were any. Only for models that will not be trained or saved again: the merged
    encoder has no adapter parameters left to save. Forward hooks on the base model's modules
    (the reader's cross-attention) survive: merging swaps only the adapted linear layers."""

    encoder = getattr(model, attribute, None)
    if encoder is None or not hasattr(encoder, "merge_and_unload"):
        return False
    setattr(model, attribute, encoder.merge_and_unload())
    return True
