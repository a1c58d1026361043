"""The troll decision threshold: the fit, `earful threshold` on a bundle, and export choosing one."""

import json
import shutil

import numpy as np
import pytest
from conftest import make_rows, write_csv

from earful.cli import main
from earful.export.threshold import CARD_HEADING, best_threshold
from earful.export.writer import edit_bundle
from earful.models.bundle import Bundle
from earful.models.predictor import Predictor


def test_best_threshold_separates_and_prefers_the_cut_nearest_half():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.30, 0.35, 0.40, 0.10, 0.20, 0.25, 0.05])
    # any cut in (0.25, 0.30] is perfect; of the grid's 0.26 … 0.30 the one nearest 0.5
    assert best_threshold(y, p) == (0.30, 1.0)
    # where 0.5 is as good as any other cut, it stays
    assert best_threshold(np.array([1, 0]), np.array([0.9, 0.1])) == (0.5, 1.0)


@pytest.fixture()
def troll_validation(tmp_path):
    return write_csv(tmp_path / "troll_val.csv", make_rows(6, seed=3))


def test_threshold_command_updates_the_bundle(tiny_bundle, troll_validation, tmp_path, capsys):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    assert main(["threshold", str(bundle), "--version", "0.0.2", "--validation", str(troll_validation)]) == 0
    fit = json.loads(capsys.readouterr().out)
    b = Bundle.load(bundle)  # the manifest was rewritten: it verifies
    assert b.version == "0.0.2" and b.troll_threshold == fit["threshold"] == b.metrics["troll_threshold"]["threshold"]
    assert fit["macro_f1"] >= fit["macro_f1_at_half"] and fit["rows"] > 0 and 0 < fit["trolls"] < fit["rows"]
    card = (bundle / "MODEL_CARD.md").read_text()
    assert card.startswith("# tiny-test 0.0.2\n") and f"**{fit['threshold']:.2f}**" in card

    # the decision follows the stored threshold, whatever it is
    texts = ["you are all idiots and I hope you rot 5", "thanks for the quick help with ticket 9!", "shut up loser 3"]
    for threshold in (0.05, 0.95):
        with edit_bundle(bundle) as writer:
            writer.update_json("bundle.json", {"troll_threshold": threshold})
        preds = Predictor.load(bundle).predict(texts)
        assert [p.is_troll for p in preds] == [p.troll >= threshold for p in preds]

    # a second run replaces the card's section instead of adding one
    assert main(["threshold", str(bundle), "--version", "0.0.3", "--validation", str(troll_validation)]) == 0
    assert (bundle / "MODEL_CARD.md").read_text().count(CARD_HEADING) == 1


def test_threshold_command_needs_trolls_of_both_classes(tiny_bundle, tmp_path, capsys):
    rows = [r for r in make_rows(2, seed=4) if r["troll"] == 0]
    path = write_csv(tmp_path / "no_trolls.csv", rows)
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    before = (bundle / "bundle.json").read_text()
    assert main(["threshold", str(bundle), "--version", "0.0.2", "--validation", str(path)]) == 2
    assert "need at least 20 of each class" in capsys.readouterr().err
    assert (bundle / "bundle.json").read_text() == before


def test_export_chooses_the_threshold_on_training_validation_files(tiny_run, tiny_bundle, troll_validation, tmp_path):
    from earful.export.build import export_bundle

    # the tiny run's own validation file has too few trolls: the shipped fixture bundle keeps 0.5 and says why
    assert Bundle.load(tiny_bundle).troll_threshold == 0.5
    assert "not_fitted" in Bundle.load(tiny_bundle).metrics["troll_threshold"]
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    for training_json in run.rglob("training.json"):
        training = json.loads(training_json.read_text())
        training["config"]["validation"] = [str(troll_validation)]
        training_json.write_text(json.dumps(training))
    out = export_bundle(run, tmp_path / "bundle", name="tiny-test", version="0.0.1", fp32=False)
    b = Bundle.load(out)
    fit = b.metrics["troll_threshold"]
    # the file as the bundle names it: its name, since it lay outside the repository
    assert fit["files"] == [troll_validation.name] and fit["variant"] == "int8"
    assert b.troll_threshold == fit["threshold"] and CARD_HEADING in (out / "MODEL_CARD.md").read_text()
