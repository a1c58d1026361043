"""Training: masked multi-task loss, balanced bucketed sampling, checkpoint/resume, early stopping."""

import json

import numpy as np
import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file

from earful.training.data import COARSE_COMPLAINT_ID, IGNORE, BalancedBatchSampler, TokenizedData
from earful.training.trainer import TrainingError, multitask_loss, train


def _batch(ct, sent, troll, lang):
    return {
        "complaint_type": torch.tensor(ct),
        "sentiment": torch.tensor(sent),
        "troll": torch.tensor(troll),
        "lang": torch.tensor(lang),
    }


def test_loss_is_masked_per_task_and_learns_from_coarse_complaints():
    torch.manual_seed(0)
    out = {
        "complaint_type": torch.randn(3, 4),
        "sentiment": torch.randn(3, 3),
        "troll": torch.randn(3),
        "lang": torch.randn(3, 2),
    }
    batch = _batch([IGNORE, COARSE_COMPLAINT_ID, 3], [IGNORE] * 3, [IGNORE] * 3, [0, IGNORE, 1])
    loss, parts = multitask_loss(out, batch)
    assert set(parts) == {"complaint_type", "lang"}  # heads with no labels add nothing
    ct = out["complaint_type"]
    coarse = -torch.log(torch.softmax(ct[1], -1)[:3].sum())
    fine = torch.nn.functional.cross_entropy(ct[2:3], torch.tensor([3]))
    assert parts["complaint_type"] == pytest.approx(float((coarse + fine) / 2), rel=1e-5)
    assert float(loss) == pytest.approx(parts["complaint_type"] + parts["lang"], rel=1e-5)


def test_coarse_label_pushes_mass_to_complaint_types():
    logits = torch.zeros(1, 4, requires_grad=True)
    loss, _ = multitask_loss(
        {"complaint_type": logits, "sentiment": torch.zeros(1, 3), "troll": torch.zeros(1), "lang": torch.zeros(1, 2)},
        _batch([COARSE_COMPLAINT_ID], [IGNORE], [IGNORE], [IGNORE]),
    )
    loss.backward()
    g = logits.grad[0]
    assert (g[:3] < 0).all() and g[3] > 0  # gradient descent raises the three types, lowers `none`
    assert torch.allclose(g[0], g[1]) and torch.allclose(g[1], g[2])  # and claims no particular type


def _data(sources, lengths):
    n = len(sources)
    return TokenizedData(
        input_ids=[[0] * L for L in lengths], labels={"lang": np.zeros(n, np.int64)}, sources=np.array(sources)
    )


def test_sampler_is_deterministic_balanced_and_length_bucketed():
    rng = np.random.default_rng(0)
    sources = ["big"] * 900 + ["small"] * 100
    data = _data(sources, rng.integers(3, 60, size=1000))
    s = BalancedBatchSampler(data, batch_size=10, steps_per_epoch=200, alpha=0.5, seed=1)
    a, b = s.epoch(0), s.epoch(0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, s.epoch(1), strict=True))
    # alpha=0.5: small gets sqrt(100)/(sqrt(900)+sqrt(100)) = 25% of batches instead of 10%
    share = np.mean([sources[i[0]] == "small" for i in a])
    assert 0.17 < share < 0.33
    assert all(len({sources[j] for j in batch}) == 1 for batch in a)  # one source per batch
    spread = np.mean([np.ptp(data.lengths[batch]) for batch in a])
    assert spread < 10  # random batches would spread ~50 tokens


def test_training_writes_best_model_calibration_and_history(tiny_run):
    best = tiny_run / "best"
    for f in ("model.safetensors", "network.json", "tokenizer.json", "calibration.json", "training.json"):
        assert (best / f).exists(), f
    temps = json.loads((best / "calibration.json").read_text())["temperature"]
    assert set(temps) == {"complaint_type", "sentiment", "troll", "lang"} and all(t > 0 for t in temps.values())
    history = [json.loads(line) for line in (tiny_run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert json.loads((best / "network.json").read_text())["languages"] == ["de", "en", "es"]


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path, tiny_base, tiny_data):
    straight = tiny_config(tmp_path / "a", tiny_base, tiny_data, epochs=2, steps_per_epoch=4)
    train(straight)
    first = tiny_config(
        tmp_path / "b", tiny_base, tiny_data, epochs=2, steps_per_epoch=4, max_steps=3
    )  # stops mid-epoch 1
    train(first)
    assert json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())["step"] == 3
    with pytest.raises(TrainingError, match="--resume"):
        train(tiny_config(tmp_path / "b", tiny_base, tiny_data, epochs=2, steps_per_epoch=4))
    train(tiny_config(tmp_path / "b", tiny_base, tiny_data, epochs=2, steps_per_epoch=4), resume=True)
    wa = load_file(str(tmp_path / "a" / "checkpoint" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "checkpoint" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6, msg=k)
    assert json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())["step"] == 8


