"""``earful eval`` and ``earful bench``: how good and how fast a bundle is."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from earful.cli.common import UsageError, bundle_args


def cmd_eval(args: argparse.Namespace) -> None:
    from earful.eval.run import run_eval

    try:
        result = run_eval(
            args.data,
            Path(args.out),
            bundle=args.bundle,
            variant=args.variant,
            compare=args.compare,
            errors=args.errors,
            threads=args.threads,
            baselines=args.baseline or (),
            baseline_train=args.baseline_train,
            invariance=args.invariance,
            without_handles=args.without_handles,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    summary = {
        stem: {head: round(m["macro_f1"], 4) for head, m in heads.items()} for stem, heads in result.metrics.items()
    }
    shown = {"out": str(result.out), "macro_f1": summary}
    if result.invariance is not None:
        shown["invariance_worst_change"] = {stem: r["worst"] for stem, r in result.invariance.items()}
    print(json.dumps(shown, indent=2))


def cmd_bench(args: argparse.Namespace) -> None:
    import glob

    from earful.eval.bench import run_bench, write_bench

    files = args.data or sorted(glob.glob(str(Path(args.data_dir) / "validation" / "*.csv.gz")))
    if not files:
        raise UsageError(f"no posts to benchmark on: {args.data_dir}/validation/ is empty; pass --data FILES")
    try:
        result = run_bench(
            files,
            bundle=args.bundle,
            n_posts=args.posts,
            latency_posts=args.latency_posts,
            threads=args.threads,
            with_transformers=not args.no_transformers,
            fp32_bundle=args.fp32_bundle,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    write_bench(result, Path(args.out))
    print((Path(args.out) / "bench.md").read_text())


def register(sub: argparse._SubParsersAction) -> None:
    """Add the eval, bench commands."""
    p = sub.add_parser("eval", help="score a bundle on labelled files: metrics.json + report.md")
    p.add_argument("data", nargs="+", help="labelled files (CSV/JSONL/Parquet)")
    p.add_argument("--out", required=True, help="folder for metrics.json, report.md and plots")
    bundle_args(p)
    p.add_argument(
        "--compare", metavar="OTHER_BUNDLE", help="also evaluate this bundle; report differences with bootstrap CIs"
    )
    p.add_argument("--errors", type=int, default=0, metavar="N", help="list the N most confident mistakes per head")
    p.add_argument(
        "--baseline",
        action="append",
        choices=("tfidf", "langdetect", "lingua"),
        help="also score a reference model on the same rows (repeatable): tfidf (TF-IDF + logistic regression, "
        "needs --baseline-train) for complaint type, sentiment and troll; langdetect or lingua for language",
    )
    p.add_argument("--baseline-train", nargs="+", metavar="FILE", help="training files for the tfidf baseline")
    p.add_argument(
        "--invariance",
        action="store_true",
        help="also measure how often labels change when @handles and URLs are removed or a handle is added",
    )
    p.add_argument(
        "--without-handles",
        action="store_true",
        help="score the posts with their @handles and URLs deleted (with --compare, for both bundles): how much of "
        "each figure rests on them",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "bench", help="throughput, latency, memory vs transformers and langdetect; writes bench.json + bench.md"
    )
    p.add_argument("--out", required=True, help="folder for bench.json and bench.md")
    p.add_argument("--bundle", help="bundle folder (default: models/default)")
    p.add_argument(
        "--fp32-bundle", help="a full export of the same model, timed for the fp32 row when --bundle is int8-only"
    )
    p.add_argument("--data", nargs="+", help="labelled files to draw posts from (default: data/validation/*)")
    p.add_argument("--data-dir", default="data", help=argparse.SUPPRESS)
    p.add_argument("--posts", type=int, default=1000, help="posts for the throughput runs (default 1000)")
    p.add_argument("--latency-posts", type=int, default=100, help="posts timed one by one for latency (default 100)")
    p.add_argument("--threads", type=int, help="threads for every path (default: all cores)")
    p.add_argument("--no-transformers", action="store_true", help="skip the PyTorch reference")
    p.set_defaults(func=cmd_bench)
