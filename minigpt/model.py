"""Chapter 4: the GPT model, assembled from chapter 3's attention and a few small parts.

A GPT is a stack of identical transformer blocks between an embedding layer and an output head:

    token ids -> token embedding + position embedding -> dropout
              -> n_layers x [ x + Attention(LayerNorm(x)),  x + FeedForward(LayerNorm(x)) ]
              -> final LayerNorm -> linear head -> logits over the vocabulary

LayerNorm keeps activations at a steady scale, GELU is the smooth non-linearity of the feed-forward network, and the
residual "shortcut" additions let gradients reach the first layers unchanged. Read it in this order:
  1. GPTConfig and MODEL_SIZES    the knobs, and the one table of sizes (GPT-2's four and a tiny one) with aliases
  2. LayerNorm, GELU, FeedForward the small parts
  3. GPTAttention                 chapter 3's MultiHeadAttention, its core computed by minigpt/backends.py
  4. TransformerBlock, GPTModel   the stack, and GPT-2's initialisation
  5. count_parameters, estimate_parameters, estimate_memory, generate_text_simple   tools

The attention's core softmax(QKᵀ/√d)V can be computed three ways (chapter 3's explicit scores, torch's SDPA, or
chapter 5's Triton kernel) with the same weights; minigpt/backends.py holds that switch, so this file never imports
kernels/. Two things are added for chapters 6-9 and marked where they appear: a KV cache (KVCache, `cache=`),
which lets generation feed one new token at a time, and padding masks (`attention_mask=`), which let prompts of
different lengths share a batch. What the model does not do: no rotary or learned-relative positions (GPT-2's
absolute position table), no grouped-query attention, no dropout inside the Triton kernel's masked paths.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from minigpt import backends
from minigpt.attention import MultiHeadAttention


@dataclass
class GPTConfig:
    vocab_size: int = 50257      # GPT-2's BPE vocabulary (chapter 1)
    context_length: int = 1024   # the most tokens the model can look at
    emb_dim: int = 768           # width of every token's vector
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.1
    qkv_bias: bool = False       # GPT-2's released weights have biases on the query/key/value projections
    tie_weights: bool = False    # share the token embedding with the output head (GPT-2 does)
    attention_impl: str = "torch"   # "ch3" (explicit scores matrix), "torch" (SDPA), "triton" (chapter 5)
    layernorm_impl: str = "torch"   # "formula" (explicit mean/var), "torch" (F.layer_norm), "triton"

    def __post_init__(self):
        if self.emb_dim % self.n_heads:
            raise ValueError(f"emb_dim ({self.emb_dim}) must be divisible by n_heads ({self.n_heads})")
        if self.attention_impl not in backends.ATTENTION_IMPLS:
            raise ValueError(f"attention_impl must be one of {backends.ATTENTION_IMPLS}, got {self.attention_impl!r}")
        if self.layernorm_impl not in backends.LAYERNORM_IMPLS:
            raise ValueError(f"layernorm_impl must be one of {backends.LAYERNORM_IMPLS}, got {self.layernorm_impl!r}")

    @classmethod
    def preset(cls, name: str, **overrides) -> "GPTConfig":
        """A size from MODEL_SIZES (or an alias), with any field overridden: GPTConfig.preset("tiny", n_layers=2)."""
        size = size_name(name)
        if size is None:
            raise ValueError(f"unknown preset {name!r}: choose a model size from {sorted(MODEL_SIZES)} or an alias "
                             f"({', '.join(SIZE_ALIASES)})")
        return replace(MODEL_SIZES[size], **overrides)


# The one table of model sizes. GPT-2's four are the sizes OpenAI released (124M, 355M, 774M, 1558M parameters with
# tied weights); chapter 7 loads their weights by these names. "tiny" trains on a laptop CPU in minutes.
MODEL_SIZES = {
    "gpt2": GPTConfig(emb_dim=768, n_layers=12, n_heads=12),
    "gpt2-medium": GPTConfig(emb_dim=1024, n_layers=24, n_heads=16),
    "gpt2-large": GPTConfig(emb_dim=1280, n_layers=36, n_heads=20),
    "gpt2-xl": GPTConfig(emb_dim=1600, n_layers=48, n_heads=25),
    "tiny": GPTConfig(context_length=256, emb_dim=128, n_layers=4, n_heads=4, drop_rate=0.1),
}
GPT2_SIZES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
SIZE_ALIASES = {"gpt2-small": "gpt2", "124M": "gpt2", "355M": "gpt2-medium", "774M": "gpt2-large",
                "1558M": "gpt2-xl"}


def size_name(name: str) -> str | None:
    """The table's name for 'gpt2', 'gpt2-small', '124M', 'tiny', ... or None if `name` is not a size."""
    name = SIZE_ALIASES.get(name, name)
    return name if name in MODEL_SIZES else None


