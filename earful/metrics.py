"""Classification metrics shared by training (early stopping, calibration) and eval.

Plain numpy, no scikit-learn: the formulas are the textbook ones and are checked
against hand-computed values in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassReport:
    precision: float
    recall: float
    f1: float
    support: int


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def per_class(cm: np.ndarray) -> list[ClassReport]:
    out = []
    for k in range(cm.shape[0]):
        tp = cm[k, k]
        predicted = cm[:, k].sum()
        actual = cm[k, :].sum()
        p = tp / predicted if predicted else 0.0
        r = tp / actual if actual else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        out.append(ClassReport(float(p), float(r), float(f), int(actual)))
    return out


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean F1 over the classes present in ``y_true`` or ``y_pred`` (a class that
    never occurs either way is not counted, as in scikit-learn's default labels)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    present = (cm.sum(0) + cm.sum(1)) > 0
    if not present.any():
        return 0.0
    return float(np.mean([r.f1 for r, keep in zip(per_class(cm), present, strict=True) if keep]))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true = np.asarray(y_true)
    return float((y_true == np.asarray(y_pred)).mean()) if len(y_true) else 0.0


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE with equal-width confidence bins: sum over bins of
    (bin share) × |accuracy in bin − mean confidence in bin|."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(confidence) == 0:
        return 0.0
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> list[dict]:
    """Per-bin (range, count, mean confidence, accuracy) for reliability plots."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    out = []
    for b in range(n_bins):
        in_bin = bins == b
        n = int(in_bin.sum())
        out.append(
            {
                "lo": b / n_bins,
                "hi": (b + 1) / n_bins,
                "n": n,
                "confidence": float(confidence[in_bin].mean()) if n else None,
                "accuracy": float(correct[in_bin].mean()) if n else None,
            }
        )
    return out


def binary_calibration_inputs(p_positive: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a binary head, calibration is judged on the predicted label's
    confidence, max(p, 1-p), and whether that label was right."""
    p_positive = np.asarray(p_positive, dtype=np.float64)
    pred = (p_positive >= 0.5).astype(np.int64)
    return np.where(pred == 1, p_positive, 1 - p_positive), (pred == np.asarray(y)).astype(np.float64)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64) / temperature))
