"""A BERT sentence encoder in NumPy: reads a sentence-transformers model (safetensors, tokenizer.json) and embeds text.

Enough of BERT for all-MiniLM-L6-v2: embeddings, post-norm encoder layers, mean pooling, L2 norm.
"""

from __future__ import annotations

import json
import math

import numpy as np


class SentenceEncoder:
    """Embeds sentences with a BERT model given as its config, weights and tokenizer.

    encoder = SentenceEncoder(config_json, weights, tokenizer_json, max_length=256)
    vectors = encoder.encode(["a cat", "a dog"])   # (2, hidden) float32, unit length
    """

    def __init__(self, config: str, weights: dict[str, np.ndarray], tokenizer: str, *, max_length: int = 256) -> None:
        from tokenizers import Tokenizer

        settings = json.loads(config)
        self.heads = settings["num_attention_heads"]
        self.layers = settings["num_hidden_layers"]
        self.eps = settings["layer_norm_eps"]
        self.w = weights
        self.tokenizer = Tokenizer.from_str(tokenizer)
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=settings.get("pad_token_id", 0))

    def count_tokens(self, texts: list[str]) -> int:
        return sum(sum(e.attention_mask) for e in self.tokenizer.encode_batch(texts))

    def encode(self, texts: list[str]) -> np.ndarray:
        """Takes sentences, and returns one unit-length vector per sentence."""
        batch = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in batch])
        types = np.array([e.type_ids for e in batch])
        mask = np.array([e.attention_mask for e in batch], dtype=np.float32)
        w = self.w
        positions = np.arange(ids.shape[1])
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][positions][None]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = self.norm(x, "embeddings.LayerNorm")
        bias = (1.0 - mask)[:, None, None, :] * -1e9  # padding takes no attention
        for i in range(self.layers):
            x = self.layer(x, bias, f"encoder.layer.{i}")
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)

    def layer(self, x: np.ndarray, bias: np.ndarray, name: str) -> np.ndarray:
        batch, length, hidden = x.shape
        size = hidden // self.heads

        def heads(kind: str) -> np.ndarray:
            projected = self.linear(x, f"{name}.attention.self.{kind}")
            return projected.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

        scores = heads("query") @ heads("key").transpose(0, 1, 3, 2) / math.sqrt(size) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attention = scores / scores.sum(-1, keepdims=True)
        context = (attention @ heads("value")).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = self.norm(x + self.linear(context, f"{name}.attention.output.dense"), f"{name}.attention.output.LayerNorm")
        inner = gelu(self.linear(x, f"{name}.intermediate.dense"))
        return self.norm(x + self.linear(inner, f"{name}.output.dense"), f"{name}.output.LayerNorm")

    def linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[f"{name}.weight"] + self.w[f"{name}.bias"]


def gelu(x: np.ndarray) -> np.ndarray:
    # BERT's exact GELU, x * Phi(x); NumPy has no erf, so it comes from math, element by element
    return x * 0.5 * (1.0 + np.vectorize(math.erf, otypes=[np.float32])(x / math.sqrt(2.0)))
