"""Chapter 7: OpenAI's GPT-2 weights in minigpt's GPTModel — download, load exactly, export back.

OpenAI released GPT-2 in four sizes; Hugging Face hosts them as safetensors files (openai-community/gpt2,
-medium, -large, -xl). Our GPTModel computes the same function as GPT-2, so loading the weights is a
matter of putting each tensor in the right place: GPT-2 stores its linear layers as "Conv1D" (y = x·W + b,
W is (in, out), the transpose of nn.Linear's (out, in)), fuses the query, key and value projections into
one c_attn matrix (split it in three), keeps biases on them (qkv_bias=True) and ties the output head to the
token embedding (tie_weights=True). Done right, minigpt's logits equal Hugging Face's to float rounding.

The file is read with chapter 7's own safetensors reader (minigpt/safetensors_io.py), memory-mapped: each
tensor goes from the file's pages straight into its parameter, in the requested dtype, in one copy.
`export_gpt2` writes the Hugging Face layout back, so a minigpt model (finetuned, say) loads in transformers.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import torch

from minigpt.download import download
from minigpt.files import InputError, atomic_open
from minigpt.model import GPT2_SIZES, MODEL_SIZES, GPTConfig, GPTModel, count_parameters, size_name
from minigpt.safetensors_io import load_safetensors, save_safetensors
from minigpt.tokenizer import GPT2_EOT_ID

# GPT-2's four sizes come from chapter 4's one table (MODEL_SIZES); the number of heads cannot be read off the
# tensors' shapes, so it comes from there (or from a config.json next to the weights).
HEADS_BY_WIDTH = {MODEL_SIZES[name].emb_dim: MODEL_SIZES[name].n_heads for name in GPT2_SIZES}

URL = "https://huggingface.co/openai-community/{name}/resolve/{revision}/model.safetensors"
# gpt2 is pinned to a commit of its Hugging Face repository, with the sha256 of that model.safetensors
# (548,105,171 bytes). For the larger sizes we could not find a published sha256 to pin, so they follow
# `main` and are not checked (None); set them here once you have verified a download.
REVISIONS = {"gpt2": "607a30d783dfa663caf39e06633721c8d4cfcd7e", "gpt2-medium": "main", "gpt2-large": "main",
             "gpt2-xl": "main"}
SHA256: dict[str, str | None] = {
    "gpt2": "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707",
    "gpt2-medium": None,
    "gpt2-large": None,
    "gpt2-xl": None,
}
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}

# Buffers some GPT-2 checkpoints carry (the causal mask, precomputed); GPTModel builds its own.
_IGNORED = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)$")


def gpt2_size(name: str) -> str | None:
    """The canonical GPT-2 size for 'gpt2', 'gpt2-small', '124M', ... or None if `name` is not one of the four."""
    name = size_name(name)
    return name if name in GPT2_SIZES else None


def weights_url(size: str) -> str:
    name = gpt2_size(size)
    if name is None:
        raise ValueError(f"unknown GPT-2 size {size!r}; choose one of {list(GPT2_SIZES)}")
    return URL.format(name=name, revision=REVISIONS[name])


def gpt2_weights(size: str = "gpt2", local: str | os.PathLike | None = None, quiet: bool = False) -> Path:
    """Path to the model.safetensors of `size`: `local` (a file or a directory holding it) or the cached
    download (downloaded on first use into the minigpt cache, sha256-checked where pinned).

    A local copy is not sha256-checked: it may be a re-saved or converted copy (load_gpt2 checks its shapes).
    """
    name = gpt2_size(size)
    url = weights_url(size)
    try:
        return download(url, "model.safetensors", None if local is not None else SHA256[name], local=local,
                        subdir=name, quiet=quiet)
    except RuntimeError as e:   # no network: say how to hand over a copy
        raise RuntimeError(f"{e}\nIn Python: load_gpt2('/path/to/model.safetensors') (or a directory holding it, "
                           f"optionally with config.json); chapter 7: python chapters/ch07_gpt2.py --weights PATH"
                           ) from e


# ---- the mapping between the two layouts --------------------------------------------------------------

def hf_to_minigpt(tensors: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    """Rename and reshape a Hugging Face GPT-2 state dict (keys without 'transformer.') into GPTModel's.

    Returns views of the input tensors (transposes and slices, no copies). The output head is included
    only if the checkpoint has its own lm_head.weight (an untied head).
    """
    def t(name: str) -> torch.Tensor:
        return tensors[name]

    out = {"tok_emb.weight": t("wte.weight"), "pos_emb.weight": t("wpe.weight"),
           "final_norm.scale": t("ln_f.weight"), "final_norm.shift": t("ln_f.bias")}
    for i in range(n_layers):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        # Conv1D's weight is (in, out): transpose it into nn.Linear's (out, in).
        qkv_w = t(h + "attn.c_attn.weight")          # (emb, 3·emb): queries | keys | values side by side
        qkv_b = t(h + "attn.c_attn.bias")
        for j, role in enumerate(["W_query", "W_key", "W_value"]):
            width = qkv_w.shape[1] // 3
            out[b + f"att.{role}.weight"] = qkv_w[:, j * width:(j + 1) * width].T
            out[b + f"att.{role}.bias"] = qkv_b[j * width:(j + 1) * width]
        out[b + "att.out_proj.weight"] = t(h + "attn.c_proj.weight").T
        out[b + "att.out_proj.bias"] = t(h + "attn.c_proj.bias")
        out[b + "ff.layers.0.weight"] = t(h + "mlp.c_fc.weight").T
        out[b + "ff.layers.0.bias"] = t(h + "mlp.c_fc.bias")
        out[b + "ff.layers.2.weight"] = t(h + "mlp.c_proj.weight").T
        out[b + "ff.layers.2.bias"] = t(h + "mlp.c_proj.bias")
        out[b + "norm1.scale"], out[b + "norm1.shift"] = t(h + "ln_1.weight"), t(h + "ln_1.bias")
        out[b + "norm2.scale"], out[b + "norm2.shift"] = t(h + "ln_2.weight"), t(h + "ln_2.bias")
    if "lm_head.weight" in tensors:
        out["out_head.weight"] = tensors["lm_head.weight"]
    return out


def minigpt_to_hf(model: GPTModel) -> dict[str, torch.Tensor]:
    """GPTModel's weights in the Hugging Face GPT-2 layout (keys without 'transformer.'); the inverse of
    hf_to_minigpt. A model without query/key/value biases gets zero biases (GPT-2 always has them), which
    computes the same function."""
    cfg = model.cfg
    out = {"wte.weight": model.tok_emb.weight, "wpe.weight": model.pos_emb.weight,
           "ln_f.weight": model.final_norm.scale, "ln_f.bias": model.final_norm.shift}
    for i, block in enumerate(model.trf_blocks):
        h, att = f"h.{i}.", block.att
        projections = [att.W_query, att.W_key, att.W_value]
        out[h + "attn.c_attn.weight"] = torch.cat([p.weight for p in projections], dim=0).T
        out[h + "attn.c_attn.bias"] = torch.cat([
            p.bias if p.bias is not None else torch.zeros(cfg.emb_dim, dtype=p.weight.dtype, device=p.weight.device)
            for p in projections])
        out[h + "attn.c_proj.weight"] = att.out_proj.weight.T
        out[h + "attn.c_proj.bias"] = att.out_proj.bias
        out[h + "mlp.c_fc.weight"] = block.ff.layers[0].weight.T
        out[h + "mlp.c_fc.bias"] = block.ff.layers[0].bias
        out[h + "mlp.c_proj.weight"] = block.ff.layers[2].weight.T
        out[h + "mlp.c_proj.bias"] = block.ff.layers[2].bias
        out[h + "ln_1.weight"], out[h + "ln_1.bias"] = block.norm1.scale, block.norm1.shift
        out[h + "ln_2.weight"], out[h + "ln_2.bias"] = block.norm2.scale, block.norm2.shift
    if model.out_head.weight is not model.tok_emb.weight:
        out["lm_head.weight"] = model.out_head.weight
    return out


def expected_hf_shapes(cfg: GPTConfig, context_length: int | None = None) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor a Hugging Face GPT-2 checkpoint with this configuration holds."""
    d, ctx = cfg.emb_dim, context_length or cfg.context_length
    shapes = {"wte.weight": (cfg.vocab_size, d), "wpe.weight": (ctx, d), "ln_f.weight": (d,), "ln_f.bias": (d,)}
    for i in range(cfg.n_layers):
        h = f"h.{i}."
        shapes.update({h + "ln_1.weight": (d,), h + "ln_1.bias": (d,), h + "ln_2.weight": (d,), h + "ln_2.bias": (d,),
                       h + "attn.c_attn.weight": (d, 3 * d), h + "attn.c_attn.bias": (3 * d,),
                       h + "attn.c_proj.weight": (d, d), h + "attn.c_proj.bias": (d,),
                       h + "mlp.c_fc.weight": (d, 4 * d), h + "mlp.c_fc.bias": (4 * d,),
                       h + "mlp.c_proj.weight": (4 * d, d), h + "mlp.c_proj.bias": (d,)})
    if not cfg.tie_weights:
        shapes["lm_head.weight"] = (cfg.vocab_size, d)
    return shapes


