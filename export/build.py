"""From a trained model folder (``OUT/best`` of ``earful train``) to a bundle.

Exports the torch network to ONNX (legacy exporter, opset 17, dynamic batch and
sequence axes, Reshape targets made static: :mod:`earful.export.static_shapes`),
quantizes it to int8 (dynamic, per channel, after smoothing the activations on
sample posts, :mod:`earful.export.smoothing`, with the weights rounded by GPTQ
on the same posts, :mod:`earful.export.rounding`; one activation scale per token,
:mod:`earful.export.token_scales`), checks both against torch on sample posts,
and writes the self-describing bundle of :mod:`earful.models.bundle` with its
checksum manifest.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from earful.export import token_scales
from earful.export.rounding import DAMPING, round_to_nearest, round_weights
from earful.export.smoothing import ALPHA, smooth_activations, token_activations, weighted_matmuls
from earful.export.static_shapes import static_reshapes
from earful.export.threshold import ThresholdError, fit_threshold, record_threshold
from earful.export.writer import BundleWriter, new_bundle, portable, portable_path, run_name
from earful.models.bundle import BUNDLE_FILE, DEFAULT_TROLL_THRESHOLD
from earful.models.tokenization import TOKENIZER_FILE, TextEncoder
from earful.training.network import MultiTaskModel, trained_folder
from earful.training.vocab import piece_counts, plan_trim, trim_embeddings, trimmed_tokenizer_json

OPSET = 17
#: Posts sampled (seeded) to set the int8 smoothing scales and the GPTQ weight rounding. GPTQ
#: needs each MatMul input's covariance (up to 1,536 channels); on the default model 2,048 posts
#: (~56,000 tokens) halved int8's mean troll-logit shift on OLID against 512 posts and brought
#: one more validation figure within 0.5 points of fp32, for ~1.5 minutes more per export.
CALIBRATION_POSTS = 2048
#: fp32 ONNX must match torch to this (max |Δlogit|); a larger gap means a broken export.
FP32_TOLERANCE = 1e-4
#: Sample posts for the parity check: several scripts, lengths, and edge cases.
PARITY_TEXTS = [
    "I was charged twice for my order and nobody answers the chat",
    "Me cobraron dos veces y nadie responde",
    "Die Bahn ist schon wieder 40 Minuten zu spät, danke für nichts",
    "Le service client ne répond jamais, inadmissible",
    "我的订单还没到，客服也不回复",
    "خدمة العملاء سيئة جدا",
    "thanks for the quick help!",
    "ok",
    "🙂🙂🙂",
    "https://example.com/x",
    "word " * 400,
]


@dataclass(frozen=True)
class TrimSpec:
    """Trim the vocabulary to the ``max_pieces`` pieces most used by ``corpus``
    and measure the effect on ``held_out`` texts (which the count never saw)."""

    corpus: list[str]
    held_out: list[str]
    max_pieces: int = 50_000


@dataclass(frozen=True)
class ParityReport:
    fp32_max_abs_diff: float
    int8_max_abs_diff: float | None
    int8_label_agreement: dict[str, float] | None


def export_onnx(model: MultiTaskModel, path: Path) -> None:
    import torch

    model.eval()
    inputs = {"input_ids": torch.ones((2, 8), dtype=torch.long), "attention_mask": torch.ones((2, 8), dtype=torch.long)}
    if model.ngram_embedding is not None:
        inputs["ngram_ids"] = torch.ones((2, 5), dtype=torch.long)
    names = [t.name for t in model.schema.tasks]
    dynamic = {name: {0: "batch", 1: f"{name}_length"} for name in inputs}
    dynamic["attention_mask"] = dynamic["input_ids"]  # one sequence axis for both
    dynamic.update({n: {0: "batch"} for n in names})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about shape-dependent Python branches in transformers
        torch.onnx.export(
            model,
            tuple(inputs.values()),
            str(path),
            input_names=list(inputs),
            output_names=names,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )


#: A MatMul whose input's range is this many times its RMS on the parity posts is an outlier
#: layer: one dynamic int8 scale per tensor would leave its typical values a handful of levels.
OUTLIER_RANGE_RATIO = 100.0


def outlier_matmuls(fp32: Path, feeds: dict[str, np.ndarray], ratio: float = OUTLIER_RANGE_RATIO) -> dict[str, float]:
    """MatMuls (with a constant weight) whose activation input is heavy-tailed.

    Dynamic int8 quantizes each activation tensor with a single scale set by its
    extremes. In e5-small a few feed-forward down-projections see GELU outputs
    whose range is 100-180x their RMS (most are 25-70x), and quantizing just
    those moves the pooled embedding most (measured: centred cosine to fp32
    0.979 with all layers int8, 0.990 with only layer 4's down-projection kept
    in float). Returns ``{node name: range/RMS}`` for the outliers."""
    import onnx

    model = onnx.load(str(fp32))
    nodes = weighted_matmuls(model)
    names = list(dict.fromkeys(n.input[0] for n in nodes))
    [values] = token_activations(model, names, [feeds])
    out = {}
    for node in nodes:
        x = values[node.input[0]]
        r = float((x.max() - x.min()) / max(np.sqrt(np.mean(np.square(x, dtype=np.float64))), 1e-12))
        if r >= ratio:
            out[node.name] = r
    return out


def quantize_int8(
    src: Path,
    dst: Path,
    float_activations: list[str] = (),
    weights: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> None:
    """Dynamic int8 quantization, per output channel (keeps the pooled embedding
    far closer to fp32 than per-tensor scales).

    The MatMuls named in ``float_activations`` (see :func:`outlier_matmuls`)
    are left out of dynamic quantization: their weights are stored as
    per-channel int8 in front of a float MatMul (DequantizeLinear → MatMul), so
    the file stays small. onnxruntime (1.31, CPU) fuses that pair into
    MatMulNBits, which at its default accuracy level (4) quantizes the
    activations after all, but per row and per block of 32 input channels
    rather than with one scale for the whole tensor; such a MatMul costs about
    3× a DynamicQuantizeMatMul (one thread, 192 rows: 1.08 against 0.36 ms).
    ``weights`` (``{weight initializer: (int8 levels, scale)}``, from
    :func:`earful.export.rounding.round_weights`) replace onnxruntime's
    round-to-nearest levels of those weights; the grid is the same."""
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # silence its "consider pre-processing" advice on every call
    try:
        quantize_dynamic(
            str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=list(float_activations)
        )
    finally:
        root.setLevel(level)
    if not (float_activations or weights):
        return
    weights = weights or {}
    model = onnx.load(str(dst))
    inits = {i.name: i for i in model.graph.initializer}

    def put(name: str, value: np.ndarray) -> None:
        if name in inits:
            model.graph.initializer.remove(inits[name])
        inits[name] = numpy_helper.from_array(value, name)
        model.graph.initializer.append(inits[name])

    for base, (levels, scale) in weights.items():
        if base + "_quantized" in inits:  # a MatMul onnxruntime quantized: same symmetric grid, other levels
            ours, theirs = (
                numpy_helper.to_array(inits[base + "_quantized"]),
                numpy_helper.to_array(inits[base + "_scale"]),
            )
            if (
                np.any(numpy_helper.to_array(inits[base + "_zero_point"]))
                or ours.shape != levels.shape
                or theirs.shape != scale.shape
            ):
                raise RuntimeError(
                    f"{base}: onnxruntime's weight grid is not symmetric per output channel; "
                    "cannot use the given levels"
                )
            put(base + "_quantized", levels)
            put(base + "_scale", scale)
    nodes = []
    for node in model.graph.node:
        if node.name in float_activations:
            base = node.input[1]
            levels, scale = weights.get(base) or round_to_nearest(numpy_helper.to_array(inits[base]))
            model.graph.initializer.remove(inits.pop(base))
            put(base + "_int8", levels)
            put(base + "_scale", scale)
            put(base + "_zero", np.zeros(len(scale), np.int8))
            nodes.append(
                helper.make_node(
                    "DequantizeLinear",
                    [base + "_int8", base + "_scale", base + "_zero"],
                    [base + "_dequantized"],
                    name=node.name + "_weight",
                    axis=1,
                )
            )
            node.input[1] = base + "_dequantized"
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(dst))


def _onnx_outputs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def check_parity(model: MultiTaskModel, encoder: TextEncoder, fp32: Path, int8: Path | None) -> ParityReport:
    import torch

    feeds = encoder.encode(PARITY_TEXTS).feeds()
    with torch.no_grad():
        ref = [o.numpy() for o in model(*(torch.from_numpy(x) for x in feeds.values()))]
    out32 = _onnx_outputs(fp32, feeds)
    d32 = max(float(np.abs(a - b).max()) for a, b in zip(ref, out32, strict=True))
    if int8 is None:
        return ParityReport(d32, None, None)
    out8 = _onnx_outputs(int8, feeds)
    d8 = max(float(np.abs(a - b).max()) for a, b in zip(ref, out8, strict=True))
    agree = {}
    for task, a, b in zip(model.schema.tasks, ref, out8, strict=True):
        la, lb = ((a > 0), (b > 0)) if task.kind == "binary" else (a.argmax(-1), b.argmax(-1))
        agree[task.name] = float((la == lb).mean())
    return ParityReport(d32, d8, agree)


def _head_outputs(model: MultiTaskModel, encoder: TextEncoder, texts: list[str]) -> list[np.ndarray]:
    """Probabilities per head (torch, fp32), in text order."""
    from earful.metrics import sigmoid, softmax

    logits = model.logits(encoder.encode_ids(texts)[0], encoder.pad, ngrams=encoder.encode_ngrams(texts))
    return [sigmoid(logits[t.name]) if t.kind == "binary" else softmax(logits[t.name]) for t in model.schema.tasks]


def trim_vocabulary(
    model: MultiTaskModel, tokenizer_file: Path, spec: TrimSpec, out_tokenizer: Path
) -> tuple[MultiTaskModel, dict]:
    """A trimmed copy of the model (and its tokenizer written to ``out_tokenizer``),
    with the measured effect on the held-out texts."""
    import copy

    cfg = model.config
    plan = plan_trim(tokenizer_file, piece_counts(tokenizer_file, spec.corpus, cfg.input_prefix), spec.max_pieces)
    out_tokenizer.write_text(trimmed_tokenizer_json(tokenizer_file, plan), encoding="utf-8")
    trimmed = copy.deepcopy(model)
    trim_embeddings(trimmed, plan)
    before = _head_outputs(model, cfg.text_encoder(tokenizer_file), spec.held_out)
    after = _head_outputs(trimmed, cfg.text_encoder(out_tokenizer), spec.held_out)
    report = {
        "pieces_before": plan.pieces_before,
        "pieces_after": plan.pieces_after,
        "corpus_texts": len(spec.corpus),
        "held_out_texts": len(spec.held_out),
        "label_agreement": {},
        "max_probability_change": {},
    }
    for task, a, b in zip(model.schema.tasks, before, after, strict=True):
        la, lb = ((a >= 0.5), (b >= 0.5)) if task.kind == "binary" else (a.argmax(-1), b.argmax(-1))
        report["label_agreement"][task.name] = float((la == lb).mean()) if len(la) else None
        report["max_probability_change"][task.name] = float(np.abs(a - b).max()) if len(a) else None
    return trimmed, report


def _calibration_posts(training: dict[str, Any], given: list[str] | None) -> tuple[list[str], str]:
    """A seeded sample of ``given`` or else of the training files named in
    training.json, when they are at hand (paths as training saw them); the
    parity posts when neither is."""
    import random

    from earful.labelled import read_labelled

    origin = "the given posts"
    if not given:
        files = [f for f in training.get("config", {}).get("train", []) if Path(f).is_file()]
        given = [t for f in files for t in read_labelled(f, require_text=False).text if t and t.strip()]
        origin = f"{len(files)} training files"
    if not given:
        return list(PARITY_TEXTS), "the parity posts (the training files were not at hand)"
    return random.Random(0).sample(given, min(CALIBRATION_POSTS, len(given))), origin


def _base_json(base: str | None, name: str) -> dict | None:
    """A JSON file that ``earful base`` wrote into the base encoder folder, when the folder is at hand."""
    path = Path(base) / name if base else None
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def _base_trim(base: str | None) -> dict | None:
    """The trim report of a base encoder folder cut by ``earful base --trim-vocab``
    (the model was trained on that vocabulary)."""
    return _base_json(base, "trim.json")


def _base_description(base: str | None) -> str:
    """What the base encoder is: the name and weights its folder's ``source.json`` records (``earful base``
    writes one), else the folder's name; never its path on the machine that built the bundle."""
    source = _base_json(base, "source.json")
    if source is None:
        return run_name(base) if base else "unknown"
    name = source.get("name") or run_name(base)
    return f"{name} ({source['weights']})" if source.get("weights") else name


