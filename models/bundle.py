"""A model bundle: one self-describing folder, verified before use.

Layout::

    bundle.json        name, version, input settings, variants, lang fallback threshold, troll decision threshold,
                       heads left untrained (no training labels)
    schema.json        tasks and labels (earful.schema), incl. the lang head's languages
    calibration.json   one temperature per head
    tokenizer.json     the tokenizer (possibly vocabulary-trimmed)
    model.fp32.onnx    the network, fp32
    model.int8.onnx    the same, int8 dynamic per-channel quantized
    metrics.json       validation metrics and export parity figures
    MODEL_CARD.md      data sources, licenses, intended use, limits
    provenance.json    training config and data provenance
    manifest.json      sha256 and size of every file above

``Bundle.load`` refuses a bundle whose files do not match the manifest
(tampered, truncated, half-copied). Nothing in a bundle is pickled: JSON, ONNX
and a tokenizer JSON only. Bundles are written by :mod:`earful.export.writer` alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earful.hashing import sha256_file
from earful.models.ngrams import NgramSpec
from earful.models.tokenization import TextEncoder
from earful.schema import Schema

MANIFEST = "manifest.json"
BUNDLE_FILE = "bundle.json"
VARIANTS = ("int8", "fp32")
DEFAULT_BUNDLE = Path(__file__).resolve().parent / "default"
#: The troll decision threshold of a bundle that sets none: where trolling becomes more likely than not.
DEFAULT_TROLL_THRESHOLD = 0.5


class BundleError(RuntimeError):
    """A bundle is missing, incomplete or fails verification."""


def verify(directory: Path) -> dict[str, Any]:
    """Check every manifest entry; raise :class:`BundleError` naming the first bad file."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{directory}: no {MANIFEST}; not an earful bundle (build one with `earful export`)")
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = manifest["files"]
    except (ValueError, KeyError) as e:
        raise BundleError(f"{manifest_path}: unreadable manifest ({e}); the bundle is damaged, re-export it") from None
    for name, entry in entries.items():
        if not _plain_file_name(name):
            raise BundleError(
                f"{manifest_path}: lists {name!r}, a path outside the bundle folder; a bundle's manifest "
                "names only files inside it — refusing to load it (re-export or re-copy the bundle)"
            )
        path = directory / name
        if not path.is_file():
            raise BundleError(
                f"bundle {directory}: {name} is missing; the bundle is incomplete, re-export or re-copy it"
            )
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise BundleError(
                f"bundle {directory}: {name} is {size} bytes, the manifest says {entry['bytes']} "
                "(truncated or modified); re-export or re-copy the bundle"
            )
        if sha256_file(path) != entry["sha256"]:
            raise BundleError(
                f"bundle {directory}: {name} does not match its sha256 in the manifest (modified or corrupted); "
                "refusing to load it — re-export or re-copy the bundle"
            )
    for required in (BUNDLE_FILE, "schema.json", "calibration.json", "tokenizer.json"):
        if required not in entries:
            raise BundleError(f"bundle {directory}: manifest does not list {required}; the bundle is incomplete")
    return manifest


def _plain_file_name(name: str) -> bool:
    """A name of a file directly inside the bundle folder: no folders, no way out of it."""
    return isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name and "\\" not in name


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk and its parsed metadata."""

    path: Path
    name: str
    version: str
    schema: Schema
    temperatures: dict[str, float]
    max_length: int
    input_prefix: str
    lang_threshold: float
    #: ``is_troll`` is set where the troll probability reaches this (see :mod:`earful.export.threshold`).
    troll_threshold: float
    variants: tuple[str, ...]
    #: Heads trained on no labels: the predictor answers null for them instead of their random output.
    untrained_heads: frozenset[str]
    #: Posts lose @handles and URLs before tokenizing (:func:`earful.models.ngrams.normalize_post`).
    normalize: bool
    #: The model's n-gram branch input, or None for a model without one.
    ngrams: NgramSpec | None
    metrics: dict[str, Any]
    info: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path | None = None) -> Bundle:
        """Load and verify a bundle; ``None`` means the shipped default bundle."""
        directory = resolve_bundle_path(path)
        verify(directory)
        info = json.loads((directory / BUNDLE_FILE).read_text())
        schema = Schema.from_dict(json.loads((directory / "schema.json").read_text()))
        calibration = json.loads((directory / "calibration.json").read_text())
        metrics_path = directory / "metrics.json"
        return cls(
            path=directory,
            name=info["name"],
            version=info["version"],
            schema=schema,
            temperatures={t.name: float(calibration["temperature"].get(t.name, 1.0)) for t in schema.tasks},
            max_length=int(info["max_length"]),
            input_prefix=info.get("input_prefix", ""),
            lang_threshold=float(info.get("lang_threshold", 0.5)),
            troll_threshold=float(info.get("troll_threshold", DEFAULT_TROLL_THRESHOLD)),
            variants=tuple(info["variants"]),
            untrained_heads=frozenset(info.get("untrained_heads", ())),
            normalize=bool(info.get("normalize", False)),
            ngrams=NgramSpec.from_dict(info["ngrams"]) if info.get("ngrams") else None,
            metrics=json.loads(metrics_path.read_text()) if metrics_path.exists() else {},
            info=info,
        )

    def onnx_path(self, variant: str) -> Path:
        if variant not in self.variants:
            raise BundleError(f"bundle {self.name} has no {variant!r} model; it has {', '.join(self.variants)}")
        return self.path / f"model.{variant}.onnx"

    @property
    def tokenizer_path(self) -> Path:
        return self.path / "tokenizer.json"

    def text_encoder(self) -> TextEncoder:
        """Posts to this bundle's model inputs, as its model was trained to read them."""
        return TextEncoder(self.tokenizer_path, self.max_length, self.input_prefix, self.normalize, self.ngrams)


def resolve_bundle_path(path: str | Path | None) -> Path:
    if path is None:
        if not (DEFAULT_BUNDLE / MANIFEST).is_file():
            raise BundleError(
                "no trained default bundle in this checkout (models/default/ is empty). Build one with "
                "`make model` (trains on data/ and exports to models/default), or pass --bundle PATH to a bundle "
                "made by `earful export`."
            )
        return DEFAULT_BUNDLE
    directory = Path(path)
    if not directory.is_dir():
        raise BundleError(f"bundle folder {directory} does not exist")
    return directory
