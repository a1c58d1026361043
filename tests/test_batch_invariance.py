"""A post's int8 result does not depend on the posts it is batched with (earful.export.token_scales)."""

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import make_rows, write_csv

from earful.export.build import quantize_int8
from earful.export.threshold import ThresholdError
from earful.export.token_scales import METRICS_KEY, per_token_activations, rewrite_bundle
from earful.export.writer import edit_bundle
from earful.metrics import sigmoid, softmax
from earful.models.bundle import Bundle
from earful.models.predictor import Predictor
from earful.models.tokenization import TextEncoder

#: Posts of very different lengths (the tiny model reads at most 32 tokens): padding and long rows set a
#: batch-wide scale, so alone and together they get different int8 levels unless each row has its own.
POSTS = [
    "ok",
    "you charged me twice for order 12, refund it now",
    "der kundendienst antwortet nie auf meine fragen und der zug ist schon wieder zu spät " * 3,
    "¿a qué hora abre la tienda?",
    "word " * 40,
    "🙂",
]
TOLERANCE = 1e-4


def _probabilities(path, encoder, schema, texts):
    """Calibration-free probabilities per head, all ``texts`` in one onnxruntime run."""
    ids, mask = encoder.pad(encoder.encode_ids(texts)[0])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input_ids": ids, "attention_mask": mask})
    return [sigmoid(o) if t.kind == "binary" else softmax(o) for t, o in zip(schema.tasks, outputs, strict=True)]


def _largest_batch_effect(path, bundle: Bundle) -> float:
    """The largest probability change of any post between its own run and one run with all of POSTS."""
    encoder = TextEncoder(bundle.tokenizer_path, bundle.max_length, bundle.input_prefix)
    together = _probabilities(path, encoder, bundle.schema, POSTS)
    worst = 0.0
    for i, post in enumerate(POSTS):
        alone = _probabilities(path, encoder, bundle.schema, [post])
        worst = max(worst, *(float(np.abs(a[0] - t[i]).max()) for a, t in zip(alone, together, strict=True)))
    return worst


@pytest.fixture
def old_graph_bundle(tiny_bundle, tmp_path):
    """The tiny bundle with its int8 model as plain dynamic quantization made it (one scale per run)."""
    old = shutil.copytree(tiny_bundle, tmp_path / "old")
    with edit_bundle(old) as writer:
        quantize_int8(writer.path("model.fp32.onnx"), writer.path("model.int8.onnx"))
    return old


def test_exported_int8_prediction_is_the_same_alone_and_in_a_batch(tiny_bundle):
    bundle = Bundle.load(tiny_bundle)
    graph = onnx.load(str(tiny_bundle / "model.int8.onnx")).graph
    assert not any(n.op_type == "DynamicQuantizeLinear" for n in graph.node)
    assert json.loads((tiny_bundle / "metrics.json").read_text())["export_parity"][METRICS_KEY]["activations"] > 0
    assert _largest_batch_effect(tiny_bundle / "model.int8.onnx", bundle) <= TOLERANCE
    predictor = Predictor(bundle, threads=1)
    predictor.run_overhead_tokens = 10_000  # one onnxruntime run for the whole call, long and short posts together
    together = predictor.predict(POSTS)
    for post, mixed in zip(POSTS, together, strict=True):
        [alone] = predictor.predict([post])
        assert (alone.complaint_type.label, alone.sentiment.label, alone.is_troll, alone.lang.code) == (
            mixed.complaint_type.label,
            mixed.sentiment.label,
            mixed.is_troll,
            mixed.lang.code,
        )
        for a, b in ((alone.complaint_type, mixed.complaint_type), (alone.sentiment, mixed.sentiment)):
            assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) <= TOLERANCE
        assert abs(alone.troll - mixed.troll) <= TOLERANCE


def test_one_scale_per_run_moves_a_post_with_its_batch_and_the_rewrite_stops_it(old_graph_bundle, tmp_path):
    """The check above can fail: on the graph dynamic quantization makes, the same posts move by more."""
    bundle = Bundle.load(old_graph_bundle)
    assert _largest_batch_effect(old_graph_bundle / "model.int8.onnx", bundle) > 10 * TOLERANCE
    # four activations per layer (query/key/value, attention output, feed-forward in and out), one for the heads
    assert per_token_activations(old_graph_bundle / "model.int8.onnx", tmp_path / "new.onnx") == 2 * 4 + 1
    assert _largest_batch_effect(tmp_path / "new.onnx", bundle) <= TOLERANCE
    assert per_token_activations(tmp_path / "new.onnx", tmp_path / "again.onnx") == 0  # nothing left to rewrite


