"""Chapter 5: LayerNorm in Triton, forward and backward, with a plain-PyTorch reference beside it.

LayerNorm does almost no arithmetic per byte it touches, so its speed is set by memory traffic: the best kernel reads
each input once and writes each output once. Here one program normalises one whole row held in registers (a row of up
to 64 KB fits), with the statistics computed in fp32. The backward pass gives dX row by row and accumulates dW and dB
without atomics: a fixed number of programs each walk a strided set of rows, keep their partial sums in registers and
write one row of partials, which a final sum over programs reduces.

Read top to bottom: `layer_norm_reference` (the math), `_layer_norm_fwd`, `_layer_norm_bwd`, the two registered
operators that launch them, the autograd wrapper `LayerNorm` and the public `layer_norm`. The model uses it through
minigpt.model.LayerNorm(impl="triton"), which minigpt/backends.py routes here: one Triton LayerNorm path.
"""

import torch
import triton
import triton.language as tl

from kernels import interpreting

MAX_ROW_BYTES = 65536  # one row must fit in the registers of one program


def layer_norm_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(x − mean) / sqrt(var + eps) · weight + bias over the last dimension, variance without Bessel's correction."""
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


# ----------------------------------------------------------------------------------------------------------------------
# Forward: one program per row of N features.
#
#     μ = Σⱼ xⱼ / N          σ² = Σⱼ (xⱼ − μ)² / N          r = 1 / sqrt(σ² + eps)          yⱼ = (xⱼ − μ)·r·wⱼ + bⱼ
#
# The row is loaded once into registers, so the two passes over it (mean, then variance of the centred values) cost no
# extra memory traffic, and the centred form avoids the cancellation of E[x²] − E[x]². μ and r are stored in fp32 for
# the backward pass (8 bytes per row against 2·N for the row itself).
# ----------------------------------------------------------------------------------------------------------------------

