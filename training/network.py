"""The multi-task network: one shared encoder, mean pooling, optionally a hashed n-gram branch, one linear head
per task.

This torch module is what training optimises and what export traces to ONNX;
it is saved as safetensors plus JSON (never pickle) so a checkpoint is plain data.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from earful.models.ngrams import NgramSpec
from earful.models.tokenization import TextEncoder
from earful.schema import Schema

if TYPE_CHECKING:
    import numpy as np

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "network.json"


@dataclass
class NetworkConfig:
    """What is needed to rebuild the network: the encoder's transformers config,
    the schema, and how inputs are prepared."""

    encoder_config: dict
    languages: list[str]
    max_length: int = 128
    input_prefix: str = ""
    dropout: float = 0.1
    #: Strip @handles and URLs from posts before tokenizing (:func:`earful.models.ngrams.normalize_post`).
    normalize: bool = False
    #: The n-gram branch: :class:`NgramSpec` fields plus ``dim``, the width of its embedding; None = no branch.
    ngrams: dict | None = None

    @property
    def schema(self) -> Schema:
        return Schema(languages=tuple(self.languages))

    @property
    def ngram_spec(self) -> NgramSpec | None:
        return None if self.ngrams is None else NgramSpec.from_dict(self.ngrams)

    def text_encoder(self, tokenizer_file: Path) -> TextEncoder:
        """The encoder of posts into this network's inputs (the same one the bundle's predictor builds)."""
        return TextEncoder(tokenizer_file, self.max_length, self.input_prefix, self.normalize, self.ngram_spec)


class MultiTaskModel(nn.Module):
    """Encoder → masked mean pooling [→ joined with the mean of the post's n-gram embeddings, layer-normed]
    → dropout → one linear head per task.

    ``forward`` returns the heads' logits as a tuple in schema task order, so the
    ONNX graph has one named output per task."""

    def __init__(self, config: NetworkConfig, encoder: nn.Module | None = None):
        super().__init__()
        from transformers import BertConfig, BertModel

        self.config = config
        self.schema = config.schema
        self.encoder = (
            encoder
            if encoder is not None
            else BertModel(BertConfig(**_bert_fields(config.encoder_config)), add_pooling_layer=False)
        )
        width = self.encoder.config.hidden_size
        self.ngram_embedding = self.ngram_norm = None
        if config.ngrams is not None:
            dim = int(config.ngrams["dim"])
            self.ngram_embedding = nn.Embedding(config.ngram_spec.buckets, dim, padding_idx=0)
            # Small uniform start, as fastText's: a bucket seen a few times in training adds little noise to the
            # pooled mean, where N(0, 1) rows would drown the n-grams that were learned (docs/default-model.md).
            with torch.no_grad():
                self.ngram_embedding.weight.uniform_(-1.0 / dim, 1.0 / dim)
                self.ngram_embedding.weight[0].zero_()
            self.ngram_norm = nn.LayerNorm(dim)
            width += dim
        self.dropout = nn.Dropout(config.dropout)
        #: Share of posts whose n-gram features training zeroes, and for which heads (None: all)
        #: (``TrainConfig.ngram_dropout``, ``ngram_dropout_heads``); training settings, not part of the saved network.
        self.ngram_dropout = 0.0
        self.ngram_dropout_heads: frozenset[str] | None = None
        self.heads = nn.ModuleDict({t.name: nn.Linear(width, t.n_outputs) for t in self.schema.tasks})

    @classmethod
    def from_pretrained_encoder(
        cls,
        encoder_dir: Path,
        languages: list[str],
        max_length: int,
        input_prefix: str,
        dropout: float = 0.1,
        normalize: bool = False,
        ngrams: dict | None = None,
    ) -> MultiTaskModel:
        import transformers
        from transformers import BertModel

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        encoder = BertModel.from_pretrained(str(encoder_dir), add_pooling_layer=False)
        config = NetworkConfig(
            encoder.config.to_dict(), languages, max_length, input_prefix, dropout, normalize, ngrams
        )
        return cls(config, encoder)

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, ngram_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """What every head reads: the pooled encoder output, joined with the n-gram branch's where there is one."""
        pooled = self.pool(input_ids, attention_mask)
        if self.ngram_embedding is None:
            return pooled
        if ngram_ids is None:
            raise ValueError("this network has an n-gram branch: give ngram_ids (TextEncoder.encode makes them)")
        grams = self.ngram_embedding(ngram_ids)
        count = (ngram_ids > 0).sum(1, keepdim=True).clamp(min=1).to(grams.dtype)
        return torch.cat([pooled, self.ngram_norm(grams.sum(1) / count)], -1)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, ngram_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        features = self.features(input_ids, attention_mask, ngram_ids)
        keep = None
        if self.training and self.ngram_dropout and self.ngram_embedding is not None:
            keep = torch.rand(len(features), 1, device=features.device) >= self.ngram_dropout
        pooled = self.dropout(features)
        dropped = pooled
        if keep is not None:
            encoder_width = pooled.shape[1] - self.ngram_embedding.embedding_dim
            dropped = torch.cat([pooled[:, :encoder_width], pooled[:, encoder_width:] * keep.to(pooled.dtype)], -1)
        outputs = []
        for task in self.schema.tasks:
            use_dropped = self.ngram_dropout_heads is None or task.name in self.ngram_dropout_heads
            logits = self.heads[task.name](dropped if use_dropped else pooled)
            outputs.append(logits.squeeze(-1) if task.kind == "binary" else logits)
        return tuple(outputs)

    def pooled(
        self,
        ids: list[list[int]],
        pad,
        batch_size: int = 64,
        device: torch.device | str = "cpu",
        progress: str | None = None,
        ngrams: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        """What every head reads (:meth:`features`) per tokenized text,
        run in length-sorted batches (for speed) and returned in input order.
        ``pad`` turns a list of id lists into (input_ids, attention_mask) arrays
        (``TextEncoder.pad``); ``ngrams`` are the texts' n-gram ids for a network with the branch;
        ``progress`` names a progress bar, if one is wanted."""
        import numpy as np
        from tqdm.auto import tqdm

        from earful.models.ngrams import pad_ngrams

        self.eval()
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.zeros((len(ids), self.heads[self.schema.tasks[0].name].in_features), np.float32)
        with (
            torch.inference_mode(),
            tqdm(total=len(ids), desc=progress, unit="row", dynamic_ncols=True, disable=progress is None) as bar,
        ):
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                input_ids, mask = pad([ids[i] for i in idx])
                grams = None if ngrams is None else torch.from_numpy(pad_ngrams([ngrams[i] for i in idx])).to(device)
                out[idx] = (
                    self.features(torch.from_numpy(input_ids).to(device), torch.from_numpy(mask).to(device), grams)
                    .float()
                    .cpu()
                    .numpy()
                )
                bar.update(len(idx))
        return out

    def logits(
        self,
        ids: list[list[int]],
        pad,
        batch_size: int = 64,
        device: torch.device | str = "cpu",
        ngrams: list[np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Logits per head for tokenized texts, in input order (see :meth:`pooled`)."""
        pooled = torch.from_numpy(self.pooled(ids, pad, batch_size, device, ngrams=ngrams)).to(device)
        out = {}
        with torch.inference_mode():
            for task in self.schema.tasks:
                logits = self.heads[task.name](pooled)
                out[task.name] = (logits.squeeze(-1) if task.kind == "binary" else logits).float().cpu().numpy()
        return out

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        (directory / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))

    @classmethod
    def load(cls, directory: Path) -> MultiTaskModel:
        from safetensors.torch import load_file

        config = NetworkConfig(**json.loads((directory / CONFIG_FILE).read_text()))
        model = cls(config)
        model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        model.eval()
        return model


def trained_folder(path: str | Path) -> Path | None:
    """The folder holding a trained model: ``path`` itself or its ``best/`` (the
    output folder of ``earful train``); None when neither holds one."""
    path = Path(path)
    if (path / "best").is_dir():
        path = path / "best"
    return path if (path / CONFIG_FILE).is_file() else None


def _bert_fields(encoder_config: dict) -> dict:
    """The transformers config minus keys that describe the saved file, not the model."""
    drop = {"architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype"}
    return {k: v for k, v in encoder_config.items() if k not in drop}
