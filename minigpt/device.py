"""Which device to run on: the `--device` option every chapter script has.

"auto" takes a CUDA GPU when torch can see one and the CPU otherwise; a device named outright is checked, so
asking for a GPU that is not there fails at once with a clear message rather than deep inside a kernel.
"""
from __future__ import annotations

import torch


def pick_device(name: str = "auto") -> torch.device:
    """torch.device for "auto" (cuda if available, else cpu), "cpu", "cuda" or "cuda:N"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA GPU is visible here; use --device cpu (or auto)")
    return device
