"""The training recipe as a typed config, loadable from TOML so a model can be
rebuilt from one file (``training/configs/default.toml`` builds the default)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from earful.schema import TASK_NAMES, Schema


@dataclass
class TrainConfig:
    """Everything that decides what a training run produces.

    Paths are relative to the working directory (the repo root for the shipped
    recipes)."""

    train: list[str]
    validation: list[str]
    output_dir: str = "runs/model"
    #: ``multilingual-e5-small`` (built from the installed wheels) or a local transformers folder.
    base: str = "multilingual-e5-small"
    #: Start from a previous run's trained model (its ``best/`` folder or run folder) instead of the bare
    #: base encoder: a second stage that adds data keeps what the first learned. Same languages required.
    init_from: str | None = None
    #: Languages of the lang head; default: every language with at least ``min_lang_rows`` training rows.
    languages: list[str] | None = None
    min_lang_rows: int = 50
    max_length: int = 128
    #: Text prepended to every input; default "query: " for the e5 base (as E5 was trained), else "".
    input_prefix: str | None = None
    batch_size: int = 32
    epochs: int = 4
    #: Steps per epoch; default: training rows / batch_size.
    steps_per_epoch: int | None = None
    #: Stop after this many steps in total (smoke tests, time-boxed runs).
    max_steps: int | None = None
    learning_rate: float = 5e-5
    head_learning_rate: float = 2e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    dropout: float = 0.1
    freeze_embeddings: bool = True
    freeze_layers: int = 0
    #: A source is drawn with probability ∝ rows^alpha (0 = uniform over sources, 1 = proportional).
    sampling_alpha: float = 0.5
    #: Multiply a source's sampling weight (by source name).
    source_weights: dict[str, float] = field(default_factory=dict)
    patience: int = 2
    seed: int = 13
    checkpoint_every: int = 200
    device: str = "auto"
    threads: int | None = None
    #: Cap on validation rows per file (validation runs each epoch).
    max_validation_rows: int | None = None
    #: Strip @handles and URLs from posts (training and serving alike), so no label can hang on them.
    normalize: bool = True
    #: Width of the hashed n-gram branch's embedding (:mod:`earful.models.ngrams`); 0 = no branch.
    ngram_dim: int = 0
    #: Hash buckets the n-grams share (rows of the branch's embedding table).
    ngram_buckets: int = 1 << 17
    #: Share of training posts whose n-gram features are zeroed (the whole vector, drawn per post): the encoder then
    #: has to carry every head on its own for those posts instead of leaving part of the work to the faster-learning
    #: branch (docs/default-model.md). Never applied outside training.
    ngram_dropout: float = 0.0
    #: The heads that lose the n-gram features of those posts (None: every head). Language ID leans on character
    #: n-grams most: dropping them for it too cost it about a point (docs/default-model.md).
    ngram_dropout_heads: list[str] | None = None
    #: Train in bfloat16 autocast: "auto" = where the CPU computes bf16 natively (avx512_bf16 or AMX) or on a GPU
    #: that supports it; "bf16" or "fp32" to choose. The run records what it used.
    precision: str = "auto"

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config {path} not found")
        data = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
        return cls.from_dict({**data, **{k: v for k, v in overrides.items() if v is not None}}, origin=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "config") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{origin}: unknown training option(s) {unknown}; known options: {sorted(known)}")
        missing = [k for k in ("train", "validation") if not data.get(k)]
        if missing:
            raise ValueError(f"{origin}: needs {' and '.join(missing)} (lists of labelled files)")
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError("batch_size and epochs must be at least 1")
        if not 0 <= self.sampling_alpha <= 1:
            raise ValueError("sampling_alpha must be in [0, 1]")
        if self.max_length < 8:
            raise ValueError("max_length must be at least 8 tokens")
        if self.ngram_dim < 0 or self.ngram_buckets < 2:
            raise ValueError("ngram_dim must be 0 (no n-gram branch) or more, and ngram_buckets at least 2")
        if not 0.0 <= self.ngram_dropout < 1.0:
            raise ValueError(f"ngram_dropout must be at least 0 and below 1, not {self.ngram_dropout}")
        unknown_heads = sorted(set(self.ngram_dropout_heads or ()) - set(TASK_NAMES))
        if unknown_heads or self.ngram_dropout_heads == []:
            raise ValueError(
                f"ngram_dropout_heads must name at least one of {list(TASK_NAMES)}, not {self.ngram_dropout_heads}"
            )
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, not {self.precision!r}")
        if self.languages is not None:
            Schema(languages=tuple(self.languages))  # checks the codes now, not after the data is loaded

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def ngrams(self) -> dict | None:
        """The network's n-gram branch settings (``NetworkConfig.ngrams``), or None without one."""
        if not self.ngram_dim:
            return None
        from earful.models.ngrams import NgramSpec

        return {**NgramSpec(buckets=self.ngram_buckets).to_dict(), "dim": self.ngram_dim}

    def fingerprint(self) -> dict[str, Any]:
        """The options a resumed run must share with the interrupted one."""
        d = self.to_dict()
        for volatile in ("device", "threads", "checkpoint_every", "output_dir", "max_steps", "precision"):
            d.pop(volatile)
        if not d["ngram_dropout"]:  # off: runs checkpointed before the option existed still resume
            d.pop("ngram_dropout")
        if d["ngram_dropout_heads"] is None:  # every head: as before the option existed
            d.pop("ngram_dropout_heads")
        return d
