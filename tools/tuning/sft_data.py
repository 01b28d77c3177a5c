"""`ipl sft-data`: instruction data from listings files in the shared schema (any role).

Rows pass the cleaning rules in order (`cleaning.py`: text quality, risk, length, privacy, special
characters, duplicates; then readable photos and, with an index, photo-text consistency), then a
category-stratified sample with a per-category cap; each kept row gives the description samples of
the seed's three instruction types and the domain tasks it supports (`instructions.py`). Written to
DIR: `train.jsonl` (one record a line, shuffled) and `report.json` (every step with its count).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ipl_graph.errors import PhotoError, UserError
from ipl_graph.policies import Policy, load_policy
from ipl_graph.schemas import Neighbour, Photo
from ipl_tools.catalog.index import read_listings
from ipl_tools.tuning.cleaning import CleaningConfig, Step, text_steps
from ipl_tools.tuning.instructions import description_records, task_records

DATA_FILE = "train.jsonl"
REPORT_FILE = "report.json"


def read_rows(paths: list[str], unread: Step) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in paths:
        problems: list[str] = []
        rows += read_listings(path, problems)
        for problem in problems:
            unread.drop({"id": problem.split(": ", 1)[0]}, problem.split(": ", 1)[-1])
    return rows


def readable_photos(rows: list[dict[str, Any]], policy: Policy, step: Step,
                    progress: Callable[[int], None]) -> tuple[list[dict[str, Any]], list[list[Photo]]]:
    """Rows whose photos all read (rows without photos are kept for the text tasks)."""
    from ipl_tools.photos import resolve

    kept, photos = [], []
    for row in rows:
        try:
            photos.append([resolve(ref, policy.limits) for ref in row["images"]])
            kept.append(row)
        except PhotoError as exc:
            step.drop(row, str(exc).splitlines()[0][:200])
        progress(1)
    return kept, photos


def consistent(rows: list[dict[str, Any]], photos: list[list[Photo]], index: str, policy: Policy,
               config: CleaningConfig, step: Step, progress: Callable[[int], None] = lambda n: None
               ) -> tuple[list[dict[str, Any]], dict[str, list[Neighbour]]]:
    """Rows whose photos do not contradict their category, and the references of each."""
    from ipl_tools.tuning.catalog import CatalogView

    view = CatalogView(index, policy)
    with_photos = [(r, p) for r, p in zip(rows, photos, strict=True) if p]
    looks = view.look([r for r, _ in with_photos], [p for _, p in with_photos], progress) if with_photos else []
    verdict = {id(r): look for (r, _), look in zip(with_photos, looks, strict=True)}
    kept, references = [], {}
    for row in rows:
        look = verdict.get(id(row))
        own = (row.get("category") or "").casefold()
        if (look is not None and own and look.category and look.category.casefold() != own
                and look.confidence >= config.consistency_min_confidence):
            step.drop(row, f"the photos look like {look.category} ({look.confidence:.2f}), the text says"
                           f" {row['category']}")
            continue
        kept.append(row)
        if look is not None and look.references:
            references[str(row["id"])] = look.references
    return kept, references


def stratified(rows: list[dict[str, Any]], cap: int, seed: int, step: Step) -> list[dict[str, Any]]:
    """At most `cap` rows per category (rows without one are a category of their own), a seeded sample."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row.get("category") or "").casefold()].append(row)
    rng = random.Random(seed)
    chosen: set[int] = set()
    for members in groups.values():
        picked = members if len(members) <= cap else rng.sample(members, cap)
        chosen.update(id(r) for r in picked)
    kept = []
    for row in rows:
        if id(row) in chosen:
            kept.append(row)
        else:
            step.drop(row, f"over the cap of {cap} rows of {row.get('category') or '(no category)'}")
    return kept


def build(
    paths: list[str], out: str | Path, index: str | None = None, policy_name: str = "default",
    config: CleaningConfig | None = None, seed: int = 0, progress: Callable[[int], None] = lambda n: None,
) -> dict[str, Any]:
    """Clean, sample and build; write DIR/train.jsonl and DIR/report.json; return the report."""
    started = time.perf_counter()
    config = config or CleaningConfig()
    policy = load_policy(policy_name)
    unread = Step("readable", "lines that hold no listing, or repeat an id", lambda r: None)
    rows = read_rows(paths, unread)
    rows_in = len(rows) + unread.dropped
    steps = [unread, *text_steps(policy, config)]
    for step in steps[1:]:
        rows = [r for r in rows if step(r)]
    photos_step = Step("photos", "a photo that cannot be read (missing, not an image, too small or too large)",
                       lambda r: None)
    rows, photos = readable_photos(rows, policy, photos_step, progress)
    consistency = Step("photo_text", f"the catalog model gives the photos another category at confidence >="
                       f" {config.consistency_min_confidence}" + ("" if index else " (skipped: no --index)"),
                       lambda r: None)
    references: dict[str, list[Neighbour]] = {}
    if index:
        rows, references = consistent(rows, photos, index, policy, config, consistency, progress)
    sampling = Step("sampling", f"over the per-category cap of {config.per_category} (seeded sample)", lambda r: None)
    rows = stratified(rows, config.per_category, seed, sampling)
    steps += [photos_step, consistency, sampling]
    if not rows:
        raise UserError("no listing row passed the cleaning rules: " + ", ".join(
            f"{s.name} dropped {s.dropped}" for s in steps if s.dropped) + f" of {rows_in}")
    records = [rec for row in rows for rec in
               (*description_records(row, policy, references.get(str(row["id"]), [])), *task_records(row, policy))]
    if not records:
        raise UserError(f"the {len(rows)} rows kept give no instruction: they need photos, or a description")
    random.Random(seed).shuffle(records)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / DATA_FILE).open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    report = {
        "inputs": [str(p) for p in paths], "index": index, "policy": policy_name, "seed": seed,
        "config": asdict(config), "rows_in": rows_in,
        "steps": [{"name": s.name, **s.summary()} for s in steps],
        "rows_kept": len(rows), "records": len(records),
        "by_type": dict(Counter(r["type"] for r in records).most_common()),
        "by_lang": dict(Counter(r["lang"] for r in records).most_common()),
        "categories": len({(r.get("category") or "").casefold() for r in rows}),
        "data": str(folder / DATA_FILE), "seconds": round(time.perf_counter() - started, 2),
    }
    (folder / REPORT_FILE).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return report


def summary(report: dict[str, Any]) -> str:
    """The report as lines for a terminal."""
    lines = [f"{report['rows_in']} rows in"]
    lines += [f"  {s['name']:<19} -{s['dropped']:<6} {s['what']}" for s in report["steps"]]
    lines.append(f"{report['rows_kept']} rows kept, {report['categories']} categories -> {report['records']} records"
                 f" in {report['data']} ({report['seconds']} s)")
    lines.append("  " + ", ".join(f"{k}: {v}" for k, v in report["by_type"].items()))
    lines.append("  " + ", ".join(f"{k}: {v}" for k, v in report["by_lang"].items()))
    return "\n".join(lines)
