"""What an index learns from its own catalog (numpy only), refitted after every `ipl index`.

- A projection (regularised LDA) that pulls together the photos of one product (the catalog's `spu`
  groups) or, where the catalog has none, of one category. Identical-product search and the
  category vote work in this space.
- Calibrations fitted on held-out catalog photos, 5-fold cross-fitted (the projection is refitted
  without the held-out fold, so scores look like those of new photos): P(the top hit is the
  identical product | score, margin), P(the category vote is right | share, score), and per
  attribute P(the value voted by look-alikes is right | agreement).
- Linear probes (`probe.py`) for the category and every attribute the catalog states, with the
  calibration of their probability fitted on the first fold's held-out photos (the probes refitted
  without them and without their near-duplicates). Where there is a category probe, the category
  is the blend of the kNN vote and the probe, and its calibration is fitted on that blend.
- The colour namer's catalog histograms and the IDF of title trigrams for OCR text matching.

No label of a query is ever used: everything here comes from catalog rows.
"""

from __future__ import annotations

import json
import os
import re
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ipl_tools.catalog.probe import Probe, blend_category, category_probe_weight, fit_probes

MODEL_FILE = "ipl-model.npz"
MODEL_FORMAT = 3
"""Bumped when what a saved model means changes (2: the category blend's weights depend on the label kind;
3: the category probe's prior correction and the stated category confidence); a model
saved in another format is refitted on load, from the catalog in the index."""
LDA_REG = 0.1
"""Ridge on the within-class scatter, as a share of its mean eigenvalue."""
MAX_DIM = 128
FOLDS = 5
MAX_PROJECTION = 20000
"""Catalog photos the projection is fitted on, at most (a random sample beyond that)."""
MAX_CALIBRATION = 4000
"""Held-out photos used to fit the calibrations, at most (spread over the folds)."""
VOTE_K = 10
VOTE_POWER = 8.0
LOOKALIKE_K = 10
CLASS_BALANCE = 0.5
"""The stated confidence's calibration weighs a held-out photo by 1 / (photos of its category)**0.5:
between the catalog's own mix (0; a long-tailed catalog's held-out photos are mostly of its head, so
it learns certainty where a rare product's seller gets the head's answer) and every category alike (1;
too shy on a catalog whose sellers list in its own proportions)."""
OPEN_SHARE = 0.05
"""Share of the stated confidence's calibration cases that are held-out photos scored with their whole
category hidden (a seller's product of a category the catalog lacks; always wrong)."""
NEAR_DUPLICATE = 0.9
"""Raw cosine above which two photos of one product are taken for the same shot (hidden from each
other when the calibrations are fitted)."""


def l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


BANDS = ((1, 3), (4, 10), (11, 50), (51, None))
"""Photos of a class, by band: the catalog health report counts classes per band."""


def band(photos: int) -> str:
    for lo, hi in BANDS:
        if photos >= lo and (hi is None or photos <= hi):
            return f"{lo}-{hi}" if hi else f"{lo}+"
    return "0"


# --- projection --------------------------------------------------------------------------------


def fit_lda(x: np.ndarray, labels: np.ndarray, reg: float = LDA_REG, max_dim: int = MAX_DIM) -> tuple:
    """(mean (D,), matrix (D, d)) of a regularised LDA; matrix is None with fewer than two classes.

    With fewer photos than dimensions it is solved in the span of the photos, which gives the same
    directions (the ridge is isotropic, and both scatters live in that span) at a fraction of the cost."""
    mean = x.mean(0)
    classes, inv = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        return mean.astype(np.float32), None
    xc = (x - mean).astype(np.float64)  # (N, D)
    dim = x.shape[1]
    basis = None
    if len(x) < dim:
        _, sv, vt = np.linalg.svd(xc, full_matrices=False)
        basis = vt[sv > 1e-6 * sv[0]].T  # (D, r)
        xc = xc @ basis  # (N, r)
    counts = np.bincount(inv).astype(np.float64)  # (C,)
    means = np.zeros((len(classes), xc.shape[1]))
    np.add.at(means, inv, xc)
    means /= counts[:, None]  # (C, r)
    resid = xc - means[inv]
    within = resid.T @ resid / len(x)  # (r, r)
    between = (means.T * counts) @ means / len(x)  # (r, r)
    within += reg * np.trace(within) / dim * np.eye(len(within))
    w, u = np.linalg.eigh(within)
    whiten = u / np.sqrt(np.maximum(w, 1e-12))  # (r, r)
    b, e = np.linalg.eigh(whiten.T @ between @ whiten)
    keep = np.argsort(b)[::-1][: min(len(classes) - 1, max_dim)]
    matrix = whiten @ e[:, keep]  # (r, d)
    if basis is not None:
        matrix = basis @ matrix  # (D, d)
    return mean.astype(np.float32), matrix.astype(np.float32)


