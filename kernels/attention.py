"""Chapter 5: FlashAttention-2 in Triton, forward and backward, with a plain-PyTorch reference beside it.

Attention is softmax(Q Kᵀ · scale) V. Written naively it builds the whole (seq_len × seq_len) score matrix in GPU
memory, reads it back for the softmax and again for the product with V: for long sequences that traffic, not the
arithmetic, sets the speed. FlashAttention never stores the scores. A program owns one tile of queries, walks over
the keys tile by tile, and keeps a *running* softmax: the row maximum m and the row sum l seen so far, rescaling its
partial output whenever a new tile raises the maximum (the "online softmax"). The backward pass stores nothing
either: it recomputes the probabilities from Q, K and the saved log-sum-exp, one tile at a time.

Read this file top to bottom:
  1. `attention_reference`      the math in plain PyTorch (also the test oracle);
  2. `_dropout_keep`            the in-kernel dropout mask, a pure function of (seed, batch·head, query, key);
  3. `_attn_fwd` (+ inner loop) the forward kernel;
  4. `_attn_bwd_*`              the backward kernels: delta = rowsum(dO·O), then dK/dV per key tile, dQ per query tile;
  5. `FlashAttention`           the torch.autograd.Function that launches them (through two registered operators that
                                torch.compile treats as opaque); `flash_attention` is the public call.

Conventions inside the kernels: every score is kept in base-2 units, s₂ = (q·k)·scale·log₂(e), so that
exp(scale·q·k − m) = exp2(s₂ − m₂): `exp2` is the native GPU instruction and folding log₂(e) into the scale costs
nothing. The saved log-sum-exp is in the same base-2 units: lse₂ = m₂ + log2(l). Accumulators are fp32; tiles of
probabilities are cast to the input dtype (fp16, bf16 or fp32) just before the tensor-core product with V.

There are no atomics anywhere, so the backward pass is deterministic: one program per key tile owns its rows of dK and
dV, and one program per query tile owns its rows of dQ.
"""
import math
import os

import torch
import triton
import triton.language as tl

from kernels import interpreting

LOG2E = math.log2(math.e)  # exp(x) == exp2(x * LOG2E)
HEAD_DIMS = (16, 32, 64, 128)  # tl.arange needs a power of two, and tl.dot needs every side >= 16


# Autotuning times each candidate configuration on the GPU, so it only makes sense there. Under the interpreter
# (no GPU) the kernels are plain @triton.jit functions launched with one fixed, small configuration instead.
COMPILED = torch.cuda.is_available() and not interpreting()


def autotuning() -> bool:
    """Whether fp16/bf16 launches autotune (the default on a GPU). MINIGPT_AUTOTUNE=0 uses fixed tiles instead:
    a quicker start, since each autotuned shape compiles and times several candidates."""
    return COMPILED and os.environ.get("MINIGPT_AUTOTUNE", "1") != "0"


# ----------------------------------------------------------------------------------------------------------------------
# 1. The reference: what every kernel below must compute.
# ----------------------------------------------------------------------------------------------------------------------

