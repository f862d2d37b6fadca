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
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import grpc

from . import errors
from ._channel import channel_options, credentials_for, open_channel
from ._local import LocalLink, LocalPath
from ._request import StreamPlan, prefetch_request, stream_plan
from ._resume import stream_batches
from .auth import metadata_now, token_metadata
from .progress import epoch_bar, wait_prefetch
from .retry import Retry
from .shm import TierMap, TierMaps
from .tls import PathLike, handshake_error

# The values a Client hands out live in stoker.types, and are still named
# here, where they were first.
from .types import *  # noqa: F403
from .types import Batch, Cursor, DatasetInfo, PrefetchHint, PrefetchStatus, Sample, Stats
from .types import __all__ as _types_all
from .v1 import loader_pb2, loader_pb2_grpc

__all__ = ["DEFAULT_SERVER", "Client", *_types_all]

DEFAULT_SERVER = "127.0.0.1:7470"
"""Where ``stokerd`` listens by default; ``$STOKER_SERVER`` overrides it."""

_T = TypeVar("_T")


class Client:
    """A connection to one Stoker server.

    ``address`` is ``host:port`` or ``unix:/path`` (default ``$STOKER_SERVER``
    or 127.0.0.1:7470). A server started with ``--auth-token-file`` needs a
    bearer token: ``token``, or the first line of ``token_file`` (re-read
    when the file changes), or ``$STOKER_TOKEN`` (see :mod:`stoker.auth`).
    ``retries`` is how many failed attempts in a row (no progress between
    them) a call or a stream makes before it raises ServerUnavailable.
    ``options`` are extra gRPC channel options.

    TLS (``stokerd --tls-cert/--tls-key``, and ``--tls-ca`` for mutual TLS;
    see :mod:`stoker.tls`): ``tls_ca`` is the PEM CA bundle that verifies
    the server (default: the system's roots), ``tls_cert`` and ``tls_key``
    the PEM client certificate and key a server with ``--tls-ca`` requires,
    read here, once; or pass ``credentials`` as they are. A ``unix:``
    address ignores them. A failed handshake raises :class:`stoker.TLSError`
    at once; a plaintext client on a TLS port gets PermissionDenied.

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
        credentials, files = credentials_for(addr, credentials, tls_ca, tls_cert, tls_key)
        self._tls = credentials is not None
        self._tls_files = files
        self.timeout = timeout
        self._retry = Retry(retries=retries, first=backoff[0], longest=backoff[1])
        self._token = token_metadata(token, token_file)
        self._opts = channel_options(max_message_bytes, backoff, options)
        self._channel = open_channel(addr, credentials, self._opts)
        self._stub = loader_pb2_grpc.LoaderStub(self._channel)
        self._link = LocalLink(
            addr,
            local,
            lambda: self._stub.Stats(
                loader_pb2.StatsRequest(), timeout=min(self.timeout or 10.0, 10.0), metadata=self._metadata
            ),
            self._opts,
            lambda: self._metadata,
            plaintext=not self._tls,
        )
        self._pid = os.getpid()
        self._tiers = TierMaps()  # the server's memory tier, mapped once for every shm stream
        self._lock = threading.Lock()  # guards _closed
        self._closed = False

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata of every call: the bearer token as it is now."""
        return metadata_now(self._token)

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Close the channel and unmap the server's memory tier unless another
        Client of the process holds it (views still held keep it mapped until
        they go). Safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if os.getpid() == self._pid:
            self._channel.close()
            self._link.close()
            self._tiers.close()

    def local_path(self) -> LocalPath:
        """The unix socket this client's streams take (``socket``, "" for
        none) and why: found once, on the first call or stream."""
        return self._link.path()

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
        return self._retry.call(op, self.address, call, self._raise_tls_error)

    def open_dataset(self, url: str, format: str = "", *, fields: bool = False) -> DatasetInfo:
        """Resolve a dataset URL (``s3://b/prefix/``, a brace list,
        ``file:///dir/``) on the server and return its manifest. ``fields``
        also asks for a WebDataset's field names (``DatasetInfo.fields``):
        the server loads every shard's index for them, a read of every
        shard the first time unless ``stoker index`` wrote one."""
        req = loader_pb2.OpenDatasetRequest(url=url, format=format, fields=fields)
        # Over the unix socket once a stream found it (a DataLoader worker
        # then never connects over TCP).
        stub = self._link.stub or self._stub
        resp = self._unary("OpenDataset", lambda: stub.OpenDataset(req, timeout=self.timeout, metadata=self._metadata))
        return DatasetInfo.from_proto(resp.dataset)

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
        req = prefetch_request(
            url,
            epochs=epochs,
            seed=seed,
            shuffle=shuffle,
            shuffle_window=shuffle_window,
            deadline=deadline,
            budget_bytes=budget_bytes,
            format=format,
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
        return PrefetchStatus.from_proto(r)

    def wait_prefetch(
        self, hint: str | PrefetchHint, *, timeout: float = 600.0, poll: float = 0.1, progress: bool | None = None
    ) -> PrefetchStatus:
        """Poll a hint until every node is done (or failed, or gave up), with
        a tqdm bar of bytes when tqdm is installed. Raises TimeoutError
        after ``timeout`` seconds."""
        return wait_prefetch(lambda: self.prefetch_status(hint), timeout, poll, progress)

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
        preprocess_on: str = "local",
    ) -> Iterator[Batch]:
        """Stream rank's batches of an epoch, from ``start`` (a position or a
        Cursor of the same epoch) to the end. ``columns`` projects a
        columnar dataset (default: all columns).

        ``shm=True`` (over the server's unix socket, ``unix:/path``) takes
        the bytes through shared memory: fields are memoryviews into a
        mapped region that hold their lease while referenced (see
        :mod:`stoker.shm`; ``"views"``: the disk tier's fields are views of
        its files' mappings too); ``shm_region_bytes`` sizes the region. Where
        the server's memory tier is itself shared (``stokerd
        --memory-region locked``, or ``auto`` on a GPU host), fields of
        shards in it are read-only views into the tier, which the client
        maps once for all its streams (:attr:`shm_tier`) and the server
        does not copy at all; ``shm_tier=False`` has every field copied
        into the region instead. ``shm="pinned"`` also registers the
        region, and the tier once, with CUDA (cudaHostRegister, needs torch;
        skipped where CUDA is not available), so copies to the GPU are DMA.
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
        ``preprocess_on="any"``: in a cluster, samples are preprocessed on
        the nodes holding their shards; the tensors equal ``"local"``'s.

        ``shm=None`` (the default) takes the local fast path when there is
        one (see the class doc): shared memory and the shared tier, fields
        copied once into ``bytes`` that outlive the stream like TCP's;
        ``shm=False`` streams over ``address``; with a ``transform``, only ``shm=True`` does.

        Each yielded Batch is whole, however many messages it came in. On
        UNAVAILABLE the stream reconnects and resumes from the last batch's
        cursor; it gives up after ``retries`` failures in a row. Closing the
        iterator early cancels the server's stream.
        """
        return self._stream(
            stream_plan(
                url,
                batch_size=batch_size,
                seed=seed,
                epoch=epoch,
                rank=rank,
                world_size=world_size,
                shuffle=shuffle,
                shuffle_window=shuffle_window,
                drop_last=drop_last,
                start=start,
                format=format,
                columns=columns,
                shm=shm,
                shm_region_bytes=shm_region_bytes,
                shm_tier=shm_tier,
                gds=gds,
                transform=transform,
                local=lambda: bool(self.local_path().socket),
                preprocess_on=preprocess_on,
            )
        )

    def _stream(self, plan: StreamPlan) -> Iterator[Batch]:
        """The plan's batches over the unix socket for shared memory when
        address is not one already, else over address's channel: chosen
        (the local path looked for) on the first next()."""
        channel = self._link.shm_channel() if plan.fixed["shm"] else None
        channel = channel if channel is not None else self._channel
        stub = self._stub if channel is self._channel else loader_pb2_grpc.LoaderStub(channel)
        yield from stream_batches(
            channel,
            stub,
            plan.fixed,
            plan.position,
            plan.plan_version,
            metadata=lambda: self._metadata,
            timeout=self.timeout,
            retry=self._retry,
            target=self.address,
            check=self._raise_tls_error,
            tiers=self._tiers,
            pin=plan.pin,
            gds_paths=plan.gds_paths,
            copy=plan.copy,
            map_extents=plan.map_extents,
        )

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
        bar = epoch_bar(
            lambda: self.open_dataset(url, stream_args.get("format", "")), batch_size, stream_args, progress
        )
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

    def read_epoch(
        self, url: str, *, batch_size: int = 256, progress: bool | None = None, **stream_args: Any
    ) -> list[Sample]:
        """Read rank's whole share of an epoch into a list (see iter_samples)."""
        return list(self.iter_samples(url, batch_size=batch_size, progress=progress, **stream_args))
