"""Refit heads of a trained model on its frozen encoder.

Joint training spends its steps across four heads and fifteen sources, and a
head can end it underfitted: after the default recipe's two stages the
language head put 136 of 150 Indonesian validation sentences in Malay; refitted
on the same pooled encoder outputs (1,000 rows per source and language), it put
129 of them right. The encoder stays exactly as trained (so the other heads' outputs do
not change at all); only the chosen heads' linear layers are fitted again, to
convergence, by full-batch L-BFGS on the pooled outputs of their training rows,
with the loss training uses for that head (warm-started from the trained head),
and each one's temperature is fitted again on the validation rows training used.
The rows of all chosen heads are encoded once, so refitting several heads in one
call costs little more than the largest of them.

    earful refit-head runs/default --head lang --head sentiment --out runs/default-refit

It reads the training and validation files the model was trained with (its
training.json) unless given others. The output is a model folder like
``best/`` of a training run, which ``earful export`` takes; in its
training.json each refitted head's validation macro-F1 is the refitted head's,
and a record in ``refits`` keeps the figures before.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from earful.models.tokenization import TOKENIZER_FILE
from earful.schema import TASK_NAMES
from earful.training.data import IGNORE, TokenizedData, load_sets, tokenize_sets
from earful.training.network import CONFIG_FILE, MultiTaskModel, trained_folder
from earful.training.trainer import head_loss, head_score, head_temperature, scored_rows


class RefitError(ValueError):
    """A refit cannot run; the message says what to change."""


@dataclass(frozen=True)
class RefitConfig:
    model: str
    output_dir: str
    #: Labelled files; default: the ones the model was trained and validated on (its training.json).
    train: list[str] | None = None
    validation: list[str] | None = None
    heads: tuple[str, ...] = ("lang",)
    #: At most this many training rows per (source, language, label) and head, a seeded random subset: no
    #: source, language or label outweighs the rest, and the pass over the rows stays short (each costs one
    #: encoder forward pass).
    rows_per_label: int = 1000
    #: L2 penalty on each head's weights, added to its mean loss.
    weight_decay: float = 1e-5
    max_iterations: int = 500
    #: Keep a head's trained layer (and temperature) where the refitted one does not score higher on
    #: training's validation rows: a model selection step on the same rows early stopping reads.
    keep_better: bool = False
    batch_size: int = 128
    threads: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class HeadRefit:
    """What refitting one head did, measured on training's validation rows."""

    head: str
    train_rows: int
    validation_rows: int
    validation_macro_f1_before: float
    validation_macro_f1_after: float
    temperature: float
    #: False where ``keep_better`` kept the trained head (the refit did not raise its score).
    applied: bool = True


@dataclass(frozen=True)
class RefitResult:
    output_dir: Path
    heads: tuple[HeadRefit, ...]
    #: Distinct training rows encoded (heads share the rows labelled for more than one of them).
    encoded_rows: int
    seconds: float


