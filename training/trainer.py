"""The training loop: multi-task, masked losses, early stopping, checkpoint/resume.

Output folder layout::

    OUT/checkpoint/   latest state, rewritten every ``checkpoint_every`` steps and
                      at each epoch end (weights, optimizer, RNG, position)
    OUT/best/         the best model so far by mean validation macro-F1, with
                      tokenizer, calibration.json and metrics.json: what
                      ``earful export`` takes
    OUT/history.jsonl one line of validation metrics per epoch

An interrupted run (Ctrl-C, kill, crash) continues with ``resume=True`` from the
last checkpoint; batches are a pure function of (seed, epoch), so the resumed
run skips exactly the batches already trained on.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from earful.metrics import macro_f1
from earful.models.ngrams import NgramSpec
from earful.models.tokenization import TOKENIZER_FILE, TextEncoder
from earful.schema import COMPLAINT_TYPES
from earful.training.calibrate import fit_temperature
from earful.training.config import TrainConfig
from earful.training.data import (
    COARSE_COMPLAINT_ID,
    IGNORE,
    BalancedBatchSampler,
    TokenizedData,
    collate,
    infer_languages,
    load_sets,
    tokenize_sets,
)
from earful.training.encoder import BASE_NAME, E5_PREFIX, resolve_base
from earful.training.network import MultiTaskModel, trained_folder

STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.pt"
N_FINE = len(COMPLAINT_TYPES)


class TrainingError(RuntimeError):
    """A training run cannot start or continue; the message says what to do."""


@dataclass
class TrainResult:
    output_dir: Path
    best_dir: Path
    best_score: float
    best_epoch: int
    steps: int
    seconds: float
    stopped_early: bool


def scored_rows(task: str, y: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """The rows a head is scored and calibrated on: fine labels for complaint type, any label otherwise."""
    return ((y >= 0) & (y < N_FINE)) if task == "complaint_type" else (y != IGNORE)


def head_training_rows(labels: dict[str, np.ndarray]) -> dict[str, int]:
    """Rows that teach each head something (coarse complaints count for complaint type): a head with none is
    untrained, and the bundle says so rather than serve its random output (see :mod:`earful.models.bundle`)."""
    return {task: int(((y >= 0) if task == "complaint_type" else (y != IGNORE)).sum()) for task, y in labels.items()}


def head_loss(task: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """One head's mean loss on the rows labelled for it; None when no row is.

    complaint_type rows labelled only ``complaint`` contribute
    −log P(order_error ∪ product ∪ poor_service), so coarse labels teach the
    complaint/none boundary without claiming a type."""
    if task == "complaint_type":
        fine, coarse = scored_rows(task, y), y == COARSE_COMPLAINT_ID
        if not (fine.any() or coarse.any()):
            return None
        total = F.cross_entropy(logits[fine], y[fine], reduction="sum") if fine.any() else logits.new_zeros(())
        if coarse.any():
            rows = logits[coarse]
            total = total + (torch.logsumexp(rows, -1) - torch.logsumexp(rows[:, : N_FINE - 1], -1)).sum()
        return total / (fine.sum() + coarse.sum())
    known = y != IGNORE
    if not known.any():
        return None
    if task == "troll":
        return F.binary_cross_entropy_with_logits(logits[known], y[known].float())
    return F.cross_entropy(logits[known], y[known])


def multitask_loss(
    outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over heads of each head's mean loss on the rows labelled for it (:func:`head_loss`)."""
    parts = {
        task: loss for task, logits in outputs.items() if (loss := head_loss(task, logits, batch[task])) is not None
    }
    if not parts:  # cannot happen with validated data: every source labels some head
        raise TrainingError("a batch has no labels for any head")
    return sum(parts.values()), {k: float(v.detach()) for k, v in parts.items()}


def predict_logits(
    model: MultiTaskModel,
    data: TokenizedData,
    encoder: TextEncoder,
    device: torch.device,
    batch_size: int = 64,
    precision: str = "fp32",
) -> dict[str, np.ndarray]:
    """Logits for every row of a split, in row order (in bf16 autocast when training runs in it)."""
    with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
        return model.logits(data.input_ids, encoder.pad, batch_size, device, ngrams=data.ngram_ids)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a GPU that supports it, or a CPU with avx512_bf16 or AMX
    (elsewhere bf16 autocast emulates and gains nothing; see ../docs/performance.md, "Training")."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def training_precision(setting: str, device: torch.device) -> str:
    """ "bf16" or "fp32": the config's ``precision``, with "auto" decided by :func:`native_bf16`."""
    if setting == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return setting


