"""Metrics against values computed by hand."""

import numpy as np
import pytest

from earful.metrics import accuracy, confusion_matrix, expected_calibration_error, macro_f1, per_class
from earful.training.calibrate import fit_temperature


def test_confusion_and_macro_f1_by_hand():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    cm = confusion_matrix(y, p, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    reports = per_class(cm)
    # class 0: P=1/2 R=1/2 F=1/2; class 1: P=2/3 R=1 F=0.8; class 2: P=1 R=1/2 F=2/3
    assert [round(r.f1, 6) for r in reports] == [0.5, 0.8, round(2 / 3, 6)]
    assert macro_f1(y, p, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert accuracy(y, p) == pytest.approx(4 / 6)


def test_macro_f1_ignores_classes_absent_from_both():
    assert macro_f1(np.array([0, 0]), np.array([0, 0]), 4) == 1.0


def test_ece_by_hand():
    # bin [0.8,0.867): conf 0.8 ×2, one right -> |0.5-0.8|=0.3, share 0.5
    # bin [0.6,0.667): conf 0.6 ×2, both right -> |1-0.6|=0.4, share 0.5
    conf = np.array([0.8, 0.8, 0.6, 0.6])
    correct = np.array([1, 0, 1, 1])
    assert expected_calibration_error(conf, correct, n_bins=15) == pytest.approx(0.5 * 0.3 + 0.5 * 0.4)


def test_temperature_scaling_recovers_overconfidence():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 3)) * 2
    probs = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=p) for p in probs])
    t = fit_temperature(true_logits * 3.0, y, binary=False)  # logits 3x too confident
    assert t == pytest.approx(3.0, rel=0.1)
