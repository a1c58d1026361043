"""What the n-gram branch adds per head, measured on one trained model.

Each head is fitted again, on the trained model's frozen features, twice: once on the encoder's pooled output
alone and once on it joined with the n-gram branch's (what the heads read), by the same full-batch L-BFGS as
``earful refit-head`` (:func:`earful.training.refit.fit_head`) on the same training rows, and scored on the same
validation rows training used. The difference is what the n-gram features add beside this encoder; the encoder
itself was trained beside the branch, so it is not a model trained without one.

    python -m earful.eval.ngram_ablation RUNS/default/best --out docs/ngram-ablation.json --card models/default

``--card`` writes the table into the bundle's model card (and ``metrics.json`` → ``ngram_ablation``) through
the bundle writer, replacing the one a previous run wrote.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from earful.machine import heading, stamp

__all__ = ["AblationResult", "main", "ngram_ablation", "render_markdown", "write_card_section"]

CARD_TITLE = "## What the n-gram branch adds"


@dataclass
class AblationResult:
    model: str
    #: ``{head: {"train_rows", "validation_rows", "encoder_only", "with_ngrams", "as_trained"}}`` (macro-F1)
    heads: dict
    rows_per_label: int
    seconds: float
    machine: dict


def ngram_ablation(model_dir: str | Path, rows_per_label: int = 300, max_iterations: int = 200) -> AblationResult:
    import torch

    from earful.models.tokenization import TOKENIZER_FILE
    from earful.schema import TASK_NAMES
    from earful.training.data import load_sets, tokenize_sets
    from earful.training.network import MultiTaskModel, trained_folder
    from earful.training.refit import _capped_rows, _head_logits, fit_head
    from earful.training.trainer import head_score, native_bf16, scored_rows

    started = time.perf_counter()
    folder = trained_folder(model_dir)
    if folder is None:
        raise SystemExit(f"{model_dir} is not a trained model folder (no network.json)")
    model = MultiTaskModel.load(folder)
    if model.ngram_embedding is None:
        raise SystemExit(f"{folder}: the model has no n-gram branch to measure")
    config = json.loads((folder / "training.json").read_text())["config"]
    encoder = model.config.text_encoder(folder / TOKENIZER_FILE)
    languages = list(model.config.languages)
    train = tokenize_sets(load_sets(config["train"]), encoder, languages)
    val = tokenize_sets(
        load_sets(config["validation"]), encoder, languages, config["max_validation_rows"], config["seed"]
    )
    rows = {h: _capped_rows(train, h, rows_per_label, 0) for h in TASK_NAMES}
    encoded = np.unique(np.concatenate(list(rows.values())))
    hidden = model.encoder.config.hidden_size
    with torch.autocast("cpu", torch.bfloat16, enabled=native_bf16(torch.device("cpu"))):
        train_x = model.pooled(
            [train.input_ids[i] for i in encoded],
            encoder.pad,
            progress="encode train",
            ngrams=[train.ngram_ids[i] for i in encoded],
        )
        val_x = model.pooled(val.input_ids, encoder.pad, progress="encode validation", ngrams=val.ngram_ids)
    heads = {}
    for h in TASK_NAMES:
        x = train_x[np.searchsorted(encoded, rows[h])]
        y = train.labels[h][rows[h]]
        layer = model.heads[h]
        trained_w, trained_b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
        scores = {"as_trained": head_score(h, _head_logits(h, val_x, trained_w, trained_b), val.labels[h])}
        for name, width in (("encoder_only", hidden), ("with_ngrams", val_x.shape[1])):
            w, b = fit_head(
                h,
                x[:, :width],
                y,
                np.zeros((len(trained_b), width), np.float32),
                np.zeros_like(trained_b),
                1e-5,
                max_iterations,
            )
            scores[name] = head_score(h, _head_logits(h, val_x[:, :width], w, b), val.labels[h])
        heads[h] = {
            "train_rows": len(rows[h]),
            "validation_rows": int(scored_rows(h, val.labels[h]).sum()),
            **{k: round(float(v), 4) for k, v in scores.items()},
        }
    return AblationResult(folder.parent.name, heads, rows_per_label, round(time.perf_counter() - started, 1), stamp())


def render_markdown(result: AblationResult) -> str:
    lines = [
        heading(result.machine),
        "",
        f"Heads refitted on the frozen features of `{result.model}` ({result.rows_per_label} training rows per "
        "source, language and label), validation macro-F1:",
        "",
        "| head | encoder only | encoder + n-grams | added | as trained |",
        "|---|---:|---:|---:|---:|",
    ]
    for h, r in result.heads.items():
        added = r["with_ngrams"] - r["encoder_only"]
        lines.append(
            f"| {h} | {r['encoder_only']:.3f} | {r['with_ngrams']:.3f} | {added:+.3f} | {r['as_trained']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def write_card_section(bundle: str | Path, result: AblationResult) -> None:
    """Put the table in the bundle's model card, before its evaluation section, replacing an earlier one."""
    from earful.eval.results import EVALUATION_SECTION as EVALUATION
    from earful.export.writer import edit_bundle

    section = f"{CARD_TITLE}\n\n{render_markdown(result)}"
    with edit_bundle(bundle) as writer:
        card = writer.read_text("MODEL_CARD.md") or ""
        if CARD_TITLE in card:
            start = card.index(CARD_TITLE)
            end = card.find("\n## ", start + len(CARD_TITLE))
            card = card[:start] + (card[end + 1 :] if end >= 0 else "")
        if EVALUATION in card:
            at = card.index(EVALUATION) + 1
            card = card[:at] + section + "\n" + card[at:]
        else:
            card = card.rstrip("\n") + "\n\n" + section
        writer.write_text("MODEL_CARD.md", card)
        writer.update_json("metrics.json", {"ngram_ablation": asdict(result)})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a training run folder (or its best/) of a model with the n-gram branch")
    ap.add_argument("--rows-per-label", type=int, default=300)
    ap.add_argument("--out", type=Path, help="write the result as JSON here (and Markdown beside it)")
    ap.add_argument("--card", help="a bundle exported from this model: write the table into its model card")
    args = ap.parse_args(argv)
    if args.card:
        from earful.models.bundle import Bundle

        Bundle.load(args.card)  # a bundle that does not verify fails here, before the long measurement
    result = ngram_ablation(args.model, args.rows_per_label)
    print(render_markdown(result))
    if args.card:
        write_card_section(args.card, result)
    if args.out:
        args.out.write_text(json.dumps(asdict(result), indent=2))
        args.out.with_suffix(".md").write_text(render_markdown(result))


if __name__ == "__main__":
    main()
