"""GPTQ weight rounding: same grid as round-to-nearest, smaller output error, and
the export really ships its levels."""

import json

import numpy as np
import onnx
from onnx import numpy_helper

from earful.export.rounding import gptq, round_to_nearest


def _correlated_inputs(rng, n=2000, k=48):
    """Tokens whose channels co-vary strongly, as a transformer's hidden states do."""
    mix = rng.standard_normal((k, k)) * np.linspace(2.0, 0.1, k)[:, None]
    return rng.standard_normal((n, k)) @ mix


def test_gptq_keeps_the_grid_and_lowers_the_output_error():
    rng = np.random.default_rng(0)
    x = _correlated_inputs(rng)
    w = rng.standard_normal((48, 24)).astype(np.float32)
    near, scale = round_to_nearest(w)
    levels, gscale = gptq(w, x.T @ x)
    assert levels.dtype == np.int8 and levels.shape == w.shape and np.abs(levels.astype(int)).max() <= 127
    np.testing.assert_array_equal(gscale, scale)  # the same scales, so onnxruntime's grid fits
    assert np.mean(levels != near) > 0.05  # it really moves levels ...
    err = {name: np.square(x @ (w - q * scale)).mean() for name, q in (("near", near), ("gptq", levels))}
    assert err["gptq"] < 0.7 * err["near"]  # ... and the product is closer (measured ratio here: ~0.4)


def test_gptq_with_uncorrelated_inputs_is_round_to_nearest():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((32, 8)).astype(np.float32)
    levels, _ = gptq(w, np.diag(rng.uniform(0.5, 3.0, 32)))
    np.testing.assert_array_equal(levels, round_to_nearest(w)[0])


def _batches(bundle):
    from earful.export.build import PARITY_TEXTS
    from earful.models.tokenization import TextEncoder

    info = json.loads((bundle / "bundle.json").read_text())
    enc = TextEncoder(bundle / "tokenizer.json", info["max_length"], info["input_prefix"])
    texts = PARITY_TEXTS + ["otra frase cualquiera", "noch ein Satz", "the agent hung up on me", "我的订单还没到"]
    return [b.feeds() for b in (enc.encode(texts[:8]), enc.encode(texts[8:]))]


def test_quantize_int8_writes_the_given_levels(tiny_bundle, tmp_path):
    """Both kinds of int8 MatMul (dynamic, and float activations over int8 weights)
    carry exactly the GPTQ levels, which make the layers' outputs on the sample
    tokens closer to fp32 than round-to-nearest does (GPTQ's own objective)."""
    from earful.export.build import quantize_int8
    from earful.export.rounding import input_hessians, round_weights
    from earful.export.smoothing import weighted_matmuls

    fp32 = tiny_bundle / "model.fp32.onnx"
    batches = _batches(tiny_bundle)
    weights = round_weights(fp32, batches)
    model = onnx.load(str(fp32))
    matmuls = weighted_matmuls(model)
    assert set(weights) == {n.input[1] for n in matmuls}
    quantize_int8(fp32, tmp_path / "gptq.onnx", [matmuls[-1].name], weights)
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "gptq.onnx")).graph.initializer}
    for name, (levels, scale) in weights.items():
        stored = inits.get(name + "_quantized", inits.get(name + "_int8"))
        np.testing.assert_array_equal(stored, levels)
        np.testing.assert_array_equal(inits[name + "_scale"], scale)

    hessians = input_hessians(model, batches)
    originals = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    error = {"near": 0.0, "gptq": 0.0}
    for node in matmuls:
        w, h = originals[node.input[1]].astype(np.float64), hessians[node.input[0]]
        for kind, (levels, scale) in (("near", round_to_nearest(w)), ("gptq", weights[node.input[1]])):
            d = w - levels * scale.astype(np.float64)
            error[kind] += float(np.trace(d.T @ h @ d))  # = squared error of the layer's output on the sample tokens
    assert error["gptq"] < 0.9 * error["near"]


def test_export_records_the_rounding(tiny_bundle):
    recorded = json.loads((tiny_bundle / "metrics.json").read_text())["export_parity"]["int8_weight_rounding"]
    assert (
        recorded["method"] == "gptq" and recorded["weights"] == 2 * 6
    )  # every encoder MatMul of the tiny model (heads are Gemm)
    assert recorded["posts"] > 0 and recorded["posts_from"].endswith("training files")
