"""Tests for chapter 7: the safetensors reader/writer and GPT-2 loading, checked against Hugging Face.

Everything runs offline. The references are independent implementations: the `safetensors` package for the
file format, and transformers' GPT2LMHeadModel for the model, whose randomly initialised checkpoints (every
size's width and head count, one or two layers to stay fast) are built once per session. Every weight,
biases and LayerNorm parameters included, is drawn at random: with transformers' own initialisation the
biases are zero and a wrongly mapped bias would go unnoticed.
"""
import json
import struct
import urllib.error
import urllib.request

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

from minigpt.generate import generate
from minigpt.model import count_parameters
from tests._impl import load_impl

gpt2 = load_impl("minigpt.gpt2")
stio = load_impl("minigpt.safetensors_io")

transformers = pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

# The width and head count of each released size; fewer layers than the real ones (the mapping is the
# same for every layer, and two layers check that layer i's weights land in block i).
SHAPES = {"gpt2": (768, 12, 2), "gpt2-medium": (1024, 16, 1), "gpt2-large": (1280, 20, 1), "gpt2-xl": (1600, 25, 1)}


def randomise(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or "ln_f" in name:
                centre = 1.0 if name.endswith("weight") else 0.0
                p.copy_(centre + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{size: (directory, transformers model)} for GPT-2-shaped checkpoints with random weights."""
    root = tmp_path_factory.mktemp("gpt2_checkpoints")
    out = {}
    for i, (name, (width, heads, layers)) in enumerate(SHAPES.items()):
        config = transformers.GPT2Config(n_embd=width, n_head=heads, n_layer=layers, vocab_size=50257,
                                         n_positions=1024)
        torch.manual_seed(i)
        model = transformers.GPT2LMHeadModel(config).eval()
        randomise(model, seed=i)
        model.save_pretrained(root / name, safe_serialization=True)
        out[name] = (root / name, model)
    return out


def tokens(batch=2, length=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 50257, (batch, length), generator=g)
    ids[0, 0] = 50256  # the last vocabulary entry (<|endoftext|>) too
    return ids


# ---- exactness against transformers ------------------------------------------------------------------

@pytest.mark.parametrize("size", list(SHAPES))
def test_logits_equal_transformers(checkpoints, size):
    directory, reference = checkpoints[size]
    model = gpt2.load_gpt2(directory)
    ids = tokens()
    with torch.no_grad():
        ours = model(ids)
        theirs = reference(ids).logits
    # Both compute the same float32 operations, possibly in a different order (one fused qkv product
    # vs three, fused vs explicit attention softmax); each rounds at ~1e-7 relative, and through one or
    # two blocks and 1600-wide sums that stays far below 1e-5 for logits of size ~10. 1e-4 leaves margin
    # while catching any mapping error, which moves logits by O(1).
    assert ours.shape == theirs.shape == (2, 24, 50257)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_cached_greedy_generation_equals_transformers_generate(checkpoints):
    directory, reference = checkpoints["gpt2"]
    model = gpt2.load_gpt2(directory)
    prompt = tokens(batch=1, length=6, seed=3)
    ours = generate(model, prompt, max_new_tokens=12, use_cache=True)
    theirs = reference.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False,
                                pad_token_id=50256)
    assert torch.equal(ours, theirs)


# ---- the safetensors reader and writer ---------------------------------------------------------------

def test_reader_matches_safetensors_package_on_a_checkpoint(checkpoints):
    file = checkpoints["gpt2"][0] / "model.safetensors"
    ours = stio.load_safetensors(file)
    theirs = safetensors.torch.load_file(file)
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert ours[key].dtype == theirs[key].dtype and torch.equal(ours[key], theirs[key]), key


ODD_TENSORS = {
    "f64": np.linspace(-1, 1, 7, dtype=np.float64),
    "f32": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
    "f16": np.array([[1.5, -2.25], [65504, 6e-5]], dtype=np.float16),
    "i64": np.array([-(2 ** 62), 0, 2 ** 62], dtype=np.int64),
    "i32": np.array([7, -7], dtype=np.int32),
    "i8": np.array([-128, 127], dtype=np.int8),
    "u8": np.arange(5, dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "scalar": np.array(3.0, dtype=np.float32),
    "empty": np.zeros((0, 3), dtype=np.float32),
}


def test_reader_handles_every_dtype_written_by_the_package(tmp_path):
    file = tmp_path / "odd.safetensors"
    safetensors.numpy.save_file(ODD_TENSORS, file, metadata={"who": "test"})
    ours = stio.load_safetensors(file)
    for key, value in ODD_TENSORS.items():
        assert ours[key].shape == value.shape, key
        np.testing.assert_array_equal(ours[key].numpy(), value)
    assert stio.read_header(file)[1] == {"who": "test"}


def test_writer_output_reads_back_in_the_package(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {name: torch.from_numpy(value.copy()) for name, value in ODD_TENSORS.items()}
    tensors["bf16"] = torch.randn(3, 5, generator=g).to(torch.bfloat16)
    tensors["transposed"] = torch.randn(4, 6, generator=g).T        # not contiguous: written row-major
    file = stio.save_safetensors(tensors, tmp_path / "ours.safetensors", metadata={"format": "pt"})
    theirs = safetensors.torch.load_file(file)
    assert theirs.keys() == tensors.keys()
    for key, value in tensors.items():
        assert theirs[key].dtype == value.dtype and torch.equal(theirs[key], value), key
    header_len = struct.unpack("<Q", file.read_bytes()[:8])[0]
    assert (8 + header_len) % 8 == 0, "data should start 8-byte aligned"


def test_loaded_tensors_are_copy_on_write_views_of_the_file(tmp_path):
    file = stio.save_safetensors({"w": torch.arange(6, dtype=torch.float32)}, tmp_path / "w.safetensors")
    before = file.read_bytes()
    w = stio.load_safetensors(file)["w"]
    w.mul_(100)        # allowed (copy-on-write memory), and must not reach the file
    assert w[1].item() == 100.0
    assert file.read_bytes() == before


def test_reader_rejects_damaged_files(tmp_path):
    good = stio.save_safetensors({"w": torch.ones(10)}, tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(good[:-8])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        stio.load_safetensors(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="not a safetensors file"):
        stio.load_safetensors(tmp_path / "junk.safetensors")


# ---- loading: options and errors ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, "bf16"])
def test_dtype_option_rounds_each_weight_once(checkpoints, dtype):
    directory = checkpoints["gpt2"][0]
    full = gpt2.load_gpt2(directory)
    half = gpt2.load_gpt2(directory, dtype=dtype)
    want = {"bf16": torch.bfloat16}.get(dtype, dtype)
    full_params = dict(full.named_parameters())
    for name, p in half.named_parameters():
        assert p.dtype == want, name
        assert torch.equal(p, full_params[name].to(want)), name   # one rounding from the float32 file


def test_head_is_tied_to_the_embedding(checkpoints):
    model = gpt2.load_gpt2(checkpoints["gpt2"][0])
    assert model.out_head.weight is model.tok_emb.weight
    assert model.cfg.tie_weights and model.cfg.qkv_bias
    untied = gpt2.load_gpt2(checkpoints["gpt2"][0], tie_weights=False)
    assert untied.out_head.weight is not untied.tok_emb.weight
    assert torch.equal(untied.out_head.weight, untied.tok_emb.weight)
    assert count_parameters(untied) - count_parameters(model) == 50257 * 768


def test_config_is_inferred_and_overrides_apply(checkpoints):
    model = gpt2.load_gpt2(checkpoints["gpt2-xl"][0], attention_impl="ch3", context_length=64)
    cfg = model.cfg
    assert (cfg.emb_dim, cfg.n_heads, cfg.n_layers, cfg.vocab_size) == (1600, 25, 1, 50257)
    assert cfg.context_length == 64 and model.pos_emb.weight.shape == (64, 1600)
    assert all(not b.is_meta for b in model.buffers()) and not any(p.is_meta for p in model.parameters())
    with pytest.raises(ValueError, match="n_layers"):
        gpt2.load_gpt2(checkpoints["gpt2-xl"][0], n_layers=48)


def write_header_only(path, shapes: dict[str, tuple], prefix="transformer."):
    """A safetensors file with the given float32 shapes whose data is a sparse hole: full-size GPT-2
    checkpoints for the error paths, at no disk or time cost (written from the format spec, not our writer)."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * 4
        header[prefix + name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return path


def full_size_shapes(name):
    from minigpt.model import GPTConfig
    from minigpt.model import MODEL_SIZES
    spec = MODEL_SIZES[name]
    cfg = GPTConfig(emb_dim=spec.emb_dim, n_layers=spec.n_layers, n_heads=spec.n_heads, tie_weights=True)
    return gpt2.expected_hf_shapes(cfg)


def test_wrong_size_checkpoint_says_which_size_it_fits(tmp_path):
    small = write_header_only(tmp_path / "model.safetensors", full_size_shapes("gpt2"))
    with pytest.raises(ValueError, match=r"it fits 'gpt2'.*not 'gpt2-medium'"):
        gpt2.load_gpt2("gpt2-medium", weights=small)
    # The right size loads: GPT-2 small has 124,439,808 parameters with the head tied (OpenAI's "124M").
    model = gpt2.load_gpt2("gpt2", weights=tmp_path)
    assert count_parameters(model) == 124_439_808


def test_missing_or_misshapen_tensor_is_named(tmp_path):
    shapes = full_size_shapes("gpt2")
    del shapes["h.3.mlp.c_fc.bias"]
    shapes["h.5.attn.c_proj.weight"] = (768, 700)
    write_header_only(tmp_path / "model.safetensors", shapes)
    with pytest.raises(ValueError) as err:
        gpt2.load_gpt2(tmp_path)
    assert "h.3.mlp.c_fc.bias: missing" in str(err.value)
    assert "h.5.attn.c_proj.weight: shape (768, 700), expected (768, 768)" in str(err.value)


def test_keys_without_prefix_and_mask_buffers_load_the_same(checkpoints, tmp_path):
    # The original openai-community upload has no "transformer." prefix and carries attention-mask buffers.
    directory, _ = checkpoints["gpt2"]
    tensors = {k.removeprefix("transformer."): v for k, v in safetensors.torch.load_file(
        directory / "model.safetensors").items()}
    tensors["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 1024, 1024))
    safetensors.torch.save_file(tensors, tmp_path / "plain.safetensors")
    a = gpt2.load_gpt2(directory)
    b = gpt2.load_gpt2(tmp_path / "plain.safetensors")   # no config.json beside it: heads from the size table
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name


def test_offline_error_names_file_url_and_local_option(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(RuntimeError) as err:
        gpt2.load_gpt2("gpt2-medium")
    message = str(err.value)
    assert "model.safetensors" in message
    assert "https://huggingface.co/openai-community/gpt2-medium/" in message
    assert "--weights" in message and "load_gpt2(" in message


# ---- exporting ---------------------------------------------------------------------------------------

def test_export_then_load_is_the_identity_and_transformers_reads_it(checkpoints, tmp_path):
    directory, reference = checkpoints["gpt2"]
    model = gpt2.load_gpt2(directory)
    gpt2.export_gpt2(model, tmp_path / "export")
    again = gpt2.load_gpt2(tmp_path / "export")
    assert again.state_dict().keys() == model.state_dict().keys()
    for name, p in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], p), name
    # The exported file holds exactly the original tensors, under the same names.
    original = safetensors.torch.load_file(directory / "model.safetensors")
    exported = safetensors.torch.load_file(tmp_path / "export" / "model.safetensors")
    assert exported.keys() == original.keys()
    assert all(torch.equal(exported[k], original[k]) for k in original)
    reloaded = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "export").eval()
    ids = tokens(seed=5)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, reference(ids).logits, atol=0, rtol=0)


@pytest.mark.gpu
def test_loads_onto_cuda_in_bf16(checkpoints):
    directory, reference = checkpoints["gpt2"]
    model = gpt2.load_gpt2(directory, device="cuda")
    ids = tokens()
    with torch.no_grad():
        # TF32 may be used for float32 matmuls on the GPU (~1e-3 relative); logits are O(10).
        torch.testing.assert_close(model(ids.cuda()).cpu(), reference(ids).logits, atol=5e-2, rtol=0)
    half = gpt2.load_gpt2(directory, dtype=torch.bfloat16, device="cuda")
    assert half.tok_emb.weight.device.type == "cuda" and half.tok_emb.weight.dtype == torch.bfloat16
    assert all(b.device.type == "cuda" for b in half.buffers())
