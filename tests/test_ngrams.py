"""The hashed n-gram branch and post normalisation: the same ids in training and serving, one ONNX graph,
and labels that cannot hang on @handles or URLs."""

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import tiny_config

from earful.export.writer import edit_bundle
from earful.models.bundle import Bundle
from earful.models.ngrams import NgramSpec, ngram_ids, normalize_post, pad_ngrams
from earful.models.predictor import Predictor

SMALL = {"ngram_dim": 8, "ngram_buckets": 1024}
POSTS = [
    "my parcel went to the wrong address",
    "Mi pedido nunca llegó y nadie responde",
    "我的订单还没到",
    "ok",
    "",
    "🙂🙂",
    "charged twice #fail https://t.co/abc @AmazonHelp",
]


@pytest.fixture(scope="module")
def ngram_bundle(tmp_path_factory, tiny_base, tiny_data):
    from earful.export.build import export_bundle
    from earful.training.trainer import train

    root = tmp_path_factory.mktemp("ngrams")
    train(tiny_config(root / "run", tiny_base, tiny_data, **SMALL))
    return export_bundle(root / "run", root / "bundle", name="tiny-ngrams", version="0.0.1")


def test_normalize_post_drops_handles_and_urls_and_keeps_hashtag_words():
    assert normalize_post("@AmazonHelp my parcel  went to https://t.co/x the wrong address #fail") == (
        "my parcel went to the wrong address fail"
    )
    assert normalize_post("mail me at bob@example.com, see www.example.com/x") == "mail me at bob@example.com, see"
    assert normalize_post("@a @b") == ""


def test_ngram_ids_are_in_range_and_need_no_hash_seed():
    spec = NgramSpec(buckets=1000)
    ids = ngram_ids(POSTS, spec)
    assert all(((x >= 1) & (x < 1000)).all() for x in ids)
    assert len(ids[3]) == 4 + 3 + 2 + 1 + 1  # " ok ": 1- to 4-grams of characters, and the word
    padded = pad_ngrams(ids)
    assert padded.shape == (len(POSTS), max(len(x) for x in ids)) and (padded[3, len(ids[3]) :] == 0).all()
    code = (
        "import json; from earful.models.ngrams import NgramSpec, ngram_ids; "
        f"print(json.dumps([x.tolist() for x in ngram_ids({POSTS!r}, NgramSpec(buckets=1000))]))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": seed}, check=True
        )
        assert json.loads(out.stdout) == [x.tolist() for x in ids]


def test_training_and_serving_give_the_same_ids(ngram_bundle, tiny_data):
    from earful.labelled import read_labelled
    from earful.training.data import tokenize_sets
    from earful.training.network import MultiTaskModel

    bundle = Bundle.load(ngram_bundle)
    model = MultiTaskModel.load(ngram_bundle.parent / "run" / "best")
    rows = read_labelled(tiny_data[1])
    data = tokenize_sets(
        [rows], model.config.text_encoder(ngram_bundle / "tokenizer.json"), list(bundle.schema.task("lang").labels)
    )
    served = bundle.text_encoder().encode_ngrams(rows.text)
    assert len(served) == len(data.ngram_ids) == len(rows)
    assert all(np.array_equal(a, b) for a, b in zip(served, data.ngram_ids, strict=True))
    assert bundle.ngrams == model.config.ngram_spec and bundle.normalize


def test_one_graph_with_the_ngram_input_and_parity(ngram_bundle):
    bundle = Bundle.load(ngram_bundle)
    for variant in ("fp32", "int8"):
        graph = onnx.load(str(bundle.onnx_path(variant)))
        assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask", "ngram_ids"]
    parity = bundle.metrics["export_parity"]
    assert parity["fp32_max_abs_diff"] <= 1e-4
    fp32 = Predictor.load(ngram_bundle, variant="fp32").probabilities(POSTS)
    int8 = Predictor.load(ngram_bundle, variant="int8").probabilities(POSTS)
    assert np.nanmax(np.abs(fp32.sentiment - int8.sentiment)) < 0.2


