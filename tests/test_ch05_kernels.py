"""Chapter 5: the Triton kernels (flash attention, LayerNorm) against float64 references, SDPA and F.layer_norm.

Without a GPU the kernels run in Triton's interpreter (numpy on the CPU, one program at a time): slow, so the CPU
shapes are tiny, but every line of every kernel runs, tails, diagonals and dropout included. bf16 is only tested on a
GPU: the interpreter stores bf16 as raw 16-bit integers and its tl.dot multiplies those integers.

How the tolerances are chosen:
- fp32: the kernels accumulate in fp32 like the float64 formula does in float64, so the only error is fp32 rounding
  summed over at most a few hundred terms of size ~1: 1e-5 (about 100 fp32 units in the last place) is ample, and a
  wrong mask or a missing rescale shows up at 1e-2 or more.
- fp16/bf16 attention: the kernel rounds the probabilities and dS to the input dtype before the tensor-core products,
  as FlashAttention does. Its error must be no more than twice that of the same math done by PyTorch in the input
  dtype (the criterion FlashAttention's own tests use), plus a floor for the cases where PyTorch happens to be exact.
- fp16/bf16 LayerNorm: statistics are fp32, so the output is the exact value rounded once to the input dtype:
  relative error 2⁻¹¹ (fp16) or 2⁻⁸ (bf16); twice that is allowed, with an absolute floor for outputs near zero.
"""
import json
import os
import time

import torch

if not torch.cuda.is_available():
    # Must happen before triton or the kernels are imported: @triton.jit reads it when a kernel is defined.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

pytest.importorskip("triton", reason="Triton is not installed (it ships for Linux; see requirements.txt)")

from tests._impl import load_impl  # noqa: E402

attention = load_impl("kernels.attention")
layernorm = load_impl("kernels.layernorm")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FP32_TOL = 1e-5
# On a GPU each (head_dim, causal, dtype) combination compiles its own kernels (seconds each), so the GPU runs of the
# shape grids below keep to these pairs, which still cover every head dim and both modes.
GPU_PAIRS = ((16, True), (32, False), (64, True), (128, False))


@pytest.fixture(autouse=True)
def fixed_tiles(monkeypatch):
    # On a GPU, autotuning would compile and time several tile shapes for every new shape in these tests: use the
    # fixed default tiles, except where a test asks for autotuning (the big bf16 test). No effect on the CPU.
    monkeypatch.setenv("MINIGPT_AUTOTUNE", "0")


def max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (actual.double() - expected.double()).abs().max().item()


def random_qkv(batch, heads, seq_len, head_dim, dtype, device=DEVICE, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, seq_len, head_dim, generator=generator).to(device=device, dtype=dtype)
            for _ in range(3)]


def attention_and_grads(fn, queries, keys, values, grad_out, **kwargs):
    leaves = [t.detach().clone().requires_grad_() for t in (queries, keys, values)]
    out = fn(*leaves, **kwargs)
    return (out, *torch.autograd.grad(out, leaves, grad_out.to(out.dtype)))


def check_attention(queries, keys, values, grad_out, causal, dropout_p=0.0, seed=None, floor=1e-4, **extra):
    """Kernel vs float64 reference (forward and the three gradients), tolerance as explained at the top."""
    mask = None
    if dropout_p > 0.0:
        batch, heads, seq_len, _ = queries.shape
        mask = attention.attention_dropout_mask(batch, heads, seq_len, dropout_p, seed, device=queries.device)
    kernel = attention_and_grads(attention.flash_attention, queries, keys, values, grad_out, causal=causal,
                                 dropout_p=dropout_p, seed=seed, **extra)
    reference_kwargs = dict(causal=causal, dropout_p=dropout_p, dropout_mask=mask, **extra)
    exact = attention_and_grads(attention.attention_reference, queries.double(), keys.double(), values.double(),
                                grad_out, **reference_kwargs)
    names = ("output", "dQ", "dK", "dV")
    if queries.dtype == torch.float32:
        for name, a, e in zip(names, kernel, exact):
            assert max_error(a, e) <= FP32_TOL * max(1.0, e.abs().max().item()), name
    else:
        same_dtype = attention_and_grads(attention.attention_reference, queries, keys, values, grad_out,
                                         **reference_kwargs)
        for name, a, t, e in zip(names, kernel, same_dtype, exact):
            assert max_error(a, e) <= 2 * max_error(t, e) + floor, \
                f"{name}: kernel error {max_error(a, e):.3g}, PyTorch {queries.dtype} error {max_error(t, e):.3g}"


# ----------------------------------------------------------------------------------------------------------------------
# Attention on the CPU (interpreter) or GPU: small shapes with every awkward length.
# ----------------------------------------------------------------------------------------------------------------------

# Every head dim × every awkward length × causal or not in fp32: 1 token (the softmax is exactly 1), 7 (shorter than a
# tile), 65 (one past a tile boundary), 130 (several tiles and a partial one; the causal diagonal crosses tiles).
SHAPES_FP32 = [(1, 2, n, d, causal, torch.float32) for n in (1, 7, 65, 130) for d in (16, 32, 64, 128)
               for causal in (True, False) if DEVICE == "cpu" or (d, causal) in GPU_PAIRS]
