"""Tensors over bytes that are already in memory (a message, the shm
region, the shared memory tier), shared by stoker.gds and stoker.shm.
torch is imported when a tensor is made, not before."""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["frombuffer"]


def frombuffer(buf: Any, dtype: Any = None) -> Any:
    """A torch tensor over a buffer's bytes (no copy; uint8 by default).
    Over a read-only buffer (bytes, the shared memory tier) torch warns
    that it cannot mark the tensor read-only; that is silenced here, and
    the callers' docs say not to write to it."""
    import torch

    dtype = dtype if dtype is not None else torch.uint8
    if not getattr(buf, "readonly", True):
        return torch.frombuffer(buf, dtype=dtype)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given buffer is not writable")
        return torch.frombuffer(buf, dtype=dtype)