def head_score(task: str, logits: np.ndarray, y: np.ndarray) -> float | None:
    """A head's validation macro-F1 over the rows it has (fine) labels for; None when it has none."""
    known = scored_rows(task, y)
    if not known.any():
        return None
    if task == "troll":
        return macro_f1(y[known], (logits[known] > 0).astype(np.int64), 2)
    return macro_f1(y[known], logits[known].argmax(-1), logits.shape[-1])


def head_temperature(task: str, logits: np.ndarray, y: np.ndarray) -> float:
    """A head's temperature, fitted on the rows it is scored on (1.0 when there are none)."""
    known = scored_rows(task, y)
    binary = task == "troll"
    return fit_temperature(logits[known], y[known].astype(np.float64) if binary else y[known], binary=binary)


def head_scores(logits: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, float]:
    """Validation macro-F1 per head that has labelled rows."""
    return {
        task: score for task, value in logits.items() if (score := head_score(task, value, labels[task])) is not None
    }


def calibrate(logits: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, float]:
    """One temperature per head (:func:`head_temperature`)."""
    return {task: head_temperature(task, value, labels[task]) for task, value in logits.items()}


class Trainer:
    def __init__(self, config: TrainConfig):
        self.config = config
        self.out = Path(config.output_dir)
        self.device = _device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)

    # -- set-up -----------------------------------------------------------
    def _prepare(self, languages: list[str] | None) -> None:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        cfg = self.config
        base_dir = resolve_base(cfg.base)
        positions = json.loads((base_dir / "config.json").read_text()).get("max_position_embeddings", cfg.max_length)
        if cfg.max_length > positions:
            raise TrainingError(
                f"max_length {cfg.max_length} exceeds the base encoder's {positions} positions; "
                f"set max_length ≤ {positions}"
            )
        prefix = cfg.input_prefix if cfg.input_prefix is not None else (E5_PREFIX if cfg.base == BASE_NAME else "")
        ngrams = cfg.ngrams()
        spec = None if ngrams is None else NgramSpec.from_dict(ngrams)
        self.encoder = TextEncoder(base_dir / TOKENIZER_FILE, cfg.max_length, prefix, cfg.normalize, spec)
        self.precision = training_precision(cfg.precision, self.device)
        self.base_dir = base_dir
        train_sets = load_sets(cfg.train)
        val_sets = load_sets(cfg.validation)
        self.languages = languages or cfg.languages or infer_languages(train_sets, cfg.min_lang_rows)
        self.train_data = tokenize_sets(train_sets, self.encoder, self.languages)
        self.val_data = tokenize_sets(val_sets, self.encoder, self.languages, cfg.max_validation_rows, cfg.seed)
        self.steps_per_epoch = cfg.steps_per_epoch or max(1, math.ceil(len(self.train_data) / cfg.batch_size))
        self.sampler = BalancedBatchSampler(
            self.train_data, cfg.batch_size, self.steps_per_epoch, cfg.sampling_alpha, cfg.seed, cfg.source_weights
        )
        torch.manual_seed(cfg.seed)
        self.model = MultiTaskModel.from_pretrained_encoder(
            base_dir, self.languages, cfg.max_length, prefix, cfg.dropout, cfg.normalize, ngrams
        ).to(self.device)
        self.model.ngram_dropout = cfg.ngram_dropout
        self.model.ngram_dropout_heads = None if cfg.ngram_dropout_heads is None else frozenset(cfg.ngram_dropout_heads)
        self.head_rows = head_training_rows(self.train_data.labels)
        if cfg.init_from:
            self._init_from(Path(cfg.init_from))
        self._freeze()
        # The heads and the n-gram branch start from scratch: they learn at the head rate, without weight decay.
        fresh = ("heads.", "ngram_")
        head_params = [p for n, p in self.model.named_parameters() if n.startswith(fresh) and p.requires_grad]
        body = [(n, p) for n, p in self.model.named_parameters() if not n.startswith(fresh) and p.requires_grad]
        no_decay = ("bias", "LayerNorm")
        self.optimizer = torch.optim.AdamW(
            [
                {
                    "params": [p for n, p in body if not any(k in n for k in no_decay)],
                    "weight_decay": cfg.weight_decay,
                    "lr": cfg.learning_rate,
                },
                {
                    "params": [p for n, p in body if any(k in n for k in no_decay)],
                    "weight_decay": 0.0,
                    "lr": cfg.learning_rate,
                },
                {"params": head_params, "weight_decay": 0.0, "lr": cfg.head_learning_rate},
            ]
        )
        total = cfg.epochs * self.steps_per_epoch
        warmup = max(1, int(cfg.warmup_ratio * total))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: (
                min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup))
                if s >= warmup
                else (s + 1) / warmup
            ),
        )
        self.total_steps = total

    def _init_from(self, source: Path) -> None:
        from safetensors.torch import load_file

        given, source = source, trained_folder(source)
        if source is None:
            raise TrainingError(f"init_from {given} is not a trained model folder (no network.json)")
        previous = json.loads((source / "network.json").read_text())
        if previous["languages"] != self.languages:
            raise TrainingError(
                f"init_from {source} has lang head {previous['languages']}, this run has {self.languages}; "
                "set `languages` in the config to the earlier run's list"
            )
        self.model.load_state_dict(load_file(str(source / "model.safetensors")))
        earlier = (
            json.loads((source / "training.json").read_text()).get("head_training_rows", {})
            if (source / "training.json").is_file()
            else {}
        )
        self.head_rows = {task: n + int(earlier.get(task, 0)) for task, n in self.head_rows.items()}

    def _freeze(self) -> None:
        enc = self.model.encoder
        if self.config.freeze_embeddings or self.config.freeze_layers > 0:
            enc.embeddings.word_embeddings.weight.requires_grad_(False)
        if self.config.freeze_layers > 0:
            for p in enc.embeddings.parameters():
                p.requires_grad_(False)
            for layer in enc.encoder.layer[: self.config.freeze_layers]:
                for p in layer.parameters():
                    p.requires_grad_(False)

    # -- checkpointing ----------------------------------------------------
    def _save_checkpoint(self, state: dict) -> None:
        tmp = self.out / "checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save(tmp)
        torch.save(
            {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
            },
            tmp / OPTIMIZER_FILE,
        )
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
        final = self.out / "checkpoint"
        old = self.out / "checkpoint.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)  # the swap is atomic per rename; a crash leaves checkpoint or checkpoint.old
        shutil.rmtree(old, ignore_errors=True)

    def _load_checkpoint(self) -> dict:
        from safetensors.torch import load_file

        ckpt = self.out / "checkpoint"
        if not (ckpt / STATE_FILE).exists() and (self.out / "checkpoint.old" / STATE_FILE).exists():
            ckpt = self.out / "checkpoint.old"
        state = json.loads((ckpt / STATE_FILE).read_text())
        self.model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        extra = torch.load(ckpt / OPTIMIZER_FILE, weights_only=True)
        self.optimizer.load_state_dict(extra["optimizer"])
        self.scheduler.load_state_dict(extra["scheduler"])
        torch.set_rng_state(extra["torch_rng"])
        return state

    def _save_best(self, val_logits: dict[str, np.ndarray], scores: dict[str, float], epoch: int) -> None:
        best = self.out / "best"
        tmp = self.out / "best.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save(tmp)
        shutil.copy(self.base_dir / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        np.savez(
            tmp / "validation_logits.npz",
            **{f"logits_{k}": v for k, v in val_logits.items()},
            **{f"labels_{k}": v for k, v in self.val_data.labels.items()},
        )
        (tmp / "training.json").write_text(
            json.dumps(
                {
                    "config": self.config.to_dict(),
                    "epoch": epoch,
                    "validation_macro_f1": scores,
                    "base_model": self.config.base,
                    "train_rows": len(self.train_data),
                    "validation_rows": len(self.val_data),
                    "head_training_rows": self.head_rows,
                    "precision": self.precision,
                },
                indent=2,
            )
        )
        shutil.rmtree(best, ignore_errors=True)
        tmp.rename(best)

    # -- the loop ---------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        ckpt = self.out / "checkpoint"
        has_ckpt = (ckpt / STATE_FILE).exists() or (self.out / "checkpoint.old" / STATE_FILE).exists()
        if resume and not has_ckpt:
            raise TrainingError(f"nothing to resume: {self.out} has no checkpoint; run without --resume to start")
        if not resume and has_ckpt:
            raise TrainingError(
                f"{self.out} already holds a training run; "
                "pass --resume to continue it, or choose another output folder"
            )
        saved_languages = None
        if resume:
            state_path = ckpt / STATE_FILE if (ckpt / STATE_FILE).exists() else self.out / "checkpoint.old" / STATE_FILE
            saved = json.loads(state_path.read_text())
            if saved["fingerprint"] != self.config.fingerprint():
                changed = sorted(
                    k for k in saved["fingerprint"] if saved["fingerprint"].get(k) != self.config.fingerprint().get(k)
                )
                raise TrainingError(f"cannot resume: the config differs from the interrupted run in {changed}")
            saved_languages = saved["languages"]
        self.out.mkdir(parents=True, exist_ok=True)
        self._prepare(saved_languages)
        state = {
            "epoch": 0,
            "batch": 0,
            "step": 0,
            "best_score": -1.0,
            "best_epoch": -1,
            "bad_epochs": 0,
            "seconds": 0.0,
            "languages": self.languages,
            "fingerprint": self.config.fingerprint(),
            "done": False,
        }
        if resume:
            state = self._load_checkpoint()
            if state.get("done"):
                print(f"{self.out}: training already finished", file=sys.stderr)
                return self._result(state, stopped_early=state.get("stopped_early", False))
        return self._loop(state)

    def _result(self, state: dict, stopped_early: bool) -> TrainResult:
        return TrainResult(
            self.out,
            self.out / "best",
            state["best_score"],
            state["best_epoch"],
            state["step"],
            state["seconds"],
            stopped_early,
        )

    def _loop(self, state: dict) -> TrainResult:
        from tqdm.auto import tqdm

        cfg = self.config
        limit = min(self.total_steps, cfg.max_steps) if cfg.max_steps else self.total_steps
        started = time.monotonic() - state["seconds"]
        bar = tqdm(
            total=limit,
            initial=state["step"],
            desc="train",
            unit="step",
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30,
        )
        stopped_early = False
        try:
            while state["epoch"] < cfg.epochs and state["step"] < limit:
                self.model.train()
                batches = self.sampler.epoch(state["epoch"])
                for idx in batches[state["batch"] :]:
                    if state["step"] >= limit:
                        break
                    batch = {
                        k: torch.from_numpy(v).to(self.device)
                        for k, v in collate(self.train_data, idx, self.encoder).items()
                    }
                    with torch.autocast(self.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
                        logits = self.model(batch["input_ids"], batch["attention_mask"], batch.get("ngram_ids"))
                    outputs = {t.name: x.float() for t, x in zip(self.model.schema.tasks, logits, strict=True)}
                    loss, parts = multitask_loss(outputs, batch)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    state["step"] += 1
                    state["batch"] += 1
                    bar.update(1)
                    bar.set_postfix(epoch=state["epoch"] + 1, loss=f"{loss.item():.3f}")
                    if state["step"] % cfg.checkpoint_every == 0:
                        state["seconds"] = time.monotonic() - started
                        self._save_checkpoint(state)
                if state["batch"] >= len(batches):  # a whole epoch: validate, maybe stop early
                    state["seconds"] = time.monotonic() - started
                    stopped_early = self._end_epoch(state)
                    self._save_checkpoint(state)
                    if stopped_early:
                        break
        except KeyboardInterrupt:
            state["seconds"] = time.monotonic() - started
            self._save_checkpoint(state)
            bar.close()
            raise TrainingError(
                f"interrupted at step {state['step']}; continue with --resume (checkpoint in {self.out / 'checkpoint'})"
            ) from None
        bar.close()
        state["seconds"] = time.monotonic() - started
        if state["best_epoch"] < 0:  # stopped by max_steps before an epoch ended: keep what we have
            logits = predict_logits(self.model, self.val_data, self.encoder, self.device, precision=self.precision)
            scores = head_scores(logits, self.val_data.labels)
            state["best_score"] = float(np.mean(list(scores.values()))) if scores else 0.0
            self._save_best(logits, scores, state["epoch"])
        finished = state["epoch"] >= cfg.epochs or stopped_early
        if finished:
            state["done"] = True
            state["stopped_early"] = stopped_early
        self._save_checkpoint(state)
        self._finalize_best()
        return self._result(state, stopped_early)

    def _end_epoch(self, state: dict) -> bool:
        logits = predict_logits(self.model, self.val_data, self.encoder, self.device, precision=self.precision)
        scores = head_scores(logits, self.val_data.labels)
        mean = float(np.mean(list(scores.values()))) if scores else 0.0
        epoch = state["epoch"]
        with open(self.out / "history.jsonl", "a") as f:
            f.write(json.dumps({"epoch": epoch + 1, "step": state["step"], "mean_macro_f1": mean, **scores}) + "\n")
        print(
            f"epoch {epoch + 1}: validation macro-F1 "
            + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
            + f" (mean {mean:.3f})",
            file=sys.stderr,
        )
        if mean > state["best_score"]:
            state.update(best_score=mean, best_epoch=epoch + 1, bad_epochs=0)
            self._save_best(logits, scores, epoch + 1)
        else:
            state["bad_epochs"] += 1
        state["epoch"] += 1
        state["batch"] = 0
        return state["bad_epochs"] >= self.config.patience

    def _finalize_best(self) -> None:
        """Fit temperatures on the best model's validation logits; write metrics."""
        best = self.out / "best"
        saved = np.load(best / "validation_logits.npz", allow_pickle=False)
        logits = {k[len("logits_") :]: saved[k] for k in saved.files if k.startswith("logits_")}
        labels = {k[len("labels_") :]: saved[k] for k in saved.files if k.startswith("labels_")}
        temps = calibrate(logits, labels)
        (best / "calibration.json").write_text(
            json.dumps({"temperature": temps, "method": "temperature scaling on validation NLL"}, indent=2)
        )


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train a model per ``config``; see the module docstring for the output layout."""
    return Trainer(config).fit(resume=resume)
