"""``StokerDataset``, the PyTorch ``IterableDataset`` over a Stoker
stream: import it from :mod:`stoker.torch`, whose doc says how it splits,
resumes, decodes and reads columnar datasets."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

from . import errors
from ._request import preprocess_on_value
from ._stream import SampleBatch, dicts_of
from .client import Client
from .decode import DecodeOption, decoder_for
from .pipeline_torch import ready_batches
from .split import worker_split
from .tls import PathLike, TLSFiles
from .torch_checks import check_arguments as _check_arguments
from .torch_checks import checked_batches as _checked_batches
from .torch_columns import columnar_rows, columns_to_tensors
from .torch_state import STATE_VERSION as _STATE_VERSION
from .torch_state import Position as _Position
from .torch_state import SharedProgress as _SharedProgress
from .torch_state import global_position as _global_position
from .torch_state import split_changed as _split_changed
from .torch_state import upgrade as _upgrade
from .types import Batch, Cursor, DatasetInfo, Sample

__all__ = ["StokerDataset", "distributed_rank"]


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


def _user_function(decode: DecodeOption) -> bool:
    """Whether decode is a function of the user's (not one of ours)."""
    return callable(decode) and getattr(decode, "__module__", "") != "stoker.decode"


def _collate_views_as_bytes() -> None:
    """Make a DataLoader that batches per-sample items collate memoryview
    fields (the local path's views) as it does bytes: into a list. The
    table is torch's own (torch.utils.data._utils.collate, 2.x); where a
    torch lacks it, its default collate raises on a view, and
    ``StokerDataset(copy=True)`` gives bytes instead."""
    try:
        from torch.utils.data._utils.collate import collate_str_fn, default_collate_fn_map
    except ImportError:  # pragma: no cover - a torch without the table
        return
    default_collate_fn_map.setdefault(memoryview, collate_str_fn)


