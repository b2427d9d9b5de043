"""Where models run: one `device` name (cpu, cuda, cuda:N, auto) for the LM, the window
scorer, SPLADE, the dense encoder and the baselines, and the dtype that goes with it.

"auto" means the first CUDA device when torch sees one, else the CPU. A dtype of "auto"
means bfloat16 on CUDA (tensor cores; the paper's 7B backbones need it to fit) and float32
on a CPU, where bfloat16 is emulated on CPUs without AVX-512 BF16 and much slower.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # config modules import the pattern without loading torch
    import torch

DEVICE_PATTERN = r"^(cpu|auto|cuda(:\d+)?)$"


def resolve_device(name: str) -> torch.device:
    """The torch device a name stands for; a CUDA name on a machine without CUDA fails
    here, naming the knob, instead of deep inside a model load."""
    import torch

    if not re.match(DEVICE_PATTERN, name):
        raise ValueError(f"device must be cpu, cuda, cuda:N or auto, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: torch sees no CUDA device on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(f"device {name!r}: this machine has {count} CUDA device(s)")
    return device


def resolve_dtype(name: str, device: torch.device) -> str:
    """A dtype name for models.torch_dtype; "auto" by device (see the module doc)."""
    if name != "auto":
        return name
    return "bfloat16" if device.type == "cuda" else "float32"
