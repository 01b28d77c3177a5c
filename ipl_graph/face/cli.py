"""The `ipl` command: build a catalog index, list photos, mine templates."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from ipl_graph import taming
from ipl_graph.errors import UserError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ipl", description="Turn product photos into a second-hand listing.")
    sub = p.add_subparsers(dest="command", required=True)

    index = sub.add_parser("index", help="add catalog listings (JSONL) to the index")
    index.add_argument("listings")
    index.add_argument("--index", default=".ipl-index", help="index folder (default: .ipl-index) or Chroma server URL,"
                       " http://HOST:PORT[?collection=NAME&tenant=T&database=D]")
    index.add_argument("--policy", default="default", help="policy whose rules quarantine catalog rows")
    index.add_argument("--embedder", default="efficientnet-lite0",
                       help="image embedder: efficientnet-lite0 (default), efficientnet-lite0-int8 (~2x faster)"
                       " or clip:FOLDER (a CLIP checkpoint on this machine); list with the same --embedder")
    index.add_argument("--ray", nargs="?", const="", metavar="ADDRESS", help="read and embed the photos with Ray"
                       " Data on the cluster at ADDRESS (HOST:6379, ray://HOST:10001), or a local one without it"
                       " (needs the ray extra)")
    index.add_argument("--workers", type=int, help="embedding workers for --ray (default: one per CPU)")
    index.add_argument("--refit", action="store_true", help="refit the learned model even where the rows added"
                       " could be projected by it as it is (at most 10%% more photos since its last fit)")
    index.add_argument("--fit-sample", type=int, help="fit the learned model on at most N catalog photos, a seeded"
                       " sample beyond (default: 100000)")

    listing = sub.add_parser("list", help="write a listing for photos of one item")
    listing.add_argument("photos", nargs="+", metavar="PHOTO")
    listing.add_argument("--index", default=".ipl-index", help="index folder or Chroma server URL")
    listing.add_argument("--hint", default="", help="what you'd tell a buyer, e.g. 'barely used'")
    listing.add_argument("--lang", choices=["en", "zh"], default="en")
    listing.add_argument("--json", action="store_true", help="print the listing as one JSON object")
    listing.add_argument("--policy", default="default")
    listing.add_argument("--generator", default="template")
    listing.add_argument("--model", default="", help="model path or name for --generator transformers/openai")
    listing.add_argument("--base-url", default="", help="OpenAI-compatible server URL for --generator openai")
    listing.add_argument("--timeout", type=float, default=60.0, help="seconds before a manual draft")
    listing.add_argument("--embedder", default="efficientnet-lite0",
                         help="image embedder the index was built with (default: efficientnet-lite0)")
    listing.add_argument("--no-worker", action="store_true",
                         help="list in this process, not in the warm background worker (ipl_graph.face.worker)")

    mine = sub.add_parser("mine-templates", help="mine per-category attribute templates into a policy file")
    mine.add_argument("listings", nargs="+")
    mine.add_argument("--out", default="-", help="YAML file to write (default: stdout)")
    mine.add_argument("--min-fill", type=float, default=0.5)

    serve = sub.add_parser("serve", help="serve the graph and the seller page (LangGraph server)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; others"
                       " need --token)")
    serve.add_argument("--port", type=int, default=8123, help="port (default: 8123)")
    serve.add_argument("--index", default=".ipl-index", help="index folder or Chroma server URL every run uses")
    serve.add_argument("--config", default="langgraph.json", help="LangGraph config (default: langgraph.json)")
    serve.add_argument("--policy", default="default", help="policy every run uses")
    serve.add_argument("--generator", default="template", help="generator every run uses")
    serve.add_argument("--model", default="", help="model path or name for --generator transformers/openai")
    serve.add_argument("--base-url", default="", help="OpenAI-compatible server URL for --generator openai")
    serve.add_argument("--embedder", default="efficientnet-lite0",
                       help="image embedder the index was built with (default: efficientnet-lite0)")
    serve.add_argument("--photos-dir", default="", help="a folder whose photos clients may name by path"
                       " (default: none; clients upload)")
    serve.add_argument("--token", default="",
                       help="bearer token clients must send (default: $IPL_TOKEN; none: no authentication)")
    serve.add_argument("--data", default="", help="folder that keeps threads, runs and uploaded photos across"
                       " restarts (default: none; they end with the server)")

    adopt = sub.add_parser("adoption", help="how much of the generated listings sellers kept (a running ipl serve)")
    adopt.add_argument("--url", default="http://127.0.0.1:8123", help="the server (default: http://127.0.0.1:8123)")
    adopt.add_argument("--token", default="", help="the server's access token (default: $IPL_TOKEN)")

    ev = sub.add_parser("eval", help="measure the EVAL.md figures: index a catalog, list its query rows")
    ev.add_argument("--catalog", required=True, help="listings JSONL whose catalog rows are indexed")
    ev.add_argument("--queries", help="listings JSONL whose query rows are listed (default: --catalog)")
    ev.add_argument("--index", help="index folder or Chroma server URL to build or reuse (default: a fresh"
                    " temporary folder)")
    ev.add_argument("--limit", type=int, help="list only the first N query rows")
    ev.add_argument("--ablation", action="store_true", help="add the seed's Table 7 rows under 'ablation'")
    ev.add_argument("--policy", default="default")
    ev.add_argument("--out", default="eval-report.json", help="JSON report; .md and .png are written beside it")
    ev.add_argument(
        "--longtail", action="store_true",
        help="long-tail protocol: index a long-tailed subsample of the catalog (products, i.e. spu groups or"
        " else categories, in a seeded order; the one at rank r keeps n1 / r**s photos, rounded, down to one) and"
        " leave 10%% of the products out entirely; their queries give open_false_trust. Use its own --index.",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the --longtail subsample (default: 0)")
    ev.add_argument("--generator", default="template", help="writer to measure: template, transformers, openai")
    ev.add_argument("--model", default="", help="model folder or name for --generator transformers/openai")
    ev.add_argument("--embedder", default="efficientnet-lite0",
                    help="image embedder to index and list with (default: efficientnet-lite0; or -int8)")

    sft = sub.add_parser("sft-data", help="build instruction data (three types + tasks) from listings, cleaned")
    sft.add_argument("listings", nargs="+", metavar="LISTINGS.jsonl")
    sft.add_argument("--out", required=True, help="folder for train.jsonl and report.json")
    sft.add_argument("--index", help="catalog index: photo-text consistency and references (default: skip both)")
    sft.add_argument("--policy", default="default", help="policy whose moderation rules and templates apply")
    sft.add_argument("--per-category", type=int, default=1000, help="rows kept per category at most (default: 1000)")
    sft.add_argument("--seed", type=int, default=0, help="seed of the sampling and the shuffle (default: 0)")

    tune = sub.add_parser("tune", help="fine-tune a local Qwen2-VL class model on `ipl sft-data` output")
    tune.add_argument("data", help="train.jsonl, or the folder `ipl sft-data --out` wrote")
    tune.add_argument("--base", required=True, help="local model folder to start from")
    tune.add_argument("--out", required=True, help="folder for the tuned model (adapters merged)")
    tune.add_argument("--lora", action="store_true", help="train LoRA adapters (merged into the saved model)")
    tune.add_argument("--epochs", type=float, default=3.0, help="epochs (default: 3, the seed's)")
    tune.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (default: the epochs)")
    tune.add_argument("--lr", type=float, default=1e-5, help="peak learning rate (default: 1e-5, the seed's)")
    tune.add_argument("--batch", type=int, help="global batch (default: 768, the seed's, less for small data)")
    return p


def cmd_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ipl_graph.policies import load_policy
    from ipl_tools.catalog.chroma_server import is_url
    from ipl_tools.catalog.index import FIT_SAMPLE, Catalog, build_catalog, read_listings
    from ipl_tools.catalog.ray_index import RayConfig

    policy = load_policy(args.policy)
    unread: list[str] = []
    rows = [r for r in read_listings(args.listings, unread) if r.get("role", "catalog") == "catalog"]
    ray = RayConfig(args.ray or None, args.workers) if args.ray is not None else None
    catalog = Catalog(args.index, args.embedder, create=True, fit_sample=args.fit_sample or FIT_SAMPLE)  # before
    with tqdm(total=len(rows), unit="listing", desc="indexing", file=sys.stderr) as bar:  # the bar: errors one line
        catalog, report = build_catalog(catalog, rows, embedder=args.embedder, policy=policy, progress=bar.update,
                                        ray=ray, refit=args.refit)
    for problem in unread + report.bad:
        print(f"skipped {problem}", file=sys.stderr)
    for row_id, reason in report.quarantined:
        print(f"quarantined {row_id}: {reason}", file=sys.stderr)
    print(
        f"added {report.added} images, {report.skipped_existing} already indexed,"
        f" {len(unread) + len(report.bad)} skipped, {len(report.quarantined)} quarantined;"
        f" {catalog.count()} images in {args.index}" + ("; learned model fitted" if report.fitted else "")
        + ("; added to the learned model as it is (--refit to refit it)" if report.extended else ""),
        file=sys.stderr,
    )
    if report.added and not is_url(args.index):
        from ipl_graph.face import worker

        worker.start_after_index(os.path.abspath(args.index), args.embedder)
    if catalog.count():
        from ipl_tools.catalog.health import health_lines

        print("\n".join(health_lines(catalog.model())), file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from ipl_graph.context import Context
    from ipl_graph.errors import IndexMissingError
    from ipl_graph.graph import graph
    from ipl_graph.policies import load_policy
    from ipl_graph.state import InputState, OutputState, plain
    from ipl_tools.catalog.chroma_server import is_url
    from ipl_tools.trust import clean

    most = load_policy(args.policy).limits.max_hint_chars
    if len(args.hint) > most:
        raise UserError(f"--hint: {len(args.hint)} characters is over the limit of {most}; say it in fewer words")
    if is_url(args.index):  # a server that is not there, or a collection it lacks, is said up front too
        from ipl_tools.catalog.index import Catalog

        if not Catalog(args.index, args.embedder).count():
            raise IndexMissingError(f"the catalog index at {args.index} is empty; add listings with `ipl index`")
    elif not (Path(args.index) / "chroma.sqlite3").exists():  # else: degraded, image-only
        raise IndexMissingError(f"no catalog index at {args.index}; build one with `ipl index LISTINGS.jsonl --index"
                                f" {args.index}`")
    context = Context(  # paths made whole: a warm worker serves many folders, and its backends are keyed on them
        index_dir=args.index if is_url(args.index) else os.path.abspath(args.index),
        policy=os.path.abspath(args.policy) if Path(args.policy).suffix in {".yaml", ".yml"} else args.policy,
        generator=args.generator, model=args.model,
        base_url=args.base_url, generate_timeout_s=args.timeout, embedder=args.embedder,
    )
    inputs = InputState(photos=args.photos, hint=args.hint, lang=args.lang)
    final: dict[str, Any] = {}
    streamed = False
    parts: Any = graph.stream(inputs, context=context, stream_mode=["messages", "values"])
    for mode, chunk in parts:
        if mode == "values":
            final = chunk
        elif not args.json and chunk[1].get("langgraph_node") == "generate":
            print(clean(chunk[0].content), end="", flush=True)  # no escape codes reach the terminal
            streamed = True
    listing = plain({f.name: final.get(f.name) for f in dataclasses.fields(OutputState)})
    if args.json:
        print(json.dumps(listing, ensure_ascii=False, indent=2))
        return 0
    if streamed:
        print("\n")
    print(_summary(listing))
    return 0


def _summary(listing: dict[str, Any]) -> str:
    lines = [f"Title:       {listing['title']}"]
    lines.append(f"Category:    {listing['category'] or '(not sure)'} ({listing['category_confidence']:.2f})")
    for name, value in listing["attributes"].items():
        lines.append(f"  {name}: {value}    [{listing['evidence'].get(name)}]")
    lines.append(f"Description: {listing['description']}")
    if listing["references"]:
        lines.append("References:  " + ", ".join(f"{r['id']} ({r['similarity']:.2f})" for r in listing["references"]))
    if listing["degraded"]:
        lines.append(f"Note:        {listing['degraded']}")
    return "\n".join(lines)


def cmd_mine_templates(args: argparse.Namespace) -> int:
    import yaml

    from ipl_tools.catalog.index import read_listings
    from ipl_tools.catalog.mining import mine_templates, mine_titles, mine_voice

    rows = [r for path in args.listings for r in read_listings(path) if r.get("role", "catalog") == "catalog"]
    mined = mine_templates(rows, args.min_fill) | {"titles": mine_titles(rows), "voice": {"zh": mine_voice(rows, "zh")}}
    text = "# Mined by `ipl mine-templates` from catalog rows; edit freely.\n" + yaml.safe_dump(
        mined, allow_unicode=True, sort_keys=False
    )
    if args.out == "-":
        print(text, end="")
    else:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"{len(mined['categories'])} category templates written to {args.out}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from ipl_graph.face.serve import Settings, serve

    return serve(args.port, Settings(
        index=args.index, policy=args.policy, generator=args.generator, model=args.model, base_url=args.base_url,
        embedder=args.embedder, photos_dir=args.photos_dir, token=args.token, host=args.host, config=args.config,
        data=args.data,
    ))


def cmd_adoption(args: argparse.Namespace) -> int:
    import os

    import httpx

    from ipl_graph.face.adoption import adoption, pairs_from_server

    try:
        report = adoption(pairs_from_server(args.url, args.token or os.environ.get("IPL_TOKEN", "")))
    except httpx.HTTPError as exc:
        raise UserError(f"{args.url}: {exc} (is `ipl serve` running there, with this token?)") from None
    print(json.dumps(report, indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ipl_graph.face.evaluate import evaluate, write_report

    report, details = evaluate(args.catalog, args.queries, args.index, args.limit, args.ablation, args.policy,
                               args.seed if args.longtail else None, args.generator, args.model, args.embedder)
    written = write_report(report, args.out, details)
    print(json.dumps(report, indent=2))
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


def cmd_sft_data(args: argparse.Namespace) -> int:
    from ipl_tools.tuning.cleaning import CleaningConfig
    from ipl_tools.tuning.sft_data import build, summary

    if args.per_category < 1:
        raise UserError("--per-category must be at least 1")
    from tqdm import tqdm

    with tqdm(unit="row", desc="checking photos", file=sys.stderr, disable=None) as bar:  # a terminal only
        report = build(args.listings, args.out, args.index, args.policy,
                       CleaningConfig(per_category=args.per_category), args.seed, progress=bar.update)
    print(summary(report), file=sys.stderr)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from ipl_tools.tuning.tune import TuneConfig, tune

    if args.lr <= 0 or args.epochs <= 0 or (args.batch is not None and args.batch < 1):
        raise UserError("--lr and --epochs must be positive, --batch at least 1")
    config = TuneConfig(learning_rate=args.lr, epochs=args.epochs, max_steps=args.max_steps, global_batch=args.batch,
                        lora=args.lora)
    summary = tune(args.data, args.base, args.out, config)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    return 0


COMMANDS = {
    "index": cmd_index, "list": cmd_list, "mine-templates": cmd_mine_templates, "adoption": cmd_adoption,
    "serve": cmd_serve, "eval": cmd_eval,
    "sft-data": cmd_sft_data, "tune": cmd_tune,
}


def main(argv: list[str] | None = None, worker: bool | None = None) -> int:
    """Run one command. The `ipl` command (no argv given) sends `ipl list` with the template writer
    to the warm worker (`ipl_graph.face.worker`); `main(argv)` from Python runs everything here."""
    taming.apply()
    args = _parser().parse_args(argv)
    if getattr(args, "embedder", None):
        from ipl_graph.context import absolute_backend

        args.embedder = absolute_backend(args.embedder)
    if worker is None:
        worker = argv is None
    try:
        if worker and args.command == "list" and args.generator == "template" and not args.no_worker:
            from ipl_graph.face import worker as warm

            code = warm.run_list(sys.argv[1:], sys.stdout, sys.stderr) if warm.wanted() else None
            if code is not None:
                return code
        if argv is None and args.command == "list" and args.generator == "template":
            taming.collector_paused()  # a process that lists once with the quick default writer: all of it a cold start
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"ipl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