SHAPES_FP16 = [(1, 2, 65, 16, False, torch.float16), (2, 1, 130, 64, True, torch.float16),
               (1, 1, 7, 128, True, torch.float16), (1, 1, 130, 32, False, torch.float16)]


@pytest.mark.parametrize("batch,heads,seq_len,head_dim,causal,dtype", SHAPES_FP32 + SHAPES_FP16)
def test_attention_forward_and_gradients_match_float64_reference(batch, heads, seq_len, head_dim, causal, dtype):
    queries, keys, values = random_qkv(batch, heads, seq_len, head_dim, dtype)
    grad_out = torch.randn(batch, heads, seq_len, head_dim, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    check_attention(queries, keys, values, grad_out, causal)


def test_attention_accepts_non_contiguous_inputs_and_grads():
    # How a model produces them: one packed projection split into heads, (batch, tokens, 3, heads, dim) permuted.
    batch, heads, seq_len, head_dim = 2, 2, 37, 32
    packed = torch.randn(batch, seq_len, 3, heads, head_dim, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    queries, keys, values = packed.permute(2, 0, 3, 1, 4).unbind(0)
    assert not queries.is_contiguous()
    grad_out = torch.randn(batch, seq_len, heads, head_dim).to(DEVICE).transpose(1, 2)  # non-contiguous too
    check_attention(queries, keys, values, grad_out, causal=True)


def test_attention_custom_scale():
    queries, keys, values = random_qkv(1, 1, 20, 16, torch.float32, seed=3)
    grad_out = torch.randn_like(queries)
    check_attention(queries, keys, values, grad_out, causal=False, scale=0.3)


@pytest.mark.parametrize("causal,dropout_p,seq_len", [(True, 0.3, 37), (False, 0.5, 50)])
def test_attention_dropout_matches_reference_with_the_same_mask(causal, dropout_p, seq_len):
    # The kernel never stores its mask; the forward and both backward kernels regenerate it from (seed, position).
    # If any of them drew a different mask, the output or a gradient would disagree with the reference.
    queries, keys, values = random_qkv(2, 2, seq_len, 16, torch.float32, seed=4)
    grad_out = torch.randn_like(queries)
    check_attention(queries, keys, values, grad_out, causal, dropout_p=dropout_p, seed=1234)


def test_dropout_mask_is_reproducible_and_keeps_the_right_fraction():
    batch, heads, seq_len, p = 2, 3, 64, 0.25
    first = attention.attention_dropout_mask(batch, heads, seq_len, p, seed=7, device=DEVICE)
    again = attention.attention_dropout_mask(batch, heads, seq_len, p, seed=7, device=DEVICE)
    other = attention.attention_dropout_mask(batch, heads, seq_len, p, seed=8, device=DEVICE)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # Kept with probability 1 - p, independently: the count over n = 24576 draws has standard deviation
    # sqrt(n p (1-p)) ≈ 68, so 5 standard deviations (a 1-in-3-million false alarm) is the bound.
    n = first.numel()
    assert abs(first.sum().item() - n * (1 - p)) <= 5 * (n * p * (1 - p)) ** 0.5
    # Different heads get different masks (the head index is part of the random stream's offset).
    assert not torch.equal(first[0, 0], first[0, 1])


def test_attention_future_tokens_do_not_change_past_outputs():
    queries, keys, values = random_qkv(1, 2, 40, 32, torch.float32, seed=5)
    changed_keys, changed_values = keys.clone(), values.clone()
    changed_keys[:, :, 25:] += 3.0
    changed_values[:, :, 25:] -= 2.0
    before = attention.flash_attention(queries, keys, values, causal=True)
    after = attention.flash_attention(queries, changed_keys, changed_values, causal=True)
    assert torch.equal(before[:, :, :25], after[:, :, :25])  # bit-identical: the masked keys are never read
    assert not torch.allclose(before[:, :, 25:], after[:, :, 25:])


def test_attention_backward_is_deterministic():
    # No atomics: every gradient row has exactly one writer, so two runs agree to the bit.
    queries, keys, values = random_qkv(1, 2, 70, 32, torch.float16, seed=6)
    grad_out = torch.randn_like(queries)
    first = attention_and_grads(attention.flash_attention, queries, keys, values, grad_out, causal=True)
    second = attention_and_grads(attention.flash_attention, queries, keys, values, grad_out, causal=True)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_every_tile_configuration_lines_up_with_the_causal_diagonal():
    # The kernels split each loop at the diagonal, which assumes the outer tile is a whole number of inner tiles:
    # BLOCK_M % BLOCK_N == 0 for the forward and dQ (queries outer), BLOCK_N % BLOCK_M == 0 for dK/dV (keys outer).
    # A configuration that breaks this would compute wrong results only on the GPU, where it is chosen.
    configs = [(name, c.kwargs) for name, by_dim in attention._CANDIDATES.items() for cs in by_dim.values() for c in cs]
    configs += [(name, c) for (name, _), c in attention._DEFAULTS.items()]
    configs += list(attention._FIXED.items()) + list(attention._INTERPRETER.items())
    for name, c in configs:
        outer, inner = (c["BLOCK_M"], c["BLOCK_N"]) if name in ("fwd", "dq") else (c["BLOCK_N"], c["BLOCK_M"])
        assert outer % inner == 0 and inner >= 16, (name, c)  # tl.dot needs every side >= 16


@pytest.mark.parametrize("make_inputs,message", [
    (lambda: random_qkv(1, 1, 8, 24, torch.float32), "head_dim"),
    (lambda: [torch.randn(1, 1, 8, 16, device=DEVICE), torch.randn(1, 1, 9, 16, device=DEVICE),
              torch.randn(1, 1, 9, 16, device=DEVICE)], "same shape"),
    (lambda: random_qkv(1, 1, 8, 16, torch.float64), "dtype"),
    (lambda: [torch.randn(8, 16, device=DEVICE)] * 3, "4-D"),
])
def test_attention_rejects_bad_inputs_with_a_clear_message(make_inputs, message):
    with pytest.raises(ValueError, match=message):
        attention.flash_attention(*make_inputs())


def test_attention_rejects_dropout_of_one():
    with pytest.raises(ValueError, match="dropout_p"):
        attention.flash_attention(*random_qkv(1, 1, 8, 16, torch.float32), dropout_p=1.0)


# ----------------------------------------------------------------------------------------------------------------------
# LayerNorm.
# ----------------------------------------------------------------------------------------------------------------------

def check_layer_norm(x, weight, bias, eps=1e-5):
    grad_y = torch.randn(x.shape, generator=torch.Generator().manual_seed(11)).to(device=x.device, dtype=x.dtype)
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    y = layernorm.layer_norm(*leaves, eps=eps)
    kernel = (y, *torch.autograd.grad(y, leaves, grad_y))
    leaves64 = [t.detach().double().requires_grad_() for t in (x, weight, bias)]
    y64 = layernorm.layer_norm_reference(*leaves64, eps=eps)
    exact = (y64, *torch.autograd.grad(y64, leaves64, grad_y.double()))
    assert kernel[0].dtype == x.dtype and kernel[0].shape == x.shape
    rows = x.numel() // x.shape[-1]
    for name, a, e in zip(("y", "dx", "dweight", "dbias"), kernel, exact):
        if name in ("y", "dx") and x.dtype != torch.float32:
            unit = 2.0 ** -11 if x.dtype == torch.float16 else 2.0 ** -8  # one rounding of the output
            tolerance = 2 * unit * e.abs() + 1e-3 * unit
        else:
            # fp32 throughout (dweight/dbias are fp32 sums over the rows, each term rounded in fp32)
            tolerance = FP32_TOL * max(1.0, rows ** 0.5) * (1.0 + e.abs())
        assert ((a.double() - e).abs() <= tolerance).all(), f"{name}: max error {max_error(a, e):.3g}"


@pytest.mark.parametrize("rows,width,dtype", [
    (3, 1, torch.float32),      # one feature: x̂ = 0, y = bias
    (5, 7, torch.float32),
    (37, 100, torch.float32),   # more rows than backward programs: the strided partial sums
    (6, 1000, torch.float32),
    (9, 100, torch.float16),
    (4, 1000, torch.bfloat16),  # no tl.dot here, and the kernel computes in fp32: bf16 works interpreted
])
def test_layer_norm_forward_and_gradients_match_float64_reference(rows, width, dtype):
    generator = torch.Generator().manual_seed(rows * width)
    x = (torch.randn(rows, width, generator=generator) * 3 + 1).to(DEVICE, dtype)
    weight = torch.randn(width, generator=generator).to(DEVICE)
    bias = torch.randn(width, generator=generator).to(DEVICE)
    check_layer_norm(x, weight, bias)


def test_layer_norm_takes_any_leading_shape_and_strides():
    x = torch.randn(2, 64, 5, generator=torch.Generator().manual_seed(12)).to(DEVICE).transpose(1, 2)  # (2, 5, 64)
    assert not x.is_contiguous()
    check_layer_norm(x, torch.randn(64).to(DEVICE), torch.randn(64).to(DEVICE), eps=1e-3)


def test_model_layer_norm_with_triton_matches_torch():
    model = load_impl("minigpt.model")
    ours = model.LayerNorm(48, impl="triton").to(DEVICE)
    theirs = model.LayerNorm(48, impl="torch").to(DEVICE)
    with torch.no_grad():
        theirs.scale.copy_(torch.randn(48))
        theirs.shift.copy_(torch.randn(48))
    ours.load_state_dict(theirs.state_dict())  # one module, two implementations: same parameters
    assert ours.eps == theirs.eps == 1e-5
    x = torch.randn(3, 4, 48, device=DEVICE)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)  # both fp32 normalisations of O(1) values


def test_layer_norm_rejects_bad_inputs_with_a_clear_message():
    with pytest.raises(ValueError, match="64|65536"):
        layernorm.layer_norm(torch.randn(2, 20000, device=DEVICE), torch.ones(20000, device=DEVICE),
                             torch.zeros(20000, device=DEVICE))  # 80 KB rows of fp32
    with pytest.raises(ValueError, match="shape"):
        layernorm.layer_norm(torch.randn(2, 8, device=DEVICE), torch.ones(7, device=DEVICE),
                             torch.zeros(8, device=DEVICE))


# ----------------------------------------------------------------------------------------------------------------------
# The kernels inside GPTModel.
# ----------------------------------------------------------------------------------------------------------------------

def test_gpt_model_with_triton_kernels_matches_torch_implementation():
    model_module = load_impl("minigpt.model")
    torch.manual_seed(0)
    reference = model_module.GPTModel(model_module.GPTConfig.preset(
        "tiny", attention_impl="torch", layernorm_impl="torch", n_layers=2)).to(DEVICE).eval()
    triton_model = model_module.GPTModel(model_module.GPTConfig.preset(
        "tiny", attention_impl="triton", layernorm_impl="triton", n_layers=2)).to(DEVICE).eval()
    triton_model.load_state_dict(reference.state_dict())
    tokens = torch.randint(0, reference.cfg.vocab_size, (2, 45), generator=torch.Generator().manual_seed(1))
    tokens = tokens.to(DEVICE)
    with torch.no_grad():
        expected = reference(tokens)
        actual = triton_model(tokens)
    # fp32 end to end; logits of size ~1 after two blocks: differences are fp32 rounding, 1e-4 leaves 100x room
    # on a GPU too (where SDPA may pick a different fp32 algorithm).
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


def test_gpt_model_gradients_with_triton_kernels_match_torch_implementation():
    # Training mode without dropout (the two implementations draw different dropout masks): the backward kernels
    # inside a real model, every parameter's gradient compared.
    model_module = load_impl("minigpt.model")
    torch.manual_seed(0)
    models = {impl: model_module.GPTModel(model_module.GPTConfig.preset(
        "tiny", attention_impl=impl, layernorm_impl=impl, n_layers=1, drop_rate=0.0)).to(DEVICE).train()
        for impl in ("torch", "triton")}
    models["triton"].load_state_dict(models["torch"].state_dict())
    tokens = torch.randint(0, 1000, (2, 33), generator=torch.Generator().manual_seed(2)).to(DEVICE)
    for model in models.values():
        logits = model(tokens[:, :-1])
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()).backward()
    reference = dict(models["torch"].named_parameters())
    for name, parameter in models["triton"].named_parameters():
        expected = reference[name].grad
        # fp32 throughout; gradients of a loss averaged over 64 tokens are ~1e-3..1e-1: fp32 rounding differences
        # are ~1e-7 of the largest, so 1e-5 of each tensor's largest gradient is a tight but safe bound.
        assert max_error(parameter.grad, expected) <= 1e-5 * expected.abs().max().item() + 1e-8, name