def _capped_rows(data: TokenizedData, head: str, cap: int, seed: int) -> np.ndarray:
    """Rows labelled for ``head``, at most ``cap`` (a seeded random subset) per (source, language, label)."""
    rng = np.random.default_rng(seed)
    y, lang = data.labels[head], data.labels["lang"]
    keep = []
    labelled = np.flatnonzero(y != IGNORE)
    for source in np.unique(data.sources[labelled]):
        in_source = labelled[data.sources[labelled] == source]
        for language in np.unique(lang[in_source]):
            in_lang = in_source[lang[in_source] == language]
            for label in np.unique(y[in_lang]):
                rows = in_lang[y[in_lang] == label]
                keep.append(rows if len(rows) <= cap else rng.choice(rows, cap, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def _head_logits(head: str, features: np.ndarray | torch.Tensor, weight, bias):
    logits = features @ weight.T + bias
    return logits[:, 0] if head == "troll" else logits


def fit_head(
    head: str,
    features: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    weight_decay: float,
    max_iterations: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The head's linear layer that minimises training's loss for it (:func:`head_loss`) plus an L2
    penalty, by full-batch L-BFGS from (weight, bias): logistic regression for the troll head, multinomial
    for the others, with complaint type's coarse ``complaint`` rows counted as training counts them."""
    x, target = torch.from_numpy(features), torch.from_numpy(y)
    w = torch.tensor(weight, dtype=torch.float32, requires_grad=True)
    b = torch.tensor(bias, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iterations, history_size=20, line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        value = head_loss(head, _head_logits(head, x, w, b), target) + weight_decay * (w**2).sum()
        value.backward()
        return value

    opt.step(loss)
    return w.detach().numpy(), b.detach().numpy()


def _record(
    history: dict, config: RefitConfig, train_files: list[str], val_files: list[str], result: RefitResult, src: Path
) -> dict:
    """training.json of the refitted folder: the source's, with the new scores and this refit appended to ``refits``."""
    settings = {k: v for k, v in asdict(config).items() if k not in ("train", "validation", "heads")}
    record = {
        **settings,
        "train": train_files,
        "validation": val_files,
        "refitted_from": str(src),
        "heads": {h.head: {k: v for k, v in asdict(h).items() if k != "head"} for h in result.heads},
        "encoded_rows": result.encoded_rows,
        "seconds": result.seconds,
    }
    scores = {
        **history.get("validation_macro_f1", {}),
        **{h.head: h.validation_macro_f1_after for h in result.heads if h.applied},
    }
    return {**history, "validation_macro_f1": scores, "refits": [*history.get("refits", []), record]}


def refit_heads(config: RefitConfig) -> RefitResult:
    """Fit ``config.heads`` again on the frozen encoder; write the new model folder."""
    unknown = [h for h in config.heads if h not in TASK_NAMES]
    if unknown or not config.heads:
        raise RefitError(
            f"cannot refit {', '.join(map(repr, unknown)) or 'no head'}; choose heads from {', '.join(TASK_NAMES)}"
        )
    heads = [h for h in TASK_NAMES if h in config.heads]
    out = Path(config.output_dir)
    if out.exists():
        raise RefitError(f"{out} exists; remove it or choose another --out")
    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    src = trained_folder(config.model)
    if src is None:
        raise RefitError(
            f"{config.model} is not a trained model folder (no {CONFIG_FILE}); give the output folder of `earful train`"
        )
    model = MultiTaskModel.load(src)
    encoder = model.config.text_encoder(src / TOKENIZER_FILE)
    languages = list(model.config.languages)
    history = json.loads((src / "training.json").read_text()) if (src / "training.json").is_file() else {}
    trained_with = history.get("config", {})

    train_files, val_files = (
        config.train or trained_with.get("train"),
        config.validation or trained_with.get("validation"),
    )
    if not train_files or not val_files:
        raise RefitError(
            f"{src}/training.json does not list the files the model was trained on; give --train and --validation"
        )
    train = tokenize_sets(load_sets(train_files), encoder, languages)
    rows = {h: _capped_rows(train, h, config.rows_per_label, config.seed) for h in heads}
    if empty := [h for h in heads if len(rows[h]) == 0]:
        raise RefitError(
            f"no training row has a label for the {', '.join(empty)} head; give --train files that label it"
        )
    # The validation rows training picked (same cap and seed), so scores and temperatures compare with training's.
    val = tokenize_sets(
        load_sets(val_files), encoder, languages, trained_with.get("max_validation_rows"), trained_with.get("seed", 0)
    )
    if few := [h for h in heads if not scored_rows(h, val.labels[h]).any()]:
        raise RefitError(
            f"the validation files have no rows labelled for the {', '.join(few)} head; its temperature needs some"
        )

    encoded = np.unique(np.concatenate(list(rows.values())))
    train_grams = None if train.ngram_ids is None else [train.ngram_ids[i] for i in encoded]
    train_x = model.pooled(
        [train.input_ids[i] for i in encoded],
        encoder.pad,
        config.batch_size,
        progress="encode train",
        ngrams=train_grams,
    )
    val_x = model.pooled(
        val.input_ids, encoder.pad, config.batch_size, progress="encode validation", ngrams=val.ngram_ids
    )

    results, new_logits = [], {}
    for h in heads:
        layer = model.heads[h]
        old_w, old_b = layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy()
        x = train_x[np.searchsorted(encoded, rows[h])]
        new_w, new_b = fit_head(
            h, x, train.labels[h][rows[h]], old_w, old_b, config.weight_decay, config.max_iterations
        )
        before, after = _head_logits(h, val_x, old_w, old_b), _head_logits(h, val_x, new_w, new_b)
        f1_before, f1_after = (round(float(head_score(h, v, val.labels[h])), 4) for v in (before, after))
        applied = f1_after > f1_before or not config.keep_better
        if applied:
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(new_w))
                layer.bias.copy_(torch.from_numpy(new_b))
            new_logits[h] = after
        results.append(
            HeadRefit(
                h,
                len(rows[h]),
                int(scored_rows(h, val.labels[h]).sum()),
                f1_before,
                f1_after,
                head_temperature(h, after, val.labels[h]),
                applied,
            )
        )

    result = RefitResult(out, tuple(results), len(encoded), round(time.perf_counter() - started, 1))
    _write_folder(
        src,
        out,
        model,
        {r.head: r.temperature for r in results if r.applied},
        new_logits,
        _record(history, config, train_files, val_files, result, src),
    )
    return result


def _write_folder(
    src: Path,
    out: Path,
    model: MultiTaskModel,
    temperatures: dict[str, float],
    logits: dict[str, np.ndarray],
    training: dict,
) -> None:
    """``out``: a copy of the model folder ``src`` with the refitted weights, the new heads' temperatures and
    validation logits, and ``training`` as its training.json; written beside it and renamed into place."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    model.save(tmp)
    calibration_path = tmp / "calibration.json"
    calibration = (
        json.loads(calibration_path.read_text())
        if calibration_path.is_file()
        else {"temperature": {}, "method": "temperature scaling on validation NLL"}
    )
    calibration["temperature"].update(temperatures)
    calibration_path.write_text(json.dumps(calibration, indent=2))
    if (tmp / "validation_logits.npz").is_file():
        saved = dict(np.load(tmp / "validation_logits.npz", allow_pickle=False))
        saved.update({f"logits_{h}": v for h, v in logits.items() if len(saved.get(f"logits_{h}", [])) == len(v)})
        np.savez(tmp / "validation_logits.npz", **saved)
    (tmp / "training.json").write_text(json.dumps(training, indent=2))
    tmp.rename(out)
