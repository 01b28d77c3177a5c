"""The learned part of an index (`IndexModel`): projection, calibrations, probes, colour table and
IDF, stored beside the Chroma files as one .npz, and what search asks of them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ipl_tools.catalog.calibration import gate_features, logistic
from ipl_tools.catalog.probe import Probe, category_probe_weight
from ipl_tools.catalog.projection import project
from ipl_tools.catalog.text import fold

MODEL_FILE = "ipl-model.npz"
MODEL_FORMAT = 6
"""Bumped when what a saved model means changes (2: the category blend's weights depend on the label kind;
3: the category probe's prior correction and the stated category confidence; 4: no probe in the
category blend of a catalog with spu groups, and the classes it cannot vouch for; 5: the probe's
weight per category scaled by its catalog photos; 6: the counts and text tables are every catalog row's,
not the fit sample's, and the trigrams' document frequency is kept to count added rows in); a model
saved in another format is refitted on load, from the catalog in the index."""


STUDIO = "catalog"
"""A catalog row's `photo` when it is a studio shot (the listing schema's `photo` field)."""
SELLER_PHOTOS = ("phone", "seller")
"""A catalog row's `photo` when sellers took it: in a shop with a phone, or at home."""
SELLER = "seller"
"""The kind the index gives a photo whose row does not say and that does not look like a studio shot."""
PHOTO_KINDS = (STUDIO, *SELLER_PHOTOS)
"""The `photo` values the index keeps from a catalog row; any other is dropped at the index."""


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
    typical): fitted on held-out photos balanced over categories (`class_balance`) and mixed with photos of
    categories the catalog lacks (`open_share`)."""
    category_typical: dict[str, float] = field(default_factory=dict)
    """Per category, the median top score of held-out photos it was rightly voted for ('*': all)."""
    attributes: dict[str, list[float]] = field(default_factory=dict)
    colours: np.ndarray | None = None
    """Colour histograms (M, 192) of catalog photos that state a Colour, and their names."""
    colour_names: list[str] = field(default_factory=list)
    idf: dict[str, float] = field(default_factory=dict)
    """{title trigram: its IDF over the catalog's listings} (`text.idf`), for matching OCR text."""
    trigram_df: dict[str, int] = field(default_factory=dict)
    """{title trigram: catalog listings whose text has it} and the listings counted (`documents`): what
    the IDF is computed from, kept so that rows added without a refit are counted in (`fit.count_text`)."""
    documents: int = 0
    words: dict[str, int] = field(default_factory=dict)
    """{word: catalog products whose title, attributes or category name it} (`text.vocabulary`)."""
    stated: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """{category: {attribute: the values its catalog rows state, folded}} (`text.stated_values`)."""
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
            "trigram_df": self.trigram_df, "documents": self.documents, "words": self.words, "stated": self.stated,
            "report": self.report,
            "probes": {name: p.classes for name, p in self.probes.items()},
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
                colour_names=meta["colour_names"], idf=meta["idf"], trigram_df=meta.get("trigram_df", {}),
                documents=meta.get("documents", 0), words=meta.get("words", {}),
                stated=meta.get("stated", {}),
                report=meta.get("report", {}),
                probes={name: Probe(classes, z[f"probe:{name}"]) for name, classes in meta.get("probes", {}).items()},
                collection=meta.get("collection", "learned"),
            )

    def project(self, x: np.ndarray) -> np.ndarray:
        return project(x, self.mean, self.matrix)

    def identity_probability(self, score: float, margin: float, product: str | None = None) -> float:
        """P(the top hit, `product`, is the identical product); 0 for a catalog that has no spu
        groups. Lowered for the sellers of products known by studio shots alone (`absorbed`)."""
        if not self.gate:
            return 0.0
        photos = self.photos_per("product").get(str(product), 0) * self.fit_share
        features = gate_features(score, score - margin, photos)
        return self.absorbed(logistic(self.gate, *features[: len(self.gate) - 1]), "product", product)  # older: 2

    def category_confidence(self, category: str, share: float, score: float) -> tuple[float, float]:
        """(P(the category is right) where the catalog has the seller's category, the stated P(right)),
        from its share of the vote (blended with the probe's probability where there is a category
        probe) and the top hit's score. The first decides whether a guess is worth offering; the
        second is what the listing states, and it also weighs how far the score falls below what
        photos of that category usually score, and that the seller's category may be missing."""
        closed = logistic(self.category, share, score) if self.category else share
        if not self.category_stated:
            return closed, closed
        stated = logistic(self.category_stated, share, score, self.below_typical(category, score))
        return closed, self.absorbed(stated, "category", category)

    def absorbed(self, p: float, kind: str, winner: str | None) -> float:
        """`p`, a P(right) learned from held-out catalog photos for the `kind` ('category' or
        'product') `winner`, lowered for the sellers those photos cannot show: of the classes the
        catalog knows by studio shots alone (`fit.unvouched`). Their sellers' photos are taken by
        the classes the catalog is full of, in proportion to their photos: the head of a long-tailed
        catalog wins them, at the shares and scores its own photos win with (a category with 70% of
        the photos took tomatoes, satsumas and mushrooms at 0.99). With every seller's class equally
        likely, odds(right) = 1 / (1 / odds(p) + unvouched * the winner's share of the photos); a
        catalog with seller photos of every class, or that does not say, keeps `p`."""
        lost = float((self.report.get("unvouched") or {}).get(kind) or 0.0)
        photos = self.photos_per(kind)
        total = sum(photos.values())
        if lost <= 0 or total <= 0 or p <= 0:
            return p
        against = (1 - p) / p + lost * photos.get(str(winner), 0) / total
        return round(1 / (1 + against), 4)

    def below_typical(self, category: str | None, score: float) -> float:
        """The top hit's score minus the median score of photos rightly voted `category` (0 unknown)."""
        typical = self.category_typical.get(str(category), self.category_typical.get("*"))
        return score - typical if typical is not None else 0.0

    @property
    def category_probe_weight(self) -> float:
        """The probe's weight in this catalog's category blend."""
        return category_probe_weight(self.label_kind)

    @property
    def category_photos(self) -> dict[str, int]:
        """{category: catalog photos}: the category vote is corrected for them (`votes.corrected`)."""
        return dict(self.photos_per("category"))

    @property
    def fit_share(self) -> float:
        """The share of the catalog's photos the model was fitted on (1 unless past `fit_sample`). The
        gate learned from held-out photos counted as the sample has them: a product's photos are
        scaled by it for the gate, so that a product of 30 photos in a 10% sample reads as the 3 its
        held-out photos saw."""
        sample, fitted = self.report.get("fit_sample"), self.report.get("fitted_count")
        return sample / fitted if sample and fitted else 1.0

    def photos_per(self, kind: str) -> dict[str, int]:
        """{class: catalog photos} of `kind` ('category' or 'product'), as the fit counted them ({} before)."""
        return (self.report.get("photos_per") or {}).get(kind) or {}

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

    def states(self, category: str | None, name: str, value: str) -> bool:
        """Whether the catalog's rows of `category` ever state this value of the attribute; True for a
        category it has no rows of (or a model fitted before it kept them)."""
        known = self.stated.get(category or "")
        return known is None or fold(str(value)) in known.get(name, [])
