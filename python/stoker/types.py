"""The values the Stoker client hands out: cursors, samples, batches and
what the server says of a dataset, its counters and its prefetch hints.

No framework here, and no gRPC: this module imports the standard library
and :mod:`stoker.errors` only, so code that handles batches (a collate
function, a checkpoint) can use it anywhere. A columnar batch's
conversions import what they need (pyarrow, torch) when called.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgument

if TYPE_CHECKING:
    from .v1 import loader_pb2

__all__ = [
    "WINDOW_ALL",
    "window_value",
    "Cursor",
    "Sample",
    "Batch",
    "ShardInfo",
    "ColumnInfo",
    "FieldInfo",
    "DatasetInfo",
    "Stats",
    "PrefetchHint",
    "PrefetchProgress",
    "PrefetchStatus",
]

WINDOW_ALL = "all"
"""``shuffle_window=WINDOW_ALL`` shuffles the whole epoch at once."""

_WINDOW_ALL_VALUE = 0xFFFFFFFF


def window_value(window: int | str) -> int:
    """The request's shuffle_window for a window of ``window`` shards: 0 is
    the server's default (32 shards), ``"all"`` the whole epoch."""
    if window == WINDOW_ALL:
        return _WINDOW_ALL_VALUE
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise InvalidArgument(f"shuffle_window: want a number of shards (0: the default) or 'all', got {window!r}")
    return min(window, _WINDOW_ALL_VALUE)


@dataclass(frozen=True)
class Cursor:
    """A point in an epoch: the position in its global sequence where the
    next step starts. Resuming from it yields exactly the rest.
    ``plan_version`` is the version of the server's planner that made it
    (the order of an epoch depends on it): a server of another version
    refuses to resume from it rather than resume another order; 0 skips
    that check."""

    epoch: int
    position: int
    plan_version: int = 0


@dataclass
class Sample:
    """One WebDataset sample: its key, its place in the epoch and its fields."""

    key: str
    position: int
    shard: int
    fields: dict[str, bytes]

    def to_dict(self, url: str | None = None) -> dict[str, Any]:
        """The sample as webdataset yields it: ``__key__`` (and ``__url__``,
        the shard's object, when known) plus one entry per field."""
        d: dict[str, Any] = {"__key__": self.key}
        if url is not None:
            d["__url__"] = url
        d.update(self.fields)
        return d


class Batch:
    """One rank's batch of one step. ``cursor`` is where the next step
    starts: pass it as ``start`` to resume. A rank's batch at the short last
    step of an epoch may be empty. ``samples`` is made on first use from a
    packed stream's tables (see stoker._stream)."""

    def __init__(
        self,
        epoch: int,
        step: int,
        rank: int,
        samples: list[Sample] | None,
        cursor: Cursor,
        parts: int = 1,  # messages the server sent this batch in
        # A columnar (Parquet/Arrow) dataset's rows come as Arrow IPC streams,
        # one per message, instead of samples; row_shards[i] is row i's shard
        # and first_position the position of the first row.
        arrow_ipc: list[bytes] | None = None,
        row_shards: list[int] | None = None,
        first_position: int | None = None,
        *,
        packed: Any = None,
        ready: Any = None,
    ) -> None:
        self.epoch, self.step, self.rank, self.cursor, self.parts = epoch, step, rank, cursor, parts
        self._samples = samples
        self.arrow_ipc: list[bytes] = arrow_ipc if arrow_ipc is not None else []
        self.row_shards: list[int] = row_shards if row_shards is not None else []
        self.first_position = first_position
        self.packed = packed  # a stoker._stream.PackedBatch, or None
        # A stream with a pipeline (stream(transform=...)) has its tensors
        # here, and samples without fields (see stoker.pipeline).
        self.ready = ready

    @property
    def samples(self) -> list[Sample]:
        """The batch's samples (made from the packed tables on first use)."""
        if self._samples is None:
            self._samples = self.packed.samples() if self.packed is not None else []
        return self._samples

    def __repr__(self) -> str:
        return (
            f"Batch(epoch={self.epoch}, step={self.step}, rank={self.rank}, rows={self.num_rows}, "
            f"cursor={self.cursor}, parts={self.parts})"
        )

    @property
    def columnar(self) -> bool:
        """Whether the rows are in arrow_ipc rather than samples."""
        return bool(self.arrow_ipc)

    @property
    def num_rows(self) -> int:
        """Samples, or a columnar batch's rows."""
        if self.arrow_ipc:
            return len(self.row_shards)
        if self._samples is None and self.packed is not None:
            return int(self.packed.n)
        return len(self.samples)

    def to_arrow(self) -> Any:
        """A columnar batch's rows as one pyarrow.Table (needs pyarrow)."""
        import pyarrow as pa

        return pa.Table.from_batches([self.record_batch()])

    def record_batch(self) -> Any:
        """A columnar batch's rows as one pyarrow.RecordBatch, parts joined
        (see stoker.arrow; needs pyarrow)."""
        from .arrow import record_batch

        return record_batch(self)

    def to_numpy(self) -> dict[str, Any]:
        """A columnar batch as {column: numpy array}, zero-copy for
        fixed-width columns (see stoker.arrow; needs pyarrow)."""
        from .arrow import to_numpy

        return to_numpy(self)

    def to_torch(self) -> dict[str, Any]:
        """A columnar batch as {column: torch.Tensor} (see
        stoker.torch.columns_to_tensors; needs pyarrow and torch)."""
        from .torch_columns import columns_to_tensors

        return columns_to_tensors(self)

    def row_objects(self, info: DatasetInfo) -> list[str]:
        """Each row's object (its shard's URL), from row_shards."""
        return [info.shards[i].object for i in self.row_shards]