# ----------------------------------------------------------------------------------------------------------------------
# The kernels under torch.compile (chapter 6 trains GPT-2 compiled). Each kernel launch sits in a registered operator
# that torch.compile treats as opaque; these tests check the registration and that a compiled model keeps the kernels.
# ----------------------------------------------------------------------------------------------------------------------

def _operator_cases():
    import kernels.attention  # noqa: F401  (registers the operators; the tests below are about minigpt's own)
    import kernels.layernorm  # noqa: F401
    generator = torch.Generator().manual_seed(5)
    q, k, v, o, grad = (torch.randn(1, 2, 19, 16, generator=generator).to(DEVICE) for _ in range(5))
    lse = torch.randn(2, 19, generator=generator).to(DEVICE)
    x, dy = (torch.randn(6, 24, generator=generator).to(DEVICE) for _ in range(2))
    w, b = (torch.randn(24, generator=generator).to(DEVICE) for _ in range(2))
    stats = torch.rand(6, generator=generator).to(DEVICE) + 0.5
    # A non-contiguous query tensor: the fake (shape-only) version must predict the real output strides too.
    q_strided = torch.randn(1, 19, 2, 16, generator=generator).to(DEVICE).transpose(1, 2)
    ops = torch.ops.minigpt
    return [
        (ops.flash_attention_forward.default, (q, k, v, True, 0.0, 0, 0.25)),
        (ops.flash_attention_forward.default, (q_strided, k, v, False, 0.2, 7, 0.25)),
        (ops.flash_attention_backward.default, (grad, q, k, v, o, lse, True, 0.0, 0, 0.25)),
        (ops.layer_norm_forward.default, (x, w, b, 1e-5)),
        (ops.layer_norm_backward.default, (dy, x, w, stats, stats)),
    ]


