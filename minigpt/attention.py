"""Chapter 3: self-attention from first principles, up to the multi-head attention GPT uses.

Attention lets each token build its output as a weighted average of every token's "value", with weights that
say how relevant each other token is: softmax(queries · keysᵀ / √d) · values. The chapter grows that one
formula in small steps, each class short enough to compare with the one before it:

    simple_self_attention   no trainable weights: the inputs are queries, keys and values at once
    SelfAttentionV1         trainable projections W_query, W_key, W_value as raw nn.Parameter matrices
    SelfAttentionV2         the same with nn.Linear (better initialisation, optional bias)
    CausalAttention         a mask so a token cannot look at later tokens, dropout on the weights, batches
    MultiHeadAttentionWrapper   several causal heads side by side, outputs concatenated
    MultiHeadAttention      the same computed at once: one projection, heads split by reshaping, out_proj

Shapes: a single sequence is (num_tokens, d_in); a batch is (batch, num_tokens, d_in).
"""
from __future__ import annotations

import torch
import torch.nn as nn


def simple_self_attention(inputs: torch.Tensor) -> torch.Tensor:
    """Every token attends to every token, using the raw embeddings as queries, keys and values.

    inputs: (num_tokens, d). Returns the context vectors, (num_tokens, d).
    """
    # Dot products measure similarity: scores[i, j] says how much token i "cares about" token j.
    scores = inputs @ inputs.T
    # Softmax turns each row into positive weights that sum to 1.
    weights = torch.softmax(scores, dim=-1)
    # Each output is the weighted average of all inputs.
    return weights @ inputs


class SelfAttentionV1(nn.Module):
    """Scaled dot-product attention with trainable query, key and value matrices (one sequence)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        # Three learned views of each token: what it looks for (query), what it offers to be
        # found by (key), and what it passes on when found (value).
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        queries = x @ self.W_query
        keys = x @ self.W_key
        values = x @ self.W_value
        scores = queries @ keys.T
        # Dividing by √d_out keeps the scores' spread independent of the width, so softmax does not
        # saturate into a one-hot vector (whose gradients vanish) as d_out grows.
        weights = torch.softmax(scores / keys.shape[-1] ** 0.5, dim=-1)
        return weights @ values


class SelfAttentionV2(nn.Module):
    """SelfAttentionV1 with nn.Linear layers: same computation, better default initialisation."""

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        queries = self.W_query(x)
        keys = self.W_key(x)
        values = self.W_value(x)
        scores = queries @ keys.T
        weights = torch.softmax(scores / keys.shape[-1] ** 0.5, dim=-1)
        return weights @ values


class CausalAttention(nn.Module):
    """Self-attention in which token t sees only tokens 0..t, with dropout on the attention weights (batched)."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        # Ones above the diagonal mark the future. A buffer moves with the module to the GPU
        # but is not a trainable parameter.
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1).bool(),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, num_tokens, d_in = x.shape
        queries = self.W_query(x)
        keys = self.W_key(x)
        values = self.W_value(x)
        scores = queries @ keys.transpose(1, 2)
        # -inf before softmax gives exactly zero weight to future tokens, and the remaining weights
        # still sum to one (masking after softmax would need renormalising).
        scores = scores.masked_fill(self.mask[:num_tokens, :num_tokens], float("-inf"))
        weights = torch.softmax(scores / keys.shape[-1] ** 0.5, dim=-1)
        weights = self.dropout(weights)
        return weights @ values


class MultiHeadAttentionWrapper(nn.Module):
    """Several CausalAttention heads run side by side; their outputs are concatenated."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False):
        super().__init__()
        # Each head has its own projections, so each can learn to attend to a different kind of relation.
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(x) for head in self.heads], dim=-1)


class MultiHeadAttention(nn.Module):
    """Multi-head causal attention computed at once: one projection per role, heads split by reshaping.

    Equivalent to MultiHeadAttentionWrapper with num_heads heads of width d_out // num_heads whose
    projection matrices are stacked (see the chapter's tests), followed by an output projection that
    mixes the heads' results.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int | None, dropout: float, num_heads: int,
                 qkv_bias: bool = False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads})")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        if context_length is not None:   # None: the caller masks (chapter 4's GPTAttention builds its mask per call)
            self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1).bool(),
                                 persistent=False)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, d_out) -> (batch, heads, tokens, head_dim): each head gets its own slice of the width."""
        batch, num_tokens, _ = x.shape
        return x.view(batch, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, heads, tokens, head_dim) -> (batch, tokens, d_out): the heads' outputs side by side."""
        batch, _, num_tokens, _ = x.shape
        return x.transpose(1, 2).contiguous().view(batch, num_tokens, self.d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        num_tokens = x.shape[1]
        if num_tokens > self.mask.shape[0]:
            raise ValueError(f"{num_tokens} tokens do not fit the context length {self.mask.shape[0]}")
        queries = self.split_heads(self.W_query(x))
        keys = self.split_heads(self.W_key(x))
        values = self.split_heads(self.W_value(x))
        # One batched matrix product computes every head's scores: (b, h, t, hd) @ (b, h, hd, t).
        scores = queries @ keys.transpose(2, 3)
        scores = scores.masked_fill(self.mask[:num_tokens, :num_tokens], float("-inf"))
        weights = torch.softmax(scores / self.head_dim ** 0.5, dim=-1)
        weights = self.dropout(weights)
        context = self.merge_heads(weights @ values)
        return self.out_proj(context)
