"""Shared fixtures: a tiny tokenizer and a tiny random BERT encoder built here,
tiny multilingual labelled data, one short training run and its exported bundle.
Nothing touches the network or the real 118M-parameter encoder."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

# Short posts per (language, complaint_type, sentiment, troll).
TEMPLATES = {
    "en": [
        ("you charged me twice for order {n}, refund it now", "order_error", "negative", 0),
        ("my parcel {n} went to the wrong address again", "order_error", "negative", 0),
        ("the app crashes every time I open playlist {n}", "product", "negative", 0),
        ("the train {n} is late again, terrible service quality", "product", "negative", 0),
        ("support agent {n} was rude and hung up on me", "poor_service", "negative", 0),
        ("waited {n} minutes on hold and nobody answered", "poor_service", "negative", 0),
        ("thanks for the quick help with ticket {n}!", "none", "positive", 0),
        ("what time does store {n} open tomorrow?", "none", "neutral", 0),
        ("you are all idiots and I hope you rot {n}", "none", "negative", 1),
        ("shut up loser nobody cares about you {n}", "none", "negative", 1),
    ],
    "es": [
        ("me cobraron dos veces el pedido {n}, quiero mi reembolso", "order_error", "negative", 0),
        ("la aplicación falla cada vez que abro la lista {n}", "product", "negative", 0),
        ("el agente {n} fue grosero y no me ayudó", "poor_service", "negative", 0),
        ("gracias por la ayuda rápida con el caso {n}", "none", "positive", 0),
        ("¿a qué hora abre la tienda {n} mañana?", "none", "neutral", 0),
        ("sois todos unos imbéciles {n}", "none", "negative", 1),
    ],
    "de": [
        ("sie haben meine bestellung {n} doppelt berechnet", "order_error", "negative", 0),
        ("der zug {n} ist schon wieder zu spät", "product", "negative", 0),
        ("der kundendienst {n} antwortet nie auf meine fragen", "poor_service", "negative", 0),
        ("danke für die schnelle hilfe mit fall {n}", "none", "positive", 0),
        ("wann öffnet der laden {n} morgen?", "none", "neutral", 0),
        ("ihr seid alle vollidioten {n}", "none", "negative", 1),
    ],
}


def make_rows(n_per_template: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for lang, templates in TEMPLATES.items():
        for text, ct, sent, troll in templates:
            for _ in range(n_per_template):
                rows.append(
                    {
                        "text": text.format(n=rng.randint(1, 999)),
                        "lang": lang,
                        "complaint_type": ct,
                        "sentiment": sent,
                        "troll": troll,
                        "source": f"synthetic_{lang}",
                    }
                )
    rng.shuffle(rows)
    # Realistic gaps: some rows label only some heads, some complaints are coarse.
    for i, r in enumerate(rows):
        if i % 7 == 0:
            r["sentiment"] = ""
        if i % 11 == 0:
            r["troll"] = ""
        if i % 5 == 0 and r["complaint_type"] not in ("none", ""):
            r["complaint_type"] = "complaint"
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def build_tiny_tokenizer(corpus: list[str], path: Path) -> None:
    """A Unigram tokenizer with XLM-R's special tokens and pipeline shape."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.save(str(path))


def build_tiny_encoder(directory: Path, corpus: list[str]) -> Path:
    import torch
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertModel

    directory.mkdir(parents=True, exist_ok=True)
    build_tiny_tokenizer(corpus, directory / "tokenizer.json")
    vocab = Tokenizer.from_file(str(directory / "tokenizer.json")).get_vocab_size()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=1,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("data")
    return write_csv(d / "train.csv", make_rows(6, seed=1)), write_csv(d / "val.csv", make_rows(2, seed=2))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, tiny_data) -> Path:
    corpus = [r["text"] for r in csv.DictReader(open(tiny_data[0], encoding="utf-8"))]
    corpus += ["hello world 🙂 https://example.com", "我的订单", "خدمة العملاء", "ok", "Le service client"] * 3
    return build_tiny_encoder(tmp_path_factory.mktemp("base") / "tiny-bert", corpus)


def tiny_config(out: Path, base: Path, data: tuple[Path, Path], **overrides):
    from earful.training.config import TrainConfig

    options = dict(
        train=[str(data[0])],
        validation=[str(data[1])],
        output_dir=str(out),
        base=str(base),
        max_length=32,
        batch_size=8,
        epochs=2,
        steps_per_epoch=6,
        learning_rate=1e-3,
        head_learning_rate=1e-2,
        freeze_embeddings=False,
        min_lang_rows=5,
        checkpoint_every=2,
        threads=1,
        seed=7,
        dropout=0.1,
        precision="fp32",  # the same arithmetic on every CPU; bf16 has its own test
    )
    options.update(overrides)
    return TrainConfig.from_dict(options)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_base, tiny_data) -> Path:
    from earful.training.trainer import train

    out = tmp_path_factory.mktemp("run") / "model"
    train(tiny_config(out, tiny_base, tiny_data))
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_run) -> Path:
    from earful.export.build import export_bundle

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    return export_bundle(tiny_run, out, name="tiny-test", version="0.0.1", card="## Data\nSynthetic test rows.")