@pytest.mark.parametrize("case", range(5))
def test_registered_operators_pass_torch_opcheck(case):
    # opcheck runs each operator for real and under fake tensors and compares the two (shapes, strides, dtypes,
    # devices), checks the schema (no hidden mutation or aliasing of inputs) and traces it as torch.compile would.
    op, args = _operator_cases()[case]
    torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


@pytest.mark.parametrize("triton_version,numpy_version,fails", [
    ("3.6.0", "2.4.1", True), ("3.6.0", "2.3.5", False), ("3.7.1", "2.4.1", False), ("3.10.0+git1a2b", "2.5.0", False)])
def test_interpreter_check_names_the_fix_for_a_known_bad_pair(monkeypatch, triton_version, numpy_version, fails):
    # Triton <= 3.6's interpreter cannot run loops on numpy >= 2.4 (checked by hand with 3.6.0, 3.7.1, 3.8.0, 3.9.0):
    # the check must stop such a run with the fix in the message, and let every other pair through.
    import numpy
    import triton

    import kernels
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(triton, "__version__", triton_version)
    monkeypatch.setattr(numpy, "__version__", numpy_version)
    if fails:
        with pytest.raises(RuntimeError, match="numpy<2.4"):
            kernels.check_interpreter()
    else:
        kernels.check_interpreter()


