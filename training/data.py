"""From labelled files to training batches.

Labelled files are validated by :mod:`earful.labelled`, turned into a
``datasets.Dataset`` and tokenized with ``Dataset.map``. Batches come from
:class:`BalancedBatchSampler`: each batch holds rows of one source, sources are
drawn with probability ∝ rows^alpha (so small sources — and the heads only they
label — are not drowned out by big ones), and within a source rows of similar
length are batched together so padding stays small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earful.labelled import LabelledDataError, LabelledSet, read_labelled
from earful.models.ngrams import pad_ngrams
from earful.models.tokenization import TextEncoder
from earful.schema import COMPLAINT, COMPLAINT_TYPES, SENTIMENTS, UNDETERMINED

IGNORE = -100
COARSE_COMPLAINT_ID = len(COMPLAINT_TYPES)  # complaint of unknown type
_BUCKET_BATCHES = 50  # rows of this many batches are length-sorted together


def load_sets(paths: list[str]) -> list[LabelledSet]:
    return [read_labelled(p) for p in paths]


def infer_languages(sets: list[LabelledSet], min_rows: int) -> list[str]:
    """The lang head's languages: those with ``min_rows`` labelled training rows. Every label column is optional,
    but without enough language labels the head's languages must be named (``languages``, ``--languages``)."""
    counts: dict[str, int] = {}
    for s in sets:
        for lang in s.lang:
            if lang and lang != UNDETERMINED:
                counts[lang] = counts.get(lang, 0) + 1
    langs = sorted(code for code, n in counts.items() if n >= min_rows)
    if not langs:
        per_language = ", ".join(f"{code} {n}" for code, n in sorted(counts.items()))
        found = f"no language has {min_rows}+ labelled rows ({per_language})" if counts else "no row has a lang label"
        raise LabelledDataError(
            f"{', '.join(str(s.path) for s in sets)}: {found}; add lang labels (ISO 639-1 codes), or name the lang "
            "head's languages with --languages (or `languages` and `min_lang_rows` in a --config recipe)"
        )
    return langs


def encode_labels(s: LabelledSet, languages: list[str]) -> dict[str, np.ndarray]:
    """Label ids per task; IGNORE where unknown (and for languages the head lacks)."""
    ct_index = {c: i for i, c in enumerate(COMPLAINT_TYPES)} | {COMPLAINT: COARSE_COMPLAINT_ID}
    sent_index = {c: i for i, c in enumerate(SENTIMENTS)}
    lang_index = {c: i for i, c in enumerate(languages)}
    return {
        "complaint_type": np.array(
            [ct_index.get(v, IGNORE) if v else IGNORE for v in s.complaint_type], dtype=np.int64
        ),
        "sentiment": np.array([sent_index.get(v, IGNORE) if v else IGNORE for v in s.sentiment], dtype=np.int64),
        "troll": np.array([IGNORE if v is None else v for v in s.troll], dtype=np.int64),
        "lang": np.array([lang_index.get(v, IGNORE) if v else IGNORE for v in s.lang], dtype=np.int64),
    }


@dataclass
class TokenizedData:
    """All rows of a split, tokenized, with labels and source per row."""

    input_ids: list[list[int]]
    labels: dict[str, np.ndarray]
    sources: np.ndarray
    #: Each row's n-gram ids, for a network with the n-gram branch (else None).
    ngram_ids: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def tokenize_sets(
    sets: list[LabelledSet], encoder: TextEncoder, languages: list[str], max_rows: int | None = None, seed: int = 0
) -> TokenizedData:
    """Tokenize through ``datasets`` (batched map) and gather labels. With
    ``max_rows``, each file contributes a seeded random subset of that size
    (files are often sorted by language or label, so the first rows would not do)."""
    import datasets

    datasets.disable_progress_bars()
    texts: list[str] = []
    sources: list[str] = []
    labels: dict[str, list[np.ndarray]] = {k: [] for k in ("complaint_type", "sentiment", "troll", "lang")}
    for s in sets:
        rows = np.arange(len(s))
        if max_rows is not None and len(s) > max_rows:
            rows = np.sort(np.random.default_rng([seed, len(s)]).choice(len(s), size=max_rows, replace=False))
        texts.extend(s.text[i] for i in rows)
        sources.extend(s.source[i] for i in rows)
        for task, arr in encode_labels(s, languages).items():
            labels[task].append(arr[rows])
    ds = datasets.Dataset.from_dict({"text": texts})
    ds = ds.map(
        lambda b: {"input_ids": encoder.encode_ids(b["text"])[0]},
        batched=True,
        batch_size=1000,
        remove_columns=["text"],
    )
    return TokenizedData(
        input_ids=ds["input_ids"],
        labels={k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in labels.items()},
        sources=np.array(sources),
        ngram_ids=encoder.encode_ngrams(texts),
    )


class BalancedBatchSampler:
    """Deterministic batches per epoch: ``epoch(e)`` always returns the same list,
    so a resumed run can skip exactly the batches it already trained on."""

    def __init__(
        self,
        data: TokenizedData,
        batch_size: int,
        steps_per_epoch: int,
        alpha: float,
        seed: int,
        source_weights: dict[str, float] | None = None,
    ):
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.seed = seed
        self.lengths = data.lengths
        names, inverse = np.unique(data.sources, return_inverse=True)
        self.sources = list(names)
        self.rows = [np.flatnonzero(inverse == i) for i in range(len(names))]
        weights = np.array([len(r) ** alpha for r in self.rows], dtype=np.float64)
        for i, name in enumerate(self.sources):
            weights[i] *= (source_weights or {}).get(name, 1.0)
        self.probabilities = weights / weights.sum()

    def _source_batches(self, rng: np.random.Generator, rows: np.ndarray) -> list[np.ndarray]:
        order = rng.permutation(rows)
        batches = []
        chunk = self.batch_size * _BUCKET_BATCHES
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches.extend(part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size))
        rng.shuffle(batches)
        return batches

    def epoch(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        picks = rng.choice(len(self.sources), size=self.steps_per_epoch, p=self.probabilities)
        queues: list[list[np.ndarray]] = [[] for _ in self.sources]
        out = []
        for s in picks:
            if not queues[s]:
                queues[s] = self._source_batches(rng, self.rows[s])
            out.append(queues[s].pop())
        return out


def collate(data: TokenizedData, indices: np.ndarray, encoder: TextEncoder) -> dict[str, np.ndarray]:
    """Dynamic padding: pad to the longest row of this batch only."""
    input_ids, mask = encoder.pad([data.input_ids[i] for i in indices])
    batch = {"input_ids": input_ids, "attention_mask": mask}
    if data.ngram_ids is not None:
        batch["ngram_ids"] = pad_ngrams([data.ngram_ids[i] for i in indices])
    for task, arr in data.labels.items():
        batch[task] = arr[indices]
    return batch
