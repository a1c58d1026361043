"""Trimming the 250k-piece XLM-R vocabulary to the pieces a model's languages use.

The word-embedding matrix is 82% of multilingual-e5-small's parameters; most
rows belong to pieces that posts in the supported languages never produce. We
count, on a corpus of those languages, how often each piece is used, keep the
special tokens plus the most used pieces, and cut the tokenizer's vocabulary and
the embedding matrix together so ids stay aligned.

A Unigram tokenizer segments text by the best-scoring path over its pieces; a
text whose best path uses only kept pieces tokenizes exactly as before. Texts
needing a dropped piece fall back to shorter pieces (ultimately characters),
which is why the export measures the effect on held-out texts.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

N_SPECIAL = 4  # <s> <pad> </s> <unk> lead the vocabulary and keep their ids


@dataclass(frozen=True)
class TrimPlan:
    """Which old ids survive, in their new order (new id = position)."""

    keep: np.ndarray
    pieces_before: int

    @property
    def pieces_after(self) -> int:
        return len(self.keep)


def piece_counts(tokenizer_file: Path, texts: Iterable[str], prefix: str = "", batch: int = 2048) -> Counter:
    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.no_truncation()
    counts: Counter = Counter()
    chunk: list[str] = []
    for text in texts:
        chunk.append(prefix + text)
        if len(chunk) >= batch:
            for enc in tok.encode_batch(chunk):
                counts.update(enc.ids)
            chunk.clear()
    for enc in tok.encode_batch(chunk):
        counts.update(enc.ids)
    return counts


def plan_trim(tokenizer_file: Path, counts: Counter, max_pieces: int) -> TrimPlan:
    """Keep the special tokens and the ``max_pieces`` most used pieces (ties by id)."""
    vocab_size = Tokenizer.from_file(str(tokenizer_file)).get_vocab_size()
    used = sorted((i for i in counts if i >= N_SPECIAL), key=lambda i: (-counts[i], i))[
        : max(0, max_pieces - N_SPECIAL)
    ]
    keep = np.array(list(range(N_SPECIAL)) + sorted(used), dtype=np.int64)
    return TrimPlan(keep=keep, pieces_before=vocab_size)


def trimmed_tokenizer_json(tokenizer_file: Path, plan: TrimPlan) -> str:
    """The tokenizer JSON with only the kept pieces (Unigram models only)."""
    data = json.loads(Path(tokenizer_file).read_text(encoding="utf-8"))
    model = data["model"]
    if model.get("type") != "Unigram":
        raise ValueError(f"vocabulary trimming supports Unigram tokenizers, not {model.get('type')}")
    out = copy.deepcopy(data)
    out["model"]["vocab"] = [model["vocab"][i] for i in plan.keep]
    kept = {int(old): new for new, old in enumerate(plan.keep)}
    out["added_tokens"] = [{**t, "id": kept[t["id"]]} for t in data.get("added_tokens", []) if t["id"] in kept]
    if model.get("unk_id") is not None:
        out["model"]["unk_id"] = kept[model["unk_id"]]
    return json.dumps(out, ensure_ascii=False)


def trim_embeddings(model, plan: TrimPlan) -> None:
    """Cut the encoder's word-embedding rows to the plan, in place."""
    import torch

    emb = model.encoder.embeddings.word_embeddings
    new = torch.nn.Embedding(len(plan.keep), emb.embedding_dim, padding_idx=emb.padding_idx)
    with torch.no_grad():
        new.weight.copy_(emb.weight[torch.from_numpy(plan.keep)])
    model.encoder.embeddings.word_embeddings = new
    model.encoder.config.vocab_size = len(plan.keep)
    model.config.encoder_config["vocab_size"] = len(plan.keep)


def identical_tokenization(tokenizer_file: Path, trimmed_json: str, texts: list[str], prefix: str = "") -> float:
    """Share of ``texts`` the trimmed tokenizer segments exactly as the full one."""
    if not texts:
        return 1.0
    full = Tokenizer.from_file(str(tokenizer_file))
    cut = Tokenizer.from_str(trimmed_json)
    batch = [prefix + t for t in texts]
    same = sum(a.tokens == b.tokens for a, b in zip(full.encode_batch(batch), cut.encode_batch(batch), strict=True))
    return same / len(texts)


def trim_encoder_folder(
    src: Path, out: Path, corpus: list[str], held_out: list[str], max_pieces: int, prefix: str = ""
) -> dict:
    """Write a copy of the transformers encoder folder ``src`` to ``out`` with the
    vocabulary cut to the ``max_pieces`` pieces ``corpus`` uses most.

    Trimming *before* training is why the shipped bundle can be small without
    a cost: the model learns on exactly the segmentation it is served with, so
    the export changes no prediction. What trimming does to the input is still
    measured: the share of ``held_out`` texts tokenized exactly as the full
    vocabulary would (written to ``trim.json`` beside the weights)."""
    from safetensors.numpy import load_file, save_file

    src, out = Path(src), Path(out)
    tokenizer_file = src / "tokenizer.json"
    plan = plan_trim(tokenizer_file, piece_counts(tokenizer_file, corpus, prefix), max_pieces)
    trimmed_json = trimmed_tokenizer_json(tokenizer_file, plan)
    weights = load_file(str(src / "model.safetensors"))
    key = next((k for k in weights if k.endswith("word_embeddings.weight")), None)
    if key is None:
        raise ValueError(f"{src}/model.safetensors has no word_embeddings.weight to trim")
    weights[key] = np.ascontiguousarray(weights[key][plan.keep])
    config = json.loads((src / "config.json").read_text())
    config["vocab_size"] = plan.pieces_after
    out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(out / "model.safetensors"))
    (out / "tokenizer.json").write_text(trimmed_json, encoding="utf-8")
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for extra in ("tokenizer_config.json", "source.json"):
        if (src / extra).exists():
            (out / extra).write_bytes((src / extra).read_bytes())
    report = {
        "source": str(src),
        "pieces_before": plan.pieces_before,
        "pieces_after": plan.pieces_after,
        "corpus_texts": len(corpus),
        "held_out_texts": len(held_out),
        "held_out_identical_tokenization": identical_tokenization(tokenizer_file, trimmed_json, held_out, prefix),
    }
    (out / "trim.json").write_text(json.dumps(report, indent=2))
    return report
