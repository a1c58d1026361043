"""Turning posts into token ids, the same way in training and in the predictor.

Uses the ``tokenizers`` library directly (no transformers import on the serving
path): prefix, tokenize, truncate to ``max_length`` and say which texts were cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

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


class TextEncoder:
    def __init__(self, tokenizer_file: Path, max_length: int, prefix: str = ""):
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.max_length = max_length
        self.prefix = prefix
        pad = self.tokenizer.token_to_id("<pad>")
        self.pad_id = 0 if pad is None else pad

    def encode_ids(self, texts: list[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids (with special tokens) per text, and whether each was truncated."""
        encodings = self.tokenizer.encode_batch([self.prefix + replace_lone_surrogates(t) for t in texts])
        return [e.ids for e in encodings], [bool(e.overflowing) for e in encodings]

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
        return EncodedBatch(input_ids, mask, truncated, [len(x) for x in ids])