def test_gpt_model_compiles_in_one_graph_with_the_triton_kernels():
    # fullgraph=True turns any graph break into an error, so this fails if torch.compile cannot see through the
    # kernels' wrappers. The "aot_eager" backend runs the same front end as the default one (Dynamo, then AOTAutograd,
    # which traces the backward graph through the operators' fake versions) and then runs the graph op by op, so it
    # needs no C++ compiler on CI.
    model_module = load_impl("minigpt.model")
    torch.manual_seed(0)
    model = model_module.GPTModel(model_module.GPTConfig.preset(
        "tiny", attention_impl="triton", layernorm_impl="triton", n_layers=1, drop_rate=0.0)).to(DEVICE).train()
    tokens = torch.randint(0, 1000, (2, 33), generator=torch.Generator().manual_seed(3)).to(DEVICE)

    def loss_and_grads(forward):
        model.zero_grad(set_to_none=True)
        logits = forward(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}

    expected_loss, expected_grads = loss_and_grads(model)
    torch._dynamo.reset()
    try:
        loss, grads = loss_and_grads(torch.compile(model, backend="aot_eager", fullgraph=True))
    finally:
        torch._dynamo.reset()
    # The same kernels run in both; the ops around them may be decomposed and reordered, so the differences are fp32
    # rounding, bounded as in the gradient test above.
    torch.testing.assert_close(loss, expected_loss, atol=1e-6, rtol=1e-6)
    for name, expected in expected_grads.items():
        assert max_error(grads[name], expected) <= 1e-5 * expected.abs().max().item() + 1e-8, name


# ----------------------------------------------------------------------------------------------------------------------
# GPU only: bf16 and realistic sizes, against SDPA and F.layer_norm.
# ----------------------------------------------------------------------------------------------------------------------

# On a GPU every new shape of an autotuned kernel compiles and times several tile configurations. The big bf16 test
# autotunes (the same kernels the benchmark then reuses from Triton's cache); everything else uses the fixed default
# tiles (the fixed_tiles fixture) so that the GPU tests finish in minutes.

@pytest.mark.gpu
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dtype,autotune", [(torch.bfloat16, "1"), (torch.float16, "0")])
def test_gpu_attention_large_matches_sdpa(head_dim, causal, dtype, autotune, monkeypatch):
    # B2 H8 N2048: many programs, the causal block skipping at scale. The float64 reference would need 0.5 GB of
    # scores, so the oracle here is SDPA's math backend in fp32 (exact fp32 products, no TF32), and the error bar is
    # that of SDPA's own flash kernel in the same low precision.
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F
    monkeypatch.setenv("MINIGPT_AUTOTUNE", autotune)
    queries, keys, values = random_qkv(2, 8, 2048, head_dim, dtype, device="cuda")
    grad_out = torch.randn_like(queries)
    kernel = attention_and_grads(attention.flash_attention, queries, keys, values, grad_out, causal=causal)
    with sdpa_kernel(SDPBackend.MATH):
        exact = attention_and_grads(F.scaled_dot_product_attention, queries.float(), keys.float(), values.float(),
                                    grad_out, is_causal=causal)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        sdpa = attention_and_grads(F.scaled_dot_product_attention, queries, keys, values, grad_out, is_causal=causal)
    for name, a, s, e in zip(("output", "dQ", "dK", "dV"), kernel, sdpa, exact):
        assert max_error(a, e) <= 2 * max_error(s, e) + 1e-3, \
            f"{name}: kernel error {max_error(a, e):.3g}, SDPA error {max_error(s, e):.3g}"


