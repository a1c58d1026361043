"""Refit one head of a trained model on its frozen encoder.

Joint training spends its steps across four heads and fifteen sources, and a
head can end it underfitted: after the default recipe's two stages the
language head put 136 of 150 Indonesian validation sentences in Malay; refitted
on the same pooled encoder outputs (1,000 rows per source and language), it put
129 of them right. The encoder stays exactly as trained (so the other heads' outputs do
not change at all); only the chosen head's linear layer is fitted again, to
convergence, by full-batch L-BFGS on the pooled outputs of that head's
training rows (multinomial logistic regression, warm-started from the trained
head), and its temperature is fitted again on the validation rows training
used.

    earful refit-head runs/default-stage2 --head lang --out runs/default-refit

It reads the training and validation files the model was trained with (its
training.json) unless given others. The output is a model folder like
``best/`` of a training run, which ``earful export`` takes; in its
training.json the head's validation macro-F1 is the refitted head's, and a
``refit`` record keeps the figure before.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from earful.metrics import macro_f1
from earful.models.network import CONFIG_FILE, MultiTaskModel, trained_folder
from earful.models.tokenization import TOKENIZER_FILE, TextEncoder
from earful.schema import COMPLAINT_TYPES
from earful.training.calibrate import fit_temperature
from earful.training.data import IGNORE, TokenizedData, load_sets, tokenize_sets

#: Heads a refit can fit: the multi-class ones (troll is a single logit).
REFIT_HEADS = ("lang", "sentiment", "complaint_type")


class RefitError(ValueError):
    """A refit cannot run; the message says what to change."""


@dataclass(frozen=True)
class RefitConfig:
    model: str
    output_dir: str
    #: Labelled files; default: the ones the model was trained and validated on (its training.json).
    train: list[str] | None = None
    validation: list[str] | None = None
    head: str = "lang"
    #: At most this many training rows per (source, label), a seeded random subset: no source or label
    #: outweighs the rest, and the pass over the rows stays short (each costs one encoder forward pass).
    rows_per_label: int = 1000
    #: L2 penalty on the head's weights, added to the mean cross-entropy.
    weight_decay: float = 1e-5
    max_iterations: int = 500
    batch_size: int = 128
    threads: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class RefitResult:
    output_dir: Path
    head: str
    train_rows: int
    validation_rows: int
    validation_macro_f1_before: float
    validation_macro_f1_after: float
    temperature: float
    seconds: float


def _head_labels(data: TokenizedData, head: str) -> np.ndarray:
    """The head's label per row; IGNORE where the row has none (coarse complaints included)."""
    y = data.labels[head].copy()
    if head == "complaint_type":
        y[y >= len(COMPLAINT_TYPES)] = IGNORE
    return y


