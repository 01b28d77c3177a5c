"""`ipl eval`: the figures on hand-made cases, and a short real run on the bundled sample."""

from __future__ import annotations

import json

from helpers import SAMPLE
from ipl_graph.face.evaluate import (
    FIGURES,
    Vocabulary,
    attributes,
    contradicts,
    description_wrong,
    retrieval,
)
from ipl_graph.policies import Templates


def test_retrieval_and_gate_figures():
    queries = [{"spu": "A"}, {"spu": "B"}, {"spu": "C"}, {"spu": None}]
    results = [
        {"neighbours": [{"spu": "A"}], "trusted": [{"spu": "A"}]},  # right, passed
        {"neighbours": [{"spu": "X"}, {"spu": "B"}], "trusted": [{"spu": "X"}]},  # wrong top, passed
        {"neighbours": [{"spu": "C"}], "trusted": []},  # right, not passed
        {"neighbours": [{"spu": "A"}], "trusted": []},  # no truth: not counted
    ]
    r = retrieval(queries, results)
    assert r == {"identical@1": 0.6667, "identical@5": 1.0, "gate_precision": 0.5, "gate_recall": 0.5}


class Policy:
    templates = Templates(generic=["Brand"], categories={"Tshirts": ["Brand", "Colour", "Season"], "Apple": []})


def test_attribute_figures_count_template_pairs_only():
    queries = [
        {"category": "Tshirts", "attributes": {"Brand": "Nike", "Colour": "Navy  Blue", "Season": "Summer"}},
        {"category": "Apple", "attributes": {"Brand": "Ignored"}},
    ]
    results = [{"attributes": {"Brand": "nike", "Colour": "Black", "Season": "Summer"}}, {"attributes": {}}]
    # pairs: Brand (right), Colour (wrong); Season is not a scored attribute, Apple's template is empty
    assert attributes(queries, results, Policy()) == {"attr_acc": 0.5, "attr_coverage": 1.0, "attr_wrong": 0.5}
    silent = attributes(queries, [{"attributes": {}}, {}], Policy())
    assert silent == {"attr_acc": 0.0, "attr_coverage": 0.0, "attr_wrong": 0.0}
    assert attributes([{"category": "Apple", "attributes": {}}], [{}], Policy())["attr_acc"] is None


def test_description_contradictions():
    rows = [{"category": c, "attributes": {"Brand": b, "Colour": k}} for c, b, k in
            [("Tshirts", "Nike", "Blue"), ("Shirts", "Red Tape", "Navy Blue"), ("Orange", "", ""), ("Juice", "", "")]]
    vocab = Vocabulary(rows)
    truth = {"Brand": "Red Tape", "Colour": "Navy Blue", "category": "Shirts"}
    assert not contradicts(vocab.named("Selling my shirts. Details: by Red Tape, navy blue colour."), truth)
    assert not contradicts(vocab.named("Selling my shirts, blue colour."), truth)  # less precise, not wrong
    assert contradicts(vocab.named("Selling my tshirts by Red Tape."), truth)
    assert contradicts(vocab.named("Selling my shirts by Nike."), truth)
    assert not contradicts(vocab.named("Selling my item. Details: orange colour."), {"category": "Satsumas"})
    assert not contradicts(vocab.named("Selling my Bravo Apple Juice."), {"category": "Juice"})
    brands = Vocabulary([{"category": "Tops", "attributes": {"Brand": "AND", "Main Trend": "New Basics"}},
                         {"category": "Tops", "attributes": {"Brand": "Basics"}}])
    assert brands.named("Tops for work and play, main trend New Basics.")["Brand"] == set()
    assert brands.named("Tops by AND.")["Brand"] == {"and"}
    queries = [{"title": "t", **r} for r in rows[:2]]
    results = [{"description": "Selling my tshirts by Nike."}, {"description": "Selling my tshirts by Nike."}]
    assert description_wrong(queries, results, vocab) == 0.5
    assert description_wrong([{"category": "x"}], [{"description": "y"}], vocab) is None  # no truth text


def test_eval_on_the_sample_lists_queries_and_scores_them(sample_index, tmp_path):
    from ipl_graph.face.cli import main

    out = tmp_path / "report.json"
    code = main(["eval", "--catalog", str(SAMPLE / "listings.jsonl"), "--queries", str(SAMPLE / "queries.jsonl"),
                 "--index", sample_index, "--limit", "3", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert list(report)[: len(FIGURES)] == FIGURES and report["n_queries"] == 3
    assert {"reliability", "bands"} <= set(report) and report["open_false_trust"] is None  # nothing left out
    assert report["identical@1"] >= 2 / 3 and report["category_acc"] >= 2 / 3
    assert report["bleu1"] is None and report["latency_p50"] > 0  # the sample has no truth descriptions
    md = out.with_suffix(".md").read_text()
    assert "| identical@1 |" in md and "## Reliability" in md
    assert out.with_suffix(".png").stat().st_size > 1000
    lines = out.with_suffix(".queries.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["hits"]
