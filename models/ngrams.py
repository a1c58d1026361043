"""Hashed character and word n-grams of a post, and the post normalisation the model reads.

A subword encoder is weakest where character n-grams are strongest: two-word posts, close languages
(bs/hr/sr, nb/da, ms/id), misspellings and language-specific abuse. A model with the n-gram branch
(:class:`earful.training.network.MultiTaskModel`) takes, beside the token ids, the ids of the hashed n-grams
of each post, computed here by the one function that training and the predictor share.

:func:`normalize_post` removes what a post's meaning does not depend on but a model could learn as a shortcut:
@handles and URLs go, a hashtag keeps its word. In the training data the leading @handle marks customer-support
threads, so a model reading it learns "handle means complaint"; with handles removed in training and serving
alike, adding or removing one cannot change a label.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["NgramSpec", "ngram_ids", "normalize_post", "pad_ngrams"]

_URL = re.compile(r"(?:\bhttps?://|\bwww\.)\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<![\w@])@\w+")
_HASHTAG = re.compile(r"(?<![\w#])#(\w+)")
_WORD = re.compile(r"\w+")
#: Odd 64-bit constants for the rolling hash and its final mix (any fixed values do; changing one changes every id).
_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0xBF58476D1CE4E5B9)
_SALT = 0x9E3779B97F4A7C15


def normalize_post(text: str) -> str:
    """``text`` without @handles and URLs, with hashtags as plain words and runs of spaces as one."""
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    text = _HASHTAG.sub(r"\1", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class NgramSpec:
    """Which n-grams a post yields and how many hash buckets they share (bucket 0 is padding)."""

    buckets: int = 1 << 17
    #: Character n-gram orders, inclusive; the post is lower-cased and framed by spaces first.
    chars: tuple[int, int] = (1, 4)
    #: Word n-gram orders, inclusive.
    words: tuple[int, int] = (1, 2)
    #: Characters of a (normalised) post that give n-grams; a post's topic and language show well before this.
    max_chars: int = 300

    def __post_init__(self):
        if self.buckets < 2:
            raise ValueError(f"n-gram buckets must be at least 2, not {self.buckets}")
        for name, (low, high) in (("chars", self.chars), ("words", self.words)):
            if not 0 <= low <= high:
                raise ValueError(f"n-gram {name} orders must be 0 <= low <= high, not {low}, {high}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NgramSpec:
        return cls(
            buckets=int(data["buckets"]),
            chars=tuple(data["chars"]),
            words=tuple(data["words"]),
            max_chars=int(data["max_chars"]),
        )


def _bucket(hashes: np.ndarray, buckets: int) -> np.ndarray:
    h = hashes ^ (hashes >> np.uint64(31))
    h = h * _MIX
    h = h ^ (h >> np.uint64(29))
    return (h % np.uint64(buckets - 1)).astype(np.int64) + 1


def _char_hashes(text: str, low: int, high: int) -> list[np.ndarray]:
    codes = np.frombuffer(f" {text} ".encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    out = []
    h = np.full(len(codes), np.uint64(_SALT), dtype=np.uint64)
    with np.errstate(over="ignore"):  # the hash wraps around 2**64 by design
        for n in range(1, high + 1):
            if len(h) == 0:
                break
            h = h * _PRIME + codes[n - 1 :] + np.uint64(n)
            if n >= low:
                out.append(h.copy())
            h = h[:-1]
    return out


def _word_hashes(text: str, low: int, high: int) -> np.ndarray:
    words = _WORD.findall(text)
    grams = [" ".join(words[i : i + n]) for n in range(max(low, 1), high + 1) for i in range(len(words) - n + 1)]
    return np.array([zlib.crc32(g.encode("utf-8")) | (1 << 40) for g in grams], dtype=np.uint64)


def ngram_ids(texts: list[str], spec: NgramSpec) -> list[np.ndarray]:
    """The n-gram bucket ids (1 … buckets-1) of each post, after :func:`normalize_post`, NFKC and lower-casing.

    Repeated n-grams repeat their id (the model averages over occurrences). A post with no n-grams gets none."""
    out = []
    for text in texts:
        text = unicodedata.normalize("NFKC", normalize_post(text)).lower()[: spec.max_chars]
        parts = _char_hashes(text, *spec.chars) if spec.chars[1] else []
        if spec.words[1]:
            parts.append(_word_hashes(text, *spec.words))
        hashes = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
        with np.errstate(over="ignore"):
            out.append(_bucket(hashes, spec.buckets))
    return out


def pad_ngrams(ids: list[np.ndarray]) -> np.ndarray:
    """One (posts, longest) int64 array, right-padded with 0 (a post with no n-grams is all padding)."""
    width = max([len(x) for x in ids] + [1])
    out = np.zeros((len(ids), width), dtype=np.int64)
    for i, x in enumerate(ids):
        out[i, : len(x)] = x
    return out