@triton.jit
def _layer_norm_fwd(X, Y, W, B, Mean, Rstd, stride_x_row, stride_y_row, N, eps, BLOCK_N: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    in_row = cols < N  # BLOCK_N is N rounded up to a power of two
    x = tl.load(X + row * stride_x_row + cols, mask=in_row, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / N
    centred = tl.where(in_row, x - mean, 0.0)  # the padding lanes must not add (0 − μ)² to the variance
    var = tl.sum(centred * centred, axis=0) / N
    rstd = 1.0 / tl.sqrt(var + eps)
    w = tl.load(W + cols, mask=in_row, other=0.0).to(tl.float32)
    b = tl.load(B + cols, mask=in_row, other=0.0).to(tl.float32)
    y = centred * rstd * w + b
    tl.store(Y + row * stride_y_row + cols, y.to(Y.dtype.element_ty), mask=in_row)
    tl.store(Mean + row, mean)
    tl.store(Rstd + row, rstd)


# ----------------------------------------------------------------------------------------------------------------------
# Backward. With x̂ = (x − μ)·r and g = dy ∘ w (the gradient reaching x̂):
#
#     dx = r · (g − mean(g) − x̂ · mean(g ∘ x̂))          (per row: μ and r depend on the whole row)
#     dw = Σ_rows dy ∘ x̂          db = Σ_rows dy          (per column: a reduction over all M rows)
#
# dx needs only its own row. dw and db need all rows: program p of P handles rows p, p + P, p + 2P, …, adds each row's
# dy∘x̂ and dy into fp32 registers, and writes one row of partial sums at the end. torch then sums the P partial rows.
# Every partial sum has exactly one writer, so there are no locks and no atomics, and the result is deterministic.
# ----------------------------------------------------------------------------------------------------------------------

@triton.jit
def _layer_norm_bwd(X, dY, dX, W, Mean, Rstd, dW_partial, dB_partial, stride_x_row, stride_dy_row, stride_dx_row,
                    M, N, BLOCK_N: tl.constexpr):
    program = tl.program_id(0)
    num_programs = tl.num_programs(0)
    cols = tl.arange(0, BLOCK_N)
    in_row = cols < N
    w = tl.load(W + cols, mask=in_row, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_N], dtype=tl.float32)
    db = tl.zeros([BLOCK_N], dtype=tl.float32)
    for row in range(program, M, num_programs):
        row = tl.cast(row, tl.int64)  # row · stride can pass 2³¹ for big activations
        x = tl.load(X + row * stride_x_row + cols, mask=in_row, other=0.0).to(tl.float32)
        dy = tl.load(dY + row * stride_dy_row + cols, mask=in_row, other=0.0).to(tl.float32)
        mean = tl.load(Mean + row)
        rstd = tl.load(Rstd + row)
        x_hat = tl.where(in_row, (x - mean) * rstd, 0.0)
        g = dy * w  # zero in the padding lanes, because dy and w were loaded as zero there
        mean_g = tl.sum(g, axis=0) / N
        mean_g_xhat = tl.sum(g * x_hat, axis=0) / N
        dx = (g - mean_g - x_hat * mean_g_xhat) * rstd
        tl.store(dX + row * stride_dx_row + cols, dx.to(dX.dtype.element_ty), mask=in_row)
        dw += dy * x_hat
        db += dy
    tl.store(dW_partial + program * N + cols, dw, mask=in_row)
    tl.store(dB_partial + program * N + cols, db, mask=in_row)


def _launch_settings(n: int, element_size: int) -> tuple[int, int]:
    """(BLOCK_N, num_warps): the row padded to a power of two, and enough warps that each thread holds a few elements."""
    if n * element_size > MAX_ROW_BYTES:
        raise ValueError(f"layer_norm: a row of {n} features × {element_size} bytes exceeds the {MAX_ROW_BYTES} bytes "
                         f"one program can hold; use torch.nn.functional.layer_norm for rows this wide")
    block = triton.next_power_of_2(n)
    # At most 16 elements per thread (held as fp32: x, dy, w and the two partial sums in the backward pass), so
    # registers do not spill: 4 warps up to 2048 features, then more, up to 32 warps (1024 threads, the most one
    # program can have) from 16384 on. Fewer, fuller threads would spill; more would waste time in cross-warp sums.
    num_warps = min(max(block // 512, 4), 32)
    return block, num_warps


def _backward_programs(rows: int, device: torch.device, num_warps: int) -> int:
    """How many programs share the rows in the backward pass: enough to fill the GPU, few enough that the final sum of
    partial rows stays cheap. Under the interpreter, a handful, so the strided row loop is still exercised."""
    if device.type != "cuda":
        return max(1, min(rows, 4))
    sm_count = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(rows, sm_count * max(1, 32 // num_warps)))  # about 32 resident warps per SM


# The launches live in two registered operators (torch.library.custom_op), called by the autograd.Function below.
# torch.compile (chapter 6 trains GPT-2 compiled) then sees each as one opaque operation with known output shapes (the
# `register_fake` functions) and never traces into Triton's launcher: the compiled model runs the kernels tested here.

@torch.library.custom_op("minigpt::layer_norm_forward", mutates_args=())
def _forward_op(x2d: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launches `_layer_norm_fwd` on (rows, n) input with unit stride along n; returns (y, mean, rstd)."""
    rows, n = x2d.shape
    y = torch.empty((rows, n), dtype=x2d.dtype, device=x2d.device)
    mean = torch.empty(rows, dtype=torch.float32, device=x2d.device)
    rstd = torch.empty(rows, dtype=torch.float32, device=x2d.device)
    block, num_warps = _launch_settings(n, x2d.element_size())
    if rows > 0:
        _layer_norm_fwd[(rows,)](x2d, y, weight, bias, mean, rstd, x2d.stride(0), y.stride(0), n, eps,
                                 BLOCK_N=block, num_warps=num_warps)
    return y, mean, rstd


@_forward_op.register_fake
def _(x2d, weight, bias, eps):
    rows, n = x2d.shape
    return (x2d.new_empty(rows, n), x2d.new_empty(rows, dtype=torch.float32),
            x2d.new_empty(rows, dtype=torch.float32))


@torch.library.custom_op("minigpt::layer_norm_backward", mutates_args=())
def _backward_op(dy: torch.Tensor, x2d: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor,
                 rstd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launches `_layer_norm_bwd`, then sums the partial rows; returns (dx, dweight, dbias)."""
    rows, n = x2d.shape
    dx = torch.empty((rows, n), dtype=x2d.dtype, device=x2d.device)
    block, num_warps = _launch_settings(n, x2d.element_size())
    programs = _backward_programs(rows, x2d.device, num_warps)
    dw_partial = torch.zeros((programs, n), dtype=torch.float32, device=x2d.device)
    db_partial = torch.zeros((programs, n), dtype=torch.float32, device=x2d.device)
    if rows > 0:
        _layer_norm_bwd[(programs,)](x2d, dy, dx, weight, mean, rstd, dw_partial, db_partial,
                                     x2d.stride(0), dy.stride(0), dx.stride(0), rows, n,
                                     BLOCK_N=block, num_warps=num_warps)
    return dx, dw_partial.sum(dim=0).to(weight.dtype), db_partial.sum(dim=0).to(weight.dtype)


@_backward_op.register_fake
def _(dy, x2d, weight, mean, rstd):
    return x2d.new_empty(x2d.shape), weight.new_empty(weight.shape), weight.new_empty(weight.shape)


class LayerNorm(torch.autograd.Function):
    """Autograd glue: forward saves (x, weight, mean, rstd); backward returns dx, dweight, dbias."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        x2d = x.reshape(-1, x.shape[-1])
        if x2d.stride(-1) != 1:
            x2d = x2d.contiguous()
        y, mean, rstd = _forward_op(x2d, weight, bias, eps)
        ctx.save_for_backward(x2d, weight, mean, rstd)
        ctx.input_shape = x.shape
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, grad_y):
        x2d, weight, mean, rstd = ctx.saved_tensors
        dy = grad_y.reshape(-1, x2d.shape[1])
        if dy.stride(-1) != 1:
            dy = dy.contiguous()
        dx, grad_weight, grad_bias = _backward_op(dy, x2d, weight, mean, rstd)
        return dx.view(ctx.input_shape), grad_weight, grad_bias, None


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over the last dimension of x (any leading shape) with a Triton kernel; fp32 statistics.

    x in fp16, bf16 or fp32; weight and bias of shape (x.shape[-1],) in any float dtype; rows up to 64 KB.
    """
    if not isinstance(x, torch.Tensor) or x.dim() == 0:
        raise ValueError("layer_norm: x must be a tensor with at least one dimension (the features)")
    n = x.shape[-1]
    if weight.shape != (n,) or bias.shape != (n,):
        raise ValueError(f"layer_norm: weight and bias must have shape ({n},) to match x's last dimension, "
                         f"got {tuple(weight.shape)} and {tuple(bias.shape)}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"layer_norm: x must be float16, bfloat16 or float32, got {x.dtype}")
    if not (x.device == weight.device == bias.device):
        raise ValueError("layer_norm: x, weight and bias must be on the same device")
    if x.device.type != "cuda" and not interpreting():
        raise RuntimeError("layer_norm: Triton kernels need CUDA tensors; to run them (slowly) on the CPU, set "
                           "TRITON_INTERPRET=1 in the environment before importing triton")
    if n == 0:
        raise ValueError("layer_norm: the last dimension of x must not be empty")
    return LayerNorm.apply(x, weight.contiguous(), bias.contiguous(), float(eps))
