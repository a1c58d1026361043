"""Activation smoothing before int8: exact in fp32, and it narrows the activations int8 quantizes."""

import json

import numpy as np
import onnx

from earful.export.build import PARITY_TEXTS
from earful.export.smoothing import ALPHA, SUFFIX, channel_maxima, smooth_activations
from earful.models.tokenization import TextEncoder


def _batches(bundle):
    info = json.loads((bundle / "bundle.json").read_text())
    enc = TextEncoder(bundle / "tokenizer.json", info["max_length"], info["input_prefix"])
    texts = PARITY_TEXTS + ["otra frase cualquiera", "noch ein Satz", "the agent hung up on me"]
    return [b.feeds() for b in (enc.encode(texts[:7]), enc.encode(texts[7:]))]


def _run(path, batches):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [sess.run(None, feeds) for feeds in batches]


def test_smoothing_is_exact_in_fp32_and_evens_out_channels(tiny_bundle, tmp_path):
    src, dst = tiny_bundle / "model.fp32.onnx", tmp_path / "smoothed.onnx"
    batches = _batches(tiny_bundle)
    n = smooth_activations(src, dst, batches[:1])
    model = onnx.load(str(dst))
    inits = {i.name for i in model.graph.initializer}
    matmuls = [node for node in model.graph.node if node.op_type == "MatMul" and node.input[1] in inits]
    assert n == len({node.input[0] for node in matmuls}) and n > 0
    assert all(node.input[0].endswith(SUFFIX) for node in matmuls)
    onnx.checker.check_model(model)  # still a valid, topologically sorted graph
    for before, after in zip(
        _run(src, batches), _run(dst, batches), strict=True
    ):  # batch 2 was never seen by the smoothing
        for a, b in zip(before, after, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4)
    # What int8 quantizes (the MatMul inputs) has a flatter channel profile: max/median of the channel maxima shrinks.
    names = sorted({node.input[0] for node in matmuls})
    raw = channel_maxima(onnx.load(str(src)), [x[: -len(SUFFIX)] for x in names], batches[:1])
    smooth = channel_maxima(model, names, batches[:1])
    spread = lambda m: float(np.max(m) / np.median(m))  # noqa: E731
    assert np.mean([spread(smooth[x]) for x in names]) < np.mean([spread(raw[x[: -len(SUFFIX)]]) for x in names])


def test_export_records_the_smoothing(tiny_bundle):
    recorded = json.loads((tiny_bundle / "metrics.json").read_text())["export_parity"]["int8_smoothing"]
    assert recorded["activations"] > 0 and recorded["posts"] > 0 and recorded["alpha"] == ALPHA
    assert recorded["posts_from"].endswith("training files")  # the tiny run's own training file was at hand
