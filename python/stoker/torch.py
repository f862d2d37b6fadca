"""A PyTorch ``IterableDataset`` over a Stoker stream.

``StokerDataset`` reads this rank's share of each epoch from a ``stokerd``
and yields webdataset-style sample dicts (``__key__``, ``__url__`` and one
entry per field, raw bytes unless ``decode=`` says otherwise), or whole
batches with ``batched=True``.

Splitting: the rank and world size come from the arguments, else from
``torch.distributed`` when it is initialised, else 0 and 1. Inside a
DataLoader, worker w of W reads as the virtual rank ``rank·W + w`` of a
world of ``world_size·W`` (see :func:`stoker.split.worker_split`): every
sample of the epoch is read by exactly one worker of one rank, each worker
streams only its own samples, and with one rank the DataLoader (which
takes batches from its workers in turn) yields the epoch in plan order.
Give the DataLoader the same ``batch_size`` as the dataset so that each
DataLoader batch is one server batch.

Epochs: ``set_epoch(e)`` like ``DistributedSampler``; it reaches persistent
workers too (the epoch lives in shared memory).

Resume: ``state_dict()``/``load_state_dict()`` record, per worker, the
cursor of the step in progress and how many of its samples were yielded,
which is what ``torchdata.stateful_dataloader.StatefulDataLoader`` saves
and restores for each worker. A resumed run yields exactly the samples not
yet yielded, given the same url, seed, batch_size, world size and
num_workers.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

from . import errors
from .client import Client, Sample
from .decode import DecodeOption, decoder_for
from .split import worker_split

__all__ = ["StokerDataset", "distributed_rank"]

_STATE_VERSION = 1


def distributed_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """Rank and world size: the arguments when given, else torch.distributed
    when it is initialised, else (0, 1)."""
    if rank is not None and world_size is not None:
        return rank, world_size
    if dist.is_available() and dist.is_initialized():
        r, w = dist.get_rank(), dist.get_world_size()
    else:
        r, w = 0, 1
    return (r if rank is None else rank), (w if world_size is None else world_size)


@dataclass
class _Position:
    """Where one worker's stream is: the step in progress starts at
    ``position`` of ``epoch``, and ``skip`` of its samples were yielded."""

    epoch: int
    position: int
    skip: int


class _SharedEpoch:
    """An epoch number that DataLoader workers, persistent ones included,
    read from shared memory, so set_epoch in the main process reaches
    them. Pickled outside of process spawning (copy, save), it becomes a
    plain number."""

    def __init__(self, value: int) -> None:
        self._shared: Any = multiprocessing.Value("q", value, lock=False)

    @property
    def value(self) -> int:
        return int(self._shared.value)

    @value.setter
    def value(self, v: int) -> None:
        self._shared.value = v

    def __getstate__(self) -> dict[str, Any]:
        if multiprocessing.context.get_spawning_popen() is not None:
            return {"shared": self._shared}
        return {"plain": self.value}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "shared" in state:
            self._shared = state["shared"]
        else:
            self._shared = multiprocessing.Value("q", state["plain"], lock=False)


class StokerDataset(IterableDataset):  # type: ignore[type-arg]
    """This rank's share of a dataset's epochs, streamed from ``stokerd``.

    Args:
        url: the dataset (``s3://bucket/prefix/``, a brace list, ``file:///dir/``).
        server: the server's address (default ``$STOKER_SERVER`` or 127.0.0.1:7470).
        batch_size: samples per rank (per worker) per step on the server;
            use the same number as the DataLoader's batch_size.
        seed: the job's shuffle seed; the same seed gives the same order.
        epoch: the start epoch (see set_epoch).
        shuffle: False keeps file order.
        shuffle_window: shards whose samples are shuffled together (0: all).
        drop_last: stop every rank after the last full step, so all ranks
            (and workers) get the same number of full batches.
        rank, world_size: override torch.distributed.
        decode: None/False for raw bytes, True/"auto" for the common
            WebDataset fields (see stoker.decode), or a function of the
            sample dict.
        batched: yield each server batch as a list of samples (use with
            ``DataLoader(batch_size=None)``) instead of one sample at a time.
        collate: with batched, applied to each list of samples.
        token: bearer token for the server.
        format: shard format ("" or "webdataset").
    """

    def __init__(
        self,
        url: str,
        server: str | None = None,
        *,
        batch_size: int = 64,
        seed: int = 0,
        epoch: int = 0,
        shuffle: bool = True,
        shuffle_window: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        decode: DecodeOption = None,
        batched: bool = False,
        collate: Callable[[list[Any]], Any] | None = None,
        token: str | None = None,
        format: str = "",
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise errors.InvalidArgument(f"batch_size must be positive, got {batch_size}")
        if epoch < 0:
            raise errors.InvalidArgument(f"epoch must not be negative, got {epoch}")
        self.url = url
        self.server = server
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.shuffle_window = shuffle_window
        self.drop_last = drop_last
        self.rank, self.world_size = distributed_rank(rank, world_size)
        if not 0 <= self.rank < self.world_size:
            raise errors.InvalidArgument(f"rank {self.rank} is outside world_size {self.world_size}")
        self.decode = decoder_for(decode)
        self.batched = batched
        self.collate = collate
        self.token = token
        self.format = format
        self._epoch = _SharedEpoch(epoch)
        # Per process: the client.
        self._client: Client | None = None
        self._client_pid = -1
        # The iteration in progress in this process (one per worker), and
        # a state loaded but not yet used by an iteration.
        self._state: _Position | None = None
        self._resume: _Position | None = None

    # -- epochs ------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The epoch the next iteration reads (unless a loaded state says otherwise)."""
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        """Read epoch ``epoch`` on the next iteration, in every worker."""
        if epoch < 0:
            raise errors.InvalidArgument(f"epoch must not be negative, got {epoch}")
        self._epoch.value = epoch

    # -- state -------------------------------------------------------------

    def _worker(self) -> tuple[int, int]:
        info = get_worker_info()
        return (info.id, info.num_workers) if info is not None else (0, 1)

    def _identity(self, worker: int, num_workers: int) -> dict[str, Any]:
        vrank, vworld = worker_split(self.rank, self.world_size, worker, num_workers)
        return {
            "url": self.url,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "shuffle_window": self.shuffle_window,
            "drop_last": self.drop_last,
            "virtual_rank": vrank,
            "virtual_world_size": vworld,
        }

    def state_dict(self) -> dict[str, Any]:
        """Where this process's stream is, to resume exactly after what was
        yielded. In a DataLoader worker this is that worker's state."""
        pos = self._resume or self._state or _Position(self.epoch, 0, 0)
        worker, workers = self._worker()
        return {"version": _STATE_VERSION, **asdict(pos), **self._identity(worker, workers)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from a state_dict on the next iteration. The dataset's
        settings and the worker split must be the ones that saved it."""
        if state.get("version") != _STATE_VERSION:
            raise errors.InvalidArgument(f"stoker: unknown state version {state.get('version')!r}")
        worker, workers = self._worker()
        want = self._identity(worker, workers)
        diff = {k: (state.get(k), v) for k, v in want.items() if state.get(k) != v}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise errors.InvalidArgument(f"stoker: state_dict was saved by a different dataset or split ({detail})")
        self._resume = _Position(int(state["epoch"]), int(state["position"]), int(state["skip"]))
        self._state = None

    # -- iteration ---------------------------------------------------------

    def _get_client(self) -> Client:
        if self._client is None or self._client_pid != os.getpid():
            self._client = Client(self.server, token=self.token)
            self._client_pid = os.getpid()
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None
        state["_client_pid"] = -1
        return state

    def __iter__(self) -> Iterator[Any]:
        worker, workers = self._worker()
        vrank, vworld = worker_split(self.rank, self.world_size, worker, workers)
        pos = self._resume or _Position(self.epoch, 0, 0)
        self._resume = None
        self._state = pos
        return self._generate(pos, vrank, vworld)

    def _generate(self, pos: _Position, vrank: int, vworld: int) -> Iterator[Any]:
        client = self._get_client()
        # The manifest of this epoch, for each sample's __url__ (a shard
        # index refers to it).
        urls = tuple(s.object for s in client.open_dataset(self.url, self.format).shards)
        skip = pos.skip
        for batch in client.stream(
            self.url,
            batch_size=self.batch_size,
            seed=self.seed,
            epoch=pos.epoch,
            rank=vrank,
            world_size=vworld,
            shuffle=self.shuffle,
            shuffle_window=self.shuffle_window,
            drop_last=self.drop_last,
            start=pos.position,
            format=self.format,
        ):
            if batch.columnar:
                raise errors.InvalidArgument(
                    f"stoker.torch: {self.url} is a columnar dataset (its rows arrive as Arrow); StokerDataset "
                    "reads WebDataset samples: use stoker.Client.stream and Batch.to_arrow()"
                )
            samples = batch.samples[skip:] if skip else batch.samples
            step_start, n = pos.position, len(batch.samples)
            skip = 0
            if not samples:
                pos.position, pos.skip = batch.cursor.position, 0
                continue
            if self.batched:
                pos.position, pos.skip = batch.cursor.position, 0
                out = [self._sample(s, urls) for s in samples]
                yield self.collate(out) if self.collate is not None else out
                continue
            first = n - len(samples)
            for i, s in enumerate(samples, start=first + 1):
                # The state says what has been yielded once this sample is:
                # after the step's last sample, the next step.
                if i == n:
                    pos.position, pos.skip = batch.cursor.position, 0
                else:
                    pos.position, pos.skip = step_start, i
                yield self._sample(s, urls)

    def _sample(self, s: Sample, urls: tuple[str, ...]) -> Any:
        d = s.to_dict(urls[s.shard] if s.shard < len(urls) else None)
        return self.decode(d) if self.decode is not None else d

    def __repr__(self) -> str:
        return (
            f"StokerDataset({self.url!r}, server={self.server!r}, batch_size={self.batch_size}, "
            f"seed={self.seed}, epoch={self.epoch}, rank={self.rank}, world_size={self.world_size})"
        )