class LayerNorm(nn.Module):
    """Normalise each token's vector to mean 0 and variance 1, then apply a learned scale and shift.

    `impl="formula"` writes the computation out; "torch" and "triton" compute the same thing in one fused kernel
    (minigpt/backends.py).
    """

    def __init__(self, emb_dim: int, eps: float = 1e-5, impl: str = "torch"):
        super().__init__()
        self.eps = eps
        self.impl = impl
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))
        if impl == "triton":
            backends.load_kernels()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl != "formula":
            return backends.fused_layer_norm(x, self.scale, self.shift, self.eps, self.impl)
        mean = x.mean(dim=-1, keepdim=True)
        # The biased variance (divide by n, not n - 1), as GPT-2 and torch's LayerNorm use.
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        # eps keeps the division finite for a vector whose entries are all equal.
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class GELU(nn.Module):
    """GELU in the tanh approximation GPT-2 was trained with: x·Φ(x), a smooth ReLU that lets small negatives through."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class FeedForward(nn.Module):
    """Widen each token's vector 4x, apply GELU, project back: the per-token 'thinking' after attention mixed tokens."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg.emb_dim, 4 * cfg.emb_dim),
            GELU(),
            nn.Linear(4 * cfg.emb_dim, cfg.emb_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


# ---- added for generation (chapters 6-9): the KV cache ----------------------------------------------------------

class KVCache:
    """Keys and values of the tokens already processed, one entry per layer.

    Generating token t+1 needs the keys and values of tokens 0..t. They do not change once computed
    (a causal model never lets a token see later ones), so keep them and feed the model only the new token.
    """

    def __init__(self, n_layers: int):
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers

    def __len__(self) -> int:
        """How many positions are cached."""
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def update(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's (batch, heads, new_tokens, head_dim) keys/values; return all of them so far."""
        if self.keys[layer] is not None:
            keys = torch.cat([self.keys[layer], keys], dim=2)
            values = torch.cat([self.values[layer], values], dim=2)
        self.keys[layer], self.values[layer] = keys, values
        return keys, values

    def reorder(self, keep: torch.Tensor) -> None:
        """Keep only the batch rows in `keep` (index tensor), e.g. after some sequences finished."""
        self.keys = [k if k is None else k[keep] for k in self.keys]
        self.values = [v if v is None else v[keep] for v in self.values]


def allowed_positions(num_queries: int, num_keys: int, attention_mask: torch.Tensor | None,
                      device: torch.device) -> torch.Tensor:
    """Boolean (batch or 1, 1, queries, keys) mask: True where a query may look at a key (chapters 6-9).

    The queries are the last `num_queries` of `num_keys` positions (earlier ones are in the cache).
    `attention_mask` (batch, num_keys) marks real tokens (True) and padding (False).
    """
    query_pos = torch.arange(num_keys - num_queries, num_keys, device=device)[:, None]
    key_pos = torch.arange(num_keys, device=device)[None, :]
    allowed = (key_pos <= query_pos)[None, None]
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool()[:, None, None, :]
        # A padding query would see no key at all and softmax would give NaN; let it see itself.
        # Its output is never used.
        allowed = allowed | (key_pos == query_pos)[None, None]
    return allowed


# ---- the model -------------------------------------------------------------------------------------------------

class GPTAttention(MultiHeadAttention):
    """Chapter 3's MultiHeadAttention (same parameters: W_query, W_key, W_value, out_proj) with a choice of core.

    Weights move freely between implementations. It keeps no (context_length x context_length) mask buffer: the
    fused kernels are told "causal", and the explicit paths build their mask per call from positions, which is
    also what a KV cache and padding need.
    """

    def __init__(self, cfg: GPTConfig, layer: int):
        super().__init__(cfg.emb_dim, cfg.emb_dim, None, cfg.drop_rate, cfg.n_heads, cfg.qkv_bias)
        self.impl = backends.attention_impl_for(cfg.attention_impl, self.head_dim)
        if self.impl != cfg.attention_impl and layer == 0:
            print(f"attention_impl='triton' needs a head dim of 16, 32, 64 or 128, not {self.head_dim}: "
                  f"using torch's SDPA instead")
        self.layer = layer  # which slot of a KVCache is ours
        if self.impl == "triton":
            backends.load_kernels()

    def forward(self, x: torch.Tensor, cache: KVCache | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        queries = self.split_heads(self.W_query(x))
        keys = self.split_heads(self.W_key(x))
        values = self.split_heads(self.W_value(x))
        if cache is not None:
            keys, values = cache.update(self.layer, keys, values)
        dropout_p = self.dropout.p if self.training else 0.0
        if cache is None and attention_mask is None:
            # The common training case: a full causal square, the fused kernels' fast path.
            context = backends.causal_attention(queries, keys, values, self.impl, dropout_p)
        else:
            allowed = allowed_positions(queries.shape[2], keys.shape[2], attention_mask, x.device)
            context = backends.masked_attention(queries, keys, values, allowed, self.impl, dropout_p)
        return self.out_proj(self.merge_heads(context))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: x + Dropout(Attention(LN(x))), then x + Dropout(FeedForward(LN(x)))."""

    def __init__(self, cfg: GPTConfig, layer: int = 0):
        super().__init__()
        self.att = GPTAttention(cfg, layer)
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg.emb_dim, impl=cfg.layernorm_impl)
        self.norm2 = LayerNorm(cfg.emb_dim, impl=cfg.layernorm_impl)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        # The shortcut adds the block's input back: each block learns a correction to x, and the gradient
        # has a path straight through the addition to earlier layers.
        x = x + self.drop_shortcut(self.att(self.norm1(x), cache, attention_mask))
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


class GPTModel(nn.Module):
    """Token + position embeddings, n_layers transformer blocks, final LayerNorm, and the output head."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.drop_emb = nn.Dropout(cfg.drop_rate)
        self.trf_blocks = nn.ModuleList([TransformerBlock(cfg, layer) for layer in range(cfg.n_layers)])
        self.final_norm = LayerNorm(cfg.emb_dim, impl=cfg.layernorm_impl)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2's initialisation: the projections that write into the residual stream get a smaller spread,
        # so that the sum over 2·n_layers of them starts at about the scale of one.
        for name, param in self.named_parameters():
            if name.endswith("att.out_proj.weight") or name.endswith("ff.layers.2.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))
        if cfg.tie_weights:
            # One Parameter in two places: the head scores each token by similarity to its input embedding.
            self.out_head.weight = self.tok_emb.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, in_idx: torch.Tensor, cache: KVCache | None = None,
                attention_mask: torch.Tensor | None = None, last_only: bool = False) -> torch.Tensor:
        """Logits (batch, tokens, vocab) for token ids (batch, tokens).

        With `cache`, `in_idx` holds only the new tokens and the cached ones come first. `attention_mask`
        (batch, cached + new tokens) marks real tokens with 1 and left padding with 0, for batches of prompts
        of different lengths; positions then count real tokens only. `last_only` returns the logits of the
        last position alone, (batch, 1, vocab): all that generation needs, and the output head is the
        largest matrix product of a small model.
        """
        batch, num_tokens = in_idx.shape
        past = len(cache) if cache is not None else 0
        if past + num_tokens > self.cfg.context_length:
            raise ValueError(f"{past + num_tokens} tokens do not fit the context length {self.cfg.context_length}; "
                             f"crop the input to its last {self.cfg.context_length} tokens")
        if attention_mask is None:
            positions = torch.arange(past, past + num_tokens, device=in_idx.device)[None, :]
        else:
            if attention_mask.shape != (batch, past + num_tokens):
                raise ValueError(f"attention_mask must have shape {(batch, past + num_tokens)}, "
                                 f"got {tuple(attention_mask.shape)}")
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
        x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions))
        for block in self.trf_blocks:
            x = block(x, cache, attention_mask)
        if last_only:
            x = x[:, -1:, :]
        return self.out_head(self.final_norm(x))

    def new_cache(self) -> KVCache:
        return KVCache(self.cfg.n_layers)


def find_gpt(model: nn.Module) -> GPTModel | None:
    """The GPTModel inside `model` (itself, or wrapped by DDP, torch.compile or a finetuning wrapper)."""
    for module in model.modules():
        if isinstance(module, GPTModel):
            return module
    return None


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (a tied embedding counts once)."""
    return sum(p.numel() for p in model.parameters())


def estimate_parameters(cfg: GPTConfig) -> int:
    """The parameter count from the configuration alone, by formula (chapter 4's table)."""
    d, layers = cfg.emb_dim, cfg.n_layers
    embeddings = cfg.vocab_size * d + cfg.context_length * d
    attention = 3 * d * d + (3 * d if cfg.qkv_bias else 0) + d * d + d    # W_q, W_k, W_v (+bias), out_proj
    feed_forward = d * 4 * d + 4 * d + 4 * d * d + d
    norms = 2 * 2 * d
    head = 0 if cfg.tie_weights else cfg.vocab_size * d
    return embeddings + layers * (attention + feed_forward + norms) + 2 * d + head


def estimate_memory(cfg: GPTConfig, batch_size: int = 1, seq_len: int | None = None, training: bool = True,
                    mixed_precision: bool = True, fused_gelu: bool = True) -> dict[str, int]:
    """Rough bytes needed to run (or train) the model, term by term.

    Training with AdamW in mixed precision keeps, per parameter: bf16/fp16 weights (2) and gradients (2),
    fp32 master weights (4), fp32 gradients for the update (4) and AdamW's two fp32 moments (4 + 4):
    about 20 bytes. In fp32 it is weights, gradients and two moments: 16 bytes. Inference needs the
    weights (2 or 4 bytes) and a KV cache.

    Activations saved for the backward pass, per layer and token, following Korthikanti et al. (2022):
    16 vectors of width d (LayerNorm inputs 2, attention input, Q, K, V, attention output, out_proj input,
    feed-forward input, and 4d each for the GELU input and the second linear's input) plus one byte per
    element for each of the two residual dropout masks. That is 34·d bytes in 16-bit, assuming a fused
    attention kernel that never stores the (tokens x tokens) scores; the explicit chapter 3 attention adds
    5·heads·tokens elements-ish for scores, softmax and its dropout mask. GELU written out as a formula and
    run eagerly keeps three more 4·d tensors (tanh, 0.5·x, 1 + tanh); torch.compile fuses them away
    (`fused_gelu`). The logits (batch·tokens·vocab) are kept in 16 and in 32 bits for the loss.
    """
    seq_len = seq_len or cfg.context_length
    n = estimate_parameters(cfg)
    width = 2 if mixed_precision else 4
    tokens = batch_size * seq_len
    d = cfg.emb_dim
    terms: dict[str, int] = {}
    if training:
        terms["weights"] = n * (width + (4 if mixed_precision else 0))   # 16-bit copy + fp32 master
        terms["gradients"] = n * (width + (4 if mixed_precision else 0))
        terms["adamw_moments"] = n * 8
        per_token_layer = 16 * d * width + (2 * d if cfg.drop_rate > 0 else 0)
        if not fused_gelu:
            per_token_layer += 12 * d * width
        if cfg.attention_impl == "ch3":
            per_token_layer += 5 * cfg.n_heads * seq_len * width / 2
        terms["activations"] = int(cfg.n_layers * tokens * per_token_layer)
        terms["logits"] = tokens * cfg.vocab_size * (width + 4 if mixed_precision else 4)
    else:
        terms["weights"] = n * width
        terms["kv_cache"] = 2 * cfg.n_layers * tokens * d * width
        terms["logits"] = batch_size * cfg.vocab_size * 4
    terms["total"] = sum(terms.values())
    return terms


@torch.no_grad()
def generate_text_simple(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int) -> torch.Tensor:
    """Greedy decoding: append the most likely next token, max_new_tokens times.

    idx: (batch, tokens) token ids; only the last `context_size` tokens are fed to the model each step.
    Recomputes the whole context every step; chapter 7 adds a KV cache that avoids this.
    """
    for _ in range(max_new_tokens):
        logits = model(idx[:, -context_size:])
        next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)
        idx = torch.cat([idx, next_id], dim=1)
    return idx
