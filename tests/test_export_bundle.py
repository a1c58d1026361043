"""Export to ONNX, parity with torch, int8 drift, and bundle verification."""

import json
import shutil

import numpy as np
import pytest
import torch

from earful.metrics import sigmoid, softmax
from earful.models.bundle import Bundle, BundleError, resolve_bundle_path
from earful.models.export import PARITY_TEXTS
from earful.models.network import MultiTaskModel
from earful.models.tokenization import TextEncoder


def test_bundle_is_self_describing(tiny_bundle):
    names = {p.name for p in tiny_bundle.iterdir()}
    assert {"bundle.json", "schema.json", "calibration.json", "tokenizer.json", "model.fp32.onnx", "model.int8.onnx",
            "metrics.json", "MODEL_CARD.md", "provenance.json", "manifest.json"} <= names
    # nothing pickled: every file is JSON, Markdown or ONNX
    assert all(n.endswith((".json", ".md", ".onnx")) for n in names)
    b = Bundle.load(tiny_bundle)
    assert b.name == "tiny-test" and b.variants == ("int8", "fp32")
    assert b.schema.task("lang").labels == ("de", "en", "es")
    assert "Synthetic test rows" in (tiny_bundle / "MODEL_CARD.md").read_text()


def _onnx_logits(path, ids, mask):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids, "attention_mask": mask})


def test_onnx_matches_torch_and_int8_drift_is_bounded(tiny_run, tiny_bundle):
    model = MultiTaskModel.load(tiny_run / "best")
    enc = TextEncoder(tiny_bundle / "tokenizer.json", model.config.max_length, model.config.input_prefix)
    texts = PARITY_TEXTS + ["otra frase cualquiera", "noch ein Satz"] * 3  # other shapes than the export trace
    batch = enc.encode(texts)
    with torch.no_grad():
        ref = [o.numpy() for o in model(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask))]
    fp32 = _onnx_logits(tiny_bundle / "model.fp32.onnx", batch.input_ids, batch.attention_mask)
    int8 = _onnx_logits(tiny_bundle / "model.int8.onnx", batch.input_ids, batch.attention_mask)
    for task, r, a, b in zip(model.schema.tasks, ref, fp32, int8):
        assert np.abs(r - a).max() < 1e-4, task.name
        prob = sigmoid if task.kind == "binary" else softmax
        # int8 moves probabilities a little (≤0.05 seen on this tiny random net), not wholesale
        assert np.abs(prob(r) - prob(b)).max() < 0.1, task.name
    recorded = json.loads((tiny_bundle / "metrics.json").read_text())["export_parity"]
    assert recorded["fp32_max_abs_diff"] < 1e-4


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    return shutil.copytree(tiny_bundle, tmp_path / "copy")


def test_tampered_model_is_refused(bundle_copy):
    p = bundle_copy / "model.int8.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.int8.onnx does not match its sha256"):
        Bundle.load(bundle_copy)


def test_truncated_file_is_refused(bundle_copy):
    p = bundle_copy / "model.fp32.onnx"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(BundleError, match="truncated or modified"):
        Bundle.load(bundle_copy)


def test_missing_file_and_missing_manifest_are_refused(bundle_copy):
    (bundle_copy / "calibration.json").unlink()
    with pytest.raises(BundleError, match="calibration.json is missing"):
        Bundle.load(bundle_copy)
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="not an earful bundle"):
        Bundle.load(bundle_copy)


def test_edited_calibration_is_refused(bundle_copy):
    p = bundle_copy / "calibration.json"
    d = json.loads(p.read_text())
    d["temperature"]["troll"] = 0.01
    p.write_text(json.dumps(d))
    with pytest.raises(BundleError, match="calibration.json"):
        Bundle.load(bundle_copy)


def test_no_default_bundle_says_how_to_build_one(monkeypatch, tmp_path):
    from earful.models import bundle

    monkeypatch.setattr(bundle, "DEFAULT_BUNDLE", tmp_path / "nothing")
    with pytest.raises(BundleError, match="make model"):
        resolve_bundle_path(None)


def test_export_refuses_to_overwrite(tiny_run, tiny_bundle):
    from earful.models.export import export_bundle

    with pytest.raises(FileExistsError, match="--overwrite"):
        export_bundle(tiny_run, tiny_bundle, name="x", version="1")
