"""Fitting what an index learns from its own catalog (numpy only), refitted after every `ipl index`.

- The projection (`projection.py`), fitted on the catalog's product or category groups, and on the
  views of rare products' sellers' photos (`with_views`).
- Calibrations (`calibration.py`) fitted on held-out catalog photos, cross-fitted over
  `LEARN.folds` folds (the projection is refitted without the held-out fold, so scores look like
  those of new photos): P(the top hit is the identical product | score, margin, its product's photos;
  with held-out photos scored again with their product hidden, at the catalog's `missing_mass`),
  P(the category vote is right | share, score), and per attribute P(the value voted by look-alikes is
  right | agreement).
- Linear probes (`probe.py`) for the category and every attribute the catalog states, with the
  calibration of their probability fitted on the first fold's held-out photos (the probes refitted
  without them and without their near-duplicates). Where there is a category probe, the category
  is the blend of the kNN vote and the probe, and its calibration is fitted on that blend.
- The colour namer's catalog histograms and the IDF of title trigrams for OCR text matching (`text.py`).

No label of a query is ever used: everything here comes from catalog rows. The knobs are `LEARN`'s.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ipl_tools.catalog.calibration import fit_rate, gate_features, with_open
from ipl_tools.catalog.config import LEARN
from ipl_tools.catalog.health import band
from ipl_tools.catalog.model import SELLER_PHOTOS, STUDIO, IndexModel
from ipl_tools.catalog.probe import Probe, blend_category, category_probe_weight, fit_probes
from ipl_tools.catalog.projection import fit_lda, project
from ipl_tools.catalog.text import attributes_of, document_frequency, idf, same, stated_values, vocabulary
from ipl_tools.catalog.votes import HIDDEN, best_per_group, corrected, near_duplicates, shares, top, vote


@dataclass
class Records:
    """Catalog photos as the fit sees them: raw vectors and what the catalog says of each."""

    ids: list[str]
    vectors: np.ndarray  # (N, D)
    listing: np.ndarray  # (N,) listing ids
    metas: list[dict[str, Any]]
    views: np.ndarray | None = None
    """(V, D) views of rare products' sellers' photos (`embedding.VIEW_CROPS`): the projection is fitted on them too."""
    view_of: np.ndarray | None = None
    """(V,) the index of each view's photo."""

    def group(self, kind: str) -> np.ndarray:
        if kind == "spu":
            return np.array([m.get("spu") or m["listing_id"] for m in self.metas])
        if kind == "category":
            return np.array([m.get("category") or "" for m in self.metas])
        return self.listing




def as_records(ids: Iterable[str], vectors: np.ndarray, metas: list[dict[str, Any]]) -> Records:
    return Records(ids=list(ids), vectors=vectors, listing=np.array([m["listing_id"] for m in metas]), metas=metas)


def label_kind(metas: list[dict[str, Any]]) -> str:
    """'spu' when most listings belong to a multi-listing spu group, else 'category' when there are
    categories to separate, else 'none' (`Census.label_kind`)."""
    return Census().add(metas).label_kind()


def fit(records: Records, seed: int = 0, census: Census | None = None) -> IndexModel:
    """The model of a catalog from its photos `records` (all of them, or a sample past `fit_sample`),
    its counts and text from `census` (every row's; default: counted from `records`)."""
    started = time.perf_counter()
    census = census or Census().add(records.metas)
    kind = census.label_kind()
    labels = records.group(kind)
    rng = np.random.default_rng(seed)
    some = rng.permutation(len(labels))[: LEARN.max_projection]
    if kind == "none":
        mean, matrix = records.vectors[some].mean(0), None
    else:
        mean, matrix = fit_lda(*with_views(records, some, labels))
    model = IndexModel(count=len(records.vectors), label_kind=kind, mean=mean, matrix=matrix)
    held = _cross_fit(records, kind, rng)
    model.probes = fit_probes(records.vectors, _labels(records))
    report: dict[str, Any] = {"photos": len(records.vectors), "label_kind": kind, "held_out": len(held["top_ok"]),
                              "views": len(records.view_of) if records.view_of is not None else 0}
    report["photos_per"] = census.photos_per()  # what a query meets; the held-out photos met the sample's
    report["studio_only"] = {"category": sorted(census.studio_only("category")),
                             "product": sorted(census.studio_only("product")) if kind == "spu" else []}
    report["seller_photos"] = [census.sellers, census.photos]
    report["unvouched"] = counted(report)
    if held["top_ok"]:
        ok = np.array(held["top_ok"], dtype=float)
        report["held_out_identical@1"] = round(float(ok.mean()), 4)
        if kind == "spu":
            report["missing_mass"] = round(missing_mass(report["photos_per"]["product"]), 4)
            model.gate = _fit_gate(held, ok, report["missing_mass"])
    if held["cat_ok"]:
        _fit_category(model, held, report)
    model.attributes, report["held_out_attributes"] = _fit_attributes(held["attr"] | _lookalike_samples(records, rng))
    model.colours, model.colour_names = _colour_table(records)
    model.trigram_df, model.documents = census.trigram_df, census.documents
    model.idf = idf(census.trigram_df, census.documents)
    model.words, model.stated = census.words, census.stated
    model.report = report | {"fit_s": round(time.perf_counter() - started, 1)}
    return model


