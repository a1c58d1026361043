"""Turning posts into token ids, the same way in training and in the predictor.

Uses the ``tokenizers`` library directly (no transformers import on the serving
path): normalise (for bundles that ask for it, :func:`earful.models.ngrams.normalize_post`), prefix, tokenize,
truncate to ``max_length`` and say which texts were cut; and, for a model with the n-gram branch, the hashed
n-gram ids (:mod:`earful.models.ngrams`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from earful.models.ngrams import NgramSpec, ngram_ids, normalize_post, pad_ngrams

TOKENIZER_FILE = "tokenizer.json"
#: Code points that are not characters: halves of a cut surrogate pair (a JSON ``"\\ud83d"``) or bytes that were not
#: UTF-8 (read with ``surrogateescape``). The tokenizer refuses a text holding one.
_SURROGATES = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(text: str) -> str:
    """``text`` with every surrogate code point replaced by U+FFFD, so it can be tokenized and written as UTF-8."""
    return _SURROGATES.sub("\ufffd", text)


@dataclass(frozen=True)
class EncodedBatch:
    """Right-padded ids and mask for one batch, plus per-text truncation flags."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    truncated: list[bool]
    n_tokens: list[int]
    #: (posts, longest) hashed n-gram ids, 0 = padding; None for a model without the n-gram branch.
    ngram_ids: np.ndarray | None = None

    def feeds(self) -> dict[str, np.ndarray]:
        """The model's inputs by name (the ONNX graph's and the torch module's)."""
        out = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.ngram_ids is not None:
            out["ngram_ids"] = self.ngram_ids
        return out


class TextEncoder:
    """Posts to model inputs. ``normalize`` strips handles and URLs first; ``ngrams`` adds the n-gram ids."""

    def __init__(
        self,
        tokenizer_file: Path,
        max_length: int,
        prefix: str = "",
        normalize: bool = False,
        ngrams: NgramSpec | None = None,
    ):
        self.normalize = normalize
        self.ngrams = ngrams
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.max_length = max_length
        self.prefix = prefix
        pad = self.tokenizer.token_to_id("<pad>")
        self.pad_id = 0 if pad is None else pad

    def encode_ids(self, texts: list[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids (with special tokens) per text, and whether each was truncated."""
        texts = [replace_lone_surrogates(t) for t in texts]
        if self.normalize:
            texts = [normalize_post(t) for t in texts]
        encodings = self.tokenizer.encode_batch([self.prefix + t for t in texts])
        return [e.ids for e in encodings], [bool(e.overflowing) for e in encodings]

    def encode_ngrams(self, texts: list[str]) -> list[np.ndarray] | None:
        """Each post's n-gram ids, or None for a model without the n-gram branch."""
        if self.ngrams is None:
            return None
        return ngram_ids([replace_lone_surrogates(t) for t in texts], self.ngrams)

    def pad(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, x in enumerate(ids):
            input_ids[i, : len(x)] = x
            mask[i, : len(x)] = 1
        return input_ids, mask

    def encode(self, texts: list[str]) -> EncodedBatch:
        ids, truncated = self.encode_ids(texts)
        input_ids, mask = self.pad(ids)
        grams = self.encode_ngrams(texts)
        return EncodedBatch(
            input_ids, mask, truncated, [len(x) for x in ids], None if grams is None else pad_ngrams(grams)
        )