# ---- loading -------------------------------------------------------------------------------------------

def _normalise_keys(tensors: dict[str, torch.Tensor], source: Path) -> dict[str, torch.Tensor]:
    """Strip GPT2LMHeadModel's 'transformer.' prefix (the original upload has none) and drop mask buffers."""
    out = {}
    for key, value in tensors.items():
        name = key.removeprefix("transformer.")
        if _IGNORED.search(name):
            continue
        if name in out:
            raise InputError(f"{source} holds {name!r} twice (with and without the 'transformer.' prefix)")
        out[name] = value
    if "wte.weight" not in out or "wpe.weight" not in out:
        raise InputError(f"{source} does not look like a GPT-2 checkpoint: no wte.weight/wpe.weight "
                         f"(its first keys: {sorted(tensors)[:5]})")
    return out


def _describe_fit(emb_dim: int, n_layers: int) -> str:
    fits = [name for name in GPT2_SIZES if (MODEL_SIZES[name].emb_dim, MODEL_SIZES[name].n_layers) == (emb_dim, n_layers)]
    if fits:
        return f"it fits {fits[0]!r}"
    widths = [name for name in GPT2_SIZES if MODEL_SIZES[name].emb_dim == emb_dim]
    if widths:
        return f"it has the width of {widths[0]!r} but {n_layers} layers (a reduced or custom model)"
    return "it matches none of the released sizes " + ", ".join(
        f"{n} ({MODEL_SIZES[n].emb_dim} wide, {MODEL_SIZES[n].n_layers} layers)" for n in GPT2_SIZES)