def base_model_description(base: str | None) -> str:
    """bundle.json's ``base_model``: :func:`_base_description`, and the vocabulary it was cut to when the
    folder's ``trim.json`` says (``earful base --trim-vocab``); the same on any machine."""
    trim = _base_trim(base)
    cut = f", vocabulary trimmed to {trim['pieces_after']:,} pieces" if trim and trim.get("pieces_after") else ""
    return _base_description(base) + cut


def _json_file(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _lineage(training: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs that made a model, oldest first, as the runs recorded them: each ``earful train`` (its
    output folder, and the steps and seconds its last checkpoint holds) and each ``earful refit-head``
    (heads, encoded rows, seconds), followed back through ``init_from``. The card states these instead
    of figures typed in by hand. The walk stops at a folder that is no longer on disk."""
    steps: list[dict[str, Any]] = []
    while training:
        for refit in reversed(training.get("refits", [])):
            steps.append(
                {
                    "command": "refit-head",
                    "model": refit.get("model"),
                    "heads": sorted(refit.get("heads", {})),
                    "rows": refit.get("encoded_rows"),
                    "seconds": refit.get("seconds"),
                }
            )
        config = training.get("config", {})
        if config.get("output_dir"):
            run = Path(config["output_dir"])
            state = _json_file(run / "checkpoint" / "state.json") or _json_file(run / "checkpoint.old" / "state.json")
            steps.append(
                {
                    "command": "train",
                    "output_dir": config["output_dir"],
                    "init_from": config.get("init_from"),
                    "steps": state.get("step"),
                    "seconds": state.get("seconds"),
                }
            )
        source = trained_folder(config["init_from"]) if config.get("init_from") else None
        training = _json_file(source / "training.json") if source else {}
    return steps[::-1]


def _lineage_lines(lineage: list[dict[str, Any]]) -> list[str]:
    def took(step: dict[str, Any]) -> str:
        return f"{step['seconds']:,.0f} s" if step.get("seconds") is not None else "time not recorded"

    lines = []
    for step in lineage:
        if step["command"] == "train":
            start = f", from `{step['init_from']}`" if step.get("init_from") else ""
            count = f"{step['steps']:,} steps" if step.get("steps") is not None else "steps not recorded"
            lines.append(f"- `earful train` → `{step['output_dir']}`{start}: {count}, {took(step)}")
        else:
            rows = f"{step['rows']:,} rows" if step.get("rows") is not None else "rows not recorded"
            lines.append(
                f"- `earful refit-head` of `{step['model']}` ({', '.join(step['heads'])}): {rows} encoded, {took(step)}"
            )
    return lines


class UntrainedHeadWarning(UserWarning):
    """A head had no training labels; the bundle marks it untrained."""


def _model_card(info: dict[str, Any], metrics: dict[str, Any], card_extra: str | None) -> str:
    lines = [
        f"# {info['name']} {info['version']}",
        "",
        "An earful model bundle: multilingual complaint type, sentiment, language and troll likelihood "
        "for social posts.",
        "",
        "## Model",
        f"- Base encoder: {info['base_model']}; mean pooling; one linear head per task.",
        f"- Languages of the lang head: {', '.join(info['languages'])}.",
        f"- Inputs: prefix {info['input_prefix']!r}, at most {info['max_length']} tokens (longer posts are truncated "
        "and flagged).",
        f"- Variants: {', '.join(info['variants'])} (ONNX, run with onnxruntime).",
        *(
            [f"- Untrained (no training labels; they answer null): {', '.join(info['untrained_heads'])}."]
            if info.get("untrained_heads")
            else []
        ),
        "",
        "## Validation metrics (from training)",
    ]
    for head, value in sorted(metrics.get("validation_macro_f1", {}).items()):
        lines.append(f"- {head}: macro-F1 {value:.3f}")
    for refit in metrics.get("refits", []):
        for head, r in refit["heads"].items():
            scores = (
                f"validation macro-F1 {r['validation_macro_f1_before']:.3f} before, "
                f"{r['validation_macro_f1_after']:.3f} after"
            )
            if r["applied"]:
                lines.append(
                    f"- The {head} head was fitted again on the frozen encoder after training (`earful refit-head`, "
                    f"{r['train_rows']:,} rows): {scores}."
                )
            else:
                lines.append(
                    f"- A refit of the {head} head on the frozen encoder ({r['train_rows']:,} rows) did not raise its "
                    f"score ({scores}), so the trained head was kept."
                )
    parity = metrics.get("export_parity", {})
    if parity:
        lines += [
            "",
            "## Export parity (max |Δlogit| vs torch on sample posts)",
            f"- fp32: {parity['fp32_max_abs_diff']:.2e}",
            f"- int8: {parity.get('int8_max_abs_diff')}",
        ]
        if parity.get("int8_smoothing"):
            sm = parity["int8_smoothing"]
            lines.append(
                f"- int8 activations smoothed (SmoothQuant, alpha {sm['alpha']}) on {sm['posts']} posts "
                f"from {sm['posts_from']}."
            )
        if parity.get("int8_weight_rounding"):
            r = parity["int8_weight_rounding"]
            lines.append(
                f"- int8 weights of {r['weights']} MatMuls rounded by GPTQ (error-compensating, damping "
                f"{r['damping']}) on the same {r['posts']} posts."
            )
        if parity.get(token_scales.METRICS_KEY):
            lines.append(token_scales.CARD_LINE)
    if metrics.get("lineage"):
        lines += ["", "## Training runs (as each run recorded its time)", *_lineage_lines(metrics["lineage"])]
    base_trim = metrics.get("base_vocabulary_trim")
    if base_trim:
        lines += [
            "",
            "## Vocabulary",
            f"- Trained on a base vocabulary cut from {base_trim['pieces_before']:,} to {base_trim['pieces_after']:,} "
            "pieces (those the training texts use most), so the bundle serves exactly what was trained.",
            f"- {100 * base_trim['held_out_identical_tokenization']:.1f}% of {base_trim['held_out_texts']:,} sampled "
            "validation texts tokenize exactly as with the full vocabulary; the rest use shorter pieces.",
        ]
    lines += [
        "",
        card_extra.strip()
        if card_extra
        else "## Data, licenses, limits\nNot documented for this bundle: see the data it was trained on.",
        "",
    ]
    return "\n".join(lines)


def _fit_troll_threshold(writer: BundleWriter, variant: str, validation: list[str]) -> None:
    """Choose the bundle's troll decision threshold on the validation files training used (``validation``, as
    the training config names them), when they are at hand and label trolls enough
    (:mod:`earful.export.threshold`); else it stays 0.5 and metrics.json says why."""
    bundle = writer.seal()
    files = [f for f in validation if Path(f).is_file()]
    try:
        record_threshold(writer, fit_threshold(bundle, files, variant))
    except ThresholdError as e:
        reason = str(e)
        for f in files:  # the files as the bundle names them, not their local paths
            reason = reason.replace(str(f), portable_path(f))
        writer.update_json(
            "metrics.json", {"troll_threshold": {"threshold": DEFAULT_TROLL_THRESHOLD, "not_fitted": reason}}
        )


def export_bundle(
    model_dir: Path,
    out_dir: Path,
    name: str,
    version: str,
    int8: bool = True,
    fp32: bool = True,
    card: str | None = None,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    trim: TrimSpec | None = None,
    calibration_posts: list[str] | None = None,
) -> Path:
    """Build a verified bundle folder from a trained model folder.

    ``card`` is Markdown appended to the generated model card (data sources,
    licenses, limits); ``provenance`` is stored as provenance.json; ``trim``
    cuts the vocabulary (see :mod:`earful.training.vocab`); ``fp32=False`` ships
    only the int8 model (the fp32 one is still built, for the parity check);
    ``calibration_posts`` set the int8 activation smoothing and weight rounding
    (default: a seeded sample of the model's training files, see :func:`_calibration_posts`)."""
    if not (int8 or fp32):
        raise ValueError("a bundle needs at least one of the int8 and fp32 models")
    given, out_dir = model_dir, Path(out_dir)
    model_dir = trained_folder(given)
    if model_dir is None:
        raise FileNotFoundError(
            f"{given} is not a trained model folder (no network.json); give the output folder of `earful train`"
        )
    model = MultiTaskModel.load(model_dir)
    cfg = model.config
    training = json.loads((model_dir / "training.json").read_text()) if (model_dir / "training.json").exists() else {}
    untrained = [head for head, rows in training.get("head_training_rows", {}).items() if rows == 0]
    for head in untrained:
        warnings.warn(
            f"the {head} head had no training labels: the bundle marks it untrained, and it answers null "
            "(the lang head: the language comes from langdetect)",
            UntrainedHeadWarning,
            stacklevel=2,
        )
    calibration_path = model_dir / "calibration.json"
    calibration = (
        json.loads(calibration_path.read_text()) if calibration_path.exists() else {"temperature": {}, "method": "none"}
    )

    with new_bundle(out_dir, overwrite) as writer:
        work = writer.directory
        trim_report = None
        if trim is not None:
            model, trim_report = trim_vocabulary(model, model_dir / TOKENIZER_FILE, trim, work / TOKENIZER_FILE)
        else:
            shutil.copy(model_dir / TOKENIZER_FILE, work / TOKENIZER_FILE)
        encoder = cfg.text_encoder(work / TOKENIZER_FILE)
        export_onnx(model, work / "model.fp32.onnx")
        static = static_reshapes(work / "model.fp32.onnx", work / "model.fp32.onnx")
        outliers: dict[str, float] = {}
        smoothing = rounding = per_token = None
        if int8:
            outliers = outlier_matmuls(work / "model.fp32.onnx", encoder.encode(PARITY_TEXTS).feeds())
            texts, origin = _calibration_posts(training, calibration_posts)
            batches = [encoder.encode(texts[i : i + 64]).feeds() for i in range(0, len(texts), 64)]
            n = smooth_activations(work / "model.fp32.onnx", work / "model.smoothed.onnx", batches)
            weights = round_weights(work / "model.smoothed.onnx", batches)
            quantize_int8(work / "model.smoothed.onnx", work / "model.int8.onnx", list(outliers), weights)
            (work / "model.smoothed.onnx").unlink()
            rows = token_scales.per_token_activations(work / "model.int8.onnx", work / "model.int8.onnx")
            per_token = {"method": token_scales.METHOD, "activations": rows}
            smoothing = {"alpha": ALPHA, "activations": n, "posts": len(texts), "posts_from": origin}
            rounding = {
                "method": "gptq",
                "weights": len(weights),
                "damping": DAMPING,
                "posts": len(texts),
                "posts_from": origin,
            }
        parity = check_parity(model, encoder, work / "model.fp32.onnx", work / "model.int8.onnx" if int8 else None)
        if parity.fp32_max_abs_diff > FP32_TOLERANCE:
            raise RuntimeError(
                f"ONNX fp32 export differs from torch by {parity.fp32_max_abs_diff:.2e} (> {FP32_TOLERANCE}); "
                "not writing a bundle"
            )
        if not fp32:
            (work / "model.fp32.onnx").unlink()
        variants = [v for v, wanted in (("int8", int8), ("fp32", fp32)) if wanted]
        writer.write_json("schema.json", model.schema.to_dict())
        writer.write_json("calibration.json", calibration)
        info = {
            "name": name,
            "version": version,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "format": 1,
            "base_model": base_model_description(training.get("base_model")),
            "languages": list(cfg.languages),
            "max_length": cfg.max_length,
            "input_prefix": cfg.input_prefix,
            "normalize": cfg.normalize,
            "ngrams": cfg.ngrams,
            "variants": variants,
            "lang_threshold": 0.5,
            "outputs": [t.name for t in model.schema.tasks],
            "untrained_heads": untrained,
        }
        writer.write_json(BUNDLE_FILE, info)
        metrics = {
            "validation_macro_f1": training.get("validation_macro_f1", {}),
            "training_epoch": training.get("epoch"),
            "refits": training.get("refits", []),
            "lineage": _lineage(training),
            "export_parity": {
                "fp32_max_abs_diff": parity.fp32_max_abs_diff,
                "int8_max_abs_diff": parity.int8_max_abs_diff,
                "int8_label_agreement": parity.int8_label_agreement,
                "texts": len(PARITY_TEXTS),
                # Kept out of dynamic quantization; the per-token rewrite then quantizes their inputs per token too.
                "int8_outlier_matmuls": {
                    "range_over_rms": {k: round(v, 1) for k, v in outliers.items()},
                    "activations": "int8 per token" if per_token else "float (onnxruntime MatMulNBits)",
                },
                "int8_smoothing": smoothing,
                "int8_weight_rounding": rounding,
                token_scales.METRICS_KEY: per_token,
            },
            "graph": {"static_reshapes": static},
            "vocabulary_trim": trim_report,
            "base_vocabulary_trim": _base_trim(training.get("base_model")),
        }
        # Runs, the base encoder and data files are named as they are on any machine, never by local paths.
        metrics = portable(metrics)
        writer.write_json("metrics.json", metrics)
        writer.write_json(
            "provenance.json",
            portable(
                {
                    "training": training.get("config", {}),
                    "encoder_config": model.encoder.config.to_dict(),
                    **(provenance or {}),
                }
            ),
        )
        writer.write_text("MODEL_CARD.md", _model_card(info, metrics, card))
        _fit_troll_threshold(writer, variants[0], training.get("config", {}).get("validation", []))
    return out_dir