def test_the_branch_changes_what_the_heads_read(ngram_bundle):
    """A test that could not fail if the n-gram input were ignored: zeroing the table moves the outputs."""
    import onnxruntime as ort
    from onnx import numpy_helper

    bundle = Bundle.load(ngram_bundle)
    model = onnx.load(str(bundle.onnx_path("fp32")))
    [table] = [i for i in model.graph.initializer if i.name.startswith("ngram_embedding")]
    feeds = bundle.text_encoder().encode(POSTS[:3]).feeds()
    before = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    table.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(table)), table.name))
    after = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    assert max(float(np.abs(a - b).max()) for a, b in zip(before, after, strict=True)) > 1e-3


def test_handles_and_urls_cannot_change_a_label(ngram_bundle):
    predictor = Predictor.load(ngram_bundle)
    plain = ["my parcel went to the wrong address", "the app crashes after the update"]
    dressed = [f"@AmazonHelp {plain[0]} https://t.co/xyz", f"{plain[1]} @SpotifyCares"]
    a, b = predictor.probabilities(plain), predictor.probabilities(dressed)
    for head in ("complaint_type", "sentiment", "troll", "lang"):
        np.testing.assert_array_equal(getattr(a, head), getattr(b, head))


def test_a_bundle_without_branch_or_normalisation_still_loads(tiny_bundle, tmp_path):
    old = shutil.copytree(tiny_bundle, tmp_path / "old")
    with edit_bundle(old) as writer:  # as bundles were written before either setting existed
        info = writer.read_json("bundle.json")
        info.pop("normalize", None), info.pop("ngrams", None)
        writer.write_json("bundle.json", info)
    bundle = Bundle.load(old)
    assert bundle.ngrams is None and not bundle.normalize
    assert [i.name for i in onnx.load(str(bundle.onnx_path("int8"))).graph.input] == ["input_ids", "attention_mask"]
    [p] = Predictor.load(old).predict(["@AmazonHelp my parcel went to the wrong address"])
    assert p.status == "ok"


def test_training_in_bf16_autocast_runs_and_is_recorded(tmp_path, tiny_base, tiny_data):
    from earful.training.trainer import train

    result = train(tiny_config(tmp_path / "run", tiny_base, tiny_data, precision="bf16", max_steps=3, **SMALL))
    assert json.loads((result.best_dir / "training.json").read_text())["precision"] == "bf16"


def test_bench_reports_the_ngram_share_of_predict_time(ngram_bundle, tiny_bundle):
    from earful.eval.bench import _ngram_share

    share = _ngram_share(Predictor.load(ngram_bundle), POSTS * 20)
    assert 0 < share < 1


def test_ablation_refits_each_head_with_and_without_the_ngram_features(ngram_bundle):
    from earful.eval.ngram_ablation import ngram_ablation, render_markdown

    result = ngram_ablation(ngram_bundle.parent / "run", rows_per_label=20, max_iterations=20)
    assert set(result.heads) == {"complaint_type", "sentiment", "troll", "lang"}
    for r in result.heads.values():
        assert 0 <= r["encoder_only"] <= 1 and 0 <= r["with_ngrams"] <= 1 and r["train_rows"] > 0
    assert "| lang |" in render_markdown(result) and result.machine["machine"]


def test_the_ablation_goes_into_the_model_card_once(ngram_bundle, tmp_path):
    from dataclasses import replace

    from earful.eval.ngram_ablation import CARD_TITLE, AblationResult, write_card_section

    bundle = tmp_path / "bundle"
    shutil.copytree(ngram_bundle, bundle)
    with edit_bundle(bundle) as writer:  # a card with an evaluation section, as eval.results writes it
        writer.write_text(
            "MODEL_CARD.md", writer.read_text("MODEL_CARD.md") + "\n## Evaluation on validation data\n\nx\n"
        )
    heads = {
        "lang": {"train_rows": 5, "validation_rows": 4, "encoder_only": 0.5, "with_ngrams": 0.75, "as_trained": 0.7}
    }
    result = AblationResult("run", heads, 20, 1.0, {"machine": "Some CPU, 2 cores", "date": "2030-01-01"})
    write_card_section(bundle, result)
    write_card_section(bundle, replace(result, heads={"lang": {**heads["lang"], "with_ngrams": 0.8}}))
    card = (bundle / "MODEL_CARD.md").read_text()
    assert card.index(CARD_TITLE) < card.index("## Evaluation on validation data") and card.endswith("\n\nx\n")
    assert card.count(CARD_TITLE) == 1 and "| lang | 0.500 | 0.800 | +0.300 | 0.700 |" in card
    assert "Machine: Some CPU, 2 cores; 2030-01-01." in card
    assert Bundle.load(bundle).metrics["ngram_ablation"]["heads"]["lang"]["with_ngrams"] == 0.8


