"""Where a model trains: ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu`` or ``cuda``."""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda")


def check_device(name: str, what: str) -> None:
    """Raise a ValueError naming the setting ``what`` when ``name`` is not one of :data:`DEVICES`."""
    if name not in DEVICES:
        raise ValueError(f"{what} must be 'auto', 'cpu' or 'cuda', got {name!r}")


def resolve_device(name: str, what: str = "device") -> torch.device:
    """The torch device for the setting ``name``; 'cuda' without a GPU is an error naming ``what``."""
    check_device(name, what)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what} = 'cuda' but torch sees no CUDA device")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """'cpu' or 'cuda: <the GPU's name>', for a stage's metrics."""
    return f"cuda: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type