@pytest.mark.gpu
@pytest.mark.parametrize("seq_len", [1, 7, 65, 130, 1000, 1023])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_gpu_attention_odd_lengths_match_float64_reference(seq_len, dtype):
    for head_dim, causal in GPU_PAIRS:
        queries, keys, values = random_qkv(2, 3, seq_len, head_dim, dtype, device="cuda", seed=seq_len)
        grad_out = torch.randn_like(queries)
        check_attention(queries, keys, values, grad_out, causal, floor=2e-3 if dtype == torch.bfloat16 else 1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_attention_dropout_matches_reference_with_the_same_mask(dtype):
    queries, keys, values = random_qkv(2, 4, 300, 64, dtype, device="cuda", seed=9)
    grad_out = torch.randn_like(queries)
    check_attention(queries, keys, values, grad_out, causal=True, dropout_p=0.2, seed=99,
                    floor=2e-3 if dtype == torch.bfloat16 else 1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("width", [768, 1600, 4096, 8192, 32768])
def test_gpu_layer_norm_bf16_matches_f_layer_norm(width):
    import torch.nn.functional as F
    rows = 4096 if width <= 8192 else 256
    generator = torch.Generator().manual_seed(width)
    x = (torch.randn(rows, width, generator=generator) * 2 + 0.5).to("cuda", torch.bfloat16)
    weight = torch.randn(width, generator=generator).to("cuda")
    bias = torch.randn(width, generator=generator).to("cuda")
    grad_y = torch.randn_like(x)
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    y = layernorm.layer_norm(*leaves)
    kernel = (y, *torch.autograd.grad(y, leaves, grad_y))
    leaves32 = [t.detach().float().requires_grad_() for t in (x, weight, bias)]
    y32 = F.layer_norm(leaves32[0], (width,), leaves32[1], leaves32[2])
    exact = (y32, *torch.autograd.grad(y32, leaves32, grad_y.float()))
    leaves_bf16 = [x.detach().clone().requires_grad_(), *(t.detach().clone().requires_grad_() for t in leaves[1:])]
    y_torch = F.layer_norm(leaves_bf16[0], (width,), leaves_bf16[1].bfloat16(), leaves_bf16[2].bfloat16())
    torch_bf16 = (y_torch, *torch.autograd.grad(y_torch, leaves_bf16, grad_y))
    for name, a, t, e in zip(("y", "dx", "dweight", "dbias"), kernel, torch_bf16, exact):
        assert max_error(a, e) <= 2 * max_error(t, e) + 1e-3 * e.abs().max().item(), \
            f"{name}: kernel error {max_error(a, e):.3g}, F.layer_norm bf16 error {max_error(t, e):.3g}"


@pytest.mark.slow
def test_benchmark_dry_run_writes_tables_plots_and_results(tmp_path, capsys):
    # The benchmark is meant for a GPU; its --dry-run runs every code path at toy sizes (interpreted on a CPU), so a
    # broken table, plot or model call is caught here rather than during scarce GPU time.
    import json

    from kernels import bench
    bench.main(["--dry-run", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "results_dry_run.json").read_text())
    assert {r["provider"] for r in results["attention"]} >= {"triton"}
    assert all(r["fwd"] and r["fwd+bwd"] for r in results["attention"] if r["provider"] == "triton")
    assert [(r["attention"], r["layernorm"]) for r in results["gpt2_step"]][-1] == ("triton", "triton")
    assert (tmp_path / "attention_tflops.png").stat().st_size > 0
    assert (tmp_path / "layernorm_gbps.png").stat().st_size > 0
    assert "| D | causal | N | triton |" in capsys.readouterr().out


# Compiled for a real GPU without one: the interpreter runs the kernels as numpy code and accepts some things the
# compiler rejects (and cannot show whether loads get pipelined or registers spill). Triton can still compile for an
# H100 (sm_90) on a machine without a GPU, down to the machine code, with kernels/sm90_report.py: a kernel that would
# fail to build, lose its pipelining or Hopper's tensor-core instructions, or spill registers is caught here.

def _sm90_report(tmp_path, *flags):
    import json
    import subprocess
    import sys
    try:
        from triton.compiler import ASTSource  # noqa: F401
        from triton.backends.compiler import GPUTarget  # noqa: F401
    except ImportError as error:
        pytest.skip(f"this Triton has no ahead-of-time compile API: {error}")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compile for real, not interpret
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "kernels.sm90_report", "--quick", "--json", str(out), *flags],
                            cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())["rows"]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the other tests compile and run the kernels for real")
def test_kernels_compile_for_an_h100_pipelined_on_hopper_tensor_cores_without_spills(tmp_path):
    rows = _sm90_report(tmp_path)
    assert {r["kernel"] for r in rows} >= {"attention delta", "dropout mask", "layernorm fwd", "layernorm bwd"}
    attention_rows = [r for r in rows if r["kernel"] in ("attention fwd", "attention dq", "attention dkdv")]
    assert {(r["kernel"], r["shape"]) for r in attention_rows} == {
        (f"attention {name}", f"head_dim {d}") for name in ("fwd", "dq", "dkdv") for d in (64, 128)}
    for row in attention_rows:
        # The key/value loop must be software-pipelined (tiles copied asynchronously while the tensor cores work)
        # and use Hopper's warp-group MMA (HGMMA in the machine code): without either the kernel runs at a fraction
        # of its speed. The default tiles were chosen to fit in registers: a spill would cost memory traffic on
        # every loop iteration.
        assert row["pipelined"] and row["wgmma"] and row["hgmma"] > 0, row
        assert row["stack_bytes"] == 0 and row["spill_instructions"] == 0, row
    from kernels.sm90_report import SM90_SHARED_MEMORY
    for row in rows:
        assert row["shared_bytes"] <= SM90_SHARED_MEMORY, row  # what one H100 block may have
    assert all(r["stack_bytes"] == 0 for r in rows if r["kernel"].startswith("layernorm")), rows


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the other tests compile and run the kernels for real")
def test_kernels_with_dropout_compile_for_an_h100_pipelined_on_hopper_tensor_cores(tmp_path):
    # With dropout every probability also needs a Philox random number, which takes registers: whether a default
    # tile then spills a few bytes depends on the Triton version (none with 3.6, 8 bytes in one kernel with 3.9; see
    # kernels/BENCHMARKS.md), so only building, pipelining and HGMMA are required here.
    for row in _sm90_report(tmp_path, "--dropout"):
        if row["kernel"] in ("attention fwd", "attention dq", "attention dkdv"):
            assert row["pipelined"] and row["wgmma"] and row["hgmma"] > 0, row