@dataclass
class Census:
    """What every catalog row says, counted page by page (`add`): its classes' photos, which classes it
    knows by studio shots alone, its sellers' photos, and its text tables (the title trigrams' document
    frequency for the IDF that OCR text is matched with, the vocabulary the gate checks OCR text
    against, the values each category states).

    The model keeps these of every row, not of the photos it was fitted on: past `fit_sample` those are
    a sample (`Catalog._refit` counts the rest). A query is searched against every photo, and a count
    from a sample is wrong for it: a product of ten photos shows one or none (the gate's photo count,
    the vote's prior correction), a catalog of products of a few listings reads as one without
    products (`label_kind`: no identity gate) and its products as missing (`missing_mass`), the
    health report names the wrong classes, and a product outside the sample had no IDF for its title
    (the text on its pack matched nothing). The held-out photos, scored against the sample, are
    still counted as the sample has them (`_cross_fit`)."""

    categories: Counter[str] = field(default_factory=Counter)
    products: Counter[str] = field(default_factory=Counter)
    studio: dict[str, set[str]] = field(default_factory=lambda: {"category": set(), "product": set()})
    seller: dict[str, set[str]] = field(default_factory=lambda: {"category": set(), "product": set()})
    sellers: int = 0
    photos: int = 0
    listings: int = 0
    spu_listings: Counter[str] = field(default_factory=Counter)
    """Listings per spu group (a listing whose photos come in two pages counts twice)."""
    trigram_df: dict[str, int] = field(default_factory=dict)
    documents: int = 0
    words: dict[str, int] = field(default_factory=dict)
    stated: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def add(self, metas: list[dict[str, Any]]) -> Census:
        groups = {"category": [str(m.get("category") or "") for m in metas],
                  "product": [str(m.get("spu") or m["listing_id"]) for m in metas]}
        self.categories.update(c for c in groups["category"] if c)
        self.products.update(groups["product"])
        for kind, group in groups.items():
            studio, seller = photo_kinds(metas, group)
            self.studio[kind] |= studio
            self.seller[kind] |= seller
        self.sellers += sellers_photos(metas)
        self.photos += len(metas)
        listings = {m["listing_id"]: m for m in metas}
        self.listings += len(listings)
        self.spu_listings.update(str(m["spu"]) for m in listings.values() if m.get("spu"))
        _add_text(self, metas)
        return self

    def photos_per(self) -> dict[str, dict[str, int]]:
        """{"category": {category: photos}, "product": {spu group or listing: photos}}."""
        return {"category": dict(self.categories), "product": dict(self.products)}

    def studio_only(self, kind: str) -> set[str]:
        return self.studio[kind] - self.seller[kind]

    def label_kind(self) -> str:
        """What the projection separates: 'spu' when most listings belong to a multi-listing spu group,
        else 'category' when there are categories to separate, else 'none'. Read from every row: in a
        sample most listings of a product of a few are alone."""
        grouped = sum(c for c in self.spu_listings.values() if c >= 2)
        if grouped >= 0.5 * self.listings and len(self.spu_listings) >= 2:
            return "spu"
        return "category" if sum(1 for c in self.categories.values() if c >= 2) >= 2 else "none"


def count_text(model: IndexModel, metas: list[dict[str, Any]]) -> None:
    """Count the text of catalog rows added without a refit into the model's tables (`Census`'s text
    tables, as the fit keeps them): their titles are matched and their words and values known at once."""
    _add_text(model, metas)
    model.idf = idf(model.trigram_df, model.documents)


