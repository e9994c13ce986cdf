"""Extraction speed of a shipped extractor: batched throughput and single-sentence latency.

    python -m evaluation.bench_extraction [--model qidn] [--checkpoint DIR] [--sentences 320] \
        [--batch-size 32] [--threads 2] [--out evaluation/results/extractor-qidn-speed.json]

Sentences: the first N of WebNLG-star test (text only, all within 128 word pieces). After a warm-up
batch, ``extract`` is timed over all of them at ``--batch-size`` (wall clock with ``perf_counter``
and this process's CPU time), then one sentence at a time for the latency percentiles. Both
throughputs are recorded because the machine may be shared: ``sentences_per_s`` is what a user
saw, ``sentences_per_cpu_s`` what the model costs. The load average goes into the record.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from evaluation.timing import latency_summary
from qa_system.ingest.extractors import load_extractor
from qa_system.models.extraction_data import load_webnlg


def percentiles(samples: list[float]) -> dict[str, float]:
    return latency_summary(samples, quantiles=(0.5, 0.99), unit="ms", digits=2, extra=("mean",))


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def bench(extractor, texts: list[str], batch_size: int, latency_sentences: int) -> dict:
    extractor.extract(texts[:batch_size], batch_size=batch_size)  # warm-up
    wall, cpu = time.perf_counter(), cpu_seconds()
    extractor.extract(texts, batch_size=batch_size)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    latencies = []
    for text in texts[:latency_sentences]:
        began = time.perf_counter()
        extractor.extract([text], batch_size=1)
        latencies.append(time.perf_counter() - began)
    return {"sentences": len(texts), "batch_size": batch_size, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "sentences_per_s": round(len(texts) / wall, 2), "sentences_per_cpu_s": round(len(texts) / cpu, 2),
            "single_sentence": {"sentences": len(latencies), **percentiles(latencies)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qidn", choices=("qidn", "cascade"))
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("QA_DATA_DIR", "../shared/data")))
    parser.add_argument("--sentences", type=int, default=320)
    parser.add_argument("--latency-sentences", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    examples, _ = load_webnlg(args.data_dir, "webnlg-star", "test")
    texts = [e.text for e in examples[:args.sentences]]
    extractor = load_extractor(args.model, args.checkpoint)
    record = {"task": "extraction-speed", "model": args.model, "checkpoint": extractor.checkpoint,
              "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
              "load_average_before": os.getloadavg(), **bench(extractor, texts, args.batch_size, args.latency_sentences),
              "load_average_after": os.getloadavg(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": "python -m evaluation.bench_extraction " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None)}
    out = args.out or Path(__file__).resolve().parent / "results" / f"extractor-{args.model}-speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(json.dumps(record, default=str))


if __name__ == "__main__":
    main()
