"""``earful bench``: speed and memory of the predictor, against references, in one run.

Everything is measured in the same process on the same posts, so the ratios
hold even on a noisy machine:

* the bundle's predictor, int8 (and fp32 when the bundle has it): posts/s on
  real posts handed over in one call, as batch scoring and evaluation do (it
  sorts them by length and cuts them into onnxruntime runs itself, see
  :mod:`earful.models.batching`), latency p50/p99 at batch 1;
* the plain transformers PyTorch fp32 pipeline on the same encoder architecture
  (batches of 32 in input order, padded to the longest post of each batch), and
  the same with the posts length-sorted first, to show what sorting alone buys;
* langdetect alone on the same posts, alternating with the int8 predictor for
  three rounds (each side's median and the median of the per-round ratios are
  reported), because that ratio is near 1 and the machine's speed drifts;
* for a bundle with the n-gram branch, the share of ``predict`` time at batch 64 spent making the n-gram ids;
* the machine's peak matrix-multiply throughput (onnxruntime MatMul fp32 and
  MatMulInteger int8), and the fraction of the int8 peak the predictor reaches,
  counting the encoder's FLOPs from the posts' real token counts.
"""

from __future__ import annotations

import json
import os
import random
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from earful.labelled import read_labelled
from earful.machine import heading, stamp


@dataclass
class BenchResult:
    posts: int
    mean_tokens: float
    threads: int
    bundle: str
    bundle_load_s: float
    posts_per_s_int8: float
    posts_per_s_fp32: float | None
    posts_per_s_transformers: float | None
    posts_per_s_transformers_sorted: float | None
    posts_per_s_langdetect: float
    latency_ms_int8: dict
    latency_ms_fp32: dict | None
    latency_ms_transformers: dict | None
    peak_gflops_fp32: float
    peak_gflops_int8: float
    gflop_per_post: float
    fraction_of_peak: float
    speedup_vs_transformers: float | None
    speedup_vs_langdetect: float
    #: int8 / langdetect posts/s in each of the alternating rounds (the reported figure is their median).
    speedup_vs_langdetect_rounds: list[float]
    peak_rss_mb_predictor: float
    #: Share of int8 ``predict`` time at batch 64 spent computing and padding the posts' n-gram ids (None: the
    #: bundle has no n-gram branch).
    ngram_share_of_predict: float | None = None
    notes: list[str] = field(default_factory=list)
    #: The machine and UTC date of the run (:func:`earful.machine.stamp`); empty in results that predate them.
    machine: str = ""
    date: str = ""