def project(x: np.ndarray, mean: np.ndarray, matrix: np.ndarray | None) -> np.ndarray:
    return l2(x if matrix is None else (x - mean) @ matrix).astype(np.float32)


# --- calibration -------------------------------------------------------------------------------


def fit_logistic(features: np.ndarray, y: np.ndarray, ridge: float = 1e-2, steps: int = 50,
                 weights: np.ndarray | None = None) -> list[float]:
    """Logistic regression by Newton steps: coefficients for [1, *features]; `weights` per case
    (default 1 each)."""
    x = np.hstack([np.ones((len(features), 1)), features])
    sw = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (sw * (p - y)) + ridge * w
        hess = (x.T * (sw * p * (1 - p))) @ x + ridge * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return [float(v) for v in w]


def fit_rate(features: np.ndarray, right: np.ndarray, weights: np.ndarray | None = None) -> list[float]:
    """A calibration that holds up when every held-out case was right (or wrong): one pseudo-case of
    each outcome at the mean features keeps the fit finite and the rate below 1. `weights` per case
    (their mean is taken as 1)."""
    features = np.asarray(features, dtype=float).reshape(len(right), -1)
    pseudo = np.repeat(features.mean(0, keepdims=True), 2, axis=0)
    sw = np.ones(len(right)) if weights is None else np.asarray(weights, dtype=float) / np.mean(weights)
    return fit_logistic(np.vstack([features, pseudo]), np.concatenate([np.asarray(right, float), [1.0, 0.0]]),
                        weights=np.concatenate([sw, [1.0, 1.0]]))


def logistic(coef: list[float], *features: float) -> float:
    z = coef[0] + sum(c * f for c, f in zip(coef[1:], features, strict=True))
    return float(1 / (1 + np.exp(-np.clip(z, -30, 30))))


# --- ranking and votes, shared by the fit and the searcher ---------------------------------------


def vote(hits: list[tuple[float, str | None]], power: float = VOTE_POWER) -> tuple[str | None, float, float]:
    """(winner, its share of all weight, total weight) of values voted with weight sim**power."""
    votes, total = _votes(hits, power)
    if not votes or total <= 0:
        return None, 0.0, total
    best = max(votes.items(), key=lambda kv: kv[1])
    return best[0], best[1] / total, total


def shares(hits: list[tuple[float, str | None]], power: float = VOTE_POWER) -> dict[str, float]:
    """{value: its share of all weight} of values voted with weight sim**power."""
    votes, total = _votes(hits, power)
    return {v: w / total for v, w in votes.items()} if total > 0 else {}


def _votes(hits: list[tuple[float, str | None]], power: float) -> tuple[dict[str, float], float]:
    votes: dict[str, float] = defaultdict(float)
    total = 0.0
    for sim, value in hits:
        weight = max(sim, 0.0) ** power
        total += weight
        if value:
            votes[value] += weight
    return votes, total


def balance_weights(classes: list[Any], power: float = CLASS_BALANCE) -> np.ndarray:
    """Per case, 1 / (cases of its class)**power, mean 1: each class weighs alike at power 1."""
    counts = Counter(classes)
    w = np.array([counts[c] ** -power for c in classes], dtype=float)
    return w / w.mean() if len(w) else w


