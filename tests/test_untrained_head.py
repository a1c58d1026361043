"""A model trained without troll labels: the bundle marks its troll head untrained, and every entry point answers
null for it instead of the head's random output."""

import csv
import json

import pytest
from conftest import make_rows, tiny_config, write_csv


@pytest.fixture(scope="module")
def no_troll_bundle(tmp_path_factory, tiny_base):
    from earful.training.trainer import train

    d = tmp_path_factory.mktemp("no_troll")
    data = []
    for name, n, seed in (("train", 6, 1), ("val", 2, 2)):
        rows = [{k: v for k, v in r.items() if k != "troll"} for r in make_rows(n, seed)]
        data.append(write_csv(d / f"{name}.csv", rows))
    train(tiny_config(d / "model", tiny_base, tuple(data)))
    assert json.loads((d / "model" / "best" / "training.json").read_text())["head_training_rows"]["troll"] == 0
    return d, data


def test_export_warns_and_marks_the_head_untrained(no_troll_bundle, capsys):
    from earful.cli import main

    d, _ = no_troll_bundle
    assert main(["export", str(d / "model"), "--out", str(d / "bundle"), "--name", "nt", "--version", "1"]) == 0
    err = capsys.readouterr().err
    assert "earful export: warning: the troll head had no training labels" in err
    info = json.loads((d / "bundle" / "bundle.json").read_text())
    assert info["untrained_heads"] == ["troll"]
    assert "Untrained (no training labels; they answer null): troll." in (d / "bundle" / "MODEL_CARD.md").read_text()


@pytest.fixture(scope="module")
def bundle(no_troll_bundle):
    d, _ = no_troll_bundle
    if not (d / "bundle").exists():
        from earful.export.build import export_bundle

        with pytest.warns(UserWarning):
            export_bundle(d / "model", d / "bundle", name="nt", version="1")
    return d / "bundle"


def test_predictor_and_classify_answer_null_for_the_untrained_head(bundle, capsys):
    from earful.cli import main
    from earful.models.predictor import Predictor

    [p] = Predictor.load(bundle, threads=1).predict(["you are all idiots"])
    assert p.troll is None and p.is_troll is None
    assert p.complaint_type.label is not None and p.sentiment.label is not None
    assert main(["classify", "you are all idiots", "--bundle", str(bundle), "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["troll"] is None and out["is_troll"] is None


def test_batch_scoring_leaves_the_troll_columns_empty(bundle, tmp_path):
    from earful.batch.score import ScoreOptions, score

    src = write_csv(tmp_path / "in.csv", [{"text": "you are all idiots"}, {"text": "my parcel never came"}])
    score(src, tmp_path / "out.csv", ScoreOptions(bundle=str(bundle)), progress=False)
    rows = list(csv.DictReader(open(tmp_path / "out.csv", encoding="utf-8")))
    assert [r["troll"] for r in rows] == ["", ""] and [r["is_troll"] for r in rows] == ["", ""]
    assert all(r["complaint_type"] for r in rows)


def test_eval_skips_the_untrained_head(bundle, tmp_path):
    from earful.eval.run import run_eval

    labelled = write_csv(tmp_path / "with_trolls.csv", make_rows(1, seed=5))  # troll labels present in the file
    result = run_eval([str(labelled)], tmp_path / "eval", bundle=str(bundle), threads=1)
    heads = result.metrics["with_trolls"]
    assert "troll" not in heads and "complaint_type" in heads
