"""The troll head's decision threshold: the probability at which a post is flagged as trolling.

The troll probability is calibrated (temperature scaling), so 0.5 is where trolling becomes more likely
than not, and a flag there is right more often than any other single cut. But trolls are the minority of
posts (13–49% of the validation rows of each troll-labelled set), and a care team that sets flagged posts
aside weighs missing a troll and flagging a genuine post both, as macro-F1 does. At 0.5 the 0.4.0 default
model flagged 43% of OLID's offensive validation posts; the cut that maximises macro-F1 lies lower.

This module picks that cut from the bundle's own predictions (the served variant, so int8 rounding is
included) on the troll-labelled rows of validation files, all sources pooled: one number for every
source and language, chosen on many rows rather than tuned to the file a figure is reported on. The
probability itself is returned unchanged; the threshold only sets ``Prediction.is_troll``, which the
service's label counters, batch scoring, the batch report and ``earful eval`` all read.

    earful threshold models/default --version 0.4.1

``earful export`` runs the same fit on the validation files the model was trained with.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from earful.export.writer import BundleWriter, portable
from earful.labelled import read_labelled
from earful.metrics import macro_f1
from earful.models.bundle import BUNDLE_FILE, DEFAULT_TROLL_THRESHOLD, Bundle

#: Candidate thresholds: 0.05, 0.06, …, 0.95.
GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)
#: Fewer rows than this of either class and the fit is not attempted (the threshold stays 0.5).
MIN_ROWS_PER_CLASS = 20
CARD_HEADING = "## Troll decision threshold"


class ThresholdError(ValueError):
    """The threshold cannot be fitted; the message says what is missing."""


@dataclass(frozen=True)
class ThresholdFit:
    """A chosen threshold and what it does on the rows it was chosen on."""

    threshold: float
    macro_f1: float
    macro_f1_at_half: float
    rows: int
    trolls: int
    files: list[str]
    variant: str


def best_threshold(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """``(threshold, macro-F1)`` maximising macro-F1 of ``p >= threshold`` against ``y`` (0/1) over
    :data:`GRID`; among equal scores the one nearest 0.5."""
    scores = np.array([macro_f1(y, (p >= t).astype(int), 2) for t in GRID])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    i = best[np.argmin(np.abs(GRID[best] - DEFAULT_TROLL_THRESHOLD))]
    return float(GRID[i]), float(scores[i])


def troll_rows(files: list[str | Path]) -> tuple[list[str], np.ndarray]:
    """Texts and 0/1 troll labels of the rows of ``files`` that carry a troll label."""
    texts, labels = [], []
    for f in files:
        s = read_labelled(f, require_text=False)
        for text, y in zip(s.text, s.troll, strict=True):
            if y is not None and text and text.strip():
                texts.append(text)
                labels.append(y)
    return texts, np.array(labels, dtype=int)


def training_validation_files(bundle: Bundle) -> list[str]:
    """The validation files the bundle's training used (its provenance.json), those at hand here."""
    provenance = bundle.path / "provenance.json"
    named = json.loads(provenance.read_text()).get("training", {}).get("validation", []) if provenance.exists() else []
    return [f for f in named if Path(f).is_file()]


def fit_threshold(bundle: Bundle, files: list[str | Path], variant: str = "int8", batch_size: int = 64) -> ThresholdFit:
    """Run ``bundle`` (its ``variant``) on the troll-labelled rows of ``files`` and choose the threshold."""
    from earful.models.predictor import Predictor

    texts, y = troll_rows(files)
    trolls = int(y.sum())
    if min(trolls, len(y) - trolls) < MIN_ROWS_PER_CLASS:
        raise ThresholdError(
            f"{len(y)} troll-labelled rows in {', '.join(map(str, files)) or 'no files'} "
            f"({trolls} trolls): need at least {MIN_ROWS_PER_CLASS} of each class to choose a threshold"
        )
    p = Predictor(bundle, variant).probabilities(texts, batch_size).troll
    threshold, score = best_threshold(y, p)
    at_half = macro_f1(y, (p >= DEFAULT_TROLL_THRESHOLD).astype(int), 2)
    return ThresholdFit(threshold, round(score, 4), round(at_half, 4), len(y), trolls, [str(f) for f in files], variant)


def _card_section(fit: ThresholdFit) -> str:
    return "\n".join(
        [
            CARD_HEADING,
            "- A post is flagged as trolling (`is_troll`) when its troll probability is at least "
            f"**{fit.threshold:.2f}**; the probability itself is calibrated and returned unchanged.",
            f"- Chosen to maximise macro-F1 on {fit.rows:,} troll-labelled validation rows ({fit.trolls:,} trolls) of "
            f"{len(fit.files)} files pooled, with this bundle's {fit.variant} model: macro-F1 {fit.macro_f1:.3f} "
            f"there, against {fit.macro_f1_at_half:.3f} at 0.5 (`earful threshold`).",
            "",
        ]
    )


def _with_card_section(card: str, section: str) -> str:
    """``card`` with its threshold section replaced, or inserted before the export parity (or evaluation)
    section, or appended."""
    if CARD_HEADING in card:
        start = card.index(CARD_HEADING)
        end = card.find("\n## ", start)
        return card[:start] + section + (card[end + 1 :] if end >= 0 else "")
    for heading in ("## Export parity", "## Evaluation on validation data"):
        at = card.find("\n" + heading)
        if at >= 0:
            return card[: at + 1] + section + "\n" + card[at + 1 :]
    return card.rstrip("\n") + "\n\n" + section


def record_threshold(writer: BundleWriter, fit: ThresholdFit, version: str | None = None) -> None:
    """Store ``fit`` in the bundle being written: bundle.json (the threshold, and ``version`` when given),
    metrics.json and the model card."""
    changes = {"troll_threshold": fit.threshold, **({"version": version} if version else {})}
    info = writer.update_json(BUNDLE_FILE, changes)
    writer.update_json("metrics.json", {"troll_threshold": portable(asdict(fit))})  # files as any checkout names them
    card = writer.read_text("MODEL_CARD.md")
    if card is not None:
        card = _with_card_section(card, _card_section(fit))
        if version:
            lines = card.split("\n", 1)
            if lines[0].startswith("# "):
                card = f"# {info['name']} {version}\n" + (lines[1] if len(lines) > 1 else "")
        writer.write_text("MODEL_CARD.md", card)
