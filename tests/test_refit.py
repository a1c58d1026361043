"""Refitting one head on the frozen encoder (training/refit.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from earful.training.refit import RefitConfig, RefitError, fit_linear, refit_head


def test_fit_linear_separates_what_a_linear_model_can():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)).astype(np.float32) * 3
    y = rng.integers(0, 3, 600)
    x = (centres[y] + rng.normal(size=(600, 8))).astype(np.float32)
    w, b = fit_linear(x, y, np.zeros((3, 8), np.float32), np.zeros(3, np.float32), weight_decay=1e-4, max_iterations=200)
    assert np.mean((x @ w.T + b).argmax(1) == y) > 0.97
    # the penalty shrinks the weights
    w_strong, _ = fit_linear(x, y, np.zeros((3, 8), np.float32), np.zeros(3, np.float32), weight_decay=1.0, max_iterations=200)
    assert np.abs(w_strong).sum() < 0.5 * np.abs(w).sum()


@pytest.fixture(scope="module")
def refitted(tmp_path_factory, tiny_run, tiny_data):
    out = tmp_path_factory.mktemp("refit") / "model"
    # no files given: the refit reads the ones the run was trained and validated on from its training.json
    config = RefitConfig(model=str(tiny_run), output_dir=str(out), head="lang", rows_per_label=20, threads=1)
    return refit_head(config), out


def test_refit_changes_only_that_head(refitted, tiny_run):
    result, out = refitted
    before, after = load_file(str(tiny_run / "best" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys()
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed == {"heads.lang.weight", "heads.lang.bias"}
    old = json.loads((tiny_run / "best" / "calibration.json").read_text())["temperature"]
    new = json.loads((out / "calibration.json").read_text())["temperature"]
    assert {k: v for k, v in new.items() if k != "lang"} == {k: v for k, v in old.items() if k != "lang"}
    record = json.loads((out / "training.json").read_text())["refit"]
    assert record["head"] == "lang" and record["validation_macro_f1_after"] == result.validation_macro_f1_after
    scores = json.loads((out / "training.json").read_text())["validation_macro_f1"]
    assert scores["lang"] == result.validation_macro_f1_after
    assert record["validation_macro_f1_before"] == pytest.approx(
        json.loads((tiny_run / "best" / "training.json").read_text())["validation_macro_f1"]["lang"], abs=1e-4)
    # 3 languages x at most 20 rows each, from one source per language
    assert 0 < result.train_rows <= 60
    assert result.validation_macro_f1_after >= result.validation_macro_f1_before


def test_refitted_folder_exports(refitted, tmp_path):
    from earful.models.export import export_bundle
    from earful.models.predictor import Predictor

    _, out = refitted
    bundle = export_bundle(out, tmp_path / "bundle", name="refit-test", version="0.0.1", card="## Data\nSynthetic.", int8=False)
    [p] = Predictor.load(bundle, variant="fp32", threads=1).predict(["danke für die schnelle hilfe mit fall 3"])
    assert p.lang.code in ("en", "es", "de")
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "The lang head was fitted again on the frozen encoder" in card


@pytest.mark.parametrize("change, message", [({"head": "troll"}, "cannot be refitted"), ({"model": "."}, "not a trained model folder")])
def test_refit_errors_say_what_to_change(tiny_run, tiny_data, tmp_path, change, message):
    config = dict(model=str(tiny_run), train=[str(tiny_data[0])], validation=[str(tiny_data[1])], output_dir=str(tmp_path / "m"))
    with pytest.raises(RefitError, match=message):
        refit_head(RefitConfig(**{**config, **change}))


def test_refit_refuses_to_overwrite(refitted, tiny_run, tiny_data):
    _, out = refitted
    with pytest.raises(RefitError, match="exists"):
        refit_head(RefitConfig(model=str(tiny_run), train=[str(tiny_data[0])], validation=[str(tiny_data[1])], output_dir=str(out)))