_collate_views_as_bytes()


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
            use the same number as the DataLoader's batch_size
            (StokerDataLoader does).
        seed: the job's shuffle seed; the same seed gives the same order.
        epoch: the start epoch (see set_epoch).
        shuffle: False keeps file order.
        shuffle_window: shards whose samples are shuffled together (0: the
            server's default, 32; ``"all"``: the whole epoch).
        drop_last: stop every rank after the last full step, so all ranks
            (and workers) get the same number of full batches.
        rank, world_size: override torch.distributed.
        decode: None/False for raw bytes, True/"auto" for the common
            WebDataset fields (see stoker.decode), one of webdataset's
            image modes ("rgb8", "l8", "rgb", "torchrgb", "torchrgb8",
            "pil", … stoker.decode.IMAGE_MODES) for those fields with
            images in that mode, or a function of the sample dict.
        batched: yield each server batch (use with
            ``DataLoader(batch_size=None)``, which passes it through as it
            is) instead of one sample at a time: a stoker._stream.SampleBatch,
            a sequence of sample dicts made on first use (``list(b)``
            makes a list), or with ``collate`` a list.
        collate: with batched, applied to each list of samples.
        token: bearer token for the server.
        tls_ca, tls_cert, tls_key: PEM files of a TLS server (see
            stoker.Client): its CA bundle, and the client certificate and
            key a server with mutual TLS requires. Each process (each
            DataLoader worker) reads them when it connects. Ignored for a
            ``unix:`` address.
        format: dataset format ("" goes by the objects' extensions,
            "webdataset", "parquet", "arrow", "arrows").
        columns: a columnar dataset's columns to read, in this order
            (default: all).
        transform: a :class:`stoker.pipeline.Transform`: the server decodes
            and augments, and each item is a ready batch of tensors (see
            stoker.pipeline_torch; use ``DataLoader(batch_size=None)``).
        preprocess_on: with transform, "local" (the default: the server
            streamed from preprocesses) or "any" (in a cluster, the node
            holding each sample's shard does; same tensors, same order).
        local: take the local fast path (the server's unix socket and
            shared memory, see stoker.Client) when the server is on this
            host (None, the default), never (False) or always (True: an
            error without one).
        copy: on the local fast path, fields are memoryviews into the
            shared memory that hold their lease (stoker.shm.LeaseHold):
            valid for as long as they are referenced, the space reused
            once the last one goes, no copy made (None, the default,
            unless ``decode`` or ``collate`` is a function of yours:
            those get bytes); True gives ``bytes`` of their own, as TCP
            does. Kept views take region space: the server sends a
            batch's bytes in its message instead once they hold half of
            it. Fields of shards in the server's disk tier are views of
            a read-only mapping of its cache file (stoker._filemaps),
            which hold no lease and stay right after the server evicts
            the file. A DataLoader worker's samples are pickled to the main
            process, so there they are bytes, but for ``batched``
            batches handed off (below), which the main process reads as
            views. ``torch.frombuffer(view, dtype=torch.uint8)`` makes a
            tensor over one (it holds the lease too).
        handoff: with ``batched=True``, no ``decode`` and no ``collate``,
            a batch made in a DataLoader worker from shared memory crosses
            to the main process as a handle, and the main process copies
            its bytes from the same shared memory (stoker._stream), so
            the bytes go through no pipe; False pickles them as usual.
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
        shuffle_window: int | str = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        decode: DecodeOption = None,
        batched: bool = False,
        collate: Callable[[list[Any]], Any] | None = None,
        token: str | None = None,
        format: str = "",
        columns: Sequence[str] | None = None,
        tls_ca: PathLike | None = None,
        tls_cert: PathLike | None = None,
        tls_key: PathLike | None = None,
        transform: Any = None,
        local: bool | None = None,
        handoff: bool = True,
        preprocess_on: str = "local",
        copy: bool | None = None,
    ) -> None:
        super().__init__()
        _check_arguments(url, batch_size, seed, epoch, shuffle_window, format, collate)
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
        self.tls = TLSFiles.of(tls_ca, tls_cert, tls_key)  # checked here, read by each process's Client
        self.format = format
        self.columns = list(columns or ())
        self.transform = transform  # stoker.pipeline.Transform: ready batches
        preprocess_on_value(preprocess_on)  # checked here: raises InvalidArgument
        if transform is None and preprocess_on != "local":
            raise errors.InvalidArgument(f"preprocess_on={preprocess_on!r} is for ready batches: pass transform too")
        self.preprocess_on = preprocess_on
        self.local = local
        self.handoff = handoff
        # Views unless asked for copies, or a function of the user's
        # (which may want bytes) gets the fields.
        self.views = copy is False or (copy is None and collate is None and not _user_function(decode))
        self._epoch = _SharedEpoch(epoch)
        self._progress = _SharedProgress()
        # In the main process: the StokerDataLoader reading this dataset,
        # whose state is the dataset's while its workers read.
        self._loader: weakref.ref[Any] | None = None
        # Per process: the client.
        self._client: Client | None = None
        self._client_pid = -1
        # The iteration in progress in this process (one per worker), and
        # a state loaded but not yet used by an iteration.
        self._state: _Position | None = None
        self._loaded: dict[str, Any] | None = None
        self._loaded_in_main = False  # loaded in the main process (set_epoch to another epoch drops it)
        self._warned_batch = False  # of a DataLoader batch size other than ours

    # -- epochs ------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The epoch the next iteration reads (unless a loaded state says otherwise)."""
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        """Read epoch ``epoch`` on the next iteration, in every worker. After
        load_state_dict, the state's epoch resumes where it was and another
        epoch starts from its beginning."""
        if epoch < 0:
            raise errors.InvalidArgument(f"epoch must not be negative, got {epoch}")
        self._epoch.value = epoch

    # -- state -------------------------------------------------------------

    def _worker(self) -> tuple[int, int]:
        info = get_worker_info()
        return (info.id, info.num_workers) if info is not None else (0, 1)

    def _settings(self) -> dict[str, Any]:
        """What a state must have been saved with to resume here."""
        return {
            "url": self.url,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "shuffle_window": self.shuffle_window,
            "drop_last": self.drop_last,
            # Only when projected, so states saved before columns existed load.
            **({"columns": self.columns} if self.columns else {}),
        }

    def state_dict(self) -> dict[str, Any]:
        """Where this process's stream is, to resume exactly after what was
        yielded (see the module's note on resume). In a DataLoader worker
        this is that worker's state; in the main process, while a
        StokerDataLoader's workers read this dataset, the loader's. A
        loaded state not yet resumed is returned as it is."""
        loader = self._loader() if self._loader is not None else None
        if loader is not None and get_worker_info() is None and loader._owns_state():
            return dict(loader.state_dict())
        if self._loaded is not None:
            return dict(self._loaded)
        pos = self._state or _Position(self.epoch, 0, 0)
        worker, workers = self._worker()
        vrank, vworld = worker_split(self.rank, self.world_size, worker, workers)
        vrank = vrank if pos.vrank is None else pos.vrank
        in_worker = get_worker_info() is not None
        return {
            "version": _STATE_VERSION,
            "epoch": pos.epoch,
            "plan_version": pos.plan_version,
            "position": None if in_worker else _global_position(pos, vworld),
            "stream": {"position": pos.position, "skip": pos.skip, "rank": vrank, "world_size": vworld},
            "world_size": self.world_size,
            "num_workers": workers if in_worker else 0,
            **self._settings(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from a state_dict on the next iteration (of the state's
        epoch: ``set_epoch`` to another one afterwards starts that one
        from its beginning). The url, seed, batch size, shuffle settings,
        drop_last and columns must be the ones that saved it. A state with
        a global ``position`` (StokerDataLoader's, or one saved at a batch
        boundary without workers) resumes with any num_workers and world
        size; a DataLoader worker's state resumes that same worker's
        stream, so only with the same num_workers and world size. What
        cannot resume here is refused here."""
        state = _upgrade(state)
        diff = {k: (state.get(k), v) for k, v in self._settings().items() if state.get(k) != v}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise errors.InvalidArgument(f"stoker: state_dict was saved by a different dataset ({detail})")
        worker, workers = self._worker()
        self._resolve(state, worker, workers)  # raises what this process cannot resume
        self._loaded = state
        self._state = None
        self._loaded_in_main = get_worker_info() is None
        if self._loaded_in_main:
            self._epoch.value = int(state["epoch"])

    def _resolve(self, state: dict[str, Any], worker: int, workers: int) -> _Position:
        """Where a loaded state resumes worker's stream: exactly where it
        was when the state holds this stream, else at its global cursor."""
        vrank, vworld = worker_split(self.rank, self.world_size, worker, workers)
        epoch, plan = int(state["epoch"]), int(state.get("plan_version", 0))
        grid = state.get("grid")
        in_worker = get_worker_info() is not None
        if (
            grid is not None
            and in_worker
            and (state.get("world_size"), state.get("num_workers")) == (self.world_size, workers)
        ):
            # A StokerDataLoader's state, same split: after i batches of
            # every rank, worker w of the run that saved it had yielded
            # ceil((i - w) / W) batches, a whole step of the grid each, and
            # worker i mod W was next. The DataLoader asks worker 0 first,
            # so worker k takes the stream of worker (k + i) mod W.
            i, origin = int(grid["batches"]), int(grid["origin"])
            role = (worker + i) % workers
            done = max(0, -(-(i - role) // workers))
            position = origin + done * vworld * self.batch_size
            if grid.get("end") is not None:
                position = min(position, int(grid["end"]))
            return _Position(epoch, position, 0, plan, worker_split(self.rank, self.world_size, role, workers)[0])
        stream = state.get("stream")
        if stream is not None and (stream["rank"], stream["world_size"]) == (vrank, vworld):
            return _Position(epoch, int(stream["position"]), int(stream["skip"]), plan)
        if state.get("position") is not None:
            return _Position(epoch, int(state["position"]), 0, plan)
        raise errors.InvalidArgument(_split_changed(state, self.world_size, workers if in_worker else 0))

    def _loaded_for_epoch(self) -> dict[str, Any] | None:
        """The loaded state, when the next iteration resumes it: set_epoch
        to another epoch in the main process after the load drops it."""
        st = self._loaded
        if st is not None and self._loaded_in_main and int(st["epoch"]) != self.epoch:
            return None
        return st

    def _global_start(self) -> _Position:
        """Where the next iteration starts, as a global cursor (for
        StokerDataLoader, which loads only global states when it has
        workers)."""
        st = self._loaded_for_epoch()
        if st is None or st.get("position") is None:
            return _Position(self.epoch, 0, 0)
        return _Position(int(st["epoch"]), int(st["position"]), 0, int(st.get("plan_version", 0)))

    def _drop_loaded(self) -> None:
        """The main process handed its loaded state to the workers."""
        self._loaded = None

    # -- iteration ---------------------------------------------------------

    def _get_client(self) -> Client:
        if self._client is None or self._client_pid != os.getpid():
            tls = self.tls or TLSFiles()
            self._client = Client(
                self.server, token=self.token, tls_ca=tls.ca, tls_cert=tls.cert, tls_key=tls.key, local=self.local
            )
            self._client_pid = os.getpid()
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None
        state["_client_pid"] = -1
        state["_loader"] = None
        return state

    def __iter__(self) -> Iterator[Any]:
        worker, workers = self._worker()
        vrank, vworld = worker_split(self.rank, self.world_size, worker, workers)
        st = self._loaded_for_epoch()
        pos = self._resolve(st, worker, workers) if st is not None else _Position(self.epoch, 0, 0)
        self._loaded = None
        self._state = pos
        return _checked_batches(self, self._generate(pos, vrank if pos.vrank is None else pos.vrank, vworld))

    def _generate(self, pos: _Position, vrank: int, vworld: int) -> Iterator[Any]:
        client = self._get_client()
        if self.transform is not None:
            yield from ready_batches(self, client, pos, vrank, vworld)
            return
        # A batch of raw bytes made in a DataLoader worker is handed over
        # to the main process as a handle when it lies in shared memory.
        in_worker = get_worker_info() is not None
        handoff = in_worker and self.decode is None and self.handoff
        local = client.local_path().socket if self.local is not False else ""  # first: the manifest then goes over it
        # Views (stoker.shm.LeaseHold) over the local path, but in a worker
        # whose samples are pickled to the main process.
        views = self.views and bool(local) and (not in_worker or (handoff and self.batched and self.collate is None))
        # The manifest of this epoch, for each sample's __url__ (a shard
        # index refers to it).
        info = client.open_dataset(self.url, self.format)
        urls = tuple(s.object for s in info.shards)
        merge = self._merge(vworld, info) if not in_worker else 1  # a worker's batches go as handles, whole
        step_size = vworld * self.batch_size * merge  # samples per step on the server
        skip = pos.skip
        for batch in client.stream(
            self.url,
            batch_size=self.batch_size * merge,
            seed=self.seed,
            epoch=pos.epoch,
            rank=vrank,
            world_size=vworld,
            shuffle=self.shuffle,
            shuffle_window=self.shuffle_window,
            drop_last=self.drop_last and merge == 1,  # merged: _cut drops the short last batch
            start=Cursor(pos.epoch, pos.position, pos.plan_version),
            format=self.format,
            columns=self.columns,
            shm="views" if views else None,
        ):
            step_start, n = pos.position, batch.num_rows
            first, skip = min(skip, n), 0
            pos.plan_version = batch.cursor.plan_version
            self._progress.saw(pos.plan_version)
            if batch.cursor.position - step_start < step_size:  # the short last step
                self._progress.ended(pos.epoch, batch.cursor.position)
            if first == n:
                pos.position, pos.skip = batch.cursor.position, 0
                continue
            if merge > 1:
                yield from self._cut(batch, urls, first, step_start, pos)
                continue
            if self.batched:
                pos.position, pos.skip = batch.cursor.position, 0
                if batch.packed is not None and self.collate is None:
                    # Whole, and unmade until used; from a DataLoader worker
                    # with no decode it travels as a handle (stoker._stream).
                    # Only a stream with a release ring: the receiver gives the leases back through it.
                    batch.packed.handed_off = handoff and batch.packed.src.ring > 0
                    batch.packed.views = self.views  # how the main process takes it
                    yield SampleBatch(batch.packed, urls, first, decode=self.decode)
                    continue
                out: Any = (
                    self._columnar_batch(batch, urls, first) if batch.columnar else self._dicts(batch, urls, first)
                )
                yield self.collate(out) if self.collate is not None else out
                continue
            items: Any = self._columnar_rows(batch, urls, first) if batch.columnar else self._dicts(batch, urls, first)
            for i, s in enumerate(items, start=first + 1):
                # The state says what has been yielded once this sample is:
                # after the step's last sample, the next step.
                if i == n:
                    pos.position, pos.skip = batch.cursor.position, 0
                else:
                    pos.position, pos.skip = step_start, i
                yield s
        self._progress.ended(pos.epoch, pos.position)

    # A merged step (see _merge): about this many samples, at most this
    # many batches and bytes (the dataset's mean sample's).
    MERGE_SAMPLES = 128
    MERGE_BATCHES = 8
    MERGE_BYTES = 8 << 20

    def _merge(self, vworld: int, info: DatasetInfo) -> int:
        """How many of this dataset's batches one step on the server
        carries: with batched=True, no collate, a WebDataset and one stream
        reading the whole epoch in the main process (no ranks, no DataLoader
        workers), steps
        of about MERGE_SAMPLES samples (at most MERGE_BATCHES batches and
        MERGE_BYTES of the dataset's mean sample), which _cut cuts into
        batches; else 1. A step's message costs the reader tens of
        microseconds whatever its size, so fewer, larger ones take less of
        its time. The order, the batches and the state are the same: with
        one stream, steps of k batches hold the samples of k steps of one."""
        if not self.batched or vworld != 1 or self.collate is not None or info.columns or info.arrow_schema:
            return 1
        mean = info.total_bytes // info.num_samples if info.num_samples else info.total_bytes
        k = min(
            self.MERGE_BATCHES,
            self.MERGE_SAMPLES // self.batch_size,
            self.MERGE_BYTES // max(1, mean * self.batch_size),
        )
        return max(1, k)

    def _cut(self, batch: Batch, urls: tuple[str, ...], first: int, step_start: int, pos: _Position) -> Iterator[Any]:
        """A merged step's samples from first on as batches of batch_size,
        each with the state after it: the last one short only at the
        epoch's end, and then dropped with drop_last (the state then ends
        after the last whole batch, where a stream that dropped it stops)."""
        n, end, bs = batch.num_rows, batch.cursor.position, self.batch_size
        # The step's dicts, made once (undecoded) for the batches cut from it.
        step = SampleBatch(batch.packed, urls, first) if batch.packed is not None else None
        rows = self._dicts(batch, urls, first) if step is None else None  # a server that does not pack
        for lo in range(first, n, bs):
            hi = min(lo + bs, n)
            if hi - lo < bs and self.drop_last:
                pos.position, pos.skip = step_start + lo, 0
                return
            # One stream has the epoch's positions one after another: the
            # state is the cursor after this batch, a stream of any step
            # size resumes at it.
            pos.position, pos.skip = (end, 0) if hi == n else (step_start + hi, 0)
            if step is not None:
                yield SampleBatch(None, urls, decode=self.decode, cut=(step, lo - first, hi - first))
            else:
                assert rows is not None
                yield rows[lo - first : hi - first]

    def _columnar_rows(self, batch: Batch, urls: tuple[str, ...], first: int) -> list[dict[str, Any]]:
        from . import arrow

        rb = arrow.record_batch(batch).slice(first)
        rows = columnar_rows(rb, [urls[i] for i in batch.row_shards[first:]])
        return [self.decode(r) for r in rows] if self.decode is not None else rows

    def _columnar_batch(self, batch: Batch, urls: tuple[str, ...], first: int) -> dict[str, Any]:
        from . import arrow

        out: dict[str, Any] = dict(columns_to_tensors(arrow.record_batch(batch).slice(first)))
        out["__url__"] = [urls[i] for i in batch.row_shards[first:]]
        return out

    def _dicts(self, batch: Batch, urls: tuple[str, ...], first: int) -> list[Any]:
        """The batch's samples from first on as (decoded) dicts."""
        if batch.packed is not None:
            out = dicts_of(batch.packed, urls, first)
            return [self.decode(d) for d in out] if self.decode is not None else out
        return [self._sample(s, urls) for s in batch.samples[first:]]

    def _sample(self, s: Sample, urls: tuple[str, ...]) -> Any:
        d = s.to_dict(urls[s.shard] if s.shard < len(urls) else None)
        return self.decode(d) if self.decode is not None else d

    def __repr__(self) -> str:
        return (
            f"StokerDataset({self.url!r}, server={self.server!r}, batch_size={self.batch_size}, "
            f"seed={self.seed}, epoch={self.epoch}, rank={self.rank}, world_size={self.world_size})"
        )
