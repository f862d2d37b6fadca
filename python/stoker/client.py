"""The framework-free Stoker client: open datasets, stream epochs, read stats.

A :class:`Client` holds one gRPC channel to one ``stokerd``. Streams are
iterators of :class:`Batch`; a batch that the server sent in several parts
is put back together before it is yielded. When the connection drops (the
server restarts, a proxy resets), the stream reconnects with backoff and
resumes from the cursor of the last whole batch, so nothing is lost or
repeated. Errors come out as :mod:`stoker.errors` exceptions that keep the
server's message (it names the shard or field at fault).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import grpc

from . import errors
from .auth import TokenFile, token_metadata
from .gds import PATHS as GDS_PATHS
from ._local import LocalPath, find_socket
from ._stream import read_stream
from .shm import ShmReader, TierMap, TierMaps
from .split import rank_count
from .tls import PathLike, TLSFiles, handshake_error, is_local
from .v1 import loader_pb2, loader_pb2_grpc

__all__ = [
    "DEFAULT_SERVER",
    "Client",
    "Cursor",
    "Batch",
    "Sample",
    "DatasetInfo",
    "ColumnInfo",
    "FieldInfo",
    "ShardInfo",
    "Stats",
    "PrefetchHint",
    "PrefetchProgress",
    "PrefetchStatus",
]

DEFAULT_SERVER = "127.0.0.1:7470"
"""Where ``stokerd`` listens by default; ``$STOKER_SERVER`` overrides it."""

_T = TypeVar("_T")


WINDOW_ALL = "all"
"""``shuffle_window=WINDOW_ALL`` shuffles the whole epoch at once."""

_WINDOW_ALL_VALUE = 0xFFFFFFFF


def window_value(window: int | str) -> int:
    """The request's shuffle_window for a window of ``window`` shards: 0 is
    the server's default (32 shards), ``"all"`` the whole epoch."""
    if window == WINDOW_ALL:
        return _WINDOW_ALL_VALUE
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise errors.InvalidArgument(f"shuffle_window: want a number of shards (0: the default) or 'all', got {window!r}")
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
        return (f"Batch(epoch={self.epoch}, step={self.step}, rank={self.rank}, rows={self.num_rows}, "
                f"cursor={self.cursor}, parts={self.parts})")

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
        from . import arrow

        return arrow.record_batch(self)

    def to_numpy(self) -> dict[str, Any]:
        """A columnar batch as {column: numpy array}, zero-copy for
        fixed-width columns (see stoker.arrow; needs pyarrow)."""
        from . import arrow

        return arrow.to_numpy(self)

    def to_torch(self) -> dict[str, Any]:
        """A columnar batch as {column: torch.Tensor} (see
        stoker.torch.columns_to_tensors; needs pyarrow and torch)."""
        from .torch import columns_to_tensors

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

    @property
    def errors(self) -> list[str]:
        """The nodes' errors, each naming its node."""
        return [f"{n.node}: {n.state}: {n.error}" for n in self.nodes if n.error]


@dataclass
class _Retry:
    """How a Client retries calls and resumes streams on UNAVAILABLE."""

    retries: int = 8  # attempts in a row without progress before giving up
    first: float = 0.05  # first wait, seconds
    longest: float = 2.0  # longest wait, seconds
    rng: random.Random = field(default_factory=random.Random)

    def wait(self, failures: int) -> float:
        """Jittered exponential backoff for the n-th failure in a row."""
        base = min(self.longest, self.first * (1.6 ** (failures - 1)))
        return base * (0.8 + 0.4 * self.rng.random())


def _retriable(err: grpc.RpcError) -> bool:
    return isinstance(err, grpc.Call) and err.code() == grpc.StatusCode.UNAVAILABLE