def _read_config_json(path: Path | None) -> dict:
    """The config.json beside the weights ({} if there is none), checked for what GPTModel can compute."""
    if path is None or not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start}); expected GPT-2's config.json") from None
    except (ValueError, RecursionError) as e:   # JSONDecodeError is a ValueError
        raise InputError(f"{path} is not valid JSON ({e}); expected GPT-2's config.json") from None
    if not isinstance(config, dict):
        raise InputError(f"{path} holds a JSON {type(config).__name__}; a config.json is one object "
                         f'{{"n_head": 12, ...}}')
    activation = config.get("activation_function", "gelu_new")
    if activation not in ("gelu_new", "gelu_pytorch_tanh"):
        raise InputError(f"{path}: activation_function {activation!r}; GPTModel uses GPT-2's tanh GELU (gelu_new)")
    epsilon = config.get("layer_norm_epsilon", 1e-5)
    if not _is_number(epsilon) or abs(epsilon - 1e-5) > 1e-12:
        raise InputError(f"{path}: layer_norm_epsilon {epsilon!r}; GPTModel's LayerNorm uses 1e-5")
    if "n_head" in config and not (_is_number(config["n_head"], int) and config["n_head"] >= 1):
        raise InputError(f"{path}: n_head must be a whole number of attention heads, at least 1, got "
                         f"{config['n_head']!r}")
    return config