def sample_posts(files: list[str], n: int, seed: int = 0) -> list[str]:
    texts = [t for f in files for t in read_labelled(f, require_text=False).text if t and t.strip()]
    if not texts:
        raise ValueError("no posts to benchmark on")
    rng = random.Random(seed)
    return rng.sample(texts, min(n, len(texts)))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _matmul_peak(kind: str, threads: int, size: int = 1024, repeats: int = 8) -> float:
    """GFLOP/s of one square matmul in onnxruntime (MatMul fp32 or MatMulInteger int8)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    if kind == "fp32":
        a_t, b_t, out_t, op = TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT, "MatMul"
        a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
        b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    else:
        a_t, b_t, out_t, op = TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32, "MatMulInteger"
        a = np.random.default_rng(0).integers(0, 255, (size, size), dtype=np.uint8)
        b = np.random.default_rng(1).integers(-127, 127, (size, size), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["c"])],
        "mm",
        [helper.make_tensor_value_info("a", a_t, [size, size]), helper.make_tensor_value_info("b", b_t, [size, size])],
        [helper.make_tensor_value_info("c", out_t, [size, size])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    sess.run(None, {"a": a, "b": b})
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(None, {"a": a, "b": b})
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def _latency(fn, texts: list[str], n: int) -> dict:
    times = []
    for t in texts[:n]:
        start = time.perf_counter()
        fn([t])
        times.append((time.perf_counter() - start) * 1000)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99)), "n": len(times)}


def _throughput(fn, texts: list[str], batch: int) -> float:
    """Posts/s of ``fn`` called on consecutive slices of ``batch`` posts."""
    fn(texts[:32])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        fn(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - start)


def _ngram_share(predictor, texts: list[str], batch: int = 64) -> float:
    """Time making the n-gram ids of ``texts`` in slices of ``batch`` over the time ``predict`` takes on them."""
    from earful.models.ngrams import pad_ngrams

    def grams(chunk: list[str]):
        return pad_ngrams(predictor.encoder.encode_ngrams(chunk))

    return _throughput(predictor.predict, texts, batch) / _throughput(grams, texts, batch)


def encoder_gflop(n_tokens: np.ndarray, layers: int, hidden: int, ff: int) -> float:
    """Mean GFLOP per post: the linear layers (2·params·tokens) plus attention's
    two T×T products per layer (4·T²·hidden)."""
    linear = layers * (4 * hidden * hidden + 2 * hidden * ff)
    flops = 2 * linear * n_tokens + layers * 4 * n_tokens.astype(np.float64) ** 2 * hidden
    return float(flops.mean() / 1e9)


def full_export_of(bundle, fp32_bundle: str):
    """``fp32_bundle`` loaded, checked to be a full export (with fp32) of the same model as ``bundle``."""
    from earful.models.bundle import Bundle

    other = Bundle.load(fp32_bundle)
    if (other.name, other.version) != (bundle.name, bundle.version):
        raise ValueError(
            f"--fp32-bundle {other.path} is {other.name} {other.version}, not the benchmarked "
            f"{bundle.name} {bundle.version}; give a full export of the same model"
        )
    if "fp32" not in other.variants:
        raise ValueError(f"--fp32-bundle {other.path} has no fp32 model; export it without --no-fp32")
    return other


def fp32_source(bundle, fp32_bundle: str | None):
    """The bundle to time fp32 from: ``bundle`` itself when it has fp32, else ``fp32_bundle``, which must be
    a full export of the same model; None when there is neither."""
    if "fp32" in bundle.variants:
        return bundle
    return full_export_of(bundle, fp32_bundle) if fp32_bundle else None


def run_bench(
    files: list[str],
    bundle: str | None = None,
    n_posts: int = 1000,
    latency_posts: int = 100,
    threads: int | None = None,
    with_transformers: bool = True,
    rounds: int = 3,
    fp32_bundle: str | None = None,
) -> BenchResult:
    """``fp32_bundle``: a full export of the same model (name and version) to time fp32 from, when
    ``bundle`` ships int8 only, as the repository's default does."""
    from earful.models.predictor import Predictor

    threads = threads or os.cpu_count() or 1
    texts = sample_posts(files, n_posts)
    notes = []
    t = time.perf_counter()
    int8 = Predictor.load(bundle, variant="int8", threads=threads)
    load_s = time.perf_counter() - t
    from earful.models.language import langdetect_guess

    # The predictor and langdetect alternate, so a drift in the machine's speed hits both alike.
    int8_rounds, langdetect_rounds = [], []
    for _ in range(rounds):
        int8_rounds.append(_throughput(int8.predict, texts, len(texts)))
        langdetect_rounds.append(_throughput(lambda batch: [langdetect_guess(t) for t in batch], texts, len(texts)))
    pps_int8, pps_langdetect = float(np.median(int8_rounds)), float(np.median(langdetect_rounds))
    ratios = [a / b for a, b in zip(int8_rounds, langdetect_rounds, strict=True)]
    lat_int8 = _latency(int8.predict, texts, latency_posts)
    rss = _rss_mb()
    ngram_share = _ngram_share(int8, texts) if int8.encoder.ngrams is not None else None
    pps_fp32 = lat_fp32 = None
    fp32_bundle_used = fp32_source(int8.bundle, fp32_bundle)
    if fp32_bundle_used is not None:
        fp32 = Predictor.load(fp32_bundle_used, variant="fp32", threads=threads)
        pps_fp32 = _throughput(fp32.predict, texts, len(texts))
        lat_fp32 = _latency(fp32.predict, texts, latency_posts)
    else:
        notes.append(
            "the bundle ships no fp32 model (int8 only); give a full export of it (--fp32-bundle) for the fp32 row"
        )
    ids, _ = int8.encoder.encode_ids(texts)
    n_tokens = np.array([len(x) for x in ids])
    enc_cfg = _encoder_config(int8.bundle.path)
    gflop = encoder_gflop(n_tokens, enc_cfg["num_hidden_layers"], enc_cfg["hidden_size"], enc_cfg["intermediate_size"])

    peak32 = _matmul_peak("fp32", threads)
    peak8 = _matmul_peak("int8", threads)
    pps_tf = pps_tf_sorted = lat_tf = None
    if with_transformers:
        pps_tf, pps_tf_sorted, lat_tf = _transformers_reference(int8, texts, latency_posts, threads)
    else:
        notes.append("transformers reference skipped")
    return BenchResult(
        posts=len(texts),
        mean_tokens=float(n_tokens.mean()),
        threads=threads,
        bundle=f"{int8.bundle.name} {int8.bundle.version}",
        bundle_load_s=load_s,
        posts_per_s_int8=pps_int8,
        posts_per_s_fp32=pps_fp32,
        posts_per_s_transformers=pps_tf,
        posts_per_s_transformers_sorted=pps_tf_sorted,
        posts_per_s_langdetect=pps_langdetect,
        latency_ms_int8=lat_int8,
        latency_ms_fp32=lat_fp32,
        latency_ms_transformers=lat_tf,
        peak_gflops_fp32=peak32,
        peak_gflops_int8=peak8,
        gflop_per_post=gflop,
        fraction_of_peak=pps_int8 * gflop / peak8,
        speedup_vs_transformers=pps_int8 / pps_tf if pps_tf else None,
        speedup_vs_langdetect=float(np.median(ratios)),
        speedup_vs_langdetect_rounds=ratios,
        peak_rss_mb_predictor=rss,
        ngram_share_of_predict=ngram_share,
        notes=notes,
        **stamp(),
    )


