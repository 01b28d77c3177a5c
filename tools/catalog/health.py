"""Catalog health, as `ipl index` reports it: how the catalog's photos spread over its categories and
products, which of them have too few photos to be recognised, and how often held-out catalog photos
were recognised, per band of photos of their class (`fit.fit` measures it while it calibrates).

A marketplace catalog is long-tailed: a few products with hundreds of photos, most with one to three.
The figures say where the index can be trusted before a seller lists anything.
"""

from __future__ import annotations

from typing import Any

from ipl_tools.catalog.model import IndexModel

BANDS = ((1, 3), (4, 10), (11, 50), (51, None))
"""Photos of a class, by band: the catalog health report counts classes per band."""

FEW_PHOTOS = 3
"""A category or product with this many catalog photos or fewer is named as too few to be recognised:
the lowest band (1-3), where held-out photos of the shared long-tail catalogs were recognised least."""
NAMED = 12
"""Classes named per line, at most; the rest are counted."""


def band(photos: int) -> str:
    for lo, hi in BANDS:
        if photos >= lo and (hi is None or photos <= hi):
            return f"{lo}-{hi}" if hi else f"{lo}+"
    return "0"


def health_lines(model: IndexModel) -> list[str]:
    """The report's lines, for a model fitted by this version (older models say nothing)."""
    report = model.report
    per = report.get("photos_per")
    if not per:
        return []
    categories: dict[str, int] = per.get("category", {})
    products: dict[str, int] = per.get("product", {})
    lines = [f"catalog health: {report.get('photos', sum(categories.values()))} photos, {len(categories)} categories"
             + (f", {len(products)} products" if model.label_kind == "spu" else "")]
    if categories:
        top, n = max(categories.items(), key=lambda kv: kv[1])
        total = max(sum(categories.values()), 1)
        lines.append(f"  largest category: {top} ({n} photos, {n / total:.0%}); categories by photos: "
                     + spread(categories))
    if model.label_kind == "spu":
        lines.append("  products by photos: " + spread(products))
    lines += accuracy_lines("category right", report.get("held_out_category_bands"), "category")
    if model.label_kind == "spu":
        lines += accuracy_lines("identical product found", report.get("held_out_identical_bands"), "product")
    lines += few_lines("categories", categories)
    if model.label_kind == "spu":
        lines += few_lines("products", products)
    lines += studio_lines(report.get("unvouched") or {})
    if report.get("views"):
        lines.append(f"  {report['views']} centre crops of the photos of products with few photos taught the"
                     " projection how their photos vary")
    if report.get("missing_mass"):
        lines.append(f"  {report['missing_mass']:.1%} of the products have a single photo: the identity gate expects"
                     " that share of sellers' products to be missing from the catalog")
    return lines


def studio_lines(unvouched: dict[str, float]) -> list[str]:
    """The classes the catalog knows by studio shots alone, where it holds sellers' photos of others
    (`fit.unvouched`): their sellers' photos cannot be checked, and the confidence stated for the
    largest classes is lowered for them (`IndexModel.absorbed`)."""
    counted = [f"{int(n)} {'categories' if kind == 'category' else 'products'}" for kind, n in unvouched.items() if n]
    if not counted:
        return []
    return [f"  known by studio shots alone: {' and '.join(counted)} (no seller photo of them to check against;"
            " add some, or the largest classes are stated with less confidence)"]


def spread(counts: dict[str, int]) -> str:
    """'1-3: 25, 4-10: 19, ...': how many classes fall in each band of photos."""
    bands: dict[str, int] = {}
    for n in counts.values():
        bands[band(n)] = bands.get(band(n), 0) + 1
    order = [band(lo) for lo, _ in BANDS]
    return ", ".join(f"{b}: {bands[b]}" for b in order if b in bands)


def accuracy_lines(what: str, bands: dict[str, Any] | None, of: str) -> list[str]:
    if not bands:
        return []
    cells = ", ".join(f"{b} {row['acc']:.2f} (n={row['n']})" for b, row in bands.items())
    return [f"  estimated {what}, by photos of the {of} (held-out catalog photos): {cells}"]


def few_lines(what: str, counts: dict[str, int]) -> list[str]:
    few = sorted((n, c) for c, n in counts.items() if n <= FEW_PHOTOS)
    if not few:
        return []
    named = ", ".join(f"{c} ({n})" for n, c in few[:NAMED])
    named += f" and {len(few) - NAMED} more" if len(few) > NAMED else ""
    return [f"  too few photos to be recognised (<= {FEW_PHOTOS}): {len(few)} {what}: {named}"]