def with_open(closed: np.ndarray, right: np.ndarray, classes: list[Any], open_: list[list[float]],
              open_classes: list[Any], share: float = OPEN_SHARE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-set cases plus open-set ones (always wrong) weighted to `share` of the whole, each set
    balanced over its classes (`balance_weights`)."""
    weights = balance_weights(classes)
    if not share or not open_:
        return closed, right, weights
    o = np.asarray(open_, dtype=float)
    wc = weights / weights.sum() * (1 - share) * len(closed)
    wo = balance_weights(open_classes)
    wo = wo / wo.sum() * share * len(closed)
    return np.vstack([closed, o]), np.concatenate([right, np.zeros(len(o))]), np.concatenate([wc, wo])


def fold(text: str) -> str:
    """Case- and accent-folded text: 'Mjölk' -> 'mjolk'."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def trigrams(text: str) -> set[str]:
    """Character trigrams of the words (3+ letters) of a text, padded at word ends."""
    grams: set[str] = set()
    for word in re.findall(r"[a-z]{3,}", fold(text)):
        padded = f" {word} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


def text_match(query: set[str], listing: set[str], idf: dict[str, float]) -> float:
    """IDF-weighted cosine of two trigram sets, in [0, 1]."""
    if not query or not listing:
        return 0.0
    shared = sum(idf.get(g, 0.0) ** 2 for g in query & listing)
    norm_q = sum(idf.get(g, 0.0) ** 2 for g in query) ** 0.5
    norm_l = sum(idf.get(g, 0.0) ** 2 for g in listing) ** 0.5
    return shared / (norm_q * norm_l) if norm_q and norm_l else 0.0


def listing_text(meta: dict[str, Any]) -> str:
    attrs = meta.get("attributes")
    values = json.loads(attrs).values() if isinstance(attrs, str) else (attrs or {}).values()
    return " ".join([meta.get("title") or "", *[str(v) for v in values]])


# --- the model ---------------------------------------------------------------------------------


@dataclass
class IndexModel:
    """The learned part of an index, stored beside the Chroma files as one .npz."""

    count: int
    """Catalog photos it was fitted on: a different count means the index changed since."""
    label_kind: str
    """What the projection separates: 'spu', 'category' or 'none'."""
    mean: np.ndarray
    matrix: np.ndarray | None
    gate: list[float] | None = None
    """Coefficients of P(identical | score, margin); None when the catalog has no spu groups."""
    category: list[float] | None = None
    """Coefficients of P(the category is right | share, score) where the catalog has the seller's category."""
    category_stated: list[float] | None = None
    """Coefficients of the stated P(the category is right | share, score, score below the category's
    typical): fitted on held-out photos balanced over categories (CLASS_BALANCE) and mixed with photos of
    categories the catalog lacks (OPEN_SHARE)."""
    category_typical: dict[str, float] = field(default_factory=dict)
    """Per category, the median top score of held-out photos it was rightly voted for ('*': all)."""
    attributes: dict[str, list[float]] = field(default_factory=dict)
    colours: np.ndarray | None = None
    """Colour histograms (M, 192) of catalog photos that state a Colour, and their names."""
    colour_names: list[str] = field(default_factory=list)
    idf: dict[str, float] = field(default_factory=dict)
    probes: dict[str, Probe] = field(default_factory=dict)
    """Per label ('category' or an attribute name), its linear probe on raw photo vectors."""
    report: dict[str, Any] = field(default_factory=dict)
    """What the fit saw: held-out accuracies, calibrated thresholds, sizes."""
    collection: str = "learned"
    """The Chroma collection that holds the catalog photos in this model's projection (a new one per fit)."""

    def save(self, directory: Path) -> None:
        """Written aside and swapped in: a reader finds the old file or the new one, never half of one."""
        meta = {
            "count": self.count, "label_kind": self.label_kind, "gate": self.gate, "category": self.category,
            "category_stated": self.category_stated, "category_typical": self.category_typical,
            "attributes": self.attributes, "colour_names": self.colour_names, "idf": self.idf,
            "report": self.report, "probes": {name: p.classes for name, p in self.probes.items()},
            "format": MODEL_FORMAT, "collection": self.collection,
        }
        arrays: dict[str, Any] = {"mean": self.mean, "meta": np.array(json.dumps(meta))}
        arrays |= {f"probe:{name}": p.weights for name, p in self.probes.items()}
        if self.matrix is not None:
            arrays["matrix"] = self.matrix
        if self.colours is not None:
            arrays["colours"] = self.colours
        tmp = directory / (MODEL_FILE + ".tmp.npz")
        with tmp.open("wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / MODEL_FILE)

    @classmethod
    def load(cls, directory: Path) -> IndexModel | None:
        """The saved model; None when there is none or it was saved in another format. A damaged file
        raises what numpy or zipfile raise (OSError, ValueError, KeyError, EOFError, BadZipFile)."""
        path = directory / MODEL_FILE
        if not path.exists():
            return None
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != MODEL_FORMAT:
                return None
            return cls(
                count=meta["count"], label_kind=meta["label_kind"], mean=z["mean"],
                matrix=z.get("matrix"), gate=meta["gate"], category=meta["category"],
                category_stated=meta["category_stated"], category_typical=meta["category_typical"],
                attributes=meta["attributes"], colours=z.get("colours"),
                colour_names=meta["colour_names"], idf=meta["idf"], report=meta.get("report", {}),
                probes={name: Probe(classes, z[f"probe:{name}"]) for name, classes in meta.get("probes", {}).items()},
                collection=meta.get("collection", "learned"),
            )

    def project(self, x: np.ndarray) -> np.ndarray:
        return project(x, self.mean, self.matrix)

    def identity_probability(self, score: float, margin: float) -> float:
        """P(the top hit is the identical product); 0 for a catalog that has no spu groups."""
        return logistic(self.gate, score, margin) if self.gate else 0.0

    def category_confidence(self, category: str, share: float, score: float) -> tuple[float, float]:
        """(P(the category is right) where the catalog has the seller's category, the stated P(right)),
        from its share of the vote (blended with the probe's probability where there is a category
        probe) and the top hit's score. The first decides whether a guess is worth offering; the
        second is what the listing states, and it also weighs how far the score falls below what
        photos of that category usually score, and that the seller's category may be missing."""
        closed = logistic(self.category, share, score) if self.category else share
        if not self.category_stated:
            return closed, closed
        return closed, logistic(self.category_stated, share, score, self.below_typical(category, score))

    def below_typical(self, category: str | None, score: float) -> float:
        """The top hit's score minus the median score of photos rightly voted `category` (0 unknown)."""
        typical = self.category_typical.get(str(category), self.category_typical.get("*"))
        return score - typical if typical is not None else 0.0

    @property
    def category_probe_weight(self) -> float:
        """The probe's weight in this catalog's category blend."""
        return category_probe_weight(self.label_kind)

    @property
    def blends_category(self) -> bool:
        """Whether the category calibration was fitted on the blend of the kNN vote and the probe."""
        return self.report.get("category_vote") == "knn+probe" and "category" in self.probes

    def distribution(self, name: str, vectors: np.ndarray) -> dict[str, float]:
        """{value: probability} of a label by its probe over a listing's photos; {} with no probe."""
        probe = self.probes.get(name)
        return probe.distribution(vectors) if probe is not None and len(vectors) else {}

    def attribute_confidence(self, name: str, agreement: float, source: str = "similar") -> float:
        """P(a value voted with this agreement is right), for votes of look-alikes ('similar'), of
        the product hits ('products'), or a probe's probability ('probe')."""
        coef = self.attributes.get(f"{source}:{name}") or self.attributes.get(f"{source}:*")
        return logistic(coef, agreement) if coef else 0.0


# --- fitting -----------------------------------------------------------------------------------


@dataclass
class Records:
    """Catalog photos as the fit sees them: raw vectors and what the catalog says of each."""

    ids: list[str]
    vectors: np.ndarray  # (N, D)
    listing: np.ndarray  # (N,) listing ids
    metas: list[dict[str, Any]]

    def group(self, kind: str) -> np.ndarray:
        if kind == "spu":
            return np.array([m.get("spu") or m["listing_id"] for m in self.metas])
        if kind == "category":
            return np.array([m.get("category") or "" for m in self.metas])
        return self.listing


def label_kind(metas: list[dict[str, Any]]) -> str:
    """'spu' when most listings belong to a multi-listing spu group, else 'category' when there are
    categories to separate, else 'none'."""
    listings = {m["listing_id"]: m for m in metas}
    spus = Counter(m.get("spu") for m in listings.values() if m.get("spu"))
    grouped = sum(c for c in spus.values() if c >= 2)
    if grouped >= 0.5 * len(listings) and len(spus) >= 2:
        return "spu"
    categories = Counter(m.get("category") for m in metas if m.get("category"))
    return "category" if sum(1 for c in categories.values() if c >= 2) >= 2 else "none"


def fit(records: Records, seed: int = 0) -> IndexModel:
    started = time.perf_counter()
    kind = label_kind(records.metas)
    labels = records.group(kind)
    rng = np.random.default_rng(seed)
    some = rng.permutation(len(labels))[:MAX_PROJECTION]
    if kind == "none":
        mean, matrix = records.vectors[some].mean(0), None
    else:
        mean, matrix = fit_lda(records.vectors[some], labels[some])
    model = IndexModel(count=len(records.vectors), label_kind=kind, mean=mean, matrix=matrix)
    held = _cross_fit(records, kind, rng)
    model.probes = fit_probes(records.vectors, _labels(records))
    report: dict[str, Any] = {"photos": len(records.vectors), "label_kind": kind, "held_out": len(held["top_ok"])}
    report["photos_per"] = {"category": dict(Counter(str(c) for c in records.group("category") if c)),
                            "product": dict(Counter(str(g) for g in records.group("spu")))}  # the health report
    if held["top_ok"]:
        ok = np.array(held["top_ok"], dtype=float)
        report["held_out_identical@1"] = round(float(ok.mean()), 4)
        if kind == "spu":
            model.gate = fit_rate(np.array(held["gate"]), ok)
    if held["cat_ok"]:
        ok = np.array(held["cat_ok"], dtype=float)
        report["category_vote"] = "knn+probe" if "category" in model.probes else "knn"
        report["held_out_category_acc"] = round(float(ok.mean()), 4)
        model.category = fit_rate(np.array(held["cat"]), ok)
        report["held_out_category_bands"] = _by_band(held["cat_class"], ok, report["photos_per"]["category"])
        model.category_typical = _typical(held["cat"], held["cat_winner"], ok)
        stated = [[share, s1, model.below_typical(w, s1)] for (share, s1), w in zip(held["cat"], held["cat_winner"],
                                                                                  strict=True)]
        absent = [[share, s1, model.below_typical(w, s1)] for (share, s1), w in zip(held["cat_open"],
                                                                                  held["cat_open_winner"], strict=True)]
        model.category_stated = fit_rate(*with_open(np.array(stated), ok, held["cat_class"], absent,
                                                    held["cat_open_class"]))
    model.attributes, report["held_out_attributes"] = _fit_attributes(held["attr"] | _lookalike_samples(records, rng))
    model.colours, model.colour_names = _colour_table(records)
    model.idf = _idf(records)
    model.report = report | {"fit_s": round(time.perf_counter() - started, 1)}
    return model


def _labels(records: Records, rows: np.ndarray | None = None) -> dict[str, list[Any]]:
    """{label: value per photo} for the probes: the category and every attribute stated."""
    metas = records.metas if rows is None else [records.metas[i] for i in rows]
    attrs = [json.loads(m.get("attributes") or "{}") for m in metas]
    names = sorted({k for a in attrs for k, v in a.items() if v})
    labels = {"category": [m.get("category") for m in metas]}
    return labels | {name: [a.get(name) for a in attrs] for name in names}


def _cross_fit(records: Records, kind: str, rng: np.random.Generator) -> dict[str, Any]:
    """Scores of held-out photos against the rest, with the projection refitted per fold. A held-out
    photo's near-duplicates (same product, raw cosine over NEAR_DUPLICATE: the same shot) are
    hidden from it, so it is scored as a new seller photo would be. Each held-out photo is scored a
    second time with its whole category hidden: a photo of a category the catalog lacks, which the
    stated confidence must not trust."""
    out: dict[str, Any] = {"gate": [], "top_ok": [], "cat": [], "cat_ok": [],
                           "cat_class": [], "cat_open": [], "cat_open_class": [],
                           "cat_winner": [], "cat_open_winner": [], "attr": defaultdict(list)}
    n = len(records.vectors)
    if kind == "none" or n < 2 * FOLDS:
        return out
    labels, groups, categories = records.group(kind), records.group("spu"), records.group("category")
    attrs = [json.loads(m.get("attributes") or "{}") for m in records.metas]
    folds = rng.permutation(n) % FOLDS
    per_fold = max(1, MAX_CALIBRATION // FOLDS)
    probes: dict[str, Probe] = {}
    for f in range(FOLDS):
        train, test = np.where(folds != f)[0], np.where(folds == f)[0]
        test = rng.permutation(test)[:per_fold]
        some = rng.permutation(train)[:MAX_PROJECTION]
        mean, matrix = fit_lda(records.vectors[some], labels[some])
        p_train = project(records.vectors[train], mean, matrix)
        if f == 0:  # the probes' calibration: this fold's held-out photos
            unlike = _unlike(records, groups, train, test)
            probes = fit_probes(records.vectors[unlike], _labels(records, unlike))
        for start in range(0, len(test), 256):
            idx = test[start : start + 256]
            sims = project(records.vectors[idx], mean, matrix) @ p_train.T  # (B, T)
            raw = records.vectors[idx] @ records.vectors[train].T  # (B, T)
            sims[(groups[idx][:, None] == groups[train][None, :]) & (raw > NEAR_DUPLICATE)] = -2.0
            probed = {name: p.probabilities(records.vectors[idx]) for name, p in probes.items()} if f == 0 else {}
            for r, (row, i) in enumerate(zip(sims, idx, strict=True)):
                said = {name: dict(zip(probes[name].classes, ps[r], strict=True)) for name, ps in probed.items()
                        if name == "category" or attrs[i].get(name)}  # {label: {value: probability}}
                ranked = [(s, g, train[j]) for s, g, j in _best_per_group(row, groups[train])]
                if len(ranked) < 2:
                    continue
                (s1, g1, _), (s2, _, _) = ranked[0], ranked[1]
                if kind == "spu":
                    out["gate"].append([s1, s1 - s2])
                    out["top_ok"].append(g1 == groups[i])
                top = ranked[:VOTE_K]
                if categories[i] and (f == 0 or "category" not in probes):
                    knn = shares([(s, categories[j]) for s, _, j in top])
                    winner, share = blend_category(knn, said.get("category"), category_probe_weight(kind))
                    out["cat"].append([share, s1])
                    out["cat_ok"].append(winner == categories[i])
                    out["cat_class"].append(categories[i])
                    out["cat_winner"].append(winner)
                    elsewhere = np.where(categories[train] == categories[i], -2.0, row)
                    other = [(s, categories[train[j]]) for s, _, j in _best_per_group(elsewhere, groups[train], VOTE_K)]
                    if other:
                        probe = {c: p for c, p in (said.get("category") or {}).items() if c != categories[i]}
                        total = sum(probe.values())
                        other_winner, share = blend_category(shares(other),
                                                  {c: p / total for c, p in probe.items()} if total else None,
                                                  category_probe_weight(kind))
                        out["cat_open"].append([share, other[0][0]])
                        out["cat_open_class"].append(categories[i])
                        out["cat_open_winner"].append(other_winner)
                for name, truth in attrs[i].items():
                    if truth and name in said:
                        value, p = max(said[name].items(), key=lambda kv: kv[1])
                        out["attr"][f"probe:{name}"].append((p, _same(value, truth)))
                for name, truth in attrs[i].items():
                    if truth:
                        value, agreement, _ = vote([(s, attrs[j].get(name)) for s, _, j in top])
                        out["attr"][f"products:{name}"].append((agreement, _same(value, truth)))
    return out


def _by_band(classes: list[Any], right: np.ndarray, photos: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Held-out category accuracy per band of the category's catalog photos (the health report)."""
    scored: dict[str, list[float]] = defaultdict(list)
    for c, ok in zip(classes, right, strict=True):
        scored[band(photos.get(str(c), 0))].append(float(ok))
    return {b: {"n": len(v), "acc": round(float(np.mean(v)), 3)} for b, v in scored.items()}


def _typical(cases: list[list[float]], winners: list[Any], right: np.ndarray) -> dict[str, float]:
    """{category: median top score of the held-out photos rightly voted for it (3 at least), '*': all}."""
    scores: dict[str, list[float]] = defaultdict(list)
    for (_, s1), winner, ok in zip(cases, winners, right, strict=True):
        if ok:
            scores[str(winner)].append(s1)
            scores["*"].append(s1)
    return {c: round(float(np.median(v)), 4) for c, v in scores.items() if len(v) >= 3}


def _unlike(records: Records, groups: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The training photos that are not near-duplicates (same product, the same shot) of a test photo."""
    near = np.zeros(len(train), dtype=bool)
    for start in range(0, len(test), 256):
        idx = test[start : start + 256]
        raw = records.vectors[idx] @ records.vectors[train].T  # (B, T)
        near |= ((groups[idx][:, None] == groups[train][None, :]) & (raw > NEAR_DUPLICATE)).any(0)
    return train[~near]


def _same(value: Any, truth: Any) -> bool:
    return value is not None and fold(str(value)) == fold(str(truth))


def _best_per_group(sims: np.ndarray, groups: np.ndarray, keep: int = 50) -> list[tuple[float, str, int]]:
    """[(best similarity, group, index of its best photo)] best first, among the `keep * 4` nearest."""
    seen: dict[str, tuple[float, int]] = {}
    for j in _top(sims, keep * 4):
        if sims[j] > -2.0:
            seen.setdefault(str(groups[j]), (float(sims[j]), int(j)))
    return sorted(((s, g, j) for g, (s, j) in seen.items()), reverse=True)[:keep]


def _top(sims: np.ndarray, m: int) -> np.ndarray:
    """Indices of the m largest values, largest first."""
    if m >= len(sims):
        return np.argsort(-sims)
    top = np.argpartition(-sims, m)[:m]
    return top[np.argsort(-sims[top])]


def _lookalike_samples(records: Records, rng: np.random.Generator) -> dict[str, list[tuple[float, bool]]]:
    """(agreement, right) of look-alike votes (raw space, colour from the colour histograms) for
    held-out catalog photos, their own listing and near-duplicates hidden."""
    from ipl_tools.catalog.embedding import part

    attrs = [json.loads(m.get("attributes") or "{}") for m in records.metas]
    samples: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    if not any(attrs):
        return samples
    groups = records.group("spu")
    colour_part = part(records.vectors, "colour")
    no_colour = np.array([not a.get("Colour") for a in attrs])
    sample = rng.permutation(len(records.vectors))[:MAX_CALIBRATION]
    for start in range(0, len(sample), 256):
        idx = sample[start : start + 256]
        sims = records.vectors[idx] @ records.vectors.T  # (B, N)
        csims = colour_part[idx] @ colour_part.T  # (B, N)
        hidden = (records.listing[idx][:, None] == records.listing[None, :]) | (
            (groups[idx][:, None] == groups[None, :]) & (sims > NEAR_DUPLICATE)
        )
        sims[hidden] = -2.0
        csims[hidden | no_colour[None, :]] = -2.0
        for row, crow, i in zip(sims, csims, idx, strict=True):
            near = _top(row, LOOKALIKE_K)
            for name, truth in attrs[i].items():
                if not truth:
                    continue
                hits = _top(crow, LOOKALIKE_K) if name == "Colour" else near
                value, agreement, _ = vote([(float((crow if name == "Colour" else row)[j]), attrs[j].get(name))
                                            for j in hits])
                samples[f"similar:{name}"].append((agreement, _same(value, truth)))
    return samples


def _fit_attributes(samples: dict[str, list[tuple[float, bool]]]) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Per source and attribute: P(the voted value is right | agreement)."""
    coefs: dict[str, list[float]] = {}
    report: dict[str, Any] = {}
    for source in ("similar", "products", "probe"):
        pooled = [v for k, vs in samples.items() if k.startswith(source + ":") for v in vs]
        for key, values in [*((k, v) for k, v in samples.items() if k.startswith(source + ":")),
                            (f"{source}:*", pooled)]:
            arr = np.array(values, dtype=float).reshape(-1, 2)
            if len(arr) >= 30:
                coefs[key] = fit_rate(arr[:, :1], arr[:, 1])
                report[key] = {"n": len(arr), "acc": round(float(arr[:, 1].mean()), 3)}
    return coefs, report


def _colour_table(records: Records) -> tuple[np.ndarray | None, list[str]]:
    from ipl_tools.catalog.embedding import part

    names = [json.loads(m.get("attributes") or "{}").get("Colour") for m in records.metas]
    keep = [i for i, c in enumerate(names) if c]
    if not keep:
        return None, []
    return part(records.vectors[keep], "colour").astype(np.float16), [str(names[i]) for i in keep]


def _idf(records: Records) -> dict[str, float]:
    """IDF of title trigrams over the catalog's listings."""
    docs: dict[str, set[str]] = {}
    for m in records.metas:
        docs.setdefault(m["listing_id"], trigrams(listing_text(m)))
    df: Counter[str] = Counter(g for grams in docs.values() for g in grams)
    n = max(len(docs), 1)
    return {g: round(float(np.log((n + 1) / (c + 0.5))), 4) for g, c in df.items()}


def as_records(ids: Iterable[str], vectors: np.ndarray, metas: list[dict[str, Any]]) -> Records:
    return Records(ids=list(ids), vectors=vectors, listing=np.array([m["listing_id"] for m in metas]), metas=metas)
