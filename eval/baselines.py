"""Reference models scored with the same code as the bundle, so every number in an
evaluation has a reference next to it.

* ``tfidf``: TF-IDF over character 1-4-grams (within word boundaries, so it works
  for scripts without spaces too) and one logistic regression per head, trained on
  the training files given (the same data a bundle learns from). It covers the
  complaint type, sentiment and troll heads.
* ``langdetect`` and ``lingua``: the two usual language identifiers, for the lang
  head (lingua in its high-accuracy mode, all its languages).

Each baseline has the predictor's ``predict(texts, batch_size=...)`` and returns
:class:`~earful.models.predictor.Prediction` objects, so
:func:`earful.eval.evaluate.head_outcomes` scores it exactly like a bundle. Heads
a baseline does not cover come back empty and are left out of its results.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from earful.labelled import LabelledSet
from earful.models.predictor import LabelScore, LanguageResult, Prediction
from earful.schema import COMPLAINT_TYPES, SENTIMENTS, UNDETERMINED

BASELINES = ("tfidf", "langdetect", "lingua")
#: Which heads each baseline answers for (the others are not its job).
COVERS = {"tfidf": ("complaint_type", "sentiment", "troll"), "langdetect": ("lang",), "lingua": ("lang",)}


@dataclass
class TfidfBaseline:
    """One vectorizer shared by the heads, one logistic regression per head."""

    vectorizer: object
    models: dict

    name = "tfidf"

    @classmethod
    def fit(cls, sets: list[LabelledSet], max_rows_per_head: int = 60_000, seed: int = 0) -> TfidfBaseline:
        """Train on every row that has the head's label (a seeded sample of at most
        ``max_rows_per_head`` per head keeps it to a few CPU minutes)."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        texts = [t for s in sets for t in s.text]
        labels = {
            "complaint_type": [v if v in COMPLAINT_TYPES else None for s in sets for v in s.complaint_type],
            "sentiment": [v for s in sets for v in s.sentiment],
            "troll": [None if v is None else str(v) for s in sets for v in s.troll],
        }
        rng = random.Random(seed)
        rows = {}
        for head, ys in labels.items():
            idx = [i for i, y in enumerate(ys) if y is not None and texts[i] and texts[i].strip()]
            if len(idx) > max_rows_per_head:
                idx = sorted(rng.sample(idx, max_rows_per_head))
            rows[head] = idx
        fit_rows = sorted(set().union(*rows.values()))
        if not fit_rows:
            raise ValueError("the baseline's training files have no complaint_type, sentiment or troll labels")
        vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(1, 4), min_df=2, max_features=300_000, sublinear_tf=True, dtype=np.float32
        )
        vectorizer.fit([texts[i] for i in fit_rows])
        models = {}
        for head, idx in rows.items():
            if len({labels[head][i] for i in idx}) < 2:
                continue
            x = vectorizer.transform([texts[i] for i in idx])
            models[head] = LogisticRegression(max_iter=1000, C=4.0, class_weight="balanced").fit(
                x, [labels[head][i] for i in idx]
            )
        return cls(vectorizer, models)

    def predict(self, texts: list[str], batch_size: int = 0) -> list[Prediction]:
        empty = [not t or not t.strip() for t in texts]
        x = self.vectorizer.transform([t or "" for t in texts])
        probs = {head: (m.classes_, m.predict_proba(x)) for head, m in self.models.items()}

        def score(head: str, order: tuple[str, ...], i: int) -> LabelScore:
            if head not in probs or empty[i]:
                return LabelScore(None)
            classes, p = probs[head]
            d = {c: float(v) for c, v in zip(classes, p[i], strict=True)}
            d = {label: d.get(label, 0.0) for label in order}
            return LabelScore(max(d, key=d.get), d)

        out = []
        for i in range(len(texts)):
            troll = None
            if "troll" in probs and not empty[i]:
                classes, p = probs["troll"]
                troll = float(p[i][list(classes).index("1")])
            # the classifier's own decision (its larger class probability)
            is_troll = None if troll is None else troll >= 0.5
            out.append(
                Prediction(
                    score("complaint_type", COMPLAINT_TYPES, i),
                    score("sentiment", SENTIMENTS, i),
                    troll,
                    is_troll,
                    LanguageResult(UNDETERMINED, 0.0, "rule"),
                    False,
                    0,
                    "empty" if empty[i] else "ok",
                )
            )
        return out


class LanguageIdBaseline:
    """langdetect or lingua as a language-only predictor."""

    def __init__(self, name: str):
        if name == "langdetect":
            from earful.models.language import langdetect_guess

            self._detect = lambda t: langdetect_guess(t) or (UNDETERMINED, 0.0)
        elif name == "lingua":
            from lingua import LanguageDetectorBuilder

            detector = LanguageDetectorBuilder.from_all_languages().build()

            def detect(t: str) -> tuple[str, float]:
                values = detector.compute_language_confidence_values(t)
                if not values:
                    return UNDETERMINED, 0.0
                return values[0].language.iso_code_639_1.name.lower(), float(values[0].value)

            self._detect = detect
        else:
            raise ValueError(f"unknown language-ID baseline {name!r}; choose from langdetect, lingua")
        self.name = name

    def predict(self, texts: list[str], batch_size: int = 0) -> list[Prediction]:
        out = []
        for t in texts:
            code, conf = self._detect(t) if t and t.strip() else (UNDETERMINED, 0.0)
            out.append(
                Prediction(
                    LabelScore(None), LabelScore(None), None, None, LanguageResult(code, conf, self.name), False, 0
                )
            )
        return out