def _add_text(tables: Census | IndexModel, metas: list[dict[str, Any]]) -> None:
    """Add the rows' text to the text tables of a census or a model: the title trigrams' document
    frequency and the listings counted, the vocabulary, the values each category states."""
    tables.trigram_df, documents = document_frequency(metas, into=tables.trigram_df)
    tables.documents += documents
    tables.words = vocabulary(metas, into=tables.words)
    tables.stated = stated_values(metas, into=tables.stated)


def with_views(records: Records, rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, labels) the projection is fitted on: the photos `rows` and the views of those of them
    that have some (`LearnConfig.view_max_photos`), each view labelled as its photo. A product known by
    one photo otherwise shows the projection nothing of how its photos vary."""
    if records.views is None or records.view_of is None or not len(records.view_of):
        return records.vectors[rows], labels[rows]
    chosen = np.zeros(len(records.vectors), dtype=bool)
    chosen[rows] = True
    viewed = chosen[records.view_of]
    return (np.concatenate([records.vectors[rows], records.views[viewed]]),
            np.concatenate([labels[rows], labels[records.view_of[viewed]]]))


def photos_per(records: Records) -> dict[str, dict[str, int]]:
    """{"category": {category: photos}, "product": {spu group or listing: photos}}: the votes' prior
    correction and the health report read them."""
    return {"category": dict(Counter(str(c) for c in records.group("category") if c)),
            "product": dict(Counter(str(g) for g in records.group("spu")))}


def _fit_category(model: IndexModel, held: dict[str, Any], report: dict[str, Any]) -> None:
    """The category's two calibrations and its report. Whether to offer a guess is learned from the
    held-out photos whose category the rest of the catalog had; the stated confidence from all of them
    (a rare category's photo, held out, is voted into another: what its seller meets) and from the
    photos scored with their category hidden."""
    ok = np.array(held["cat_ok"], dtype=float)
    present = np.array(held["cat_present"], dtype=bool)
    report["category_vote"] = "knn+probe" if "category" in model.probes and model.category_probe_weight else "knn"
    report["held_out_category_acc"] = round(float(ok.mean()), 4)
    if present.any():  # whether to offer a guess: judged where the catalog (the rest) had the photo's category
        model.category = fit_rate(np.array(held["cat"])[present], ok[present])
    report["held_out_category_bands"] = _by_band(held["cat_class"], ok, report["photos_per"]["category"])
    model.category_typical = _typical(held["cat"], held["cat_winner"], ok)
    stated = [[share, s1, model.below_typical(w, s1)] for (share, s1), w in zip(held["cat"], held["cat_winner"],
                                                                              strict=True)]
    absent = [[share, s1, model.below_typical(w, s1)] for (share, s1), w in zip(held["cat_open"],
                                                                              held["cat_open_winner"], strict=True)]
    model.category_stated = fit_rate(*with_open(np.array(stated), ok, held["cat_class"], absent,
                                                held["cat_open_class"]))


def missing_mass(photos: dict[str, int]) -> float:
    """How often a seller's product is expected to be missing from the catalog: the share of its
    products it knows by a single photo. Each of those it nearly missed; a catalog with many of them
    (long-tailed) misses many of its sellers' products, one that knows every product by several photos
    (0) few. (The Good-Turing estimate, singletons over photos, ran several times lower on the shared
    long-tail catalogs than the share of their queries that are missing products.)"""
    return sum(1 for n in photos.values() if n == 1) / len(photos) if photos else 0.0


def _fit_gate(held: dict[str, Any], right: np.ndarray, share: float) -> list[float]:
    """P(the top hit is the identical product | score, margin), from the held-out photos as they were
    scored (`right`: whether their top hit was their product) and, at `share` of the weight (the
    catalog's `missing_mass`), scored again with their own product hidden (always wrong): a seller's
    product the catalog lacks finds its look-alike sibling on top, at scores its own photos reach."""
    closed = np.array(held["gate"], dtype=float)
    opened = np.array(held["gate_open"], dtype=float).reshape(-1, closed.shape[1])
    if not share or not len(opened):
        return fit_rate(closed, right)
    weights = np.concatenate([np.full(len(closed), (1 - share) / len(closed)),
                              np.full(len(opened), share / len(opened))])
    return fit_rate(np.vstack([closed, opened]), np.concatenate([right, np.zeros(len(opened))]), weights)


def _labels(records: Records, rows: np.ndarray | None = None) -> dict[str, list[Any]]:
    """{label: value per photo} for the probes: the category and every attribute stated."""
    metas = records.metas if rows is None else [records.metas[i] for i in rows]
    attrs = [attributes_of(m) for m in metas]
    names = sorted({k for a in attrs for k, v in a.items() if v})
    labels = {"category": [m.get("category") for m in metas]}
    return labels | {name: [a.get(name) for a in attrs] for name in names}


def _cross_fit(records: Records, kind: str, rng: np.random.Generator) -> dict[str, Any]:
    """Scores of held-out photos against the rest, with the projection refitted per fold. A held-out
    photo's near-duplicates (`near_duplicates`: the same shot) are hidden from it, so it is scored as
    a new seller photo would be. Each held-out photo is scored a second time with its whole category
    hidden: a photo of a category the catalog lacks, which the stated confidence must not trust."""
    out: dict[str, Any] = {"gate": [], "top_ok": [], "gate_open": [], "cat": [], "cat_ok": [], "cat_present": [],
                           "cat_class": [], "cat_open": [], "cat_open_class": [],
                           "cat_winner": [], "cat_open_winner": [], "attr": defaultdict(list)}
    n = len(records.vectors)
    if kind == "none" or n < 2 * LEARN.folds:
        return out
    labels, groups, categories = records.group(kind), records.group("spu"), records.group("category")
    photos = dict(Counter(str(c) for c in categories if c))  # the vote's prior correction
    product_photos = Counter(str(g) for g in groups)  # the gate's third feature
    attrs = [attributes_of(m) for m in records.metas]
    folds = rng.permutation(n) % LEARN.folds
    per_fold = max(1, LEARN.max_calibration // LEARN.folds)
    probes: dict[str, Probe] = {}
    for f in range(LEARN.folds):
        train, test = np.where(folds != f)[0], np.where(folds == f)[0]
        test = rng.permutation(test)[:per_fold]
        some = rng.permutation(train)[: LEARN.max_projection]
        mean, matrix = fit_lda(*with_views(records, some, labels))
        p_train = project(records.vectors[train], mean, matrix)
        probed = f == 0 or len(out["cat"]) < LEARN.min_category_cases
        if probed:  # the probes' calibration: this fold's held-out photos, probes fitted without them
            unlike = _unlike(records, groups, train, test)
            probes = fit_probes(records.vectors[unlike], _labels(records, unlike))
        for start in range(0, len(test), LEARN.batch):
            idx = test[start : start + LEARN.batch]
            sims = project(records.vectors[idx], mean, matrix) @ p_train.T  # (B, T)
            raw = records.vectors[idx] @ records.vectors[train].T  # (B, T)
            sims[near_duplicates(groups[idx], groups[train], raw)] = HIDDEN
            probs = {name: p.probabilities(records.vectors[idx]) for name, p in probes.items()} if probed else {}
            for r, (row, i) in enumerate(zip(sims, idx, strict=True)):
                said = {name: dict(zip(probes[name].classes, ps[r], strict=True)) for name, ps in probs.items()
                        if name == "category" or attrs[i].get(name)}  # {label: {value: probability}}
                ranked = [(s, g, train[j]) for s, g, j in best_per_group(row, groups[train])]
                if len(ranked) < 2:
                    continue
                (s1, g1, _), (s2, _, _) = ranked[0], ranked[1]
                if kind == "spu":
                    out["gate"].append(gate_features(s1, s2, product_photos[str(g1)]))
                    out["top_ok"].append(g1 == groups[i])
                    others = [(s, g) for s, g, _ in ranked if g != groups[i]][:2]
                    if len(others) == 2:  # its product hidden: a product the catalog lacks, whose sibling comes top
                        out["gate_open"].append(gate_features(others[0][0], others[1][0], product_photos[others[0][1]]))
                hits = ranked[: LEARN.vote_k]
                if categories[i] and (probed or "category" not in probes):
                    _score_category(out, kind, row, i, s1, hits, said.get("category"), categories, groups, train,
                                    photos)
                for name, truth in attrs[i].items():
                    if truth and name in said:
                        value, p = max(said[name].items(), key=lambda kv: kv[1])
                        out["attr"][f"probe:{name}"].append((p, same(value, truth)))
                for name, truth in attrs[i].items():
                    if truth:
                        value, agreement, _ = vote([(s, attrs[j].get(name)) for s, _, j in hits])
                        out["attr"][f"products:{name}"].append((agreement, same(value, truth)))
    return out


def _score_category(out: dict[str, Any], kind: str, row: np.ndarray, i: int, s1: float,
                    hits: list[tuple[float, str, int]], probe: dict[str, float] | None,
                    categories: np.ndarray, groups: np.ndarray, train: np.ndarray, photos: dict[str, int]) -> None:
    """One held-out photo's category cases: voted among its `hits` (blended with the category probe's
    `probe` where there is one; the vote corrected for the categories' catalog `photos`), and again
    with its whole category hidden (an open-set case)."""
    knn = corrected(shares([(s, categories[j]) for s, _, j in hits]), photos)
    winner, share = blend_category(knn, probe, category_probe_weight(kind), photos)
    out["cat"].append([share, s1])
    out["cat_ok"].append(winner == categories[i])
    own = categories[train] == categories[i]
    out["cat_present"].append(bool(np.any(own & (row > HIDDEN))))
    out["cat_class"].append(categories[i])
    out["cat_winner"].append(winner)
    elsewhere = np.where(own, HIDDEN, row)
    other = [(s, categories[train[j]]) for s, _, j in best_per_group(elsewhere, groups[train], LEARN.vote_k)]
    if other:
        rest = {c: p for c, p in (probe or {}).items() if c != categories[i]}
        total = sum(rest.values())
        rest = {c: p / total for c, p in rest.items()} if total else {}
        other_winner, share = blend_category(corrected(shares(other), photos), rest or None,
                                             category_probe_weight(kind), photos)
        out["cat_open"].append([share, other[0][0]])
        out["cat_open_class"].append(categories[i])
        out["cat_open_winner"].append(other_winner)


def unvouched(metas: list[dict[str, Any]], group: Any) -> float:
    """How many of the catalog's classes (categories, or products: `group` of each photo) its
    held-out photos cannot vouch for.

    A catalog's rows say what kind of photo each is (`photo`: a studio shot, or a phone or home photo
    as sellers take them, or as the index tells it from the pixels where the row does not say). Where
    sellers' photos are `LearnConfig.min_seller_share` of the catalog's or more, a class it knows by
    studio shots alone (`studio_only`) has none to hold out: how its sellers' photos are voted is
    unknown, and they look like the seller photos the catalog is full of more than like a studio
    shot. Those classes are counted; a catalog with fewer sellers' photos has none."""
    report = {"studio_only": {"class": studio_only(metas, group)}, "seller_photos": [sellers_photos(metas), len(metas)]}
    return counted(report)["class"]  # as the fit counts them (its report keeps the names)


def sellers_photos(metas: list[dict[str, Any]]) -> int:
    return sum(m.get("photo") in SELLER_PHOTOS for m in metas)


def enough_sellers(sellers: int, photos: int) -> bool:
    """Whether sellers' photos are a real share of the catalog's (`LearnConfig.min_seller_share`): not
    a studio catalog with a few odd photos, or a few taken for sellers' by their looks."""
    return sellers >= LEARN.min_seller_share * photos


def studio_only(metas: list[dict[str, Any]], group: Any) -> set[str]:
    """The classes (`group` of each photo) with studio shots and no seller's photo."""
    studio, seller = photo_kinds(metas, group)
    return studio - seller


def photo_kinds(metas: list[dict[str, Any]], group: Any) -> tuple[set[str], set[str]]:
    """(the classes with a studio shot, the classes with a seller's photo) among the photos `metas`
    (`group`: each one's class)."""
    studio: set[str] = set()
    seller: set[str] = set()
    for m, g in zip(metas, group, strict=True):
        if g and m.get("photo") == STUDIO:
            studio.add(str(g))
        elif g and m.get("photo") in SELLER_PHOTOS:
            seller.add(str(g))
    return studio, seller


def counted(report: dict[str, Any]) -> dict[str, float]:
    """`unvouched` per kind from a fit's report (`studio_only`; `seller_photos`: [sellers', all])."""
    counts = enough_sellers(*report["seller_photos"])
    return {kind: float(len(names)) if counts else 0.0 for kind, names in report["studio_only"].items()}


def revouched(report: dict[str, Any], added: Records) -> None:
    """Update a fit's `studio_only`, `seller_photos` and `unvouched` for photos `added` to the
    catalog without a refit: a seller's photo vouches for its classes, a
    studio shot of a class the fit never saw joins those known by studio shots alone. A report
    from before these were kept is left as it is (the next refit counts)."""
    if "studio_only" not in report:
        return
    for kind, label in [("category", "category"), ("product", "spu")]:
        if kind == "product" and report.get("label_kind") != "spu":
            continue
        known = set((report.get("photos_per") or {}).get(kind) or {})
        groups = [str(g) for g in added.group(label)]
        vouched = {g for m, g in zip(added.metas, groups, strict=True) if g and m.get("photo") in SELLER_PHOTOS}
        new = {g for m, g in zip(added.metas, groups, strict=True) if g and m.get("photo") == STUDIO} - known
        report["studio_only"][kind] = sorted((set(report["studio_only"][kind]) | new) - vouched)
    sellers, photos = report["seller_photos"]
    report["seller_photos"] = [sellers + sellers_photos(added.metas), photos + len(added.metas)]
    report["unvouched"] = counted(report)


def _by_band(classes: list[Any], right: np.ndarray, photos: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Held-out category accuracy per band of the category's catalog photos (the health report)."""
    scored: dict[str, list[float]] = defaultdict(list)
    for c, ok in zip(classes, right, strict=True):
        scored[band(photos.get(str(c), 0))].append(float(ok))
    return {b: {"n": len(v), "acc": round(float(np.mean(v)), 3)} for b, v in scored.items()}


def _typical(cases: list[list[float]], winners: list[Any], right: np.ndarray) -> dict[str, float]:
    """{category: median top score of the held-out photos rightly voted for it (`min_typical` at least), '*': all}."""
    scores: dict[str, list[float]] = defaultdict(list)
    for (_, s1), winner, ok in zip(cases, winners, right, strict=True):
        if ok:
            scores[str(winner)].append(s1)
            scores["*"].append(s1)
    return {c: round(float(np.median(v)), 4) for c, v in scores.items() if len(v) >= LEARN.min_typical}


def _unlike(records: Records, groups: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The training photos that are not near-duplicates (same product, the same shot) of a test photo."""
    near = np.zeros(len(train), dtype=bool)
    for start in range(0, len(test), LEARN.batch):
        idx = test[start : start + LEARN.batch]
        raw = records.vectors[idx] @ records.vectors[train].T  # (B, T)
        near |= near_duplicates(groups[idx], groups[train], raw).any(0)
    return train[~near]


def _lookalike_samples(records: Records, rng: np.random.Generator) -> dict[str, list[tuple[float, bool]]]:
    """(agreement, right) of look-alike votes (raw space, colour from the colour histograms) for
    held-out catalog photos, their own listing and near-duplicates hidden."""
    from ipl_tools.catalog.embedding import part

    attrs = [attributes_of(m) for m in records.metas]
    samples: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    if not any(attrs):
        return samples
    groups = records.group("spu")
    colour_part = part(records.vectors, "colour")
    no_colour = np.array([not a.get("Colour") for a in attrs])
    sample = rng.permutation(len(records.vectors))[: LEARN.max_calibration]
    for start in range(0, len(sample), LEARN.batch):
        idx = sample[start : start + LEARN.batch]
        sims = records.vectors[idx] @ records.vectors.T  # (B, N)
        csims = colour_part[idx] @ colour_part.T  # (B, N)
        own = records.listing[idx][:, None] == records.listing[None, :]  # (B, N)
        hidden = own | near_duplicates(groups[idx], groups, sims)
        sims[hidden] = HIDDEN
        csims[hidden | no_colour[None, :]] = HIDDEN
        for row, crow, i in zip(sims, csims, idx, strict=True):
            near = top(row, LEARN.lookalike_k)
            for name, truth in attrs[i].items():
                if not truth:
                    continue
                hits = top(crow, LEARN.lookalike_k) if name == "Colour" else near
                value, agreement, _ = vote([(float((crow if name == "Colour" else row)[j]), attrs[j].get(name))
                                            for j in hits])
                samples[f"similar:{name}"].append((agreement, same(value, truth)))
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
            if len(arr) >= LEARN.min_attribute_cases:
                coefs[key] = fit_rate(arr[:, :1], arr[:, 1])
                report[key] = {"n": len(arr), "acc": round(float(arr[:, 1].mean()), 3)}
    return coefs, report


def _colour_table(records: Records) -> tuple[np.ndarray | None, list[str]]:
    from ipl_tools.catalog.embedding import part

    names = [attributes_of(m).get("Colour") for m in records.metas]
    keep = [i for i, c in enumerate(names) if c]
    if not keep:
        return None, []
    return part(records.vectors[keep], "colour").astype(np.float16), [str(names[i]) for i in keep]