def _is_number(value, kind: type | tuple[type, ...] = (int, float)) -> bool:
    # JSON's true and false arrive as Python bools, which are ints too
    return isinstance(value, kind) and not isinstance(value, bool)


def _embedding_shapes(tensors: dict[str, torch.Tensor], source: Path) -> tuple[int, int, int]:
    """(vocab_size, emb_dim, context_length) read off the two embedding tables, which must be non-empty matrices."""
    wte, wpe = tensors["wte.weight"].shape, tensors["wpe.weight"].shape
    if len(wte) != 2 or len(wpe) != 2 or wte[1] != wpe[1] or 0 in (*wte, *wpe):
        raise InputError(f"{source}: wte.weight {tuple(wte)} and wpe.weight {tuple(wpe)} should be (vocabulary, "
                         f"width) and (positions, width) tables of one width")
    return wte[0], wte[1], wpe[0]


def _layer_count(tensors: dict[str, torch.Tensor], source: Path) -> int:
    layers = {int(m.group(1)) for k in tensors if (m := re.match(r"h\.(\d+)\.", k))}
    n_layers = max(layers) + 1 if layers else 0
    # Every layer holds 12 tensors: a name such as h.99999999.ln_1.weight in a small file is damage, and listing
    # the tensors of all the layers it implies would take forever.
    if n_layers > len(tensors):
        raise InputError(f"{source} names layer {n_layers - 1} but holds only {len(tensors)} tensors")
    return n_layers


def _head_count(emb_dim: int, config_json: dict, config_path: Path | None, source: Path, overrides: dict) -> int:
    """Attention heads: asked for, else config.json's n_head, else the size table's for this width."""
    if "n_heads" in overrides:
        return overrides["n_heads"]
    if "n_head" in config_json:
        if emb_dim % config_json["n_head"]:
            raise InputError(f"{config_path}: n_head {config_json['n_head']} does not divide the width {emb_dim} "
                             f"of {source}")
        return config_json["n_head"]
    if emb_dim not in HEADS_BY_WIDTH:
        raise InputError(f"{source}: cannot tell the number of attention heads of a {emb_dim}-wide model from its "
                         f"shapes; put its config.json next to it or pass n_heads=...")
    return HEADS_BY_WIDTH[emb_dim]


