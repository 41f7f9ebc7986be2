"""Chapter 5, without a GPU: compile the kernels for an H100 (sm_90) and report what the chip would run.

Triton can compile ahead of time for a named target with the ptxas it ships, no GPU needed. For every autotune
candidate of the attention kernels (bf16, causal, head dims 64 and 128) and for the LayerNorm launch settings at
GPT-2's widths, this prints what decides speed before anything is timed:
  - registers per thread, and spilling: a stack frame or local memory (LDL/STL instructions in the machine code) means
    values that did not fit in registers go to slow memory on every loop iteration;
  - shared memory: each stage of the software pipeline holds one more copy of the K and V tiles;
  - whether the key/value loop is software-pipelined (asynchronous copies into shared memory while the tensor cores
    work), and how many Hopper warp-group MMA instructions (HGMMA) the machine code holds (0 means the older, slower
    tensor-core path).
It checks the candidate lists before a GPU session spends time autotuning them; the timings themselves come from
`python -m kernels.bench` on the GPU.

    python -m kernels.sm90_report            # every candidate (a minute or two)
    python -m kernels.sm90_report --quick    # the fixed default tiles only (MINIGPT_AUTOTUNE=0)

Run it without TRITON_INTERPRET set: the kernels must be compiled, not interpreted.
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SM90_REGISTER_FILE = 65536  # 32-bit registers per streaming multiprocessor on an H100
SM90_SHARED_MEMORY = 227 * 1024  # the most shared memory one program (thread block) may use on an H100

# The kernels' stride arguments along head_dim / features are 1 in every launch (contiguous last dimension), and
# Triton specialises integer arguments equal to 1 into constants, so they are constants here too.
_UNIT_STRIDES = {"stride_qd", "stride_kd", "stride_vd", "stride_od", "stride_dod", "stride_gd"}
_FLOAT_ARGS = {"qk_scale", "sm_scale", "dropout_p", "eps"}


def compile_for_sm90(fn, constexprs: dict, pointer_types: dict, num_warps: int, num_stages: int = 3):
    """Compile the @triton.jit function `fn` for an H100 without a GPU; returns Triton's compiled kernel.

    pointer_types maps pointer arguments to Triton types ("*bf16", "*fp32"); other arguments are i32, or fp32 when
    named in _FLOAT_ARGS. Pointers and non-unit strides are declared 16-byte aligned, as Triton assumes on a real
    launch with tensors from torch's allocator and shapes that are multiples of 8.
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile

    constexprs = dict(constexprs, **{name: 1 for name in fn.arg_names if name in _UNIT_STRIDES})
    signature = {name: "constexpr" if name in constexprs else
                 pointer_types.get(name) or ("fp32" if name in _FLOAT_ARGS else "i32") for name in fn.arg_names}
    aligned = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(fn.arg_names)
               if signature[name].startswith("*") or (name.startswith("stride") and name not in _UNIT_STRIDES)}
    source = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=aligned)
    return compile(source, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=num_warps, num_stages=num_stages))


def _tool(name: str) -> str:
    import triton
    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name)