def attention_reference(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, causal: bool = True,
                        dropout_p: float = 0.0, dropout_mask: torch.Tensor | None = None,
                        scale: float | None = None) -> torch.Tensor:
    """softmax(Q Kᵀ · scale + causal mask) V in plain PyTorch, on (batch, heads, seq_len, head_dim) tensors.

    With dropout, probabilities are zeroed where `dropout_mask` is False and the survivors scaled by 1/(1 - p)
    (pass the mask from `attention_dropout_mask` to reproduce the kernel exactly; without one a fresh mask is drawn).
    Computes in the dtype it is given: pass float64 tensors for an exact oracle.
    """
    scale = queries.shape[-1] ** -0.5 if scale is None else scale
    scores = queries @ keys.transpose(-2, -1) * scale
    if causal:
        seq_len = queries.shape[-2]
        future = torch.ones(seq_len, seq_len, dtype=torch.bool, device=queries.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        if dropout_mask is None:
            dropout_mask = torch.rand_like(probs) >= dropout_p
        probs = probs * dropout_mask / (1.0 - dropout_p)
    return probs @ values


# ----------------------------------------------------------------------------------------------------------------------
# 2. Dropout inside the kernel: no mask is ever stored. Each probability p[b, h, i, j] gets its own random number
#    from the Philox counter-based generator, a pure function of (seed, counter): the same numbers come back in the
#    backward pass wherever the tile lies and in whatever orientation it is computed, because they depend only on the
#    indices. One Philox call mixes four 32-bit words for ten rounds and returns all four, so each call serves a group
#    of four neighbouring keys: counter = ((b·H + h)·N + i)·⌈N/4⌉ + j//4, and key j takes word j mod 4. (Drawing one
#    number per call would do the same work four times over and hold four times the registers while doing it.)
# ----------------------------------------------------------------------------------------------------------------------

@triton.jit
def _dropout_keep(seed, bh, rows, start_col, seq_len, dropout_p, BLOCK_COLS: tl.constexpr):
    """Keep-mask [len(rows), BLOCK_COLS] (True = kept) of head `bh` for query indices `rows` (a column, [R, 1]) and
    keys start_col … start_col + BLOCK_COLS − 1; start_col is a multiple of 4."""
    groups = start_col // 4 + tl.arange(0, BLOCK_COLS // 4)  # the groups of four keys in this tile
    counters = (bh.to(tl.int64) * seq_len + rows.to(tl.int64)) * ((seq_len + 3) // 4) + groups[None, :]  # int64
    r0, r1, r2, r3 = tl.randint4x(seed, counters)  # four [BLOCK_ROWS, BLOCK_COLS/4] words per Philox call
    # Interleave the four words back into key order: join stacks along a new last axis, reshape flattens it in order,
    # so the keys of one group get words r0, r2, r1, r3 (any fixed order will do: every kernel calls this function).
    words = tl.reshape(tl.join(tl.join(r0, r1), tl.join(r2, r3)), [rows.shape[0], BLOCK_COLS])
    return tl.uint_to_uniform_float(words) >= dropout_p  # uniform in [0, 1): kept with probability 1 − p


@triton.jit(do_not_specialize=["seed"])  # a new seed every step must not recompile
def _dropout_mask_kernel(Mask, seq_len, dropout_p, seed, BLOCK: tl.constexpr):
    """Writes the keep-mask of one head (program axis 0: batch·head, axis 1: query block) as int8."""
    bh = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    for start in range(0, seq_len, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        keep = _dropout_keep(seed, bh, rows[:, None], start, seq_len, dropout_p, BLOCK)
        in_range = (rows[:, None] < seq_len) & (cols[None, :] < seq_len)
        pointers = Mask + (bh.to(tl.int64) * seq_len + rows[:, None]) * seq_len + cols[None, :]
        tl.store(pointers, keep.to(tl.int8), mask=in_range)


def attention_dropout_mask(batch: int, heads: int, seq_len: int, dropout_p: float, seed: int,
                           device: torch.device | str = "cuda") -> torch.Tensor:
    """The (batch, heads, seq_len, seq_len) bool keep-mask that `flash_attention` uses for this (seed, dropout_p)."""
    mask = torch.empty(batch, heads, seq_len, seq_len, dtype=torch.int8, device=device)
    block = 32
    _dropout_mask_kernel[(batch * heads, triton.cdiv(seq_len, block))](mask, seq_len, dropout_p, seed, BLOCK=block)
    return mask.bool()


# ----------------------------------------------------------------------------------------------------------------------
# 3. Forward. One program = one tile of BLOCK_M queries of one (batch, head). It streams over tiles of BLOCK_N keys:
#
#      s₂    = Q Kⱼᵀ · scale · log₂e                        scores of this key tile, base-2 units   [BLOCK_M, BLOCK_N]
#      m_new = max(m, rowmax(s₂))                          running row maximum
#      p     = exp2(s₂ − m_new)                            probabilities, not yet normalised
#      α     = exp2(m − m_new)                             how much the old maximum overestimated: rescale the past
#      l     = l·α + rowsum(p)                             running row sum
#      acc   = acc·α + p Vⱼ                                running un-normalised output
#
#    and at the end O = acc / l, lse₂ = m + log2(l). Because every step rescales by the same α, the result equals the
#    softmax over all keys exactly (up to rounding); chapters/ch05_kernels.py walks through it with numbers.
#
#    Masking costs work, so the key loop is split: tiles that need no mask (fully below the causal diagonal, or fully
#    inside the sequence) run an unmasked loop; only the diagonal tiles (causal) or the last, partial tile run masked.
# ----------------------------------------------------------------------------------------------------------------------

@triton.jit
def _attn_fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                    offs_m, offs_d, lo, hi, seq_len, qk_scale, dropout_p, seed, bh,
                    BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr,
                    DOT_PRECISION: tl.constexpr):
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        # Kᵀ is loaded transposed straight from memory: row d, column n sits at k_base + n·stride_kn + d·stride_kd.
        kT_pointers = k_base + offs_n[None, :] * stride_kn + offs_d[:, None] * stride_kd
        v_pointers = v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd
        if MASKED:
            kT = tl.load(kT_pointers, mask=offs_n[None, :] < seq_len, other=0.0)
        else:
            kT = tl.load(kT_pointers)
        qk = tl.dot(q, kT, input_precision=DOT_PRECISION)  # Q Kⱼᵀ in fp32, [BLOCK_M, BLOCK_N]
        if MASKED:
            valid = offs_n[None, :] < seq_len  # keys past the end of the sequence
            if CAUSAL:
                valid = valid & (offs_m[:, None] >= offs_n[None, :])  # query i sees keys j <= i
            qk = tl.where(valid, qk, float("-inf"))
        # m_new = max(m, rowmax(qk)·c) with c = scale·log₂e > 0; then s₂ − m_new = qk·c − m_new is one fused multiply-add.
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        p = tl.exp2(qk * qk_scale - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)  # first tile: m_i = -inf, so alpha = 0 and the empty past is discarded
        l_i = l_i * alpha + tl.sum(p, 1)  # l counts every probability, dropped or not: softmax comes before dropout
        acc = acc * alpha[:, None]
        if DROPOUT:
            keep = _dropout_keep(seed, bh, offs_m[:, None], start_n, seq_len, dropout_p, BLOCK_N)
            p = tl.where(keep, p, 0.0)
        if MASKED:
            v = tl.load(v_pointers, mask=offs_n[:, None] < seq_len, other=0.0)
        else:
            v = tl.load(v_pointers)
        # acc += P Vⱼ: P goes to the tensor cores in the input dtype (fp16/bf16/fp32), accumulation stays fp32.
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit(do_not_specialize=["seed"])  # a new seed every step must not recompile
def _attn_fwd(Q, K, V, O, LSE,
              stride_qb, stride_qh, stride_qn, stride_qd,
              stride_kb, stride_kh, stride_kn, stride_kd,
              stride_vb, stride_vh, stride_vn, stride_vd,
              stride_ob, stride_oh, stride_on, stride_od,
              num_heads, seq_len, qk_scale, dropout_p, seed,
              HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr,
              DROPOUT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    # Grid (batch·heads, query tiles): consecutive programs are different heads of the same query tile. In causal mode
    # the last query tile has the most keys to visit, so the tiles are handed out from the last one down: the longest
    # programs start first and the short ones fill the gaps at the end (fewer idle GPU cores in the final wave).
    bh = tl.program_id(0)
    if CAUSAL:
        start_m = tl.num_programs(1) - 1 - tl.program_id(1)
    else:
        start_m = tl.program_id(1)
    batch = (bh // num_heads).to(tl.int64)
    head = (bh % num_heads).to(tl.int64)
    q_base = Q + batch * stride_qb + head * stride_qh
    k_base = K + batch * stride_kb + head * stride_kh
    v_base = V + batch * stride_vb + head * stride_vh
    o_base = O + batch * stride_ob + head * stride_oh

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_in_range = offs_m < seq_len
    q = tl.load(q_base + offs_m[:, None] * stride_qn + offs_d[None, :] * stride_qd, mask=row_in_range[:, None],
                other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    if CAUSAL:
        # Keys [0, first query of the tile) are all visible to every query here: no mask. (BLOCK_M % BLOCK_N == 0.)
        diagonal_start = start_m * BLOCK_M
        acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                                        offs_m, offs_d, 0, diagonal_start, seq_len, qk_scale, dropout_p, seed, bh,
                                        BLOCK_N, False, CAUSAL, DROPOUT, DOT_PRECISION)
        # The diagonal tiles: key j is visible to query i only when j <= i. Keys above them are never loaded.
        diagonal_end = tl.minimum(diagonal_start + BLOCK_M, seq_len)
        acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                                        offs_m, offs_d, diagonal_start, diagonal_end, seq_len, qk_scale, dropout_p,
                                        seed, bh, BLOCK_N, True, CAUSAL, DROPOUT, DOT_PRECISION)
    else:
        full_end = (seq_len // BLOCK_N) * BLOCK_N  # whole key tiles, then at most one partial tile
        acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                                        offs_m, offs_d, 0, full_end, seq_len, qk_scale, dropout_p, seed, bh,
                                        BLOCK_N, False, CAUSAL, DROPOUT, DOT_PRECISION)
        acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                                        offs_m, offs_d, full_end, seq_len, seq_len, qk_scale, dropout_p, seed, bh,
                                        BLOCK_N, True, CAUSAL, DROPOUT, DOT_PRECISION)

    # O = acc / l, and dropout's 1/(1 - p) applied once here instead of on every probability.
    if DROPOUT:
        out = acc * (1.0 / ((1.0 - dropout_p) * l_i))[:, None]
    else:
        out = acc * (1.0 / l_i)[:, None]
    tl.store(o_base + offs_m[:, None] * stride_on + offs_d[None, :] * stride_od, out.to(O.dtype.element_ty),
             mask=row_in_range[:, None])
    # lse₂ = m + log2(l): all the backward pass needs to rebuild any probability as exp2(s₂ − lse₂).
    tl.store(LSE + bh.to(tl.int64) * seq_len + offs_m, m_i + tl.log2(l_i), mask=row_in_range)


# ----------------------------------------------------------------------------------------------------------------------
# 4. Backward. With P = softmax(S), S = scale·Q Kᵀ, O = P V (Z the dropout keep-mask, 1/(1−p) folded in as k):
#
#      dV = (P∘Z·k)ᵀ dO                      dP = (dO Vᵀ)∘Z·k
#      dS = P ∘ (dP − Δ),  Δᵢ = Σⱼ Pᵢⱼ dPᵢⱼ = rowsum(dO ∘ O)ᵢ   (the softmax Jacobian, without forming it)
#      dQ = scale · dS K                     dK = scale · dSᵀ Q
#
#    Δ is computed first by a small kernel. Then dK, dV come from one program per key tile that loops over query tiles,
#    and dQ from one program per query tile that loops over key tiles. Each output row is written by exactly one
#    program: no atomics, the same bits every run. P is recomputed from Q, K and lse₂, never stored.
# ----------------------------------------------------------------------------------------------------------------------

@triton.jit
def _attn_bwd_delta(O, dO, Delta,
                    stride_ob, stride_oh, stride_on, stride_od,
                    stride_dob, stride_doh, stride_don, stride_dod,
                    num_heads, seq_len, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    bh = tl.program_id(0)
    batch = (bh // num_heads).to(tl.int64)
    head = (bh % num_heads).to(tl.int64)
    offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    rows = offs_m[:, None] < seq_len
    o = tl.load(O + batch * stride_ob + head * stride_oh + offs_m[:, None] * stride_on + offs_d[None, :] * stride_od,
                mask=rows, other=0.0).to(tl.float32)
    do = tl.load(dO + batch * stride_dob + head * stride_doh + offs_m[:, None] * stride_don
                 + offs_d[None, :] * stride_dod, mask=rows, other=0.0).to(tl.float32)
    tl.store(Delta + bh.to(tl.int64) * seq_len + offs_m, tl.sum(o * do, 1), mask=offs_m < seq_len)  # Δ = rowsum(dO∘O)


@triton.jit
def _attn_bwd_dkdv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base,
                         stride_qn, stride_qd, stride_don, stride_dod,
                         offs_n, offs_d, lo, hi, seq_len, qk_scale, dropout_p, seed, bh, start_n,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr,
                         DROPOUT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    # Everything here is transposed (keys along rows, queries along columns) so that dK and dV, which have one row per
    # key, accumulate without ever transposing the big accumulators.
    for start_m in range(lo, hi, BLOCK_M):
        start_m = tl.multiple_of(start_m, BLOCK_M)
        offs_m = start_m + tl.arange(0, BLOCK_M)
        qT_pointers = q_base + offs_m[None, :] * stride_qn + offs_d[:, None] * stride_qd  # Qᵀ tile [HEAD_DIM, BLOCK_M]
        do_pointers = do_base + offs_m[:, None] * stride_don + offs_d[None, :] * stride_dod  # dO tile [BLOCK_M, HEAD_DIM]
        if MASKED:
            in_range = offs_m < seq_len
            qT = tl.load(qT_pointers, mask=in_range[None, :], other=0.0)
            do = tl.load(do_pointers, mask=in_range[:, None], other=0.0)
            lse = tl.load(lse_base + offs_m, mask=in_range, other=0.0)
            delta = tl.load(delta_base + offs_m, mask=in_range, other=0.0)
        else:
            qT = tl.load(qT_pointers)
            do = tl.load(do_pointers)
            lse = tl.load(lse_base + offs_m)
            delta = tl.load(delta_base + offs_m)
        # Pᵀ = exp2(K Qᵀ·scale·log₂e − lse₂): the forward probabilities, recomputed.
        pT = tl.exp2(tl.dot(k, qT, input_precision=DOT_PRECISION) * qk_scale - lse[None, :])
        if MASKED:
            valid = offs_m[None, :] < seq_len
            if CAUSAL:
                valid = valid & (offs_m[None, :] >= offs_n[:, None])
            pT = tl.where(valid, pT, 0.0)
        dpT = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)  # (dO Vᵀ)ᵀ = V dOᵀ
        if DROPOUT:
            # The mask is drawn in (query, key) orientation, as in the forward pass, then transposed.
            keepT = tl.trans(_dropout_keep(seed, bh, offs_m[:, None], start_n, seq_len, dropout_p, BLOCK_N))
            # dV += (P∘Z)ᵀ dO ; the 1/(1−p) is applied once at the end
            dv = tl.dot(tl.where(keepT, pT, 0.0).to(do.dtype), do, dv, input_precision=DOT_PRECISION)
            dpT = tl.where(keepT, dpT * (1.0 / (1.0 - dropout_p)), 0.0)  # dP = (dO Vᵀ)∘Z/(1−p)
        else:
            dv = tl.dot(pT.to(do.dtype), do, dv, input_precision=DOT_PRECISION)  # dV += Pᵀ dO
        dsT = pT * (dpT - delta[None, :])  # dSᵀ = Pᵀ ∘ (dPᵀ − Δ)
        dk = tl.dot(dsT.to(qT.dtype), tl.trans(qT), dk, input_precision=DOT_PRECISION)  # dK += dSᵀ Q (scale later)
    return dk, dv


@triton.jit(do_not_specialize=["seed"])  # a new seed every step must not recompile
def _attn_bwd_dkdv(Q, K, V, dO, LSE, Delta, dK, dV,
                   stride_qb, stride_qh, stride_qn, stride_qd,
                   stride_kb, stride_kh, stride_kn, stride_kd,
                   stride_vb, stride_vh, stride_vn, stride_vd,
                   stride_dob, stride_doh, stride_don, stride_dod,
                   stride_gb, stride_gh, stride_gn, stride_gd,
                   num_heads, seq_len, sm_scale, qk_scale, dropout_p, seed,
                   HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr,
                   DROPOUT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    # Grid (batch·heads, key tiles). In causal mode key tile 0 is seen by every query, so the natural order already
    # starts with the longest programs.
    bh = tl.program_id(0)
    start_n = tl.program_id(1) * BLOCK_N
    batch = (bh // num_heads).to(tl.int64)
    head = (bh % num_heads).to(tl.int64)
    q_base = Q + batch * stride_qb + head * stride_qh
    do_base = dO + batch * stride_dob + head * stride_doh
    lse_base = LSE + bh.to(tl.int64) * seq_len
    delta_base = Delta + bh.to(tl.int64) * seq_len

    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    key_in_range = offs_n[:, None] < seq_len
    k = tl.load(K + batch * stride_kb + head * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kd,
                mask=key_in_range, other=0.0)
    v = tl.load(V + batch * stride_vb + head * stride_vh + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                mask=key_in_range, other=0.0)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:
        # Queries before this key tile never see it: start at the diagonal. The diagonal query tiles need the causal
        # mask (BLOCK_N % BLOCK_M == 0, so they line up), every later one sees all of these keys.
        diagonal_end = tl.minimum(start_n + BLOCK_N, seq_len)
        dk, dv = _attn_bwd_dkdv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base,
                                      stride_qn, stride_qd, stride_don, stride_dod, offs_n, offs_d,
                                      start_n, diagonal_end, seq_len, qk_scale, dropout_p, seed, bh, start_n,
                                      BLOCK_M, BLOCK_N, True, CAUSAL, DROPOUT, DOT_PRECISION)
        lo = start_n + BLOCK_N
    else:
        lo = 0
    full_end = (seq_len // BLOCK_M) * BLOCK_M  # whole query tiles need no bounds mask; the partial last one does
    dk, dv = _attn_bwd_dkdv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base,
                                  stride_qn, stride_qd, stride_don, stride_dod, offs_n, offs_d,
                                  lo, full_end, seq_len, qk_scale, dropout_p, seed, bh, start_n,
                                  BLOCK_M, BLOCK_N, False, CAUSAL, DROPOUT, DOT_PRECISION)
    dk, dv = _attn_bwd_dkdv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base,
                                  stride_qn, stride_qd, stride_don, stride_dod, offs_n, offs_d,
                                  tl.maximum(lo, full_end), seq_len, seq_len, qk_scale, dropout_p, seed, bh, start_n,
                                  BLOCK_M, BLOCK_N, True, CAUSAL, DROPOUT, DOT_PRECISION)

    if DROPOUT:
        dv = dv * (1.0 / (1.0 - dropout_p))
    dk = dk * sm_scale  # dK = scale · dSᵀ Q
    # dK and dV are allocated together with the same layout, so one set of strides serves both.
    g_offsets = batch * stride_gb + head * stride_gh + offs_n[:, None] * stride_gn + offs_d[None, :] * stride_gd
    tl.store(dK + g_offsets, dk.to(dK.dtype.element_ty), mask=key_in_range)
    tl.store(dV + g_offsets, dv.to(dV.dtype.element_ty), mask=key_in_range)


@triton.jit
def _attn_bwd_dq_inner(dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                       offs_m, offs_d, lo, hi, seq_len, qk_scale, dropout_p, seed, bh,
                       BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr,
                       DOT_PRECISION: tl.constexpr):
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kT_pointers = k_base + offs_n[None, :] * stride_kn + offs_d[:, None] * stride_kd  # [HEAD_DIM, BLOCK_N]
        vT_pointers = v_base + offs_n[None, :] * stride_vn + offs_d[:, None] * stride_vd
        if MASKED:
            kT = tl.load(kT_pointers, mask=offs_n[None, :] < seq_len, other=0.0)
            vT = tl.load(vT_pointers, mask=offs_n[None, :] < seq_len, other=0.0)
        else:
            kT = tl.load(kT_pointers)
            vT = tl.load(vT_pointers)
        p = tl.exp2(tl.dot(q, kT, input_precision=DOT_PRECISION) * qk_scale - lse[:, None])  # P, recomputed
        if MASKED:
            valid = offs_n[None, :] < seq_len
            if CAUSAL:
                valid = valid & (offs_m[:, None] >= offs_n[None, :])
            p = tl.where(valid, p, 0.0)
        dp = tl.dot(do, vT, input_precision=DOT_PRECISION)  # dO Vᵀ
        if DROPOUT:
            keep = _dropout_keep(seed, bh, offs_m[:, None], start_n, seq_len, dropout_p, BLOCK_N)
            dp = tl.where(keep, dp * (1.0 / (1.0 - dropout_p)), 0.0)
        ds = p * (dp - delta[:, None])  # dS = P ∘ (dP − Δ)
        dq = tl.dot(ds.to(kT.dtype), tl.trans(kT), dq, input_precision=DOT_PRECISION)  # dQ += dS K (scale later)
    return dq


@triton.jit(do_not_specialize=["seed"])  # a new seed every step must not recompile
def _attn_bwd_dq(Q, K, V, dO, LSE, Delta, dQ,
                 stride_qb, stride_qh, stride_qn, stride_qd,
                 stride_kb, stride_kh, stride_kn, stride_kd,
                 stride_vb, stride_vh, stride_vn, stride_vd,
                 stride_dob, stride_doh, stride_don, stride_dod,
                 stride_gb, stride_gh, stride_gn, stride_gd,
                 num_heads, seq_len, sm_scale, qk_scale, dropout_p, seed,
                 HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr,
                 DROPOUT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    bh = tl.program_id(0)
    if CAUSAL:  # the last query tile sees the most keys: hand it out first, as in the forward pass
        start_m = tl.num_programs(1) - 1 - tl.program_id(1)
    else:
        start_m = tl.program_id(1)
    batch = (bh // num_heads).to(tl.int64)
    head = (bh % num_heads).to(tl.int64)
    k_base = K + batch * stride_kb + head * stride_kh
    v_base = V + batch * stride_vb + head * stride_vh

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_in_range = offs_m < seq_len
    q = tl.load(Q + batch * stride_qb + head * stride_qh + offs_m[:, None] * stride_qn + offs_d[None, :] * stride_qd,
                mask=row_in_range[:, None], other=0.0)
    do = tl.load(dO + batch * stride_dob + head * stride_doh + offs_m[:, None] * stride_don
                 + offs_d[None, :] * stride_dod, mask=row_in_range[:, None], other=0.0)
    lse = tl.load(LSE + bh.to(tl.int64) * seq_len + offs_m, mask=row_in_range, other=0.0)
    delta = tl.load(Delta + bh.to(tl.int64) * seq_len + offs_m, mask=row_in_range, other=0.0)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:  # same split as the forward: unmasked keys left of the diagonal, then the masked diagonal tiles
        diagonal_start = start_m * BLOCK_M
        dq = _attn_bwd_dq_inner(dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                                offs_m, offs_d, 0, diagonal_start, seq_len, qk_scale, dropout_p, seed, bh,
                                BLOCK_N, False, CAUSAL, DROPOUT, DOT_PRECISION)
        dq = _attn_bwd_dq_inner(dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                                offs_m, offs_d, diagonal_start, tl.minimum(diagonal_start + BLOCK_M, seq_len),
                                seq_len, qk_scale, dropout_p, seed, bh, BLOCK_N, True, CAUSAL, DROPOUT, DOT_PRECISION)
    else:
        full_end = (seq_len // BLOCK_N) * BLOCK_N
        dq = _attn_bwd_dq_inner(dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                                offs_m, offs_d, 0, full_end, seq_len, qk_scale, dropout_p, seed, bh,
                                BLOCK_N, False, CAUSAL, DROPOUT, DOT_PRECISION)
        dq = _attn_bwd_dq_inner(dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                                offs_m, offs_d, full_end, seq_len, seq_len, qk_scale, dropout_p, seed, bh,
                                BLOCK_N, True, CAUSAL, DROPOUT, DOT_PRECISION)

    dq = dq * sm_scale  # dQ = scale · dS K
    tl.store(dQ + batch * stride_gb + head * stride_gh + offs_m[:, None] * stride_gn + offs_d[None, :] * stride_gd,
             dq.to(dQ.dtype.element_ty), mask=row_in_range[:, None])


# ----------------------------------------------------------------------------------------------------------------------
# Tile sizes. On a GPU, for fp16 and bf16, triton.autotune times each candidate once per (sequence length, head dim,
# causal, dtype, dropout) and keeps the fastest. The candidates are per head dim: bigger tiles reuse every loaded tile
# more but need more registers and more shared memory (num_stages copies of the K and V tiles, for the software
# pipeline that loads the next tiles while the tensor cores work on the current ones). `python -m kernels.sm90_report`
# compiles every candidate for an H100 without a GPU and lists registers, spills and shared memory: without dropout
# none spills more than 16 bytes per thread (Triton 3.6 and 3.9), the fixed defaults not at all. With dropout the
# random numbers take registers too and the bigger tiles spill; the autotuner, keyed on DROPOUT, then picks smaller ones.
# fp32 is the exactness path, not the fast one: its products use "tf32x3" (three TF32 tensor-core passes, close to
# full fp32 accuracy) and one fixed small tile, which keeps compile time (seconds per kernel) and registers low.
# Under the interpreter one small fixed configuration is used: 32-query tiles over 16-key tiles, so that even the short
# test sequences cross several tiles, partial tails and diagonals.
# ----------------------------------------------------------------------------------------------------------------------

def _configs(shapes):
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s) for m, n, w, s in shapes]


# (BLOCK_M, BLOCK_N, num_warps, num_stages). Forward and dQ: the query tile is the outer one and
# BLOCK_M % BLOCK_N == 0, so diagonal tiles line up. dK/dV: the key tile is the outer one and BLOCK_N % BLOCK_M == 0.
_CANDIDATES = {
    "fwd": {64: _configs([(64, 64, 4, 3), (64, 64, 4, 4), (128, 32, 4, 3), (128, 64, 4, 3), (128, 64, 8, 3),
                          (128, 128, 8, 2), (128, 128, 8, 3)]),
            128: _configs([(64, 32, 4, 3), (64, 64, 4, 3), (64, 64, 4, 4), (128, 32, 8, 3), (128, 64, 8, 3),
                           (128, 128, 8, 2), (128, 128, 8, 3)])},
    "dq": {64: _configs([(64, 32, 4, 3), (64, 64, 4, 3), (128, 32, 8, 3), (128, 64, 8, 2), (128, 64, 8, 3),
                         (128, 128, 8, 2)]),
           128: _configs([(64, 32, 4, 3), (64, 64, 4, 3), (128, 32, 8, 3), (128, 64, 8, 2), (128, 64, 8, 3)])},
    "dkdv": {64: _configs([(32, 64, 4, 3), (64, 64, 4, 3), (32, 128, 8, 3), (64, 128, 8, 2),
                           (64, 128, 8, 3)]),
             128: _configs([(32, 64, 4, 3), (32, 64, 8, 3), (32, 128, 8, 3), (64, 64, 8, 2), (64, 64, 8, 3)])},
}
_KERNELS = {"fwd": _attn_fwd, "dq": _attn_bwd_dq, "dkdv": _attn_bwd_dkdv}
_TUNING_KEY = ["seq_len", "HEAD_DIM", "CAUSAL", "DROPOUT", "DOT_PRECISION"]
_DEFAULTS = {  # fp16/bf16 on a GPU with autotuning off: candidates that should do well on an H100
    ("fwd", 64): dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3),
    ("fwd", 128): dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3),
    ("dq", 64): dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3),
    ("dq", 128): dict(BLOCK_M=128, BLOCK_N=32, num_warps=8, num_stages=3),
    ("dkdv", 64): dict(BLOCK_M=32, BLOCK_N=128, num_warps=8, num_stages=3),
    ("dkdv", 128): dict(BLOCK_M=32, BLOCK_N=64, num_warps=8, num_stages=3),
}


def tuning_candidates(name: str, head_dim: int) -> list:
    """The autotuner's candidates for kernel `name` at head-dim class 64 or 128. MINIGPT_AUTOTUNE_CANDIDATES=k, read
    when this module is imported, keeps k of them, the fixed default first, then the others in the order listed above:
    fewer tiles to compile and time on a fresh machine (`python -m kernels.bench --gpu-check` uses 3)."""
    configs = _CANDIDATES[name][head_dim]
    limit = os.environ.get("MINIGPT_AUTOTUNE_CANDIDATES", "").strip()
    if not limit:
        return configs
    if not limit.isdigit() or int(limit) < 1:
        raise ValueError(f"MINIGPT_AUTOTUNE_CANDIDATES must be a whole number >= 1, got {limit!r}")

    def not_default(c):  # False sorts first, and the sort is stable: the default moves to the front
        return dict(c.kwargs, num_warps=c.num_warps, num_stages=c.num_stages) != _DEFAULTS[(name, head_dim)]
    return sorted(configs, key=not_default)[:int(limit)]


_TUNED = {(name, head_dim): triton.autotune(configs=tuning_candidates(name, head_dim), key=_TUNING_KEY)(kernel)
          for name, kernel in _KERNELS.items() for head_dim in _CANDIDATES[name]} if COMPILED else {}
_FIXED = {name: dict(BLOCK_M=32, BLOCK_N=32, num_warps=4, num_stages=2) for name in ("fwd", "dq", "dkdv")}  # fp32
_INTERPRETER = {"fwd": dict(BLOCK_M=32, BLOCK_N=16), "dq": dict(BLOCK_M=32, BLOCK_N=16),
                "dkdv": dict(BLOCK_M=16, BLOCK_N=32)}
_DELTA_BLOCK = 64 if COMPILED else 32


def _launcher(name: str, head_dim: int, dtype: torch.dtype):
    """(kernel to index with a grid, extra launch arguments): autotuned on a GPU for fp16/bf16, else fixed tiles."""
    if not COMPILED:
        return _KERNELS[name], _INTERPRETER[name]
    if dtype == torch.float32:
        return _KERNELS[name], _FIXED[name]
    dim_class = 128 if head_dim == 128 else 64  # head dims 16 and 32 use the 64 tiles
    if autotuning():
        return _TUNED[(name, dim_class)], {}
    return _KERNELS[name], _DEFAULTS[(name, dim_class)]


# ----------------------------------------------------------------------------------------------------------------------
# 5. The autograd wrapper.
#
#    The launches live in two registered operators, `minigpt::flash_attention_forward` and `..._backward`
#    (torch.library.custom_op), and the autograd.Function calls them. That costs a few microseconds of dispatch per call
#    and buys one thing: torch.compile (chapter 6 trains GPT-2 compiled) treats each as a single opaque operation whose
#    output shapes it learns from the `register_fake` functions. It never traces into Triton's launcher or autotuner, so
#    a compiled model runs exactly the kernels the tests check, without a graph break around them.
# ----------------------------------------------------------------------------------------------------------------------

def _check_inputs(queries, keys, values, dropout_p):
    for name, t in (("queries", queries), ("keys", keys), ("values", values)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ValueError(f"flash_attention: {name} must be a 4-D tensor (batch, heads, seq_len, head_dim), "
                             f"got {getattr(t, 'shape', type(t))}")
    if not (queries.shape == keys.shape == values.shape):
        raise ValueError(f"flash_attention: queries, keys and values must have the same shape (self-attention), "
                         f"got {tuple(queries.shape)}, {tuple(keys.shape)}, {tuple(values.shape)}")
    if not (queries.dtype == keys.dtype == values.dtype) or queries.dtype not in (torch.float16, torch.bfloat16,
                                                                                   torch.float32):
        raise ValueError(f"flash_attention: expected one dtype among float16, bfloat16, float32 for all three inputs, "
                         f"got {queries.dtype}, {keys.dtype}, {values.dtype}")
    if not (queries.device == keys.device == values.device):
        raise ValueError("flash_attention: queries, keys and values must be on the same device")
    if queries.device.type != "cuda" and not interpreting():
        raise RuntimeError("flash_attention: Triton kernels need CUDA tensors; to run them (slowly) on the CPU, set "
                           "TRITON_INTERPRET=1 in the environment before importing triton")
    head_dim = queries.shape[-1]
    if head_dim not in HEAD_DIMS:
        raise ValueError(f"flash_attention: head_dim must be one of {HEAD_DIMS}, got {head_dim}")
    if queries.shape[2] == 0:
        raise ValueError("flash_attention: seq_len must be at least 1")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"flash_attention: dropout_p must be in [0, 1), got {dropout_p}")


def _strides(t: torch.Tensor):
    return t.stride(0), t.stride(1), t.stride(2), t.stride(3)


def _dot_precision(dtype: torch.dtype) -> str:
    # fp16/bf16 products are exact on tensor cores with fp32 accumulation; "tf32x3" gives fp32 inputs ~fp32 accuracy.
    return "tf32x3" if dtype == torch.float32 else "tf32"


@torch.library.custom_op("minigpt::flash_attention_forward", mutates_args=())
def _forward_op(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, causal: bool, dropout_p: float,
                seed: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Launches `_attn_fwd`; returns (O, lse₂ of shape (batch·heads, seq_len) in fp32)."""
    batch, heads, seq_len, head_dim = queries.shape
    out = torch.empty(queries.shape, dtype=queries.dtype, device=queries.device)
    lse = torch.empty(batch * heads, seq_len, dtype=torch.float32, device=queries.device)
    kernel, meta = _launcher("fwd", head_dim, queries.dtype)
    grid = lambda meta: (batch * heads, triton.cdiv(seq_len, meta["BLOCK_M"]))  # noqa: E731
    kernel[grid](
        queries, keys, values, out, lse,
        *_strides(queries), *_strides(keys), *_strides(values), *_strides(out),
        heads, seq_len, scale * LOG2E, dropout_p, seed,
        HEAD_DIM=head_dim, CAUSAL=causal, DROPOUT=dropout_p > 0.0, DOT_PRECISION=_dot_precision(queries.dtype),
        **meta)
    return out, lse


@_forward_op.register_fake
def _(queries, keys, values, causal, dropout_p, seed, scale):
    # Same shapes *and strides* as the real outputs: contiguous, whatever the strides of the inputs.
    batch, heads, seq_len, _ = queries.shape
    return queries.new_empty(queries.shape), queries.new_empty(batch * heads, seq_len, dtype=torch.float32)


@torch.library.custom_op("minigpt::flash_attention_backward", mutates_args=())
def _backward_op(grad_out: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                 out: torch.Tensor, lse: torch.Tensor, causal: bool, dropout_p: float, seed: int,
                 scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launches Δ, then dK/dV, then dQ; returns (dQ, dK, dV)."""
    batch, heads, seq_len, head_dim = queries.shape
    delta = torch.empty_like(lse)
    _attn_bwd_delta[(batch * heads, triton.cdiv(seq_len, _DELTA_BLOCK))](
        out, grad_out, delta, *_strides(out), *_strides(grad_out), heads, seq_len,
        HEAD_DIM=head_dim, BLOCK_M=_DELTA_BLOCK)

    grad_q = torch.empty(queries.shape, dtype=queries.dtype, device=queries.device)
    grad_k = torch.empty_like(grad_q)
    grad_v = torch.empty_like(grad_q)
    common = (*_strides(queries), *_strides(keys), *_strides(values), *_strides(grad_out), *_strides(grad_q),
              heads, seq_len, scale, scale * LOG2E, dropout_p, seed)
    flags = dict(HEAD_DIM=head_dim, CAUSAL=causal, DROPOUT=dropout_p > 0.0,
                 DOT_PRECISION=_dot_precision(queries.dtype))
    kernel, meta = _launcher("dkdv", head_dim, queries.dtype)
    grid_keys = lambda meta: (batch * heads, triton.cdiv(seq_len, meta["BLOCK_N"]))  # noqa: E731
    kernel[grid_keys](queries, keys, values, grad_out, lse, delta, grad_k, grad_v, *common, **flags, **meta)
    kernel, meta = _launcher("dq", head_dim, queries.dtype)
    grid_queries = lambda meta: (batch * heads, triton.cdiv(seq_len, meta["BLOCK_M"]))  # noqa: E731
    kernel[grid_queries](queries, keys, values, grad_out, lse, delta, grad_q, *common, **flags, **meta)
    return grad_q, grad_k, grad_v


@_backward_op.register_fake
def _(grad_out, queries, keys, values, out, lse, causal, dropout_p, seed, scale):
    return queries.new_empty(queries.shape), queries.new_empty(queries.shape), queries.new_empty(queries.shape)


class FlashAttention(torch.autograd.Function):
    """Autograd glue: forward saves (Q, K, V, O, lse₂); backward launches the Δ, dK/dV and dQ kernels."""

    @staticmethod
    def forward(ctx, queries, keys, values, causal, dropout_p, seed, scale):
        out, lse = _forward_op(queries, keys, values, causal, dropout_p, seed, scale)
        ctx.save_for_backward(queries, keys, values, out, lse)
        ctx.causal, ctx.dropout_p, ctx.seed, ctx.scale = causal, dropout_p, seed, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        queries, keys, values, out, lse = ctx.saved_tensors
        grad_q, grad_k, grad_v = _backward_op(grad_out, queries, keys, values, out, lse,
                                              ctx.causal, ctx.dropout_p, ctx.seed, ctx.scale)
        return grad_q, grad_k, grad_v, None, None, None, None


def flash_attention(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, causal: bool = True,
                    dropout_p: float = 0.0, seed: int | None = None, scale: float | None = None) -> torch.Tensor:
    """Fused attention softmax(Q Kᵀ · scale [+ causal mask]) V on (batch, heads, seq_len, head_dim) tensors.

    fp16, bf16 or fp32; head_dim 16, 32, 64 or 128; any seq_len; any strides. `scale` defaults to 1/sqrt(head_dim).
    With dropout_p > 0 the keep-mask is drawn in-kernel from `seed` (drawn from torch's generator when None, so
    torch.manual_seed makes runs repeatable); `attention_dropout_mask` returns the same mask for checking.
    """
    _check_inputs(queries, keys, values, dropout_p)
    scale = queries.shape[-1] ** -0.5 if scale is None else float(scale)
    if dropout_p > 0.0 and seed is None:
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())  # CPU generator: no GPU synchronisation
    return FlashAttention.apply(queries, keys, values, bool(causal), float(dropout_p), int(seed or 0), scale)
