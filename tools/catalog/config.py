"""The numeric knobs of what an index learns from its catalog, in one place (nanoGPT's `GPTConfig`).

Decision thresholds are policy (`policies/`); these are the algorithm's own sizes and weights, each
with the reason it has the value it has.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LearnConfig:
    lda_reg: float = 0.1  # ridge on the within-class scatter, as a share of its mean eigenvalue
    max_dim: int = 128  # LDA directions kept at most: the projected vectors stay small in the index
    folds: int = 5  # cross-fitting folds: the projection is refitted without each, so held-out scores look new
    max_projection: int = 20000  # catalog photos the projection is fitted on, at most (a random sample beyond)
    max_calibration: int = 4000  # held-out photos used to fit the calibrations, at most (spread over the folds)
    # Held-out category cases the calibrations want: a fold after the first is scored with probes fitted
    # without it while there are fewer. A small catalog's calibration otherwise rests on a fifth of its
    # photos, and a long-tailed one's on a handful of rare-category photos (its head stated with certainty
    # where a rare product is voted into it); a large catalog (800 held-out photos a fold) reaches it in two.
    min_category_cases: int = 1000
    vote_k: int = 10  # product hits that vote on the category and attributes
    vote_power: float = 8.0  # a hit votes with weight sim**power: the nearest hits decide, far ones barely count
    lookalike_k: int = 10  # look-alike photos (raw space) that vote on an attribute
    # Prior correction of the category vote and probe: a category with n catalog photos counts as if it
    # had n + 5 (the vote's share times (n + 5) / n; the probe's logits + log((n + 5) / n)). A category of
    # 1 photo gains x6, one of 100 x1.05: where every category has many photos (and sellers list in about
    # the same proportions) nothing moves; on a long-tailed catalog one with few photos is no longer
    # outvoted by numbers alone. Chosen on the shared data (long-tail protocol, seed 0; ipl eval figures in
    # the README): grocery long-tail 0.639 -> 0.682 with the full catalog unchanged (0.919 either way);
    # plain logit adjustment (n instead of n + 5) gave 0.700 long-tail but 0.885 on the full catalog.
    prior_smoothing: float = 5.0
    # The stated confidence's calibration weighs a held-out photo by 1 / (photos of its category)**0.5:
    # between the catalog's own mix (0; a long-tailed catalog's held-out photos are mostly of its head, so
    # it learns certainty where a rare product's seller gets the head's answer) and every category alike
    # (1; too shy on a catalog whose sellers list in its own proportions).
    class_balance: float = 0.5
    # Share of the stated confidence's calibration cases that are held-out photos scored with their whole
    # category hidden (a seller's product of a category the catalog lacks; always wrong).
    open_share: float = 0.05
    # Sellers' photos (shop or home) must be this share of a catalog's photos or more before the classes
    # it knows by studio shots alone are counted (`fit.unvouched`): a studio catalog (fashion) with a few
    # photos of the other kind, or a few taken for it by their looks (`photos.looks_studio`: 6 of 1,500
    # fashion photos), is a studio catalog. The 400-row grocery catalog has 80%.
    min_seller_share: float = 0.05
    # A photo of a product (a row's spu) with this many catalog photos or fewer is also embedded as two
    # centre crops (`embedding.VIEW_CROPS`), which the projection
    # is fitted on beside it (`fit.with_views`): a product with one photo otherwise shows the projection
    # nothing of how its own photos vary, and the projection learns only the head's variation. Searched,
    # voted and counted are the photos alone. Chosen on the shared grocery long-tail catalogs (offline replay
    # of the category vote, 4 seeds): 0.714 -> 0.771 (1-3 photos band 0.47 -> 0.60); 3 photos 0.752, 7 0.772,
    # views in the search as well 0.772. ipl eval: grocery long-tail 0.711 -> 0.776; the full catalog has no
    # product this small. Categories are not viewed: fashion's (studio shots) moved 0.838 -> 0.834 on its
    # long-tail catalog. Each such photo costs two more forward passes when indexed.
    view_max_photos: int = 5
    # Raw cosine above which two photos of one product are taken for the same shot (hidden from each
    # other when the calibrations are fitted).
    near_duplicate: float = 0.9
    # Growth of the catalog (photos added since the last full fit, as a share of it) up to which `ipl
    # index` projects new photos by the model as it is instead of refitting it (rows of a category the
    # model lacks always refit): adding a day's listings runs at the embedder's pace, and the model
    # learns them at the next refit (`ipl index --refit` forces one).
    refit_growth: float = 0.1
    batch: int = 256  # held-out photos scored at a time: a (batch, catalog) similarity matrix bounds the memory
    ranked_groups: int = 50  # products ranked per held-out photo, from its `ranked_groups * 4` nearest photos
    min_attribute_cases: int = 30  # held-out cases an attribute's calibration needs to be fitted at all
    min_typical: int = 3  # rightly voted photos a category needs before its typical score is taken
    logistic_ridge: float = 1e-2  # keeps a calibration finite when one feature separates the cases
    logistic_steps: int = 50  # Newton steps at most; a calibration converges in well under ten


LEARN = LearnConfig()
"""The knobs every fit and every search use: the search votes as the fit calibrated."""