class Client:
    """A connection to one Stoker server.

    ``address`` is ``host:port`` or ``unix:/path`` (default ``$STOKER_SERVER``
    or 127.0.0.1:7470). A server started with ``--auth-token-file`` needs a
    bearer token: ``token``, or the first line of ``token_file`` (re-read
    when the file changes), or ``$STOKER_TOKEN`` (see :mod:`stoker.auth`).
    ``retries`` is how many failed attempts in a row (no progress between
    them) a call or a stream makes before it raises ServerUnavailable.
    ``options`` are extra gRPC channel options.

    TLS (``stokerd --tls-cert/--tls-key``, and ``--tls-ca`` for mutual TLS):
    ``tls_ca`` is the PEM CA bundle that verifies the server (default: the
    system's roots), ``tls_cert`` and ``tls_key`` the PEM client
    certificate and key a server with ``--tls-ca`` requires. The server's
    certificate must name the host of the address (DNS name or IP address).
    Or pass ``credentials`` (grpc.ssl_channel_credentials(...)) as they are.
    The files are read here, once: gRPC cannot re-read them, so rotated
    files are used by a new Client. A ``unix:`` address ignores all of these:
    stokerd serves its unix socket in plaintext. A failed handshake raises
    :class:`stoker.TLSError` saying why, without retrying (see
    :mod:`stoker.tls`); a plaintext client on a TLS port gets
    PermissionDenied.

    Local fast path: ``local=None`` (the default) streams over the
    server's unix socket with shared memory when the server is on this
    host (``$STOKER_SOCKET``, or the socket the server names to a loopback
    client: see :mod:`stoker._local` and :meth:`local_path`); fields are
    then still ``bytes`` of their own. ``local=False`` keeps streams on
    ``address``; ``local=True`` fails when there is no local path.

    A Client is safe to use from several threads. After ``os.fork`` a child
    must make its own Client (the torch dataset does this by itself).
    """

    def __init__(
        self,
        address: str | None = None,
        token: str | None = None,
        *,
        retries: int = 8,
        backoff: tuple[float, float] = (0.05, 2.0),
        timeout: float | None = 300.0,
        max_message_bytes: int = 1 << 30,
        options: Sequence[tuple[str, Any]] = (),
        credentials: grpc.ChannelCredentials | None = None,
        tls_ca: PathLike | None = None,
        tls_cert: PathLike | None = None,
        tls_key: PathLike | None = None,
        token_file: PathLike | None = None,
        local: bool | None = None,
    ) -> None:
        addr = address or os.environ.get("STOKER_SERVER") or DEFAULT_SERVER
        if addr.startswith("grpc://"):
            addr = addr[len("grpc://") :]
        self.address = addr
        files = TLSFiles.of(tls_ca, tls_cert, tls_key)
        if files is not None and credentials is not None:
            raise errors.InvalidArgument("stoker: give credentials or tls_ca/tls_cert/tls_key, not both")
        if is_local(addr):
            files, credentials = None, None
        elif files is not None:
            credentials = files.credentials()
        self._tls = credentials is not None
        self._tls_files = files
        self.timeout = timeout
        self._retry = _Retry(retries=retries, first=backoff[0], longest=backoff[1])
        self._token = token_metadata(token, token_file)
        opts: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", 64 << 20),
            # Reconnect as eagerly as streams are resumed, not after gRPC's
            # default backoff of up to two minutes.
            ("grpc.initial_reconnect_backoff_ms", int(backoff[0] * 1000)),
            ("grpc.min_reconnect_backoff_ms", int(backoff[0] * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(backoff[1] * 1000)),
            # Streams read on the iterating thread, not handed over from
            # gRPC's channel-spin thread message by message: about twice the
            # batches per second (grpc.experimental.ChannelOptions).
            ("SingleThreadedUnaryStream", 1),
            *options,
        ]
        self._opts = opts
        self._channel = (
            grpc.secure_channel(addr, credentials, options=opts)
            if credentials is not None
            else grpc.insecure_channel(addr, options=opts)
        )
        self._stub = loader_pb2_grpc.LoaderStub(self._channel)
        self._local = local
        self._local_path: LocalPath | None = None  # found on the first stream
        self._local_channel: grpc.Channel | None = None  # to the unix socket, when it is not address
        self._local_stub: loader_pb2_grpc.LoaderStub | None = None
        self._pid = os.getpid()
        self._tiers = TierMaps()  # the server's memory tier, mapped once for every shm stream
        self._lock = threading.Lock()  # guards _closed, _local_path and _local_channel
        self._closed = False

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata of every call: the bearer token as it is now."""
        if isinstance(self._token, TokenFile):
            return (("authorization", f"Bearer {self._token.token()}"),)
        return self._token

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Close the channel and unmap the server's memory tier (views of
        it still held keep it mapped until they go). Safe to call more than
        once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if os.getpid() == self._pid:
            self._channel.close()
            if self._local_channel is not None:
                self._local_channel.close()
            self._tiers.close()

    def local_path(self) -> LocalPath:
        """The unix socket this client's streams take (``socket``, "" for
        none) and why: found once, on the first call or stream."""
        with self._lock:
            if self._local_path is not None:
                return self._local_path
        if self._local is False:
            found = LocalPath("", "local=False")
        else:
            found = find_socket(self.address, lambda: self._stub.Stats(
                loader_pb2.StatsRequest(), timeout=min(self.timeout or 10.0, 10.0), metadata=self._metadata),
                plaintext=not self._tls)
        channel = None
        if found.socket and found.socket != _socket_of(self.address):
            channel, why = self._check_socket(found.socket)
            if channel is None:
                found = LocalPath("", why)
        with self._lock:
            if self._local_path is None:
                self._local_path, self._local_channel = found, channel
                if channel is not None:
                    self._local_stub = loader_pb2_grpc.LoaderStub(channel)
            elif channel is not None:
                channel.close()
            if self._local is True and not self._local_path.socket:
                raise errors.InvalidArgument(f"stoker: local=True, but there is no local path: {self._local_path.reason}")
            return self._local_path

    def _check_socket(self, path: str) -> tuple[grpc.Channel | None, str]:
        """A channel to the unix socket path, when the server behind it
        names the same socket; else None and why."""
        ch = grpc.insecure_channel(f"unix://{path}", options=self._opts)
        try:
            st = loader_pb2_grpc.LoaderStub(ch).Stats(loader_pb2.StatsRequest(), timeout=10.0, metadata=self._metadata)
        except grpc.RpcError as err:
            ch.close()
            return None, f"{path}: {errors.from_rpc_error(err, op='Stats', target=path)}"
        if st.host.unix_socket != path:
            ch.close()
            return None, f"{path} is another server's (it names {st.host.unix_socket or 'no socket'})"
        return ch, ""

    @property
    def shm_tier(self) -> TierMap | None:
        """The server's memory tier as this client maps it (read-only),
        once a shared-memory stream was told of it; None before, or when
        the server's tier is private. ``pinned`` / ``pin_reason`` say
        whether ``shm="pinned"`` registered it with CUDA."""
        return self._tiers.current

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"stoker.Client({self.address!r})"

    # -- unary calls -------------------------------------------------------

    def _raise_tls_error(self, err: grpc.RpcError, op: str) -> None:
        """Raise TLSError when err is a failed TLS handshake: retrying
        would meet the same certificates."""
        if self._tls:
            tls_err = handshake_error(err, op=op, target=self.address, files=self._tls_files)
            if tls_err is not None:
                raise tls_err from None

    def _unary(self, op: str, call: Callable[[], _T]) -> _T:
        failures = 0
        while True:
            try:
                return call()
            except grpc.RpcError as err:
                self._raise_tls_error(err, op)
                if not _retriable(err) or failures >= self._retry.retries:
                    raise errors.from_rpc_error(err, op=op, target=self.address) from None
                failures += 1
                time.sleep(self._retry.wait(failures))

    def open_dataset(self, url: str, format: str = "", *, fields: bool = False) -> DatasetInfo:
        """Resolve a dataset URL (``s3://b/prefix/``, a brace list,
        ``file:///dir/``) on the server and return its manifest. ``fields``
        also asks for a WebDataset's field names (``DatasetInfo.fields``):
        the server loads every shard's index for them, a read of every
        shard the first time unless ``stoker index`` wrote one."""
        req = loader_pb2.OpenDatasetRequest(url=url, format=format, fields=fields)
        # Over the unix socket once a stream found it (a DataLoader worker
        # then never connects over TCP).
        stub = self._local_stub or self._stub
        resp = self._unary(
            "OpenDataset", lambda: stub.OpenDataset(req, timeout=self.timeout, metadata=self._metadata)
        )
        d = resp.dataset
        return DatasetInfo(
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

    def stats(self) -> Stats:
        """The server's cache, storage and stream counters."""
        resp = self._unary(
            "Stats", lambda: self._stub.Stats(loader_pb2.StatsRequest(), timeout=self.timeout, metadata=self._metadata)
        )
        return Stats.from_proto(resp)

    # -- prefetch hints ----------------------------------------------------

    def prefetch(
        self,
        url: str,
        *,
        epochs: Sequence[int],
        seed: int = 0,
        shuffle: bool = True,
        shuffle_window: int | str = 0,
        deadline: float | None = None,
        budget_bytes: int = 0,
        format: str = "",
        index_only: bool = False,
    ) -> PrefetchHint:
        """Tell the server (and through it the cluster) which epochs of a
        dataset the job reads next, so the shards are fetched ahead in plan
        order. Returns at once; follow it with prefetch_status or
        wait_prefetch. ``deadline`` is a Unix time in seconds after which the
        work is abandoned; ``budget_bytes`` caps what is fetched. The seed
        and shuffle settings must be the trainers'. ``index_only=True``
        (``epochs`` may then be empty) only counts and indexes the dataset's
        shards on that server, so a job's first batch waits for no
        counting."""
        req = loader_pb2.PrefetchRequest(
            url=url,
            format=format,
            seed=seed,
            epochs=list(epochs),
            shuffle_window=window_value(shuffle_window),
            no_shuffle=not shuffle,
            deadline_unix_ms=int(deadline * 1000) if deadline is not None else 0,
            budget_bytes=budget_bytes,
            index_only=index_only,
        )
        r = self._unary("Prefetch", lambda: self._stub.Prefetch(req, timeout=self.timeout, metadata=self._metadata))
        return PrefetchHint(hint_id=r.hint_id, bytes_total=r.bytes_total, shards_total=r.shards_total)

    def prefetch_status(self, hint: str | PrefetchHint) -> PrefetchStatus:
        """A hint's progress on every node that took part of it."""
        hint_id = hint.hint_id if isinstance(hint, PrefetchHint) else hint
        req = loader_pb2.PrefetchStatusRequest(hint_id=hint_id)
        r = self._unary(
            "PrefetchStatus", lambda: self._stub.PrefetchStatus(req, timeout=self.timeout, metadata=self._metadata)
        )
        nodes = tuple(
            PrefetchProgress(n.node, n.bytes_done, n.bytes_total, n.shards_done, n.shards_total, n.state, n.error)
            for n in r.nodes
        )
        return PrefetchStatus(r.hint_id, r.bytes_done, r.bytes_total, r.done, nodes)

    def wait_prefetch(
        self, hint: str | PrefetchHint, *, timeout: float = 600.0, poll: float = 0.1, progress: bool | None = None
    ) -> PrefetchStatus:
        """Poll a hint until every node is done (or failed, or gave up), with
        a tqdm bar of bytes when tqdm is installed. Raises TimeoutError
        after ``timeout`` seconds."""
        tqdm = _tqdm(progress)
        bar = tqdm(unit="B", unit_scale=True, desc="prefetch", dynamic_ncols=True) if tqdm is not None else None
        deadline = time.monotonic() + timeout
        try:
            while True:
                st = self.prefetch_status(hint)
                if bar is not None:
                    bar.total = st.bytes_total
                    bar.update(st.bytes_done - bar.n)
                if st.done:
                    return st
                if time.monotonic() > deadline:
                    raise TimeoutError(f"stoker: prefetch {st.hint_id} not done after {timeout}s "
                                       f"({st.bytes_done}/{st.bytes_total} bytes)")
                time.sleep(poll)
        finally:
            if bar is not None:
                bar.close()

    # -- streams -----------------------------------------------------------

    def stream(
        self,
        url: str,
        *,
        batch_size: int,
        seed: int = 0,
        epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        shuffle_window: int | str = 0,
        drop_last: bool = False,
        start: int | Cursor = 0,
        format: str = "",
        columns: Sequence[str] = (),
        shm: bool | str | None = None,
        shm_region_bytes: int = 0,
        shm_tier: bool = True,
        gds: bool | str | Sequence[str] = False,
        transform: Any = None,
    ) -> Iterator[Batch]:
        """Stream rank's batches of an epoch, from ``start`` (a position or a
        Cursor of the same epoch) to the end. ``columns`` projects a
        columnar dataset (default: all columns).

        ``shm=True`` (over the server's unix socket, ``unix:/path``) takes
        the bytes through shared memory: fields are memoryviews into a
        mapped region, valid until the next batch is asked for (see
        :mod:`stoker.shm`); ``shm_region_bytes`` sizes the region.
        Where the server's memory tier is itself shared (``stokerd
        --memory-region locked``, or ``auto`` on a GPU host), fields of
        shards in it are read-only views into the tier, which the client
        maps once for all its streams (:attr:`shm_tier`) and the server
        does not copy at all; ``shm_tier=False`` has every field copied
        into the region instead. ``shm="pinned"`` also registers the
        region, and the tier once, with CUDA (cudaHostRegister, needs
        torch; skipped where CUDA is not available), so copies to the GPU
        are DMA.
        ``gds=True`` (implies ``shm=True``) also asks for extents: fields of
        shards in the server's disk tier come as :class:`stoker.gds.Extent`,
        a range of a local file that ``extent.to_device()`` reads into GPU
        memory with cuFile (falling back to a pinned buffer) and
        ``extent.read()`` into host memory, valid as long as the views.
        A path name or a list of them instead of True fixes the order
        tried, e.g. ``gds="pinned"`` never calls cuFile (see
        :mod:`stoker.gds`).

        ``transform`` (a :class:`stoker.pipeline.Transform`) has the server
        decode and augment the samples: each Batch's ``ready`` holds the
        tensors (with shm, arrays over the region; see stoker.pipeline).

        ``shm=None`` (the default) takes the local fast path when there is
        one (see the class doc): shared memory and the shared tier, with
        fields copied once into ``bytes`` of their own, so they outlive the
        stream like TCP's; ``shm=False`` streams over ``address``. A stream
        with a ``transform`` takes shared memory only when asked (``shm=True``).

        Each yielded Batch is whole, however many messages it came in. On
        UNAVAILABLE the stream reconnects and resumes from the last batch's
        cursor; it gives up after ``retries`` failures in a row. Closing the
        iterator early cancels the server's stream.
        """
        plan_version = 0
        if isinstance(start, Cursor):
            if start.epoch != epoch:
                raise errors.InvalidArgument(f"cursor epoch {start.epoch} does not match epoch {epoch}")
            start, plan_version = start.position, start.plan_version
        if batch_size < 1:
            raise errors.InvalidArgument(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < max(world_size, 1):
            raise errors.InvalidArgument(f"rank {rank} is outside world_size {world_size}")
        gds_paths = None if isinstance(gds, bool) else [gds] if isinstance(gds, str) else list(gds)
        if gds_paths is not None:
            unknown = [p for p in gds_paths if p not in GDS_PATHS]
            if unknown or not gds_paths:
                raise errors.InvalidArgument(f"gds paths {gds_paths}: want some of {GDS_PATHS}")
        views = bool(shm) or bool(gds)  # asked for: fields are views, valid until the next batch
        use_shm, use_gds = views, bool(gds)
        if shm is None and not gds and transform is None and self.local_path().socket:
            # The local fast path: shared memory, the shared tier, and the
            # disk tier's files read here (extents), each field copied once.
            use_shm = use_gds = True
        return self._stream(
            dict(
                url=url,
                format=format,
                seed=seed,
                epoch=epoch,
                rank=rank,
                world_size=world_size,
                batch_size=batch_size,
                shuffle_window=window_value(shuffle_window),
                no_shuffle=not shuffle,
                drop_last=drop_last,
                columns=list(columns),
                shm=use_shm,
                shm_region_bytes=shm_region_bytes or (transform.region_bytes(batch_size) if use_shm and transform else 0),
                shm_tier=use_shm and shm_tier,
                gds=use_gds,
                packed=transform is None,
                shm_release_ring=use_shm,
                **({} if transform is None else {"pipeline": transform.to_proto(seed)}),
            ),
            start,
            plan_version,
            pin=shm == "pinned",
            gds_paths=gds_paths,
            copy=not views,
        )

    def _stream_channel(self, shm: bool) -> grpc.Channel:
        """The channel a stream takes: the unix socket for shared memory
        when address is not one already, else address's."""
        if shm and not _socket_of(self.address):
            self.local_path()
            if self._local_channel is not None:
                return self._local_channel
        return self._channel

    def _stream(
        self,
        fixed: dict[str, Any],
        position: int,
        plan_version: int = 0,
        pin: bool = False,
        gds_paths: list[str] | None = None,
        copy: bool = True,
    ) -> Iterator[Batch]:
        failures = 0
        channel = self._stream_channel(fixed["shm"])
        call_stream = channel.unary_stream(
            "/stoker.v1.Loader/StreamBatches",
            request_serializer=loader_pb2.StreamBatchesRequest.SerializeToString,
            response_deserializer=None,  # bytes: stoker._wire reads them
        )
        stub = self._stub if channel is self._channel else loader_pb2_grpc.LoaderStub(channel)
        while True:
            req = loader_pb2.StreamBatchesRequest(
                cursor=loader_pb2.Cursor(epoch=fixed["epoch"], position=position, plan_version=plan_version), **fixed
            )
            call = call_stream(req, metadata=self._metadata)
            pending: list[Any] = []
            shm = (
                ShmReader(stub, self._metadata, self.timeout, pin=pin, gds=fixed["gds"], gds_paths=gds_paths,
                          tiers=self._tiers if fixed["shm_tier"] else None)
                if fixed["shm"]
                else None
            )
            try:
                for batch in read_stream(call, pending, shm, copy, _stream_error_or):
                    position, plan_version = batch.cursor.position, batch.cursor.plan_version
                    failures = 0
                    yield batch
                    if shm is not None:
                        packed = batch.packed
                        if packed is not None and packed.handed_off:
                            shm.take_leases()  # the receiver of the handoff gives them back
                        elif packed is not None and copy:
                            packed.materialize()  # copies out, while the bytes are leased
                        shm.release()
                if pending:
                    raise errors.StokerError(
                        f"stoker StreamBatches at {self.address}: stream ended inside step "
                        f"(after position {position}) without a final message"
                    )
                return
            except grpc.RpcError as err:
                self._raise_tls_error(err, "StreamBatches")
                if not _retriable(err) or failures >= self._retry.retries:
                    raise errors.from_rpc_error(err, op="StreamBatches", target=self.address) from None
                failures += 1
                time.sleep(self._retry.wait(failures))
            finally:
                call.cancel()
                if shm is not None:
                    shm.close()

    def iter_samples(
        self,
        url: str,
        *,
        batch_size: int = 256,
        progress: bool | None = None,
        **stream_args: Any,
    ) -> Iterator[Sample]:
        """Every sample of rank's share of an epoch, one by one, with a tqdm
        progress bar when tqdm is installed (``progress=None``) or asked for.
        Takes the same arguments as :meth:`stream`."""
        bar = _progress_bar(self, url, batch_size, stream_args, progress)
        try:
            for batch in self.stream(url, batch_size=batch_size, **stream_args):
                if batch.columnar:
                    raise errors.InvalidArgument(
                        f"stoker: {url} is a columnar dataset: its rows arrive as Arrow, read them with "
                        "stream() and Batch.to_arrow()"
                    )
                yield from batch.samples
                if bar is not None:
                    bar.update(len(batch.samples))
        finally:
            if bar is not None:
                bar.close()

    def read_epoch(self, url: str, *, batch_size: int = 256, progress: bool | None = None, **stream_args: Any) -> list[Sample]:
        """Read rank's whole share of an epoch into a list (see iter_samples)."""
        return list(self.iter_samples(url, batch_size=batch_size, progress=progress, **stream_args))


# How many messages, and for how long, a stream whose message the client
# could not take in (its region cannot be mapped) is read on for the
# server's own error. A stream the server did not fail may be waiting for
# the batch's release, so the read is cut off after the grace.
_ERROR_READ_MESSAGES = 64
_ERROR_READ_GRACE = 5.0  # seconds


def _stream_error_or(call: Any, err: BaseException) -> BaseException:
    """The stream's own error (a grpc.RpcError), if it ends with one within
    a few messages and _ERROR_READ_GRACE seconds, else err."""
    gave_up = threading.Event()

    def give_up() -> None:
        gave_up.set()
        call.cancel()

    timer = threading.Timer(_ERROR_READ_GRACE, give_up)
    timer.daemon = True
    timer.start()
    try:
        for _ in range(_ERROR_READ_MESSAGES):
            next(call)
    except StopIteration:
        return err
    except grpc.RpcError as rerr:
        cut_off = gave_up.is_set() and isinstance(rerr, grpc.Call) and rerr.code() == grpc.StatusCode.CANCELLED
        return err if cut_off else rerr
    finally:
        timer.cancel()
    return err


def _socket_of(addr: str) -> str:
    from ._local import socket_path

    return socket_path(addr)


def _tqdm(progress: bool | None) -> Any:
    """tqdm.auto.tqdm where a bar is wanted: progress None when tqdm is
    installed, True always (ImportError without it); else None."""
    if progress is not None and not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from None
        return None
    return tqdm


def _progress_bar(client: Client, url: str, batch_size: int, args: dict[str, Any], progress: bool | None) -> Any:
    """The bar of iter_samples, its total rank's share of the epoch; None
    where _tqdm gives no bar."""
    tqdm = _tqdm(progress)
    if tqdm is None:
        return None
    info = client.open_dataset(url, args.get("format", ""))
    if not info.counted:  # counted as the epoch reads the shards: no total yet
        return tqdm(total=None, unit="sample", desc=f"epoch {args.get('epoch', 0)}", dynamic_ncols=True)
    start = args.get("start", 0)
    total = rank_count(
        info.num_samples,
        start.position if isinstance(start, Cursor) else int(start),
        args.get("rank", 0),
        max(args.get("world_size", 1), 1),
        batch_size,
        args.get("drop_last", False),
    )
    return tqdm(total=total, unit="sample", desc=f"epoch {args.get('epoch', 0)}", dynamic_ncols=True)