def resource_usage(kernel) -> dict:
    """Registers, spills, shared memory, pipelining and HGMMA count of a kernel from compile_for_sm90."""
    ttgir = kernel.asm["ttgir"]
    with tempfile.TemporaryDirectory() as folder:
        cubin = Path(folder) / "kernel.cubin"
        cubin.write_bytes(kernel.asm["cubin"])
        usage = subprocess.run([_tool("cuobjdump"), "-res-usage", str(cubin)], capture_output=True, text=True,
                               check=True).stdout
        sass = subprocess.run([_tool("nvdisasm"), str(cubin)], capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", usage))
    return dict(registers=int(fields["REG"]), stack_bytes=int(fields["STACK"]), local_bytes=int(fields["LOCAL"]),
                spill_instructions=len(re.findall(r"\b(?:LDL|STL)(?:\.\w+)*\s", sass)),
                shared_bytes=int(fields["SHARED"]) + int(getattr(kernel.metadata, "shared", 0)),
                pipelined="async_copy_global_to_local" in ttgir, wgmma="warp_group_dot" in ttgir,
                hgmma=len(re.findall(r"\bHGMMA\b", sass)))


_ATTENTION_POINTERS = {**{name: "*bf16" for name in ("Q", "K", "V", "O", "dO", "dQ", "dK", "dV")},
                       "LSE": "*fp32", "Delta": "*fp32"}
_LAYERNORM_POINTERS = {"X": "*bf16", "Y": "*bf16", "dY": "*bf16", "dX": "*bf16", "W": "*fp32", "B": "*fp32",
                       "Mean": "*fp32", "Rstd": "*fp32", "dW_partial": "*fp32", "dB_partial": "*fp32"}


def attention_cases(quick: bool = False) -> list[dict]:
    """(kernel, head dim, tiles) of every autotune candidate, or of the fixed defaults only when quick."""
    import kernels.attention as A
    cases = []
    for name in ("fwd", "dq", "dkdv"):
        for head_dim in (64, 128):
            if quick:
                tiles = [A._DEFAULTS[(name, head_dim)]]
            else:
                tiles = [dict(c.kwargs, num_warps=c.num_warps, num_stages=c.num_stages)
                         for c in A._CANDIDATES[name][head_dim]]
            for tile in tiles:
                cases.append(dict(kernel=A._KERNELS[name], name=name, head_dim=head_dim, **tile))
    return cases


def report(quick: bool = False, dropout: bool = False, widths=(768, 1024, 1280, 1600, 4096, 8192)) -> list[dict]:
    """Compile each case and return one row per kernel configuration (also printed as it goes)."""
    import kernels.attention as A
    import kernels.layernorm as L
    rows = []
    for case in attention_cases(quick):
        constexprs = dict(HEAD_DIM=case["head_dim"], CAUSAL=True, DROPOUT=dropout, DOT_PRECISION="tf32",
                          BLOCK_M=case["BLOCK_M"], BLOCK_N=case["BLOCK_N"])
        kernel = compile_for_sm90(case["kernel"], constexprs, _ATTENTION_POINTERS, case["num_warps"],
                                  case["num_stages"])
        rows.append(dict(kernel=f"attention {case['name']}", shape=f"head_dim {case['head_dim']}",
                         tiles=f"{case['BLOCK_M']}x{case['BLOCK_N']}", num_warps=case["num_warps"],
                         num_stages=case["num_stages"], **resource_usage(kernel)))
        _print_row(rows[-1])
    small = ((A._attn_bwd_delta, "attention delta", dict(HEAD_DIM=128, BLOCK_M=64), "64", {}),
             (A._dropout_mask_kernel, "dropout mask", dict(BLOCK=32), "32", {"Mask": "*i8"}))
    for fn, name, constexprs, tiles, pointers in small:   # the two small helper kernels: they only have to build
        kernel = compile_for_sm90(fn, constexprs, {**_ATTENTION_POINTERS, **pointers}, 4)
        rows.append(dict(kernel=name, shape="", tiles=tiles, num_warps=4, num_stages=3, **resource_usage(kernel)))
        _print_row(rows[-1])
    for width in widths:
        block, num_warps = L._launch_settings(width, 2)
        for fn, name in ((L._layer_norm_fwd, "layernorm fwd"), (L._layer_norm_bwd, "layernorm bwd")):
            kernel = compile_for_sm90(fn, dict(BLOCK_N=block), _LAYERNORM_POINTERS, num_warps)
            rows.append(dict(kernel=name, shape=f"width {width}", tiles=f"{block}", num_warps=num_warps,
                             num_stages=3, **resource_usage(kernel)))
            _print_row(rows[-1])
    return rows


_HEADER = ("| kernel | shape | tiles | warps | stages | registers | spills (stack B / LDL+STL) | shared KiB | pipelined "
           "| HGMMA |\n|---|---|---|---|---|---|---|---|---|---|")


def _print_row(row: dict) -> None:
    spills = "none" if row["stack_bytes"] == 0 and row["spill_instructions"] == 0 else \
        f"{row['stack_bytes']} / {row['spill_instructions']}"
    print(f"| {row['kernel']} | {row['shape']} | {row['tiles']} | {row['num_warps']} | {row['num_stages']} "
          f"| {row['registers']} | {spills} | {row['shared_bytes'] / 1024:.0f} | {'yes' if row['pipelined'] else 'no'} "
          f"| {row['hgmma']} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Compile chapter 5's kernels for an H100 (sm_90) without a GPU and "
                                                 "report registers, spills, shared memory, pipelining and HGMMA use.")
    parser.add_argument("--quick", action="store_true", help="the fixed default attention tiles only")
    parser.add_argument("--dropout", action="store_true", help="compile the attention kernels with dropout on")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    from kernels import interpreting
    if interpreting():
        raise SystemExit("kernels.sm90_report compiles the kernels for a GPU; unset TRITON_INTERPRET and run again")
    import torch
    import triton
    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
        from triton.compiler import ASTSource  # noqa: F401
    except ImportError as error:
        raise SystemExit(f"Triton {triton.__version__} has no ahead-of-time compile API this script knows ({error}); "
                         f"it was written against Triton 3.6 to 3.9")
    print(f"Compiling for sm_90 (H100) with Triton {triton.__version__}, torch {torch.__version__}, bf16, causal; "
          f"an H100 has {SM90_REGISTER_FILE:,} registers and up to {SM90_SHARED_MEMORY // 1024} KiB of shared memory "
          f"per block.\n")
    print(_HEADER)
    rows = report(quick=args.quick, dropout=args.dropout)
    if args.json:
        from minigpt.files import write_text_atomic
        write_text_atomic(args.json, json.dumps(dict(triton=triton.__version__, torch=torch.__version__, rows=rows),
                                                indent=2))
        print(f"\nSaved {args.json}")
    too_big = [r for r in rows if r["shared_bytes"] > SM90_SHARED_MEMORY]
    if too_big:
        print(f"\n{len(too_big)} configuration(s) need more shared memory than an H100 block may have; the autotuner "
              f"would skip them.", file=sys.stderr)


if __name__ == "__main__":
    main()