# ----------------------------------------------------------------------------------------------------------------------
# The GPU check (issue 18): `python -m kernels.bench --gpu-check --out DIR`, bounded for a GPU lent for minutes.
# Its --dry-run runs every stage at toy sizes on the CPU, so a broken stage, report or plot is caught here.
# ----------------------------------------------------------------------------------------------------------------------

def test_autotune_candidates_can_be_limited_to_the_default_and_the_first_others(monkeypatch):
    # MINIGPT_AUTOTUNE_CANDIDATES=k must keep k tiles per kernel and head dim, the fixed default always among them
    # (first), so that a bounded autotune can only do as well as the fixed tiles or better.
    monkeypatch.delenv("MINIGPT_AUTOTUNE_CANDIDATES", raising=False)
    for name, by_dim in attention._CANDIDATES.items():
        for head_dim, configs in by_dim.items():
            assert attention.tuning_candidates(name, head_dim) == configs
    monkeypatch.setenv("MINIGPT_AUTOTUNE_CANDIDATES", "3")
    for name, by_dim in attention._CANDIDATES.items():
        for head_dim, configs in by_dim.items():
            kept = attention.tuning_candidates(name, head_dim)
            first = kept[0]
            assert dict(first.kwargs, num_warps=first.num_warps, num_stages=first.num_stages) == \
                attention._DEFAULTS[(name, head_dim)], (name, head_dim)
            assert kept[1:] == [c for c in configs if c is not first][:2], (name, head_dim)
    monkeypatch.setenv("MINIGPT_AUTOTUNE_CANDIDATES", "1")
    assert len(attention.tuning_candidates("dq", 128)) == 1
    for bad in ("0", "three", "-2"):
        monkeypatch.setenv("MINIGPT_AUTOTUNE_CANDIDATES", bad)
        with pytest.raises(ValueError, match="MINIGPT_AUTOTUNE_CANDIDATES"):
            attention.tuning_candidates("fwd", 64)


def test_gpu_check_reads_pytest_counts_from_the_summary_or_from_the_progress_of_a_stopped_run():
    from kernels import bench
    finished = "..F\n=== short test summary info ===\nFAILED tests/x.py::t\n1 failed, 2 passed, 3 deselected in 4.20s\n"
    assert bench._pytest_counts(finished) == {"failed": 1, "passed": 2, "deselected": 3}
    stopped = "....s.                                   [ 40%]\n...\n"  # killed mid-run: no summary line
    assert bench._pytest_counts(stopped) == {"passed": 8, "skipped": 1}
    assert bench._pytest_counts("") == {}


def test_gpu_check_stage_past_its_budget_is_stopped_and_keeps_what_it_finished(tmp_path):
    from kernels import bench
    check = bench.GpuCheck(tmp_path, dry_run=True, budgets={"slow": 0.3, "next": 5})

    def slow(check, result):
        result["rows"] = []
        for i in range(1000):
            result["rows"].append(i)
            result["progress"] = f"{i + 1} rows"
            time.sleep(0.01)

    start = time.monotonic()
    record = check.run("slow", slow)
    # Unstopped, the stage takes 1000 x 10 ms = 10 s; stopped at 0.3 s it ends in well under that even on a loaded
    # 2-core machine (the report is written twice around it). The row count below is the exact check.
    assert time.monotonic() - start < 6.0
    assert record["status"] == "timed out" and record["error"].startswith("timed out after")
    assert 5 <= len(record["result"]["rows"]) < 1000
    assert f"{len(record['result']['rows'])} rows" in record["error"]
    assert check.run("next", lambda check, result: result.update(done=True))["status"] == "ok"
    saved = json.loads((tmp_path / bench.GPU_CHECK_JSON).read_text())
    assert [(s["name"], s["status"]) for s in saved["stages"]] == [("slow", "timed out"), ("next", "ok")]


def _gpu_check_files(folder):
    entries = list(folder.iterdir())
    assert all(e.is_file() for e in entries), entries  # flat: no subfolders
    assert len(entries) <= 8, entries
    assert not [e for e in entries if e.name.endswith(".tmp")], entries  # every atomic write completed
    return {e.name for e in entries}


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the dry run's tests stage runs the GPU tests for real "
                    "(minutes): run `python -m kernels.bench --gpu-check` itself there")
