"""The predictor: a bundle run with onnxruntime. The service, batch scoring,
evaluation and the CLI all call this class, so what is evaluated is what is served.

    from earful import Predictor
    predictor = Predictor.load()            # the default bundle, int8
    [p] = predictor.predict(["I was charged twice!"])
    p.complaint_type.label, p.troll, p.lang.code
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from earful.metrics import sigmoid, softmax
from earful.models.batching import RUN_OVERHEAD_TOKENS, overhead_tokens_from_timings, plan_runs
from earful.models.bundle import Bundle
from earful.models.language import (
    has_letters,
    langdetect_guess,
    langdetect_languages,
    linguistic_content,
    main_script,
    scripts_of,
)
from earful.models.ngrams import pad_ngrams
from earful.models.tokenization import replace_lone_surrogates
from earful.schema import UNDETERMINED, lang_hint

#: onnxruntime graph rewrites left out. Its fused SkipLayerNormalization kernel
#: took 15% of an int8 run at 16 posts a run (onnxruntime 1.31, CPU); the plain
#: Add + LayerNormalization it replaces ran 15-20% faster per post on 16- and
#: 64-post runs, with the same label agreement with fp32 on 4,000 posts.
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]
#: Characters kept before tokenizing; far more than max_length tokens ever need,
#: so a multi-megabyte "post" costs no more than a long one.
CHARS_PER_TOKEN_CAP = 24
#: (posts, tokens each) of the two runs :meth:`Predictor.measure_run_cost` times: a one-post run, mostly fixed
#: cost, pins that cost down, and a sixteen-post run gives the cost per token (steadier than 4 and 16 posts:
#: docs/performance.md, "Batching").
COST_PROBE_SHAPES = ((1, 16), (16, 16))


@dataclass(frozen=True)
class LabelScore:
    """A head's label and its calibrated per-class probabilities (label None when
    there was nothing to classify, or the bundle's head is untrained)."""

    label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LanguageResult:
    code: str
    confidence: float
    #: ``model`` (the lang head), ``langdetect`` (fallback), ``hint`` (given by the caller) or ``rule`` (no text)
    source: str


@dataclass(frozen=True)
class Prediction:
    complaint_type: LabelScore
    sentiment: LabelScore
    #: Calibrated probability that the post is trolling; None for empty posts and where the troll head is untrained.
    troll: float | None
    #: ``troll`` reached the bundle's decision threshold (:mod:`earful.export.threshold`); None where ``troll`` is.
    is_troll: bool | None
    lang: LanguageResult
    #: The post was longer than the model's input and only its start was read.
    truncated: bool
    n_tokens: int
    #: ``ok``, or ``empty`` (nothing to classify: blank or whitespace-only)
    status: str = "ok"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Probabilities:
    """Calibrated probabilities for many posts, as arrays (row order = input order).
    Rows of empty posts hold NaN."""

    complaint_type: np.ndarray
    sentiment: np.ndarray
    troll: np.ndarray
    lang: np.ndarray
    truncated: np.ndarray
    n_tokens: np.ndarray
    empty: np.ndarray