def test_the_shipped_recipes_load():
    """Every recipe in training/configs is a valid TrainConfig; the default one has the branch and normalisation."""
    from pathlib import Path

    from earful.training.config import TrainConfig

    configs = {p.name: TrainConfig.from_file(p) for p in sorted(Path("training/configs").glob("*.toml"))}
    default = configs["default.toml"]
    assert default.ngrams()["dim"] == 16 and default.normalize and default.precision == "auto"
    assert all(Path(f).is_file() for f in default.train + default.validation)


def test_the_table_starts_small_with_a_zero_padding_row(ngram_bundle):
    # N(0, 1) rows for buckets training hardly sees would drown the learned ones in the pooled mean.
    from earful.training.network import MultiTaskModel

    trained = MultiTaskModel.load(ngram_bundle.parent / "run" / "best")
    fresh = MultiTaskModel(trained.config)
    table = fresh.ngram_embedding.weight.detach()
    assert float(table.abs().max()) <= 1.0 / table.shape[1]
    assert float(table[0].abs().max()) == 0.0


def test_ngram_dropout_zeroes_whole_posts_for_the_chosen_heads_in_training_only(ngram_bundle):
    import torch

    from earful.training.config import TrainConfig
    from earful.training.network import MultiTaskModel

    model = MultiTaskModel.load(ngram_bundle.parent / "run" / "best")
    batch = model.config.text_encoder(ngram_bundle / "tokenizer.json").encode(POSTS * 20)
    args = [torch.from_numpy(a) for a in (batch.input_ids, batch.attention_mask, pad_ngrams(batch.ngram_ids))]
    names = [t.name for t in model.schema.tasks]
    width = model.encoder.config.hidden_size
    with torch.no_grad():
        model.eval()
        full = dict(zip(names, model(*args), strict=True))
        features = model.features(*args)
        without = {n: model.heads[n](torch.cat([features[:, :width], 0 * features[:, width:]], -1)) for n in names}
        model.ngram_dropout, model.ngram_dropout_heads = 0.5, frozenset({"sentiment"})
        assert all(torch.equal(full[n], o) for n, o in zip(names, model(*args), strict=True))  # never outside training
        torch.manual_seed(0)
        model.train()
        model.encoder.eval()
        model.dropout.eval()  # only the n-gram dropout left random
        trained = dict(zip(names, model(*args), strict=True))
    assert torch.equal(trained["lang"], full["lang"])  # a head not chosen always reads the n-grams
    dropped = torch.isclose(trained["sentiment"], without["sentiment"], atol=1e-6).all(1)
    kept = torch.isclose(trained["sentiment"], full["sentiment"], atol=1e-6).all(1)
    assert bool((dropped ^ kept).all()) and 0 < int(dropped.sum()) < len(dropped)  # whole posts, some of them
    with pytest.raises(ValueError, match="ngram_dropout"):
        TrainConfig(train=["x"], validation=["y"], ngram_dropout=1.0).validate()
    with pytest.raises(ValueError, match="ngram_dropout_heads"):
        TrainConfig(train=["x"], validation=["y"], ngram_dropout_heads=["langid"]).validate()
    # off (and for every head), the options are not in the fingerprint: runs checkpointed before them still resume
    assert not {"ngram_dropout", "ngram_dropout_heads"} & set(TrainConfig(train=["x"], validation=["y"]).fingerprint())