def test_gpu_check_dry_run_writes_every_stage_in_order(tmp_path, monkeypatch):
    from kernels import bench
    monkeypatch.setenv("MINIGPT_AUTOTUNE_CANDIDATES", "3")  # what the check sets; restored after the test
    bench.main(["--gpu-check", "--dry-run", "--out", str(tmp_path)])
    names = _gpu_check_files(tmp_path)
    assert names == {"gpu_check.json", "gpu_check.md", "gpu_check_pytest.log", "gpu_check_attention.png",
                     "gpu_check_layernorm.png"}
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] is True and report["finished"] is True
    assert [s["name"] for s in report["stages"]] == ["machine", "tests", "attention", "layernorm", "plots"]
    assert [s["status"] for s in report["stages"]] == ["ok"] * 5, [s.get("error") for s in report["stages"]]
    stages = {s["name"]: s["result"] for s in report["stages"]}
    machine = stages["machine"]
    for field in ("gpu", "driver", "cuda", "torch", "triton", "numpy", "python"):
        assert isinstance(machine[field], str) and machine[field], field
    assert machine["torch"] == torch.__version__
    assert machine["matmul_tflops"] > 0 and machine["copy_gbps"] > 0
    # On the CPU every GPU test is collected and skipped; none may fail or error.
    tests = stages["tests"]
    assert tests["counts"].get("skipped", 0) > 0 and not tests["counts"].get("failed") and not tests["counts"].get("error")
    assert "skipped" in (tmp_path / "gpu_check_pytest.log").read_text()
    attention_result = stages["attention"]
    shapes = {(d, n) for d in (64, 128) for n in (16, 40)}
    assert {(r["head_dim"], r["seq_len"]) for r in attention_result["rows"]} == shapes
    assert all(r["causal"] for r in attention_result["rows"])
    assert all(r["fwd"] > 0 and r["fwd+bwd"] > 0 for r in attention_result["rows"] if r["provider"] == "triton")
    assert sorted((t["mode"], t["versus"], t["head_dim"], t["seq_len"]) for t in attention_result["targets"]) == sorted(
        (mode, versus, d, n) for mode in ("fwd", "fwd+bwd") for versus in ("sdpa-flash", "sdpa-cudnn")
        for d, n in shapes)
    for target in attention_result["targets"]:
        assert target["status"] == ("n/a" if target["ratio"] is None else
                                    "met" if target["ratio"] >= target["at_least"] else "missed"), target
    layernorm_result = stages["layernorm"]
    assert [r["width"] for r in layernorm_result["rows"]] == [768, 4096]
    assert [(t["target"], t["width"]) for t in layernorm_result["targets"]] == [
        ("fwd vs F.layer_norm", 4096), ("fwd vs copy", 4096), ("fwd+bwd vs F.layer_norm", 768)]
    assert stages["plots"]["files"] == ["gpu_check_attention.png", "gpu_check_layernorm.png"]
    markdown = (tmp_path / "gpu_check.md").read_text()
    for heading in ("DRY RUN", "## (a) Machine: ok", "## (b) Chapter 5 GPU tests: ok", "## (c) Attention: ok",
                    "## (d) LayerNorm: ok", "## Plots: ok", "| D | causal | N | triton |", "triton/cudnn"):
        assert heading in markdown, heading
    assert markdown.index("(a) Machine") < markdown.index("(b) Chapter") < markdown.index("(c) Attention") \
        < markdown.index("(d) LayerNorm") < markdown.index("## Plots")


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the dry run's tests stage runs the GPU tests for real")
def test_gpu_check_records_a_failing_and_a_timed_out_stage_and_runs_the_rest(tmp_path, monkeypatch):
    import sys

    from kernels import bench
    monkeypatch.setenv("MINIGPT_AUTOTUNE_CANDIDATES", "3")

    def broken(check, result):
        result["progress"] = "started"
        raise RuntimeError("attention stage broke on purpose")
    monkeypatch.setattr(bench, "stage_attention", broken)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails: plots must be skipped
    # The tests stage gets 2 s: the pytest subprocess is killed before it even finishes importing torch.
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--gpu-check", "--dry-run", "--out", str(tmp_path), "--stage-budget", "tests=2"])
    assert stopped.value.code == 1  # a stage that is not ok makes the exit code 1; the report is written anyway
    assert _gpu_check_files(tmp_path) == {"gpu_check.json", "gpu_check.md", "gpu_check_pytest.log"}
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    stages = {s["name"]: s for s in report["stages"]}
    assert [s["name"] for s in report["stages"]] == ["machine", "tests", "attention", "layernorm", "plots"]
    assert stages["tests"]["status"] == "timed out"
    assert stages["tests"]["error"].startswith("timed out after") and stages["tests"]["seconds"] < 10
    assert stages["attention"]["status"] == "failed"
    assert stages["attention"]["error"] == "RuntimeError: attention stage broke on purpose"
    assert stages["layernorm"]["status"] == "ok" and len(stages["layernorm"]["result"]["rows"]) == 2
    assert stages["plots"]["status"] == "ok" and stages["plots"]["result"]["files"] == []
    assert stages["plots"]["result"]["notes"] == ["matplotlib is not installed: plots skipped"]
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert "## (c) Attention: failed" in markdown and "attention stage broke on purpose" in markdown
    assert "## (b) Chapter 5 GPU tests: timed out" in markdown and "## (d) LayerNorm: ok" in markdown


def test_gpu_check_reads_the_gpu_and_driver_from_nvidia_smi(tmp_path, monkeypatch):
    # No GPU here: a stand-in nvidia-smi prints what the real one prints for these fields (CSV, no header).
    from kernels import bench
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H200, 570.124.06, 143771 MiB, 700.00 W, 1980 MHz'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert bench._nvidia_smi() == {"name": "NVIDIA H200", "driver_version": "570.124.06",
                                   "memory.total": "143771 MiB", "power.limit": "700.00 W", "clocks.max.sm": "1980 MHz"}
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert bench._nvidia_smi() is None  # then the machine stage records driver "unknown"
