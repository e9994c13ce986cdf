"""End-to-end ingest benchmark: WebNLG test texts -> split -> extract -> resolve -> upsert, twice.

    python -m evaluation.bench_ingest [--sentences 1000] [--extractor gold|qidn|cascade] [--checkpoint DIR] \
        [--graph demo|empty] [--data-dir DIR] [--out evaluation/results/ingest-webnlg-<extractor>.json]

Texts: WebNLG (exact-entity version) ``test_triples.json``, in file order, until ``--sentences``
sentences; one document per text. ``--extractor gold`` is an *oracle* that returns each sentence's
gold triples (both ends found in the sentence, score 1.0): it measures everything but the model
(splitting, resolution over the graph's name index, writes) and checks the bookkeeping on real
data; ``qidn``/``cascade`` run the trained model and so measure the whole path.

The graph (``demo``: the FB15k-237 demo graph, 14.5k entities) is imported into a fresh workspace
and the MiniLM name index built before the clock starts (both one-time costs, reported apart). The
same documents are then ingested twice; the record says whether the second run added nothing and
left the fact count unchanged, and whether every extracted fact carries its sentence.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa_system.ingest.documents import Document, split_sentences
from qa_system.ingest.extractors import load_extractor
from qa_system.models.extraction import ExtractedTriple, Mention
from qa_system.types import FactStatus


class GoldExtractor:
    """Oracle: the gold triples of the text a sentence came from whose two ends occur in that sentence."""

    name = "gold"
    checkpoint = "webnlg-test-gold"
    vocabulary = "webnlg"

    def __init__(self, gold_by_sentence: dict[str, list[tuple[str, str, str]]]) -> None:
        self.gold = gold_by_sentence

    def extract(self, texts: Sequence[str], *, batch_size: int = 16) -> list[list[ExtractedTriple]]:
        out = []
        for text in texts:
            found = []
            for s, r, o in self.gold.get(text, []):
                si, oi = text.find(s), text.find(o)
                if si >= 0 and oi >= 0:
                    found.append(ExtractedTriple(Mention(s, si, si + len(s)), r, Mention(o, oi, oi + len(o)), 1.0))
            out.append(found)
        return out


def load_texts(data_dir: Path, sentences: int) -> tuple[list[Document], dict[str, list[tuple[str, str, str]]], int]:
    path = data_dir / "webnlg-casrel" / "WebNLG" / "test_triples.json"
    examples = json.loads(path.read_text(encoding="utf-8"))
    documents, gold, count = [], {}, 0
    for i, example in enumerate(examples):
        if count >= sentences:
            break
        doc = Document(id=f"webnlg-test-{i}", text=example["text"], source=str(path))
        split = split_sentences(doc)
        documents.append(doc)
        count += len(split)
        for s in split:
            gold.setdefault(s.text, []).extend(tuple(t) for t in example["triple_list"])
    return documents, gold, count


def extracted_facts(store: Any) -> list[Any]:
    out, offset = [], 0
    while True:
        page = store.list_facts(statuses=[FactStatus.EXTRACTED], limit=5000, offset=offset)
        out.extend(page)
        if len(page) < 5000:
            return out
        offset += len(page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--extractor", choices=("gold", "qidn", "cascade"), default="gold")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--graph", choices=("demo", "empty"), default="demo")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("QA_DATA_DIR", "../shared/data")))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--index-cache", type=Path, help="folder with a saved name index of the pristine graph: "
                        "copied in before, saved to after (the first build of 34k names takes minutes)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from graph.embedded import EmbeddedStore
    from graph.importers import import_kg
    from qa_system.ingest.entity_resolution import EntityResolver
    from qa_system.ingest.ingester import Ingester
    from retrievers.linking import default_index_dir
    from retrievers.name_embeddings import IDS_FILE, NameVectorIndex

    documents, gold, sentences = load_texts(args.data_dir, args.sentences)
    extractor: Any = GoldExtractor(gold) if args.extractor == "gold" else load_extractor(args.extractor, args.checkpoint)
    workspace = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    store = EmbeddedStore.open(workspace)
    try:
        t0 = time.perf_counter()
        if args.graph == "demo":
            import_kg(store, "demo")
        import_s = time.perf_counter() - t0
        index_dir = default_index_dir(store)
        cached = args.index_cache is not None and (args.index_cache / IDS_FILE).is_file()
        if cached:
            shutil.copytree(args.index_cache, index_dir, dirs_exist_ok=True)
        t0 = time.perf_counter()
        index = NameVectorIndex.for_store(store, index_dir)
        index_s = time.perf_counter() - t0
        if args.index_cache is not None and not cached:
            shutil.copytree(index_dir, args.index_cache, dirs_exist_ok=True)
        facts_before = store.stats().facts
        runs = []
        for _ in range(2):
            resolver = EntityResolver(store, workspace=workspace, name_index=index)
            ingester = Ingester(store, extractor, workspace=workspace, resolver=resolver, batch_size=args.batch_size)
            t0 = time.perf_counter()
            summary = ingester.ingest(documents)
            runs.append({"seconds": round(time.perf_counter() - t0, 2), **summary.as_dict(), "facts_after": store.stats().facts})
            resolver.close()
        facts = extracted_facts(store)
        with_sentence = sum(1 for f in facts if f.provenance.sentence and f.provenance.document_id)
        how: dict[str, int] = {}
        for r in EntityResolver(store, workspace=workspace, name_index=index).resolve_many(
            m for ts in extractor.extract(list(gold)) for t in ts for m in (t.subject.text, t.object.text)
        ).values():
            how[r.how] = how.get(r.how, 0) + 1
    finally:
        store.close()
        shutil.rmtree(workspace, ignore_errors=True)
    first, second = runs
    record = {
        "benchmark": "ingest-end-to-end", "dataset": "webnlg", "split": "test", "extractor": extractor.name,
        "checkpoint": extractor.checkpoint, "graph": args.graph, "documents": len(documents), "sentences": sentences,
        "graph_import_s": round(import_s, 2), "name_index_s": round(index_s, 2), "name_index_from_cache": cached, "facts_before": facts_before,
        "runs": runs, "sentences_per_s_first_run": round(sentences / first["seconds"], 1),
        "second_run_added_nothing": second["triples_added"] == 0 and second["new_entities"] == 0 and second["passages_added"] == 0,
        "fact_count_unchanged": second["facts_after"] == first["facts_after"],
        "extracted_facts": len(facts), "extracted_facts_with_sentence": with_sentence,
        "mention_resolution_after_ingest": how, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0), "load_average": os.getloadavg(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": f"python -m evaluation.bench_ingest --sentences {args.sentences} --extractor {args.extractor} --graph {args.graph}"
        + (f" --index-cache {args.index_cache}" if args.index_cache else ""),
    }  # fmt: skip
    out = args.out or Path(f"evaluation/results/ingest-webnlg-{args.extractor}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
