"""``earful eval``: a bundle's predictor on labelled files, scored per head and per language.

The predictions come from :meth:`Predictor.predict`, the code the service runs,
language fallback included, so what is evaluated is what is served.

Macro-F1 averages over the classes present in the gold labels or the
predictions (scikit-learn's default), except for the lang head: there it
averages over the languages in the gold labels of the file (or of the rows
scored, in a per-language breakdown or a bootstrap sample). A model has many
more languages than a file holds, and a wrong guess already costs the true
language its recall; counting each wrongly guessed language as a class with F1
0 on top would make the figure depend on how many other languages the errors
happen to spread over.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from earful.labelled import LabelledSet
from earful.metrics import (
    accuracy,
    binary_calibration_inputs,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    per_class,
    reliability_bins,
)
from earful.models.predictor import Prediction, Predictor
from earful.schema import COMPLAINT, COMPLAINT_TYPES, NOT_A_COMPLAINT, SENTIMENTS, TASK_NAMES

HEADS = TASK_NAMES
BOOTSTRAP_SAMPLES = 1000


@dataclass
class HeadOutcome:
    """Per-row truth, prediction and confidence for one head of one file, as
    class indices into ``labels`` (kept so reports, comparisons and error lists
    need no second model run)."""

    labels: list[str]
    y_true: np.ndarray
    y_pred: np.ndarray
    confidence: np.ndarray
    rows: np.ndarray
    langs: list[str | None]
    #: ``(confidence, correct)`` per row for calibration, where it is judged on another label than the
    #: prediction: the troll head decides at the bundle's threshold, but its probability is calibrated,
    #: and judged, on the more probable class. None: the prediction's confidence and correctness.
    calibration: tuple[np.ndarray, np.ndarray] | None = None
    #: Average macro-F1 over the classes in the gold labels only (the lang head; see the module docstring).
    gold_classes_only: bool = False

    def macro_f1(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        """Macro-F1 of these rows (class indices into ``labels``) by this head's convention."""
        if not self.gold_classes_only:
            return macro_f1(y_true, y_pred, len(self.labels))
        reports = per_class(confusion_matrix(y_true, y_pred, len(self.labels)))
        gold = [r.f1 for r in reports if r.support]
        return float(np.mean(gold)) if gold else 0.0

    def calibration_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        if self.calibration is not None:
            return self.calibration
        return self.confidence, (self.y_true == self.y_pred).astype(float)

    def metrics(self) -> dict:
        n_classes = len(self.labels)
        confidence, correct = self.calibration_inputs()
        cm = confusion_matrix(self.y_true, self.y_pred, n_classes)
        return {
            "n": int(len(self.y_true)),
            "accuracy": accuracy(self.y_true, self.y_pred),
            "macro_f1": self.macro_f1(self.y_true, self.y_pred),
            "ece": expected_calibration_error(confidence, correct),
            "per_class": {label: vars(r) for label, r in zip(self.labels, per_class(cm), strict=True)},
            "confusion": {"labels": self.labels, "matrix": cm.tolist()},
            "reliability": reliability_bins(confidence, correct),
        }


def head_outcomes(s: LabelledSet, preds: list[Prediction]) -> dict[str, HeadOutcome]:
    """Truth vs prediction per head, over the rows that head has labels for.
    Empty posts (nothing to classify) count as wrong where they carry a label."""
    out: dict[str, HeadOutcome] = {}
    langs = s.lang

    def build(labels, truth_of, pred_of):
        index = {label: k for k, label in enumerate(labels)}
        rows, yt, yp, conf = [], [], [], []
        for i, p in enumerate(preds):
            truth = truth_of(i)
            if truth is None:
                continue
            label, c = pred_of(p)
            if label not in index:  # e.g. a language the truth never uses: add it as a class
                index[label] = len(labels)
                labels.append(label)
            rows.append(i)
            yt.append(index[truth])
            yp.append(index[label])
            conf.append(c)
        if rows:
            return HeadOutcome(
                labels,
                np.array(yt),
                np.array(yp),
                np.array(conf, dtype=float),
                np.array(rows),
                [langs[r] for r in rows],
            )
        return None

    def scored(p) -> tuple[str, float]:  # p: a LabelScore
        if p.label is None:
            return "(empty)", 1.0
        return p.label, p.probabilities[p.label]

    fine = build(
        list(COMPLAINT_TYPES),
        lambda i: s.complaint_type[i] if s.complaint_type[i] in COMPLAINT_TYPES else None,
        lambda p: scored(p.complaint_type),
    )
    if fine:
        out["complaint_type"] = fine

    def is_complaint(i):
        v = s.complaint_type[i]
        return None if v is None else ("complaint" if v in (*COMPLAINT_TYPES[:3], COMPLAINT) else NOT_A_COMPLAINT)

    def binary_pred(p):
        if p.complaint_type.label is None:
            return "(empty)", 1.0
        p_none = p.complaint_type.probabilities[NOT_A_COMPLAINT]
        return ("complaint", 1 - p_none) if p_none < 0.5 else (NOT_A_COMPLAINT, p_none)

    binary = build(["complaint", NOT_A_COMPLAINT], is_complaint, binary_pred)
    if binary:
        out["complaint_binary"] = binary
    sent = build(list(SENTIMENTS), lambda i: s.sentiment[i], lambda p: scored(p.sentiment))
    if sent:
        out["sentiment"] = sent

    def troll_pred(p):
        if p.troll is None:
            return "(empty)", 1.0
        return ("1", p.troll) if p.is_troll else ("0", 1 - p.troll)

    troll = build(["0", "1"], lambda i: None if s.troll[i] is None else str(s.troll[i]), troll_pred)
    if troll:
        p_troll = np.array([np.nan if preds[r].troll is None else preds[r].troll for r in troll.rows])
        conf, correct = binary_calibration_inputs(
            np.nan_to_num(p_troll), troll.y_true
        )  # labels "0", "1": index = class
        empty = np.isnan(p_troll)  # counted wrong with full confidence, as for the other heads
        troll.calibration = (np.where(empty, 1.0, conf), np.where(empty, 0.0, correct))
        out["troll"] = troll
    lang = build(sorted({v for v in s.lang if v}), lambda i: s.lang[i], lambda p: (p.lang.code, p.lang.confidence))
    if lang:
        lang.gold_classes_only = True
        out["lang"] = lang
    return out


