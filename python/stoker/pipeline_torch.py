"""Ready batches for PyTorch: ``StokerDataset(..., transform=...)``.

With a :class:`stoker.pipeline.Transform` the dataset yields one dict per
server batch (use ``DataLoader(ds, batch_size=None)``): a tensor per
output (a list of str for text), ``__key__`` and ``__url__`` (lists), and
with ``on_error="mask"`` ``__valid__`` and ``__errors__``. Over the
server's unix socket (``server="unix:/path"``) the tensors are views of the
shared region the server wrote them into, valid until the next batch is
asked for (``.clone()`` or ``.to(device)`` what must live longer); where
CUDA is available the region is registered with it (``shm="pinned"``), so
``.to("cuda", non_blocking=True)`` is a DMA. Over TCP they share memory
with the received message. Either way they are
read-only in spirit: don't write to them in place.

A sample's augmentation depends on (seed, epoch, its position in the
epoch) only, so the same sample gets the same crop with any world size,
any ``num_workers`` and after a resume. The server does the work:
``num_workers=0`` is usually fastest (each worker is another stream of
the same server, and its batches are copied through torch's shared
memory to the main process).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch

from .client import Client
from .pipeline import Transform
from .torch_state import Position
from .types import Batch, Cursor

__all__ = ["ready_batches", "to_torch"]


class Settings(Protocol):
    """What ready_batches reads of a StokerDataset (stoker.torch_dataset,
    which calls it)."""

    url: str
    format: str
    batch_size: int
    seed: int
    shuffle: bool
    shuffle_window: int | str
    drop_last: bool
    transform: Transform | None
    preprocess_on: str


def to_torch(batch: Batch, urls: tuple[str, ...], first: int = 0) -> dict[str, Any]:
    """A ready batch as ``{name: tensor}`` (rows from ``first`` on) with
    ``__key__`` and ``__url__``; zero-copy over the received buffers."""
    ready = batch.ready
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        # Arrays over a message's bytes are read-only: torch warns that it
        # does not enforce that.
        warnings.simplefilter("ignore", UserWarning)
        for name, v in ready.tensors.items():
            if isinstance(v, np.ndarray):
                out[name] = torch.from_numpy(v[first:] if first else v)
            else:
                out[name] = v[first:]
    out["__key__"] = ready.keys[first:]
    out["__url__"] = [urls[s] if s < len(urls) else "" for s in ready.shards[first:]]
    if any(ready.errors):
        out["__errors__"] = ready.errors[first:]
    return out


def _shm_mode(client: Client) -> bool | str:
    """Shared memory over a unix socket, registered with CUDA (copies to
    the GPU by DMA) where CUDA is available."""
    if not client.address.startswith("unix:"):
        return False
    return "pinned" if torch.cuda.is_available() else True


def ready_batches(ds: Settings, client: Client, pos: Position, vrank: int, vworld: int) -> Iterator[dict[str, Any]]:
    """The dataset's ready batches from ``pos`` on, keeping ``pos`` at what
    has been yielded (a resume yields exactly the rest). Over a unix
    socket the tensors come through shared memory."""
    urls = tuple(s.object for s in client.open_dataset(ds.url, ds.format).shards)
    skip = pos.skip
    for batch in client.stream(
        ds.url,
        batch_size=ds.batch_size,
        seed=ds.seed,
        epoch=pos.epoch,
        rank=vrank,
        world_size=vworld,
        shuffle=ds.shuffle,
        shuffle_window=ds.shuffle_window,
        drop_last=ds.drop_last,
        start=Cursor(pos.epoch, pos.position, pos.plan_version),
        format=ds.format,
        transform=ds.transform,
        preprocess_on=ds.preprocess_on,
        shm=_shm_mode(client),
    ):
        first, skip = min(skip, batch.num_rows), 0
        pos.plan_version = batch.cursor.plan_version
        pos.position, pos.skip = batch.cursor.position, 0
        if first == batch.num_rows:  # nothing left of it (or an empty last step)
            continue
        yield to_torch(batch, urls, first)
