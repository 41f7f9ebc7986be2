"""Chapter 5: Triton kernels (fused attention, LayerNorm) with their autograd wrappers and benchmark.

Without a GPU the kernels run in Triton's interpreter (TRITON_INTERPRET=1): numpy on the CPU, one program at a time.
"""
import os


def interpreting() -> bool:
    """True when TRITON_INTERPRET is on: kernels then run in numpy on the CPU, one program at a time."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on", "y")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("+")[0].split(".")[:2] if part.isdigit())


def check_interpreter() -> None:
    """Fail early, with the fix, where Triton's interpreter is known not to run.

    Triton 3.6 and older hand a kernel its program id as a one-element array and turn it into a Python int for loop
    bounds; numpy 2.4 refuses that conversion, so every kernel with a loop would stop with "only 0-dimensional arrays
    can be converted to Python scalars". Triton 3.7 and newer are fine (checked with 3.6.0, 3.7.1, 3.8.0, 3.9.0).
    """
    if not interpreting():
        return
    import numpy
    import triton
    if _version(triton.__version__) < (3, 7) and _version(numpy.__version__) >= (2, 4):
        raise RuntimeError(f"Triton {triton.__version__}'s interpreter (TRITON_INTERPRET=1) does not run with numpy "
                           f"{numpy.__version__}: install numpy<2.4 (pip install 'numpy<2.4') or triton>=3.7")


check_interpreter()