def file_metrics(outcomes: dict[str, HeadOutcome]) -> dict:
    """metrics.json's entry for one file: per head, with a by-language breakdown."""
    result: dict = {}
    for head in HEADS:
        o = outcomes.get(head)
        if o is None:
            continue  # a head with no labels in this file is skipped, not failed
        m = o.metrics()
        if head == "complaint_type" and "complaint_binary" in outcomes:
            b = outcomes["complaint_binary"]
            m["binary_macro_f1"] = macro_f1(b.y_true, b.y_pred, len(b.labels))
            m["binary_n"] = int(len(b.y_true))
        m["by_lang"] = by_lang(o)
        result[head] = m
    if "complaint_type" not in result and "complaint_binary" in outcomes:  # only coarse labels: report the binary view
        b = outcomes["complaint_binary"]
        m = b.metrics()
        m["binary_macro_f1"] = m["macro_f1"]
        m["by_lang"] = by_lang(b)
        result["complaint_type"] = m
    return result


def by_lang(o: HeadOutcome) -> dict:
    out = {}
    langs = np.array([lang or "und" for lang in o.langs])
    confidence, correct = o.calibration_inputs()
    for code in sorted(set(langs)):
        sel = langs == code
        yt, yp = o.y_true[sel], o.y_pred[sel]
        out[code] = {
            "n": int(sel.sum()),
            "accuracy": accuracy(yt, yp),
            "macro_f1": o.macro_f1(yt, yp),
            "ece": expected_calibration_error(confidence[sel], correct[sel]),
        }
    return out


def bootstrap_difference(
    a: HeadOutcome, b: HeadOutcome, metric: str = "macro_f1", samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> dict:
    """Paired bootstrap over rows of the difference (b − a) in ``metric`` (``macro_f1``, by ``a``'s convention, or
    ``accuracy``): the same resampled rows score both models. Returns the difference and its 95% CI."""
    if metric not in ("macro_f1", "accuracy"):
        raise ValueError(f"metric must be macro_f1 or accuracy, not {metric!r}")
    if not np.array_equal(a.rows, b.rows):
        raise ValueError("the two outcomes cover different rows; cannot pair them")
    labels = list(dict.fromkeys(a.labels + b.labels))
    remap_a = np.array([labels.index(x) for x in a.labels])
    remap_b = np.array([labels.index(x) for x in b.labels])
    yt = remap_a[a.y_true]
    pa, pb = remap_a[a.y_pred], remap_b[b.y_pred]
    n = len(yt)
    score = dataclasses.replace(a, labels=labels).macro_f1 if metric == "macro_f1" else accuracy
    rng = np.random.default_rng(seed)
    diffs = np.empty(samples)
    for s in range(samples):
        idx = rng.integers(0, n, size=n)
        diffs[s] = score(yt[idx], pb[idx]) - score(yt[idx], pa[idx])
    return {
        "difference": score(yt, pb) - score(yt, pa),
        "ci95": [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))],
        "samples": samples,
    }


def most_confident_errors(s: LabelledSet, o: HeadOutcome, n: int) -> list[dict]:
    wrong = np.flatnonzero(o.y_true != o.y_pred)
    wrong = wrong[np.argsort(-o.confidence[wrong], kind="stable")][:n]
    return [
        {
            "row": int(o.rows[i]),
            "id": s.id[o.rows[i]],
            "text": s.text[o.rows[i]],
            "truth": o.labels[o.y_true[i]],
            "predicted": o.labels[o.y_pred[i]],
            "confidence": float(o.confidence[i]),
        }
        for i in wrong
    ]


def predict_set(predictor: Predictor, s: LabelledSet, batch_size: int = 64, progress=None) -> list[Prediction]:
    """Run the predictor over a file in chunks (so a progress bar can move)."""
    preds: list[Prediction] = []
    chunk = 1024
    for start in range(0, len(s), chunk):
        preds.extend(predictor.predict(s.text[start : start + chunk], batch_size=batch_size))
        if progress is not None:
            progress.update(min(chunk, len(s) - start))
    return preds
