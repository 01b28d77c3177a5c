"""List a dataset's query photos through the graph and score the titles (not a test).

Each query row is listed from its images alone (as `ipl eval` does), in English or Chinese, against an
index built beforehand with `ipl index`. Prints title BLEU-4 and ROUGE-L against the real titles
(sacrebleu and rouge-score, lowercased, as `ipl eval`'s title figures) and every Nth listing, and
writes every listing to --out. Only the graph's public API is used, so the same script measures
another checkout of IPL too (put its packages first on PYTHONPATH) for a before/after comparison.

    python scripts/sample_listings.py --catalog ../shared/data/grocery/listings.jsonl --index DIR \
        [--lang en|zh] [--every 50] [--sample] [--limit N] [--out listings.jsonl]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def queries(path: str) -> list[dict]:
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("role") == "query" and row.get("images"):
            row["images"] = [str((Path(path).parent / p).resolve()) for p in row["images"]]
            rows.append(row)
    return rows


def title_figures(pairs: list[tuple[str, str]]) -> dict[str, float]:
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    bleu = BLEU(max_ngram_order=4, lowercase=True, effective_order=True)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    hyps, refs = [h.lower() for h, _ in pairs], [t.lower() for _, t in pairs]
    return {
        "title_bleu4": round(bleu.corpus_score(hyps, [refs]).score / 100, 4),
        "title_rougeL": round(statistics.fmean(scorer.score(t, h)["rougeL"].fmeasure for h, t in zip(hyps, refs,
                                                                                                    strict=True)), 4),
        "title_item": round(statistics.fmean(h.strip() in {"item", "物品", ""} for h in hyps), 4),
    }


def main() -> None:
    from ipl_graph import taming

    taming.apply()
    from ipl_graph.context import Context
    from ipl_graph.graph import graph

    p = argparse.ArgumentParser()
    p.add_argument("--catalog", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--lang", default="en", choices=["en", "zh"])
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--limit", type=int)
    p.add_argument("--sample", action="store_true", help="list only every Nth query (--every), no title figures")
    p.add_argument("--out")
    args = p.parse_args()
    rows = queries(args.catalog)[: args.limit]
    if args.sample:
        rows, args.every = rows[:: args.every], 1
    listings = []
    for row in rows:
        out = graph.invoke({"photos": row["images"], "lang": args.lang}, context=Context(index_dir=args.index))
        listings.append({"id": row["id"], "truth_title": row.get("title"), "title": out.get("title") or "",
                         "description": out.get("description") or "", "category": out.get("category")})
    if args.out:
        Path(args.out).write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in listings), encoding="utf-8")
    pairs = [(x["title"], x["truth_title"]) for x in listings if x["truth_title"]]
    print(json.dumps({"n": len(listings), **(title_figures(pairs) if pairs and not args.sample else {})}))
    for x in listings[:: args.every]:
        print(f"\n{x['id']}  (real title: {x['truth_title']})\n  title: {x['title']}\n  {x['description']}")


if __name__ == "__main__":
    main()