def _config_for(tensors: dict[str, torch.Tensor], config_json: dict, requested: str | None, source: Path,
                overrides: dict, config_path: Path | None = None) -> tuple[GPTConfig, int]:
    """GPTConfig from the tensors' shapes (plus config.json / the size table for the head count);
    returns it and the checkpoint's own context length."""
    vocab_size, emb_dim, context_length = _embedding_shapes(tensors, source)
    n_layers = _layer_count(tensors, source)
    fit = _describe_fit(emb_dim, n_layers)
    if requested is not None:
        spec = MODEL_SIZES[requested]
        if (spec.emb_dim, spec.n_layers) != (emb_dim, n_layers):
            raise InputError(f"{source} holds a GPT-2 {emb_dim} wide with {n_layers} layers: {fit}, not {requested!r} "
                             f"({spec.emb_dim} wide, {spec.n_layers} layers). Pass the right file, or ask "
                             f"for the size it fits.")
    for field, actual in [("vocab_size", vocab_size), ("emb_dim", emb_dim), ("n_layers", n_layers)]:
        if field in overrides and overrides[field] != actual:
            raise InputError(f"{source} has {field}={actual} ({fit}), but {field}={overrides[field]} was asked for; "
                             f"a checkpoint's shapes fix its configuration")
    n_heads = _head_count(emb_dim, config_json, config_path, source, overrides)
    if overrides.get("context_length", context_length) > context_length:
        raise InputError(f"{source} has position embeddings for {context_length} tokens; context_length "
                         f"{overrides['context_length']} cannot be larger")
    tied = "lm_head.weight" not in tensors
    if overrides.get("tie_weights") is True and not tied:
        raise InputError(f"{source} has an output head of its own (lm_head.weight); it cannot be tied")
    if overrides.get("qkv_bias") is False:
        raise InputError(f"{source}: GPT-2 checkpoints have query/key/value biases; qkv_bias must stay True")
    # GPT-2 was trained with dropout 0.1; a loaded model is used for inference or finetuning, where the
    # chapters choose their own rate (drop_rate=...).
    fields = dict(vocab_size=vocab_size, context_length=context_length, emb_dim=emb_dim, n_heads=n_heads,
                  n_layers=n_layers, drop_rate=0.0, qkv_bias=True, tie_weights=tied)
    fields.update(overrides)
    return GPTConfig(**fields), context_length


def _resolve(size_or_path: str | os.PathLike, weights: str | os.PathLike | None,
             quiet: bool) -> tuple[Path, Path | None, str | None]:
    """(safetensors file, config.json or None, the size asked for or None)."""
    name = gpt2_size(str(size_or_path))
    if name is not None:
        file = gpt2_weights(name, local=weights, quiet=quiet)
        config = file.parent / "config.json" if weights is not None else None
        return file, config, name
    if weights is not None:
        raise ValueError(f"weights= is for a named size; {size_or_path!r} is not one of {list(GPT2_SIZES)}")
    path = Path(size_or_path).expanduser()
    if path.is_dir():
        file = path / "model.safetensors"
        if not file.is_file():
            raise FileNotFoundError(f"{path} holds no model.safetensors")
        return file, path / "config.json", None
    if path.is_file():
        return path, path.parent / "config.json" if path.name == "model.safetensors" else None, None
    raise FileNotFoundError(f"{str(size_or_path)!r} is neither a GPT-2 size ({', '.join(GPT2_SIZES)}) nor an "
                            f"existing file or directory")


def load_gpt2(size_or_path: str | os.PathLike = "gpt2", dtype: torch.dtype | str = torch.float32,
              device: torch.device | str = "cpu", *, weights: str | os.PathLike | None = None,
              quiet: bool = False, **config_overrides) -> GPTModel:
    """A GPTModel holding GPT-2's weights, in eval mode.

    size_or_path: 'gpt2' (124M), 'gpt2-medium', 'gpt2-large', 'gpt2-xl' (downloaded once into the cache),
    or a model.safetensors file / a directory holding one (and optionally config.json). `weights` passes a
    local copy for a named size (its shapes are checked against that size). dtype: float32, bfloat16 or
    float16. config_overrides: GPTConfig fields such as attention_impl="ch3", drop_rate=0.1 or a smaller
    context_length (the position table is cropped); fields the shapes fix must agree with the file.
    """
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r}: choose one of {sorted(DTYPES)} or a torch.dtype")
        dtype = DTYPES[dtype]
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point type, got {dtype}")
    file, config_path, requested = _resolve(size_or_path, weights, quiet)
    tensors = _normalise_keys(load_safetensors(file), file)
    cfg, file_context = _config_for(tensors, _read_config_json(config_path), requested, file, config_overrides,
                                    config_path)

    wanted = expected_hf_shapes(replace(cfg, tie_weights="lm_head.weight" not in tensors), file_context)
    problems = [f"{k}: missing (expected {v})" for k, v in wanted.items() if k not in tensors]
    problems += [f"{k}: shape {tuple(tensors[k].shape)}, expected {v}" for k, v in wanted.items()
                 if k in tensors and tuple(tensors[k].shape) != v]
    problems += [f"{k}: not a GPT-2 tensor" for k in tensors if k not in wanted]
    if problems:
        # One line, so that a chapter script can print it as one (minigpt/cli.py)
        raise InputError(f"{file} does not match a GPT-2 with {cfg.emb_dim} width, {cfg.n_layers} layers "
                         f"({_describe_fit(cfg.emb_dim, cfg.n_layers)}): " + "; ".join(problems[:10]) +
                         (f"; ... and {len(problems) - 10} more" if len(problems) > 10 else ""))

    # Build the model's skeleton without memory or random initialisation, then give each parameter a tensor
    # made by one copy from the memory-mapped file (with the dtype conversion and transposes on the way).
    with torch.device("meta"):
        model = GPTModel(cfg)
    state = {}
    for name, source in hf_to_minigpt(tensors, cfg.n_layers).items():
        if name == "pos_emb.weight":
            source = source[:cfg.context_length]
        state[name] = torch.empty(source.shape, dtype=dtype, device=device).copy_(source)
    if "out_head.weight" not in state:
        # A tied checkpoint stores the head once, as wte; an untied model asked of it gets its own copy.
        state["out_head.weight"] = state["tok_emb.weight"] if cfg.tie_weights else state["tok_emb.weight"].clone()
    model.load_state_dict(state, strict=True, assign=True)
    if cfg.tie_weights:
        model.out_head.weight = model.tok_emb.weight   # one Parameter, as GPTModel(cfg) would have it
    return model.eval()