@dataclass(frozen=True)
class ShardInfo:
    """One object of a dataset, or one unit (row group, record batch) of a
    columnar object: ``part`` is its index there, ``offset`` and ``length``
    its byte range (length 0: the whole object)."""

    object: str
    size: int
    etag: str
    samples: int
    part: int = 0
    offset: int = 0
    length: int = 0


@dataclass(frozen=True)
class ColumnInfo:
    """A top-level column of a columnar dataset (``type`` is Arrow's name)."""

    name: str
    type: str
    nullable: bool


@dataclass(frozen=True)
class FieldInfo:
    """A field name of a WebDataset and how many samples have it (fewer
    than the dataset's: some samples lack the field)."""

    name: str
    samples: int


@dataclass(frozen=True)
class DatasetInfo:
    """A resolved dataset manifest. ``counted`` says whether every shard's
    sample count is known (``num_samples`` is then the dataset's): a
    WebDataset with no stored manifest and no index beside its shards is
    counted as streams reach its shards, and until then its uncounted shards
    have 0 samples. ``counts_from`` says where the counts came from
    ("manifest", "index", "counting", "footers")."""

    url: str
    format: str
    shards: tuple[ShardInfo, ...]
    num_samples: int
    total_bytes: int
    from_stored_manifest: bool
    # A columnar dataset's schema as an Arrow IPC stream (stoker.arrow.schema
    # decodes it) and its columns; empty for WebDataset.
    arrow_schema: bytes = b""
    columns: tuple[ColumnInfo, ...] = ()
    # A WebDataset's field names (the union over its samples), sorted, when
    # open_dataset was asked for them; empty otherwise.
    fields: tuple[FieldInfo, ...] = ()
    counted: bool = True
    counts_from: str = ""

    @classmethod
    def from_proto(cls, d: loader_pb2.Dataset) -> DatasetInfo:
        return cls(
            url=d.url,
            format=d.format,
            shards=tuple(ShardInfo(s.object, s.size, s.etag, s.samples, s.part, s.offset, s.length) for s in d.shards),
            num_samples=d.num_samples,
            total_bytes=d.total_bytes,
            from_stored_manifest=d.from_stored_manifest,
            arrow_schema=d.arrow_schema,
            columns=tuple(ColumnInfo(c.name, c.type, c.nullable) for c in d.columns),
            fields=tuple(FieldInfo(f.name, f.samples) for f in d.fields),
            counted=d.counted,
            counts_from=d.counts_from,
        )


@dataclass(frozen=True)
class Stats:
    """The server's counters since it started."""

    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    memory_bytes: int = 0
    memory_capacity: int = 0
    disk_bytes: int = 0
    disk_capacity: int = 0
    storage_requests: int = 0
    storage_bytes: int = 0
    stall_nanos: int = 0
    samples_served: int = 0
    bytes_served: int = 0
    active_streams: int = 0
    evictions: int = 0
    # Shared-memory delivery: regions open and their bytes, leases held by
    # clients and their bytes, bytes delivered, waits for releases.
    shm_regions: int = 0
    shm_region_bytes: int = 0
    shm_leases: int = 0
    shm_leased_bytes: int = 0
    shm_bytes_served: int = 0
    shm_waits: int = 0
    # Field bytes handed out as disk extents (gds) instead of copied.
    shm_extent_bytes: int = 0
    # Field bytes handed out in place in the shared memory tier (no copy),
    # and the tier's file (host.memory_region.shared_path): empty when the
    # tier is private.
    shm_tier_bytes: int = 0
    shm_tier_path: str = ""

    @classmethod
    def from_proto(cls, msg: loader_pb2.StatsResponse) -> Stats:
        names = {f.name for f in fields(cls)}
        return cls(
            **{f.name: getattr(msg, f.name) for f in msg.DESCRIPTOR.fields if f.name in names},
            shm_tier_path=msg.host.memory_region.shared_path,
        )


@dataclass(frozen=True)
class PrefetchHint:
    """A prefetch hint the server took: its id and the work it spread."""

    hint_id: str
    bytes_total: int
    shards_total: int


@dataclass(frozen=True)
class PrefetchProgress:
    """One node's part of a hint. ``state`` is "running", "done",
    "expired", "failed" or "unreachable"; ``error`` names the shard."""

    node: str
    bytes_done: int
    bytes_total: int
    shards_done: int
    shards_total: int
    state: str
    error: str


@dataclass(frozen=True)
class PrefetchStatus:
    """A hint's progress summed over the nodes."""

    hint_id: str
    bytes_done: int
    bytes_total: int
    done: bool
    nodes: tuple[PrefetchProgress, ...]

    @classmethod
    def from_proto(cls, r: loader_pb2.PrefetchStatusResponse) -> PrefetchStatus:
        nodes = tuple(
            PrefetchProgress(n.node, n.bytes_done, n.bytes_total, n.shards_done, n.shards_total, n.state, n.error)
            for n in r.nodes
        )
        return cls(r.hint_id, r.bytes_done, r.bytes_total, r.done, nodes)

    @property
    def errors(self) -> list[str]:
        """The nodes' errors, each naming its node."""
        return [f"{n.node}: {n.state}: {n.error}" for n in self.nodes if n.error]
