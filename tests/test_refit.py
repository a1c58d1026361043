"""Refitting heads on the frozen encoder (training/refit.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from earful.training.refit import RefitConfig, RefitError, fit_head, refit_heads


def test_fit_head_separates_what_a_linear_model_can():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)).astype(np.float32) * 3
    y = rng.integers(0, 3, 600)
    x = (centres[y] + rng.normal(size=(600, 8))).astype(np.float32)
    w, b = fit_head(
        "sentiment", x, y, np.zeros((3, 8), np.float32), np.zeros(3, np.float32), weight_decay=1e-4, max_iterations=200
    )
    assert np.mean((x @ w.T + b).argmax(1) == y) > 0.97
    # the penalty shrinks the weights
    w_strong, _ = fit_head(
        "sentiment", x, y, np.zeros((3, 8), np.float32), np.zeros(3, np.float32), weight_decay=1.0, max_iterations=200
    )
    assert np.abs(w_strong).sum() < 0.5 * np.abs(w).sum()


def test_fit_head_troll_is_logistic_regression_on_one_logit():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    x = (np.where(y[:, None] == 1, 2.0, -2.0) * np.ones((1, 4)) + rng.normal(size=(400, 4))).astype(np.float32)
    w, b = fit_head(
        "troll", x, y, np.zeros((1, 4), np.float32), np.zeros(1, np.float32), weight_decay=1e-4, max_iterations=200
    )
    assert w.shape == (1, 4) and np.mean(((x @ w.T + b)[:, 0] > 0) == y) > 0.97


def test_fit_head_learns_from_coarse_complaints_as_training_does():
    from earful.training.data import COARSE_COMPLAINT_ID

    # every row says only "complaint": the head must move mass from `none` onto the three types, claiming none of them
    x = np.ones((50, 2), np.float32)
    y = np.full(50, COARSE_COMPLAINT_ID)
    w, b = fit_head(
        "complaint_type",
        x,
        y,
        np.zeros((4, 2), np.float32),
        np.zeros(4, np.float32),
        weight_decay=1e-3,
        max_iterations=100,
    )
    p = np.exp(x[0] @ w.T + b)
    p /= p.sum()
    assert p[3] < 0.05 and np.ptp(p[:3]) < 1e-3


@pytest.fixture(scope="module")
def refitted(tmp_path_factory, tiny_run, tiny_data):
    out = tmp_path_factory.mktemp("refit") / "model"
    # no files given: the refit reads the ones the run was trained and validated on from its training.json
    config = RefitConfig(
        model=str(tiny_run), output_dir=str(out), heads=("lang", "troll"), rows_per_label=20, threads=1
    )
    return refit_heads(config), out


def test_refit_changes_only_those_heads(refitted, tiny_run):
    result, out = refitted
    before, after = load_file(str(tiny_run / "best" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys()
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed == {"heads.lang.weight", "heads.lang.bias", "heads.troll.weight", "heads.troll.bias"}
    old = json.loads((tiny_run / "best" / "calibration.json").read_text())["temperature"]
    new = json.loads((out / "calibration.json").read_text())["temperature"]
    assert {k: v for k, v in new.items() if k not in ("lang", "troll")} == {
        k: v for k, v in old.items() if k not in ("lang", "troll")
    }
    trained = json.loads((tiny_run / "best" / "training.json").read_text())
    written = json.loads((out / "training.json").read_text())
    [record] = written["refits"]
    by_head = {h.head: h for h in result.heads}
    assert list(by_head) == ["troll", "lang"]  # fitted in schema order, whatever order they were asked in
    for head, h in by_head.items():
        assert (
            record["heads"][head]["validation_macro_f1_after"]
            == h.validation_macro_f1_after
            == written["validation_macro_f1"][head]
        )
        # "before" is the trained head's score on the same rows, as training computed it
        assert h.validation_macro_f1_before == pytest.approx(trained["validation_macro_f1"][head], abs=1e-4)
        assert h.temperature == new[head]
    assert written["validation_macro_f1"]["sentiment"] == trained["validation_macro_f1"]["sentiment"]
    # 3 languages x at most 20 rows each, from one source per language
    assert 0 < by_head["lang"].train_rows <= 60
    assert result.encoded_rows <= by_head["lang"].train_rows + by_head["troll"].train_rows
    assert by_head["lang"].validation_macro_f1_after >= by_head["lang"].validation_macro_f1_before


def test_capped_rows_balances_languages_within_a_source():
    from earful.training.data import TokenizedData
    from earful.training.refit import _capped_rows

    # one source: 30 English rows and 4 German ones, all labelled positive
    data = TokenizedData(
        input_ids=[[1]] * 34,
        sources=np.array(["s"] * 34),
        labels={"sentiment": np.full(34, 2), "lang": np.array([0] * 30 + [1] * 4)},
    )
    rows = _capped_rows(data, "sentiment", cap=5, seed=0)
    assert (data.labels["lang"][rows] == 0).sum() == 5 and (data.labels["lang"][rows] == 1).sum() == 4


def test_a_second_refit_keeps_the_first_record(refitted, tmp_path):
    _, out = refitted
    refit_heads(
        RefitConfig(
            model=str(out), output_dir=str(tmp_path / "again"), heads=("sentiment",), rows_per_label=10, threads=1
        )
    )
    refits = json.loads((tmp_path / "again" / "training.json").read_text())["refits"]
    assert [sorted(r["heads"]) for r in refits] == [["lang", "troll"], ["sentiment"]]


def test_refitted_folder_exports(refitted, tmp_path):
    from earful.export.build import export_bundle
    from earful.models.predictor import Predictor

    _, out = refitted
    bundle = export_bundle(
        out, tmp_path / "bundle", name="refit-test", version="0.0.1", card="## Data\nSynthetic.", int8=False
    )
    [p] = Predictor.load(bundle, variant="fp32", threads=1).predict(["danke für die schnelle hilfe mit fall 3"])
    assert p.lang.code in ("en", "es", "de")
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "The lang head was fitted again on the frozen encoder" in card and "The troll head was fitted again" in card


@pytest.mark.parametrize(
    "change, message",
    [
        ({"heads": ("toxicity",)}, "cannot refit 'toxicity'"),
        ({"heads": ()}, "no head"),
        ({"model": "."}, "not a trained model folder"),
    ],
)
def test_refit_errors_say_what_to_change(tiny_run, tiny_data, tmp_path, change, message):
    config = dict(
        model=str(tiny_run), train=[str(tiny_data[0])], validation=[str(tiny_data[1])], output_dir=str(tmp_path / "m")
    )
    with pytest.raises(RefitError, match=message):
        refit_heads(RefitConfig(**{**config, **change}))


def test_refit_refuses_to_overwrite(refitted, tiny_run, tiny_data):
    _, out = refitted
    with pytest.raises(RefitError, match="exists"):
        refit_heads(
            RefitConfig(
                model=str(tiny_run), train=[str(tiny_data[0])], validation=[str(tiny_data[1])], output_dir=str(out)
            )
        )


def test_keep_better_keeps_a_trained_head_the_refit_does_not_beat(tiny_run, tmp_path, monkeypatch):
    import earful.training.refit as refit

    # a "fit" that returns an all-zero layer: every row gets the same logits, which no trained head scores below
    monkeypatch.setattr(refit, "fit_head", lambda head, x, y, w, b, *a: (np.zeros_like(w), np.zeros_like(b)))
    out = tmp_path / "kept"
    result = refit_heads(
        RefitConfig(model=str(tiny_run), output_dir=str(out), heads=("lang",), keep_better=True, threads=1)
    )
    [h] = result.heads
    assert not h.applied and h.validation_macro_f1_after < h.validation_macro_f1_before
    assert load_file(str(out / "model.safetensors"))["heads.lang.weight"].any()
    trained = json.loads((tiny_run / "best" / "training.json").read_text())
    assert json.loads((out / "training.json").read_text())["validation_macro_f1"] == trained["validation_macro_f1"]
    assert (
        json.loads((out / "calibration.json").read_text())["temperature"]
        == json.loads((tiny_run / "best" / "calibration.json").read_text())["temperature"]
    )
    from earful.export.build import export_bundle

    card = (
        export_bundle(out, tmp_path / "bundle", name="kept", version="0.0.1", card="## Data\nSynthetic.", int8=False)
        / "MODEL_CARD.md"
    ).read_text()
    assert "A refit of the lang head on the frozen encoder" in card and "the trained head was kept" in card
    # without the flag the worse head is what the user asked for
    result = refit_heads(
        RefitConfig(model=str(tiny_run), output_dir=str(tmp_path / "asked"), heads=("lang",), threads=1)
    )
    assert (
        result.heads[0].applied
        and not load_file(str(tmp_path / "asked" / "model.safetensors"))["heads.lang.weight"].any()
    )


def test_the_card_lists_every_run_that_made_the_model_with_its_recorded_time(
    refitted, tiny_run, tiny_base, tiny_data, tmp_path
):
    from conftest import tiny_config

    from earful.export.build import export_bundle
    from earful.training.trainer import train

    _, refit_out = refitted
    stage2 = train(tiny_config(tmp_path / "stage2", tiny_base, tiny_data, init_from=str(refit_out), max_steps=3))
    bundle = export_bundle(tmp_path / "stage2", tmp_path / "bundle", name="lineage-test", version="0.0.1", int8=False)
    lineage = json.loads((bundle / "metrics.json").read_text())["lineage"]
    first_run = json.loads((tiny_run / "checkpoint" / "state.json").read_text())
    assert [step["command"] for step in lineage] == ["train", "refit-head", "train"]
    # runs are named by their folder's name, not their local path (docs/architecture.md, "Bundles")
    assert lineage[0]["output_dir"] == tiny_run.name and lineage[0]["steps"] == first_run["step"]
    assert lineage[0]["seconds"] == first_run["seconds"] > 0
    assert lineage[1]["heads"] == ["lang", "troll"] and lineage[1]["rows"] > 0
    assert lineage[2] == {
        "command": "train",
        "output_dir": "stage2",
        "init_from": refit_out.name,
        "steps": 3,
        "seconds": stage2.seconds,
    }
    card = (bundle / "MODEL_CARD.md").read_text()
    section = card.split("## Training runs (as each run recorded its time)\n")[1].split("\n\n")[0].splitlines()
    assert section[0].startswith(f"- `earful train` → `{tiny_run.name}`: {first_run['step']} steps, ")
    assert section[1].startswith(f"- `earful refit-head` of `{tiny_run.name}` (lang, troll): ")
    assert section[2].startswith(f"- `earful train` → `stage2`, from `{refit_out.name}`: 3 steps, ")