def _capped_rows(data: TokenizedData, y: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Labelled rows, at most ``cap`` (a seeded random subset) per (source, label)."""
    rng = np.random.default_rng(seed)
    keep = []
    labelled = np.flatnonzero(y != IGNORE)
    for source in np.unique(data.sources[labelled]):
        in_source = labelled[data.sources[labelled] == source]
        for label in np.unique(y[in_source]):
            rows = in_source[y[in_source] == label]
            keep.append(rows if len(rows) <= cap else rng.choice(rows, cap, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def fit_linear(features: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray, weight_decay: float,
               max_iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by full-batch L-BFGS, from (weight, bias)."""
    x, target = torch.from_numpy(features), torch.from_numpy(y)
    w = torch.tensor(weight, dtype=torch.float32, requires_grad=True)
    b = torch.tensor(bias, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iterations, history_size=20, line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        value = F.cross_entropy(x @ w.T + b, target) + weight_decay * (w**2).sum()
        value.backward()
        return value

    opt.step(loss)
    return w.detach().numpy(), b.detach().numpy()


def refit_head(config: RefitConfig) -> RefitResult:
    """Fit ``config.head`` again on the frozen encoder; write the new model folder."""
    if config.head not in REFIT_HEADS:
        raise RefitError(f"head {config.head!r} cannot be refitted; choose one of {', '.join(REFIT_HEADS)}")
    out = Path(config.output_dir)
    if out.exists():
        raise RefitError(f"{out} exists; remove it or choose another --out")
    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    src = trained_folder(config.model)
    if src is None:
        raise RefitError(f"{config.model} is not a trained model folder (no {CONFIG_FILE}); give the output folder of `earful train`")
    model = MultiTaskModel.load(src)
    encoder = TextEncoder(src / TOKENIZER_FILE, model.config.max_length, model.config.input_prefix)
    languages = list(model.config.languages)
    training = json.loads((src / "training.json").read_text()) if (src / "training.json").is_file() else {}
    trained_with = training.get("config", {})

    train_files, val_files = config.train or trained_with.get("train"), config.validation or trained_with.get("validation")
    if not train_files or not val_files:
        raise RefitError(f"{src}/training.json does not list the files the model was trained on; give --train and --validation")
    train = tokenize_sets(load_sets(train_files), encoder, languages)
    y_train = _head_labels(train, config.head)
    rows = _capped_rows(train, y_train, config.rows_per_label, config.seed)
    if len(rows) == 0:
        raise RefitError(f"no training row has a {config.head} label for this model's head")
    # The validation rows training picked (same cap and seed), so the temperature is fitted as training's was.
    val = tokenize_sets(load_sets(val_files), encoder, languages, trained_with.get("max_validation_rows"),
                        trained_with.get("seed", 0))
    y_val = _head_labels(val, config.head)
    known = y_val != IGNORE
    if known.sum() < 2:
        raise RefitError(f"the validation files have {int(known.sum())} rows with a {config.head} label; the temperature needs more")

    train_x = model.pooled([train.input_ids[i] for i in rows], encoder.pad, config.batch_size, progress="encode train")
    val_x = model.pooled(val.input_ids, encoder.pad, config.batch_size, progress="encode validation")
    head = model.heads[config.head]
    old_w, old_b = head.weight.detach().numpy().copy(), head.bias.detach().numpy().copy()
    new_w, new_b = fit_linear(train_x, y_train[rows], old_w, old_b, config.weight_decay, config.max_iterations)

    n_classes = len(old_b)
    before, after = val_x @ old_w.T + old_b, val_x @ new_w.T + new_b
    f1_before = macro_f1(y_val[known], before[known].argmax(-1), n_classes)
    f1_after = macro_f1(y_val[known], after[known].argmax(-1), n_classes)
    temperature = fit_temperature(after[known], y_val[known], binary=False)

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(new_w))
        head.bias.copy_(torch.from_numpy(new_b))
    model.save(tmp)
    calibration_path = tmp / "calibration.json"
    calibration = (json.loads(calibration_path.read_text()) if calibration_path.is_file()
                   else {"temperature": {}, "method": "temperature scaling on validation NLL"})
    calibration["temperature"][config.head] = temperature
    calibration_path.write_text(json.dumps(calibration, indent=2))
    if (tmp / "validation_logits.npz").is_file():
        saved = dict(np.load(tmp / "validation_logits.npz", allow_pickle=False))
        if len(saved.get(f"logits_{config.head}", [])) == len(after):
            saved[f"logits_{config.head}"] = after
            np.savez(tmp / "validation_logits.npz", **saved)
    result = RefitResult(out, config.head, len(rows), int(known.sum()), round(float(f1_before), 4), round(float(f1_after), 4),
                         temperature, round(time.perf_counter() - started, 1))
    record = {**asdict(config), "train": train_files, "validation": val_files, **{k: v for k, v in asdict(result).items() if k not in ("output_dir", "head")},
              "refitted_from": str(src)}
    scores = {**training.get("validation_macro_f1", {}), config.head: result.validation_macro_f1_after}
    (tmp / "training.json").write_text(json.dumps({**training, "validation_macro_f1": scores, "refit": record}, indent=2))
    tmp.rename(out)
    return result
