"""Evaluation: metrics against hand-computed values, skipped heads, bootstrap, and the CLI contract."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from earful.eval.evaluate import HeadOutcome, bootstrap_difference, file_metrics, head_outcomes
from earful.labelled import LabelledSet
from earful.models.predictor import LabelScore, LanguageResult, Prediction


def _pred(ct=None, ct_p=None, sent=None, troll=None, lang="en", conf=0.9, is_troll=None):
    cts = ("order_error", "product", "poor_service", "none")
    ct_probs = dict(zip(cts, ct_p, strict=True)) if ct_p else {}
    return Prediction(
        LabelScore(ct, ct_probs),
        LabelScore(sent, {sent: 0.8} if sent else {}),
        troll,
        (troll >= 0.5 if is_troll is None else is_troll) if troll is not None else None,
        LanguageResult(lang, conf, "model"),
        False,
        5,
    )


def _set(**cols):
    n = len(cols["text"])
    s = LabelledSet(name="fx", path=None)
    s.text = cols["text"]
    for k in ("complaint_type", "sentiment", "troll", "lang"):
        setattr(s, k, cols.get(k, [None] * n))
    s.source = ["fx"] * n
    s.id = [str(i) for i in range(n)]
    return s


def test_complaint_metrics_by_hand_including_coarse_rows():
    s = _set(
        text=["a", "b", "c", "d"],
        complaint_type=["order_error", "none", "complaint", "product"],
        lang=["en", "en", "en", "de"],
    )
    preds = [
        _pred("order_error", (0.7, 0.1, 0.1, 0.1)),  # right
        _pred("product", (0.1, 0.6, 0.1, 0.2)),  # wrong (none)
        _pred("poor_service", (0.1, 0.1, 0.7, 0.1)),  # coarse row: binary only, right (a complaint)
        _pred("none", (0.1, 0.2, 0.1, 0.6)),  # wrong
    ]
    m = file_metrics(head_outcomes(s, preds))["complaint_type"]
    assert m["n"] == 3 and m["accuracy"] == pytest.approx(1 / 3)
    # 4-way over 3 fine rows: order_error F1=1; none P=0 (pred once, wrong)...
    # classes present: order_error, none, product
    # order_error: 1.0; product: P=0 (1 pred wrong) R=0 -> 0; none: P=0 R=0 -> 0 => macro 1/3
    assert m["macro_f1"] == pytest.approx(1 / 3)
    # binary over 4 rows: truth C,N,C,C  pred C,C,C,N -> complaint P=2/3 R=2/3 F=2/3; none P=0 R=0 F=0 -> 1/3
    assert m["binary_macro_f1"] == pytest.approx(1 / 3)
    assert m["binary_n"] == 4
    assert set(m["by_lang"]) == {"en", "de"} and m["by_lang"]["de"]["n"] == 1
    # ECE over the 3 fine rows: confidences .7 (right) .6 (wrong) .6 (wrong): bins differ (.7 vs .6)
    assert m["ece"] == pytest.approx((1 / 3) * abs(1 - 0.7) + (2 / 3) * abs(0 - 0.6))


def test_unlabelled_heads_are_skipped_not_failed():
    s = _set(text=["x", "y"], sentiment=["positive", "negative"])
    m = file_metrics(head_outcomes(s, [_pred(sent="positive", lang="en"), _pred(sent="positive", lang="en")]))
    assert set(m) == {"sentiment"}  # no complaint/troll/lang labels: no entries
    assert m["sentiment"]["accuracy"] == 0.5


def test_troll_calibration_uses_the_predicted_labels_confidence():
    s = _set(text=["a", "b"], troll=[1, 0])
    m = file_metrics(head_outcomes(s, [_pred(troll=0.8), _pred(troll=0.3)]))["troll"]
    assert m["accuracy"] == 1.0
    # confidences 0.8 and 0.7, both right: ECE = 0.5*0.2 + 0.5*0.3
    assert m["ece"] == pytest.approx(0.25)


def test_troll_decision_follows_the_threshold_but_calibration_the_probability():
    # a bundle whose threshold is 0.3 flags both posts: the decisions are right, but as probabilities
    # 0.4 (truth 1) and 0.35 (truth 0) say "not a troll" with confidence 0.6 and 0.65, one right, one wrong
    s = _set(text=["a", "b"], troll=[1, 1])
    m = file_metrics(head_outcomes(s, [_pred(troll=0.4, is_troll=True), _pred(troll=0.35, is_troll=True)]))["troll"]
    assert m["accuracy"] == 1.0
    assert m["ece"] == pytest.approx(0.5 * 0.6 + 0.5 * 0.65)
    s = _set(text=["a", "b"], troll=[1, 0])
    m = file_metrics(head_outcomes(s, [_pred(troll=0.4, is_troll=True), _pred(troll=0.35, is_troll=True)]))["troll"]
    assert m["accuracy"] == 0.5
    assert m["ece"] == pytest.approx(0.625 - 0.5)  # one bin: mean confidence 0.625, half of them right
    assert m["by_lang"]["und"]["ece"] == pytest.approx(m["ece"])


def _outcome(y_true, y_pred):
    n = len(y_true)
    return HeadOutcome(["a", "b"], np.array(y_true), np.array(y_pred), np.ones(n), np.arange(n), ["en"] * n)


def test_bootstrap_difference_and_interval():
    truth = [0, 1] * 50
    perfect = _outcome(truth, truth)
    flipped = _outcome(truth, [1 - t for t in truth[:20]] + truth[20:])  # 20 of 100 wrong
    r = bootstrap_difference(flipped, perfect, samples=500)
    assert r["difference"] == pytest.approx(1 - 0.8)  # balanced errors: macro-F1 of flipped is 0.8
    lo, hi = r["ci95"]
    assert 0.1 < lo < r["difference"] < hi < 0.3
    same = bootstrap_difference(perfect, perfect, samples=100)
    assert same["difference"] == 0 and same["ci95"] == [0.0, 0.0]


def test_language_is_compared_on_accuracy_where_one_post_would_sway_macro_f1():
    # 99 English posts and one German; model b also gets the German one right, model a calls it English.
    truth = [0] * 99 + [1]
    a = HeadOutcome(
        ["en", "de"], np.array(truth), np.zeros(100, int), np.ones(100), np.arange(100), ["en"] * 100, None, True
    )
    b = dataclasses.replace(a, y_pred=np.array(truth))
    assert bootstrap_difference(a, b)["difference"] > 0.4  # macro-F1: the one German post weighs as much as English
    r = bootstrap_difference(a, b, metric="accuracy", samples=200)
    assert r["difference"] == pytest.approx(0.01) and r["ci95"][0] >= 0
    with pytest.raises(ValueError, match="macro_f1 or accuracy"):
        bootstrap_difference(a, b, metric="f1")


def test_eval_cli_writes_the_contract(tiny_bundle, tiny_data, tmp_path):
    out = tmp_path / "ev"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "earful.cli",
            "eval",
            str(tiny_data[1]),
            "--bundle",
            str(tiny_bundle),
            "--out",
            str(out),
            "--errors",
            "2",
            "--compare",
            str(tiny_bundle),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())["val"]
    for head in ("complaint_type", "sentiment", "troll", "lang"):
        assert {"n", "accuracy", "macro_f1", "ece", "by_lang"} <= set(m[head]), head
    assert "binary_macro_f1" in m["complaint_type"]
    report = (out / "report.md").read_text()
    assert "Most confident mistakes" in report and "Comparison with tiny-test" in report
    assert (out / "val_sentiment_confusion.png").stat().st_size > 1000
    comp = json.loads((out / "comparison.json").read_text())
    assert comp["files"]["val"]["sentiment"]["difference"] == 0  # a bundle against itself
    assert comp["files"]["val"]["sentiment"]["metric"] == "macro_f1"
    assert comp["files"]["val"]["lang"]["metric"] == "accuracy"
    assert comp["files"]["val"]["lang"]["this"] == m["lang"]["accuracy"]
    binary = comp["files"]["val"]["complaint_binary"]  # complaint vs not, a target figure of its own
    assert binary["metric"] == "macro_f1" and binary["this"] == m["complaint_type"]["binary_macro_f1"]


def test_baselines_are_scored_on_the_same_rows_for_the_heads_they_cover(tiny_bundle, tiny_data, tmp_path):
    from sklearn.metrics import f1_score

    from earful.eval.baselines import TfidfBaseline
    from earful.eval.run import run_eval
    from earful.labelled import read_labelled

    run_eval(
        [str(tiny_data[1])],
        tmp_path / "ev",
        bundle=str(tiny_bundle),
        baselines=["tfidf", "langdetect"],
        baseline_train=[str(tiny_data[0])],
    )
    ref = json.loads((tmp_path / "ev" / "baselines.json").read_text())["val"]
    assert set(ref["complaint_type"]) == set(ref["sentiment"]) == set(ref["troll"]) == {"tfidf"}
    assert set(ref["lang"]) == {"langdetect"}
    # the tfidf figure is the macro-F1 of its own predictions on the rows with a fine complaint type
    val = read_labelled(tiny_data[1])
    model = TfidfBaseline.fit([read_labelled(tiny_data[0])])
    rows = [i for i, v in enumerate(val.complaint_type) if v in ("order_error", "product", "poor_service", "none")]
    preds = model.predict([val.text[i] for i in rows])
    expected = f1_score(
        [val.complaint_type[i] for i in rows],
        [p.complaint_type.label for p in preds],
        average="macro",
        labels=["order_error", "product", "poor_service", "none"],
        zero_division=0,
    )
    assert ref["complaint_type"]["tfidf"]["macro_f1"] == pytest.approx(expected)
    assert "Baselines on the same rows" in (tmp_path / "ev" / "report.md").read_text()


def test_tfidf_baseline_needs_training_files(tiny_bundle, tiny_data, tmp_path):
    from earful.eval.run import run_eval

    with pytest.raises(ValueError, match="--baseline-train"):
        run_eval([str(tiny_data[1])], tmp_path / "ev", bundle=str(tiny_bundle), baselines=["tfidf"])


def test_published_figures_put_the_baselines_beside_each_figure():
    from earful.eval.results import quality_figures

    metrics = {
        "olid": {"troll": {"macro_f1": 0.81}},
        "lingua_sentences": {
            "lang": {"by_lang": {"en": {"accuracy": 1.0}, "de": {"accuracy": 0.9}, "xx": {"accuracy": 0.0}}}
        },
    }
    baselines = {
        "olid": {"troll": {"tfidf": {"macro_f1": 0.7}}},
        "lingua_sentences": {"lang": {"lingua": {"by_lang": {"en": {"accuracy": 0.5}, "de": {"accuracy": 1.0}}}}},
    }
    rows = {r["figure"]: r for r in quality_figures(metrics, baselines, ["en", "de"])}
    olid = rows["troll macro-F1, OLID"]
    assert olid["value"] == 0.81 and olid["goal"] == 0.80 and olid["note"] == "same rows: tfidf 0.700"
    lid = rows["language accuracy, sentences, mean of head languages"]
    assert lid["value"] == pytest.approx(0.95)  # xx is not a head language: left out
    assert lid["note"] == "same rows: lingua 0.750"
    assert rows["troll macro-F1, mean of OffensEval 2020 languages"]["value"] is None


def test_int8_drops_beyond_half_a_point_get_a_paired_interval():
    from earful.eval.results import drift_intervals

    truth = [0, 1] * 50
    fp32 = {"f": {"sentiment": _outcome(truth, truth), "troll": _outcome(truth, truth)}}
    int8 = {
        "f": {"sentiment": _outcome(truth, [1 - truth[0]] + truth[1:]), "troll": _outcome(truth, truth)}
    }  # one post flips
    drift = {"f/sentiment": int8["f"]["sentiment"].metrics()["macro_f1"] - 1.0, "f/troll": 0.0}
    out = drift_intervals(drift, int8, fp32)
    assert list(out) == ["f/sentiment"]
    assert out["f/sentiment"]["difference"] == pytest.approx(drift["f/sentiment"])
    lo, hi = out["f/sentiment"]["ci95"]
    assert lo < out["f/sentiment"]["difference"] <= hi <= 0.0


def test_a_run_without_fp32_keeps_the_last_int8_comparison_with_its_bundle():
    from earful.eval.results import _drift_lines, _last_drift

    measured = {
        "bundle": "m 1.0",
        "int8_minus_fp32_macro_f1": {"f/sentiment": -0.002, "g/troll": -0.01},
        "int8_minus_fp32_ci95_beyond_half_point": {"g/troll": {"difference": -0.01, "ci95": [-0.03, 0.0]}},
    }
    last = _last_drift(measured)
    assert last["bundle"] == "m 1.0" and last["drift"] == measured["int8_minus_fp32_macro_f1"]
    # a later run without fp32 carries it on, still named by the bundle that was measured
    assert (
        _last_drift({"bundle": "m 1.1", "int8_minus_fp32_macro_f1": None, "int8_minus_fp32_last_measured": last})
        == last
    )
    assert _last_drift({"bundle": "m 1.1", "int8_minus_fp32_macro_f1": None}) is None
    lines = _drift_lines(last["drift"], last["ci95"])
    assert "largest drop 1.00 points (g/troll), 1 of 2" in lines[0] and "g/troll -1.00 [-3.00, +0.00]" in lines[1]
