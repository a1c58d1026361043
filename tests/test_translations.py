"""The translated support posts (data/annotation/translations): each comes from a
twcs_annotated TRAINING row, never a validation row, is in one of the six
target languages, has no @handle or URL, and carries its source row's labels."""

from __future__ import annotations

import csv
import gzip
import re
from collections import Counter
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
TRANSLATIONS = DATA / "annotation" / "translations" / "twcs_translations.csv"
LANGS = {"es", "fr", "de", "pt", "it", "ja"}


def _read_gz(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def translations() -> list[dict[str, str]]:
    with TRANSLATIONS.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == ["source_id", "lang", "text"]
    return rows


@pytest.fixture(scope="module")
def annotated_train() -> dict[str, dict[str, str]]:
    return {r["id"]: r for r in _read_gz(DATA / "train" / "twcs_annotated.csv.gz")}


@pytest.fixture(scope="module")
def annotated_validation() -> set[str]:
    return {r["id"] for r in _read_gz(DATA / "validation" / "twcs_annotated.csv.gz")}


def test_sources_are_training_rows_never_validation(translations, annotated_train, annotated_validation):
    ids = {t["source_id"] for t in translations}
    assert not ids & annotated_validation
    assert ids <= set(annotated_train)
    for i in ids:
        src = annotated_train[i]
        assert src["complaint_type"] in {"order_error", "product", "poor_service", "none"}
        assert src["sentiment"] in {"negative", "neutral", "positive"}


def test_languages_texts_and_uniqueness(translations):
    assert {t["lang"] for t in translations} <= LANGS
    pairs = Counter((t["source_id"], t["lang"]) for t in translations)
    assert max(pairs.values()) == 1
    for t in translations:
        text = t["text"]
        assert text.strip() == text and text
        assert "\n" not in text
        assert not re.search(r"@\w", text), t
        assert not re.search(r"https?://|www\.", text, re.I), t


def test_every_source_is_translated_into_all_six_languages(translations):
    per_source: dict[str, set[str]] = {}
    for t in translations:
        per_source.setdefault(t["source_id"], set()).add(t["lang"])
    assert all(langs == LANGS for langs in per_source.values())


def test_built_file_carries_the_source_labels(translations, annotated_train, annotated_validation):
    built = _read_gz(DATA / "train" / "twcs_translated.csv.gz")
    assert not (DATA / "validation" / "twcs_translated.csv.gz").exists()
    by_id = {r["id"]: r for r in built}
    assert len(by_id) == len(built)
    for r in built:
        _, lang, source_id = r["id"].split(":", 2)
        src = annotated_train[source_id]
        assert source_id not in annotated_validation
        assert r["lang"] == lang and lang in LANGS and r["source"] == "twcs_translated"
        assert (r["complaint_type"], r["sentiment"], r["troll"]) == (src["complaint_type"], src["sentiment"], "")
    texts = {(t["source_id"], t["lang"]): t["text"] for t in translations}
    for r in built:
        _, lang, source_id = r["id"].split(":", 2)
        assert texts[(source_id, lang)] == r["text"]
    # dedup may drop a few (a text also found elsewhere), never most of them
    assert len(built) >= 0.95 * len(translations)