# ---- exporting -----------------------------------------------------------------------------------------

def hf_config(cfg: GPTConfig, dtype: torch.dtype = torch.float32, end_of_text_id: int = GPT2_EOT_ID) -> dict:
    """A Hugging Face GPT2Config (as config.json holds it) for this configuration.

    `end_of_text_id` is the tokenizer's <|endoftext|> id (GPT-2's 50256 by default; chapter 11's extension of a
    chapter 1 tokenizer has its own)."""
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": cfg.vocab_size, "n_positions": cfg.context_length, "n_ctx": cfg.context_length,
        "n_embd": cfg.emb_dim, "n_layer": cfg.n_layers, "n_head": cfg.n_heads, "n_inner": None,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
        "resid_pdrop": cfg.drop_rate, "embd_pdrop": cfg.drop_rate, "attn_pdrop": cfg.drop_rate,
        "bos_token_id": end_of_text_id, "eos_token_id": end_of_text_id, "tie_word_embeddings": cfg.tie_weights,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }


def export_gpt2(model: GPTModel, path: str | os.PathLike, end_of_text_id: int = GPT2_EOT_ID) -> Path:
    """Write `model` as a Hugging Face GPT-2 checkpoint directory (model.safetensors + config.json).

    The layout is GPT2LMHeadModel.save_pretrained's: keys prefixed 'transformer.', the tied head not stored.
    transformers' GPT2LMHeadModel.from_pretrained(path) and load_gpt2(path) both read it.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {("" if k == "lm_head.weight" else "transformer.") + k: v.detach()
               for k, v in minigpt_to_hf(model).items()}
    save_safetensors(tensors, path / "model.safetensors", metadata={"format": "pt"})
    config = hf_config(model.cfg, model.tok_emb.weight.dtype, end_of_text_id)
    with atomic_open(path / "config.json") as f:
        json.dump(config, f, indent=2)
    return path


def describe(model: GPTModel) -> str:
    """One line: size, parameter count and dtype of a loaded model."""
    cfg = model.cfg
    fit = _describe_fit(cfg.emb_dim, cfg.n_layers).removeprefix("it fits ")
    return (f"{fit}: {count_parameters(model) / 1e6:.1f}M parameters, {cfg.n_layers} layers, {cfg.n_heads} heads, "
            f"width {cfg.emb_dim}, context {cfg.context_length}, {model.tok_emb.weight.dtype}")