class Predictor:
    """Runs a bundle's ONNX model with ``threads`` onnxruntime runs at a time.

    The session itself is single-threaded, and a call with several runs (see
    :mod:`earful.models.batching`) hands them to ``threads`` callers at once:
    onnxruntime releases the GIL while it runs, so each caller keeps one core
    busy, which beats one session with several intra-op threads, whose parallel
    sections wait on each other at every operator (docs/performance.md). A call is cut into at
    least one run per caller when it has posts enough, so that a service batch
    of a dozen posts uses every core too; a single post uses one."""

    def __init__(self, bundle: Bundle, variant: str = "int8", threads: int | None = None):
        import onnxruntime as ort

        self.bundle = bundle
        self.variant = variant
        self.schema = bundle.schema
        self.encoder = bundle.text_encoder()
        self.threads = threads or os.cpu_count() or 1
        #: A run's fixed cost in padded tokens, for :func:`plan_runs` (see :meth:`measure_run_cost`).
        self.run_overhead_tokens = RUN_OVERHEAD_TOKENS
        self._callers: ThreadPoolExecutor | None = None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(bundle.onnx_path(variant)),
            options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=DISABLED_OPTIMIZERS,
        )
        self.output_names = [t.name for t in self.schema.tasks]
        languages = self.schema.task("lang").labels
        self._head_scripts = scripts_of(languages)
        self._fallback_scripts = scripts_of(langdetect_languages() - set(languages))

    @classmethod
    def load(
        cls, bundle: str | Path | Bundle | None = None, variant: str = "int8", threads: int | None = None
    ) -> Predictor:
        """Load a bundle (verifying its checksums); ``None`` = the shipped default."""
        return cls(bundle if isinstance(bundle, Bundle) else Bundle.load(bundle), variant, threads)

    @property
    def max_chars(self) -> int:
        return self.bundle.max_length * CHARS_PER_TOKEN_CAP

    def probabilities(self, texts: list[str], batch_size: int = 64) -> Probabilities:
        """Run the model on every non-empty post, at most ``batch_size`` posts per
        onnxruntime run, grouped by length (see :mod:`earful.models.batching`)."""
        n = len(texts)
        empty = np.array([not t or not t.strip() for t in texts], dtype=bool)
        clipped = np.array([len(t) > self.max_chars for t in texts], dtype=bool)
        todo = np.flatnonzero(~empty)
        heads = {t.name: np.full((n, t.n_outputs) if t.kind != "binary" else (n,), np.nan) for t in self.schema.tasks}
        truncated = clipped.copy()
        n_tokens = np.zeros(n, dtype=np.int64)
        if len(todo):
            kept = [texts[i][: self.max_chars] for i in todo]
            ids, cut = self.encoder.encode_ids(kept)
            grams = self.encoder.encode_ngrams(kept)
            truncated[todo] |= np.array(cut, dtype=bool)
            n_tokens[todo] = [len(x) for x in ids]
            # At least one run per caller when there are posts enough, so that a call with a few posts uses every core.
            per_run = min(batch_size, -(-len(todo) // self.threads))
            for chunk, outputs in self._run_all(
                ids, grams, plan_runs(n_tokens[todo], per_run, overhead_tokens=self.run_overhead_tokens)
            ):
                rows = todo[chunk]
                for task, logits in zip(self.schema.tasks, outputs, strict=True):
                    temp = self.bundle.temperatures[task.name]
                    heads[task.name][rows] = sigmoid(logits, temp) if task.kind == "binary" else softmax(logits, temp)
        for name in self.bundle.untrained_heads:  # their outputs are noise: NaN, as for an empty post
            heads[name][:] = np.nan
        return Probabilities(
            heads["complaint_type"], heads["sentiment"], heads["troll"], heads["lang"], truncated, n_tokens, empty
        )

    def measure_run_cost(self, repeats: int = 5) -> int:
        """Time runs of two sizes on the machine it runs on and plan later runs with the fixed cost they show.

        The default overhead was measured on one machine; on another the ratio of
        a run's fixed cost to its per-token cost can differ several-fold (see
        :mod:`earful.models.batching`). The service calls this at start-up, where
        batches are small and the split matters most. Plans then depend on timings,
        and so do the probabilities of an int8 model with one activation scale per
        run (~1e-3; not of one with a scale per token, see :meth:`predict`), so batch
        scoring and evaluation keep the default and stay reproducible. Returns the
        overhead in tokens."""
        feeds = {}
        for posts, width in COST_PROBE_SHAPES:
            ids = np.full(
                (posts, width), self.encoder.pad_id + 1, dtype=np.int64
            )  # any id but padding: only the time counts
            feeds[posts * width] = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            if self.encoder.ngrams is not None:
                feeds[posts * width]["ngram_ids"] = np.ones((posts, width * 4), dtype=np.int64)
        seconds: dict[int, list[float]] = {n: [] for n in feeds}
        for attempt in range(repeats + 1):  # the first round warms up and is not counted
            for n, feed in feeds.items():
                start = time.perf_counter()
                self.session.run(self.output_names, feed)
                if attempt:
                    seconds[n].append(time.perf_counter() - start)
        small, large = sorted((n, min(t)) for n, t in seconds.items())  # interference only ever adds time
        self.run_overhead_tokens = overhead_tokens_from_timings(small, large)
        return self.run_overhead_tokens

    def _run_all(self, ids: list[list[int]], grams: list[np.ndarray] | None, runs: list[np.ndarray]):
        """``(run, outputs)`` per run, in order; up to ``threads`` runs at a time."""

        def run(chunk: np.ndarray):
            input_ids, mask = self.encoder.pad([ids[j] for j in chunk])
            feeds = {"input_ids": input_ids, "attention_mask": mask}
            if grams is not None:
                feeds["ngram_ids"] = pad_ngrams([grams[j] for j in chunk])
            return chunk, self.session.run(self.output_names, feeds)

        if self.threads == 1 or len(runs) < 2:
            return map(run, runs)
        if self._callers is None:
            self._callers = ThreadPoolExecutor(self.threads, thread_name_prefix="earful-onnxruntime")
        return self._callers.map(run, runs)

    def decide_language(self, text: str, lang_probs: np.ndarray, hint: str | None = None) -> LanguageResult:
        """Hint > no letters → und > confident head > langdetect, where the post's
        script is one some language the head lacks is written in > the head's
        best guess, where the head knows a language of that script > und.

        See :mod:`earful.models.language` for why langdetect is asked only there."""
        if hint:
            return LanguageResult(hint, 1.0, "hint")
        content = linguistic_content(text)
        if not has_letters(content):
            return LanguageResult(UNDETERMINED, 0.0, "rule")
        if "lang" in self.bundle.untrained_heads:
            guess = langdetect_guess(content)
            if guess is not None and guess[1] >= self.bundle.lang_threshold:
                return LanguageResult(guess[0], guess[1], "langdetect")
            return LanguageResult(UNDETERMINED, 0.0, "rule")
        languages = self.schema.task("lang").labels
        best = int(np.argmax(lang_probs))
        confidence = float(lang_probs[best])
        if confidence >= self.bundle.lang_threshold:
            return LanguageResult(languages[best], confidence, "model")
        script = main_script(content)
        if script in self._fallback_scripts:
            guess = langdetect_guess(content)
            if guess is not None and guess[1] >= self.bundle.lang_threshold:
                return LanguageResult(guess[0], guess[1], "langdetect")
        elif script in self._head_scripts:
            return LanguageResult(languages[best], confidence, "model")
        return LanguageResult(UNDETERMINED, confidence, "rule")

    def predict(
        self, texts: list[str], lang_hints: list[str | None] | None = None, batch_size: int = 64
    ) -> list[Prediction]:
        """One :class:`Prediction` per text, in order.

        Batching does not change results: fp32 agrees with one-by-one calls to
        ~1e-6, and so does int8 exported with one activation scale per token
        (:mod:`earful.export.token_scales`). An int8 model with one scale per run,
        as the shipped default 0.4.1 still has, moves its probabilities slightly
        (~1e-3, 1-2% of labels) with the batch's composition: docs/quantization.md."""
        texts = clean_texts(texts)
        if lang_hints is not None:
            if len(lang_hints) != len(texts):
                raise ValueError(f"lang_hints has {len(lang_hints)} entries for {len(texts)} texts")
            lang_hints = [_hint(i, h) for i, h in enumerate(lang_hints)]
        probs = self.probabilities(texts, batch_size)
        ct_labels = self.schema.task("complaint_type").labels
        sent_labels = self.schema.task("sentiment").labels
        out = []
        for i, text in enumerate(texts):
            hint = lang_hints[i] if lang_hints else None
            if probs.empty[i]:
                lang = LanguageResult(hint, 1.0, "hint") if hint else LanguageResult(UNDETERMINED, 0.0, "rule")
                out.append(Prediction(LabelScore(None), LabelScore(None), None, None, lang, False, 0, "empty"))
                continue
            troll = None if np.isnan(probs.troll[i]) else round(float(probs.troll[i]), 6)
            out.append(
                Prediction(
                    complaint_type=_label_score(ct_labels, probs.complaint_type[i]),
                    sentiment=_label_score(sent_labels, probs.sentiment[i]),
                    troll=troll,
                    # the reported probability decides: the two never disagree
                    is_troll=None if troll is None else troll >= self.bundle.troll_threshold,
                    lang=self.decide_language(text, probs.lang[i], hint),
                    truncated=bool(probs.truncated[i]),
                    n_tokens=int(probs.n_tokens[i]),
                )
            )
        return out


def clean_texts(texts: list[str]) -> list[str]:
    """The texts as the model reads them: lone surrogates (a cut emoji, bytes that were not UTF-8) become U+FFFD.

    TypeError naming the first entry that is not a string."""
    if isinstance(texts, str):
        raise TypeError("predict() takes a list of texts; wrap a single text in a list")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, not a string")
    return [replace_lone_surrogates(t) for t in texts]


def _hint(i: int, hint: str | None) -> str | None:
    try:
        return None if hint is None else lang_hint(hint)
    except ValueError as e:
        raise ValueError(f"lang_hints[{i}]: {e}") from None


def _label_score(labels: tuple[str, ...], p: np.ndarray) -> LabelScore:
    if np.isnan(p).any():  # an untrained head
        return LabelScore(None)
    return LabelScore(
        labels[int(np.argmax(p))], {label: round(float(v), 6) for label, v in zip(labels, p, strict=True)}
    )
