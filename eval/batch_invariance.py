"""Does a post's prediction depend on what it is batched with? Measured, for docs/quantization.md.

    .venv/bin/python -m earful.eval.batch_invariance --bundle models/default --bundle OLD \\
        --float-reference OLD --posts 2000 --out /tmp/invariance
    .venv/bin/python -m earful.eval.batch_invariance --score models/default --posts 1000   # a fixed timing job

For each bundle, a seeded sample of validation posts is predicted one post per call and then in shuffled
calls of 64 (``Predictor.predict``, one thread, as the service batches them); it counts the posts whose label
changed, per head, and the largest probability change. ``--float-reference B`` (a bundle whose int8 graph is
as dynamic quantization made it, such as 0.4.1) also runs B's int8 weights dequantized to float, with float
activations (no activation quantization at all), and reports each bundle's label agreement with it (under
the bundle's own thresholds) in those calls of 64: that isolates the error of quantizing the activations.
``--score`` predicts the posts in calls of ``--batch`` (64) and prints its own seconds (a command for an
outside timer).
The machine and date (:mod:`earful.machine`) are printed and written with the results.
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from earful.export.writer import copy_bundle
from earful.labelled import read_labelled
from earful.machine import heading, stamp
from earful.schema import TASK_NAMES

HEADS = TASK_NAMES
VALIDATION = "data/validation/*.csv.gz"


def validation_posts(n: int, seed: int = 0, pattern: str = VALIDATION) -> list[str]:
    """``n`` non-blank posts sampled (seeded) from the validation files."""
    texts = [
        t for f in sorted(glob.glob(pattern)) for t in read_labelled(f, require_text=False).text if t and t.strip()
    ]
    return random.Random(seed).sample(texts, min(n, len(texts)))


def _labels(predictions) -> dict[str, list]:
    """The served label of each head (``is_troll`` for troll, the decided language for lang)."""
    return {
        "complaint_type": [p.complaint_type.label for p in predictions],
        "sentiment": [p.sentiment.label for p in predictions],
        "troll": [p.is_troll for p in predictions],
        "lang": [p.lang.code for p in predictions],
    }


def _probabilities(predictor, texts: list[str], calls: list[list[int]]) -> dict[str, np.ndarray]:
    """Every head's probabilities for ``texts``, each call's posts handed over together."""
    out = {h: None for h in HEADS}
    for rows in calls:
        probs = predictor.probabilities([texts[i] for i in rows])
        for h in HEADS:
            values = getattr(probs, h)
            if out[h] is None:
                out[h] = np.zeros((len(texts), *values.shape[1:]))
            out[h][rows] = values
    return out


def _predict(predictor, texts: list[str], calls: list[list[int]]) -> list:
    found = [None] * len(texts)
    for rows in calls:
        for i, p in zip(rows, predictor.predict([texts[i] for i in rows]), strict=True):
            found[i] = p
    return found


def batch_dependence(predictor, texts: list[str], batch: int = 64, seed: int = 0) -> dict:
    """Label changes per head and the largest probability change between each post alone and in a shuffled call."""
    alone = [[i] for i in range(len(texts))]
    order = np.random.default_rng(seed).permutation(len(texts)).tolist()
    mixed = [order[k : k + batch] for k in range(0, len(order), batch)]
    labels_alone, labels_mixed = _labels(_predict(predictor, texts, alone)), _labels(_predict(predictor, texts, mixed))
    p_alone, p_mixed = _probabilities(predictor, texts, alone), _probabilities(predictor, texts, mixed)
    return {
        "posts": len(texts),
        "batch": batch,
        "label_changes": {h: sum(a != b for a, b in zip(labels_alone[h], labels_mixed[h], strict=True)) for h in HEADS},
        "max_probability_change": {h: float(np.abs(p_alone[h] - p_mixed[h]).max()) for h in HEADS},
    }


def float_activation_model(int8: Path, out: Path) -> Path:
    """The int8 model at ``int8`` (as dynamic quantization made it) computing in float: every int8 weight
    dequantized (the same levels and scales), every activation left in float. For measurement only."""
    import onnx
    from onnx import helper, numpy_helper

    from earful.export.token_scales import graph_index

    model = onnx.load(str(int8))
    graph = model.graph
    inits, made, readers = graph_index(graph)

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[name])

    drop, add = set(), {}
    for node in graph.node:
        if node.op_type == "MatMulInteger":
            quantize = made[node.input[0]]
            [cast] = readers[node.output[0]]
            [out_mul] = readers[cast.output[0]]
            scales = made[out_mul.input[1]]
            levels = array(node.input[1]).astype(np.float32) - array(node.input[3]).astype(np.float32)
            weight = (levels * array(scales.input[1])).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(weight, node.name + "_float_weight"))
            add[out_mul.name] = helper.make_node(
                "MatMul",
                [quantize.input[0], node.name + "_float_weight"],
                [out_mul.output[0]],
                name=node.name + "_float",
            )
            drop |= {quantize.name, node.name, cast.name, scales.name, out_mul.name}
        elif node.op_type == "DequantizeLinear" and node.input[0] in inits:  # int8 weights before a float MatMul
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            scale, zero = array(node.input[1]), array(node.input[2]).astype(np.float32)
            shape = [-1 if d == axis else 1 for d in range(len(inits[node.input[0]].dims))]
            levels = array(node.input[0]).astype(np.float32) - zero.reshape(shape)
            weight = (levels * scale.reshape(shape)).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(weight, node.output[0]))
            drop.add(node.name)
    nodes = [add.get(n.name, n) for n in graph.node if n.name not in drop or n.name in add]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for n in nodes for name in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    onnx.save(model, str(out))
    return out


def with_model(bundle: Path, model: Path, out: Path) -> Path:
    """A copy of ``bundle`` (its thresholds and calibration) whose int8 model is ``model``."""
    return copy_bundle(bundle, out, {"model.int8.onnx": model})


def agreement(predictor, reference, texts: list[str], batch: int = 64) -> dict:
    """Label agreement and mean probability change against ``reference``, both in the same calls of ``batch``."""
    calls = [list(range(k, min(k + batch, len(texts)))) for k in range(0, len(texts), batch)]
    a, b = _labels(_predict(predictor, texts, calls)), _labels(_predict(reference, texts, calls))
    pa, pb = _probabilities(predictor, texts, calls), _probabilities(reference, texts, calls)
    return {
        "label_agreement": {h: float(np.mean([x == y for x, y in zip(a[h], b[h], strict=True)])) for h in HEADS},
        "mean_probability_change": {h: float(np.abs(pa[h] - pb[h]).mean()) for h in HEADS},
    }


def _score(bundle: str, n: int, batch: int) -> None:
    from earful.models.predictor import Predictor

    texts = validation_posts(n)
    predictor = Predictor.load(bundle, threads=1)
    start, cpu = time.perf_counter(), time.process_time()
    for k in range(0, len(texts), batch):
        predictor.predict(texts[k : k + batch])
    print(
        f"{bundle}: {len(texts)} posts in calls of {batch}, one thread: {time.perf_counter() - start:.2f} s "
        f"({time.process_time() - cpu:.2f} s of CPU)"
    )


def main(argv: list[str] | None = None) -> None:
    from earful.models.predictor import Predictor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", action="append", default=[], help="a bundle to measure (repeat for several)")
    parser.add_argument(
        "--float-reference",
        help="compare each bundle with this bundle's int8 weights run in float "
        "(its graph as dynamic quantization made it)",
    )
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="folder for results.json")
    parser.add_argument("--score", help="only time predicting --posts posts with this bundle, --batch at a time")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    if args.score:
        _score(args.score, args.posts, args.batch)
        return
    host = stamp()
    print(heading(host))
    texts = validation_posts(args.posts, args.seed)
    results = {**host, "posts": len(texts), "seed": args.seed, "bundles": {}}
    with tempfile.TemporaryDirectory() as work:
        floats = None
        if args.float_reference:
            floats = float_activation_model(Path(args.float_reference) / "model.int8.onnx", Path(work) / "float.onnx")
        for k, path in enumerate(args.bundle):
            predictor = Predictor.load(path, threads=1)
            name = f"{predictor.bundle.name} {predictor.bundle.version}"
            found = {"path": path, **batch_dependence(predictor, texts, seed=args.seed)}
            if floats is not None:  # the bundle's own thresholds, so that only the activations differ
                reference = Predictor.load(with_model(Path(path), floats, Path(work) / str(k)), threads=1)
                found["float_activations"] = agreement(predictor, reference, texts)
            results["bundles"][name] = found
            print(name, json.dumps(found))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