def _encoder_config(bundle_path: Path) -> dict:
    cfg = json.loads((bundle_path / "provenance.json").read_text()).get("encoder_config")
    if cfg is None:
        raise ValueError(f"{bundle_path}/provenance.json lacks encoder_config; re-export the bundle with this earful")
    return cfg


def _transformers_reference(predictor, texts: list[str], latency_posts: int, threads: int):
    """The plain PyTorch path: a transformers BertModel, fp32, batches in input
    order (padded to each batch's longest post), mean pooling. It has the
    bundle's encoder architecture (config from provenance.json); its weights
    are random because a bundle holds only ONNX, and weights do not change speed."""
    import torch
    from transformers import BertConfig, BertModel

    torch.set_num_threads(threads)
    cfg = _encoder_config(predictor.bundle.path)
    drop = {"architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype"}
    model = BertModel(BertConfig(**{k: v for k, v in cfg.items() if k not in drop}), add_pooling_layer=False).eval()
    encoder = predictor.encoder

    def run(batch: list[str]):
        b = encoder.encode(batch)
        with torch.inference_mode():
            h = model(
                input_ids=torch.from_numpy(b.input_ids), attention_mask=torch.from_numpy(b.attention_mask)
            ).last_hidden_state
            m = torch.from_numpy(b.attention_mask).unsqueeze(-1).float()
            return (h * m).sum(1) / m.sum(1)

    lengths = [len(ids) for ids in encoder.encode_ids(texts)[0]]
    by_length = [texts[i] for i in np.argsort(lengths, kind="stable")]
    return _throughput(run, texts, 32), _throughput(run, by_length, 32), _latency(run, texts, latency_posts)


def write_bench(result: BenchResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(asdict(result), indent=2))
    (out / "bench.md").write_text(bench_markdown(result))


def load_bench(path: Path) -> BenchResult:
    """A bench.json back as a result (results written before the machine was recorded say so when shown)."""
    return BenchResult(**json.loads(Path(path).read_text()))


def bench_markdown(result: BenchResult) -> str:
    """The result as Markdown: a title, the machine it ran on (:func:`earful.machine.heading`), the table."""

    def f(v, fmt="{:.1f}"):
        return "–" if v is None else fmt.format(v)

    lines = [
        f"# earful bench: {result.bundle}",
        "",
        heading(asdict(result)),
        "",
        f"{result.posts} real posts from data/ (mean {result.mean_tokens:.1f} tokens), "
        f"{result.threads} threads, one process.",
        "",
        "| path | posts/s | latency p50 (ms, batch 1) | p99 |",
        "|---|---|---|---|",
        f"| earful int8 (onnxruntime) | {f(result.posts_per_s_int8)} | {f(result.latency_ms_int8['p50'])} | "
        f"{f(result.latency_ms_int8['p99'])} |",
        f"| earful fp32 (onnxruntime) | {f(result.posts_per_s_fp32)} | {f((result.latency_ms_fp32 or {}).get('p50'))} "
        f"| {f((result.latency_ms_fp32 or {}).get('p99'))} |",
        f"| transformers PyTorch fp32, batches of 32 in input order | {f(result.posts_per_s_transformers)} | "
        f"{f((result.latency_ms_transformers or {}).get('p50'))} | "
        f"{f((result.latency_ms_transformers or {}).get('p99'))} |",
        f"| transformers PyTorch fp32, batches of 32 length-sorted | {f(result.posts_per_s_transformers_sorted)} "
        "| – | – |",
        f"| langdetect alone (language only) | {f(result.posts_per_s_langdetect)} | – | – |",
        "",
        "The predictor gets the posts in one call (it sorts them by length and cuts them into onnxruntime runs itself, "
        "see models/batching.py); the speed-up is against the plain pipeline (input order).",
        "",
        f"- int8 speed-up vs transformers: **{f(result.speedup_vs_transformers, '{:.2f}')}×**; vs langdetect alone: "
        f"**{f(result.speedup_vs_langdetect, '{:.2f}')}×** (median of {len(result.speedup_vs_langdetect_rounds)} "
        f"alternating rounds: {', '.join(f'{r:.2f}' for r in result.speedup_vs_langdetect_rounds)}; the posts/s above "
        "are each side's median)",
        f"- peak matmul: {result.peak_gflops_fp32:.0f} GFLOP/s fp32, {result.peak_gflops_int8:.0f} GFLOP/s int8; "
        f"{result.gflop_per_post:.2f} GFLOP per post; int8 predictor at **{100 * result.fraction_of_peak:.0f}%** of "
        "the int8 peak",
        f"- bundle load {result.bundle_load_s:.2f} s (checksums included); peak RSS with the int8 predictor "
        f"{result.peak_rss_mb_predictor:.0f} MB",
    ]
    if result.ngram_share_of_predict is not None:
        lines.append(
            f"- n-gram ids: {100 * result.ngram_share_of_predict:.1f}% of int8 predict time at batch 64 (computed once "
            "per post by models/ngrams.py, shared with training)"
        )
    lines += [f"- note: {n}" for n in result.notes]
    return "\n".join(lines) + "\n"
