"""Checks of a StokerDataset's arguments, and of the DataLoader that
reads it (its batch size), made where the user can see them."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from typing import Any, Protocol

from . import errors
from .types import window_value

__all__ = ["check_arguments", "checked_batches"]

_FORMATS = ("", "webdataset", "parquet", "arrow", "arrows")


class StokerDataset(Protocol):
    """What the checks read of a stoker.torch.StokerDataset (whose module
    calls them)."""

    batch_size: int
    batched: bool
    _warned_batch: bool


def check_arguments(
    url: Any, batch_size: Any, seed: Any, epoch: Any, shuffle_window: Any, format: Any, collate: Any
) -> None:
    """Refuse, in the process that makes the dataset, what every worker's
    stream would refuse later."""

    def integer(name: str, v: Any, least: int) -> None:
        if isinstance(v, bool) or not isinstance(v, int):
            raise errors.InvalidArgument(f"stoker.torch: {name} must be an int, got {v!r}")
        if v < least:
            raise errors.InvalidArgument(f"stoker.torch: {name} must be at least {least}, got {v}")

    if not isinstance(url, str) or not url:
        raise errors.InvalidArgument(f"stoker.torch: url must be a dataset URL, got {url!r}")
    integer("batch_size", batch_size, 1)
    if batch_size > 0xFFFFFFFF:
        raise errors.InvalidArgument(f"stoker.torch: batch_size {batch_size} is over the server's 2^32-1")
    integer("seed", seed, 0)
    integer("epoch", epoch, 0)
    window_value(shuffle_window)
    if format not in _FORMATS:
        raise errors.InvalidArgument(f"stoker.torch: format {format!r}: want one of {_FORMATS}")
    if collate is not None and not callable(collate):
        raise errors.InvalidArgument(f"stoker.torch: collate must be a function, got {collate!r}")


def checked_batches(ds: StokerDataset, it: Iterator[Any]) -> Iterator[Any]:
    """it, after a look at the DataLoader that asks for its first item: a
    batch size other than the dataset's is warned of, once per dataset in
    each process."""
    try:
        first = next(it)
    except StopIteration:
        return
    if not ds._warned_batch:
        problem = loader_batch_problem(ds, sys._getframe(1))
        if problem:
            ds._warned_batch = True
            warnings.warn(problem, UserWarning, stacklevel=2)
    yield first
    yield from it


def loader_batch_problem(ds: StokerDataset, caller: Any) -> str:
    """What is wrong with the DataLoader batches a fetcher (torch's
    _IterableDatasetFetcher.fetch, the caller of the first next()) takes
    from ds, or "" (also when the caller is no such fetcher)."""
    if caller is None or caller.f_code.co_name != "fetch" or "possibly_batched_index" not in caller.f_locals:
        return ""
    index = caller.f_locals["possibly_batched_index"]
    auto = bool(caller.f_locals.get("self") is not None and getattr(caller.f_locals["self"], "auto_collation", False))
    if ds.batched:
        if auto:
            return (
                "stoker.torch: StokerDataset(batched=True) yields whole server batches; the DataLoader batches "
                f"{len(index)} of them again: use DataLoader(batch_size=None)"
            )
        return ""
    if auto and isinstance(index, list) and len(index) != ds.batch_size:
        return (
            f"stoker.torch: the DataLoader's batch_size {len(index)} is not the StokerDataset's batch_size "
            f"{ds.batch_size}: every sample is still read once, but DataLoader batches mix server batches, "
            "come out of plan order, and states saved mid-epoch cannot resume with another num_workers. "
            "Give both the same batch_size, or use stoker.torch.StokerDataLoader(dataset), which does"
        )
    return ""