def test_resume_refuses_a_changed_recipe(tmp_path, tiny_base, tiny_data):
    train(tiny_config(tmp_path / "r", tiny_base, tiny_data, max_steps=2))
    with pytest.raises(TrainingError, match="learning_rate"):
        train(tiny_config(tmp_path / "r", tiny_base, tiny_data, max_steps=4, learning_rate=0.5), resume=True)
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(tiny_config(tmp_path / "none", tiny_base, tiny_data), resume=True)


def test_early_stopping_stops_when_validation_stalls(tmp_path, tiny_base, tiny_data):
    # learning rate 0 => validation never improves after epoch 1 => stop after 1 + patience epochs
    result = train(
        tiny_config(
            tmp_path / "s",
            tiny_base,
            tiny_data,
            epochs=6,
            steps_per_epoch=2,
            learning_rate=0.0,
            head_learning_rate=0.0,
            patience=2,
        )
    )
    assert result.stopped_early and result.best_epoch == 1
    assert len((tmp_path / "s" / "history.jsonl").read_text().splitlines()) == 3


def test_freezing_keeps_frozen_weights(tmp_path, tiny_base, tiny_data):
    train(tiny_config(tmp_path / "f", tiny_base, tiny_data, freeze_layers=1, max_steps=3))
    from transformers import BertModel

    before = BertModel.from_pretrained(str(tiny_base), add_pooling_layer=False).state_dict()
    after = load_file(str(tmp_path / "f" / "checkpoint" / "model.safetensors"))
    assert torch.equal(after["encoder.embeddings.word_embeddings.weight"], before["embeddings.word_embeddings.weight"])
    assert torch.equal(
        after["encoder.encoder.layer.0.output.dense.weight"], before["encoder.layer.0.output.dense.weight"]
    )
    assert not torch.equal(
        after["encoder.encoder.layer.1.output.dense.weight"], before["encoder.layer.1.output.dense.weight"]
    )


def test_a_longer_run_actually_learns(tmp_path, tiny_base, tiny_data):
    result = train(
        tiny_config(tmp_path / "l", tiny_base, tiny_data, epochs=4, steps_per_epoch=25, batch_size=16, dropout=0.0)
    )
    scores = json.loads((tmp_path / "l" / "best" / "training.json").read_text())["validation_macro_f1"]
    # chance macro-F1 is ~0.33 for 3 languages; the synthetic languages are trivially separable
    assert scores["lang"] > 0.6, scores
    assert result.best_score > 0.4, scores


def test_init_from_continues_a_previous_run(tmp_path, tiny_base, tiny_data, tiny_run):
    # zero learning rates: the second stage must start (and stay) exactly where the first ended
    train(
        tiny_config(
            tmp_path / "stage2",
            tiny_base,
            tiny_data,
            init_from=str(tiny_run),
            learning_rate=0.0,
            head_learning_rate=0.0,
            max_steps=2,
        )
    )
    a = load_file(str(tiny_run / "best" / "model.safetensors"))
    b = load_file(str(tmp_path / "stage2" / "checkpoint" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    with pytest.raises(TrainingError, match="lang head"):
        train(
            tiny_config(
                tmp_path / "stage3", tiny_base, tiny_data, init_from=str(tiny_run), languages=["en", "es"], max_steps=1
            )
        )


def test_validation_subset_is_seeded_and_spread(tiny_data, tiny_base):
    from earful.labelled import read_labelled
    from earful.models.tokenization import TextEncoder
    from earful.training.data import tokenize_sets

    s = read_labelled(tiny_data[0])
    enc = TextEncoder(tiny_base / "tokenizer.json", 32)
    a = tokenize_sets([s], enc, ["de", "en", "es"], max_rows=30, seed=1)
    b = tokenize_sets([s], enc, ["de", "en", "es"], max_rows=30, seed=1)
    assert len(a) == 30 and a.input_ids == b.input_ids
    assert len(set(a.labels["lang"].tolist())) == 3  # not just the first rows' language