def test_per_token_int8_stays_near_fp32(old_graph_bundle, tmp_path):
    """Invariance alone does not show that the row scales are applied right (a misapplied one can be invariant
    too): the rewritten graph must also stay near fp32. Both int8 graphs were within 0.0025 of it on these posts."""
    bundle = Bundle.load(old_graph_bundle)
    encoder = TextEncoder(bundle.tokenizer_path, bundle.max_length, bundle.input_prefix)
    per_token_activations(old_graph_bundle / "model.int8.onnx", tmp_path / "new.onnx")
    fp32 = _probabilities(old_graph_bundle / "model.fp32.onnx", encoder, bundle.schema, POSTS)
    int8 = _probabilities(tmp_path / "new.onnx", encoder, bundle.schema, POSTS)
    assert max(float(np.abs(a - b).max()) for a, b in zip(int8, fp32, strict=True)) < 0.01


def test_float_activation_matmuls_take_the_per_token_path(old_graph_bundle, tmp_path):
    """The MatMuls the export keeps out of dynamic quantization (int8 weights before a float MatMul, which
    onnxruntime quantizes per row and block of 32) are rewritten too: no float MatMul on int8 weights is left."""
    from earful.export.build import outlier_matmuls

    bundle = Bundle.load(old_graph_bundle)
    encoder = TextEncoder(bundle.tokenizer_path, bundle.max_length, bundle.input_prefix)
    sample = encoder.encode(POSTS)
    every = outlier_matmuls(old_graph_bundle / "model.fp32.onnx", sample.feeds(), ratio=0.0)
    quantize_int8(old_graph_bundle / "model.fp32.onnx", tmp_path / "mixed.onnx", list(every))
    # every encoder MatMul kept out, so only the heads' input is dynamically quantized
    assert per_token_activations(tmp_path / "mixed.onnx", tmp_path / "new.onnx") == len(every) + 1
    graph = onnx.load(str(tmp_path / "new.onnx")).graph
    left = [n.name for n in graph.node if n.op_type in ("DequantizeLinear", "DynamicQuantizeLinear")]
    assert all("embeddings" in name for name in left)  # the embedding tables' int8 rows only
    assert _largest_batch_effect(tmp_path / "new.onnx", bundle) <= TOLERANCE
    fp32 = _probabilities(old_graph_bundle / "model.fp32.onnx", encoder, bundle.schema, POSTS)
    int8 = _probabilities(tmp_path / "new.onnx", encoder, bundle.schema, POSTS)
    assert max(float(np.abs(a - b).max()) for a, b in zip(int8, fp32, strict=True)) < 0.01


def test_rewriting_an_existing_bundle_gives_a_verified_new_version(old_graph_bundle, tmp_path):
    trolls = write_csv(tmp_path / "trolls.csv", make_rows(8, seed=3))
    before = Bundle.load(old_graph_bundle)
    assert rewrite_bundle(old_graph_bundle, "0.0.2", [trolls]) == 2 * 4 + 1
    after = Bundle.load(old_graph_bundle)  # the manifest verifies
    assert (before.version, after.version) == ("0.0.1", "0.0.2")
    recorded = after.metrics["export_parity"][METRICS_KEY]
    assert recorded["rewritten_from"] == "tiny-test 0.0.1" and recorded["activations"] == 9
    assert after.metrics["troll_threshold"]["files"] == [trolls.name]  # outside the repository: its name only
    card = (old_graph_bundle / "MODEL_CARD.md").read_text()
    assert card.startswith("# tiny-test 0.0.2\n") and "one scale per token" in card
    assert _largest_batch_effect(old_graph_bundle / "model.int8.onnx", after) <= TOLERANCE
    with pytest.raises(ValueError, match="already quantizes activations per token"):
        rewrite_bundle(old_graph_bundle, "0.0.3", [trolls])
    assert Bundle.load(old_graph_bundle).version == "0.0.2"


def test_a_failed_rewrite_leaves_the_bundle_as_it_was(old_graph_bundle, tmp_path):
    few = write_csv(tmp_path / "few.csv", make_rows(1, seed=4))  # too few trolls to choose a threshold on
    manifest = (old_graph_bundle / "manifest.json").read_text()
    with pytest.raises(ThresholdError):
        rewrite_bundle(old_graph_bundle, "0.0.2", [few])
    assert (old_graph_bundle / "manifest.json").read_text() == manifest
    assert Bundle.load(old_graph_bundle).version == "0.0.1"
    assert not [p for p in old_graph_bundle.parent.iterdir() if p.name.startswith("earful-token-scales")]
