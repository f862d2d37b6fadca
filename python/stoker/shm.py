"""Shared-memory delivery for a client on the server's host.

With ``Client.stream(..., shm=True)`` over the server's unix socket
(``Client("unix:/path")``, the path of ``stokerd --unix``), the server
places each batch's bytes in a region file under /dev/shm that this module
maps, and the messages carry only offsets. Each field of a yielded
``Sample`` is then a ``memoryview`` into the mapping: no copy.

The bytes are leased. Where the region has a release ring (the client
asks for one) the lease of each message lives as long as the last view
of it (:class:`LeaseHold`): a view kept past later batches, past the
stream's end or the Client's close still holds the right bytes, and
when the last one goes its lease is written to the ring and the server
reuses the space. The server places later batches around leases still
held; when held views fill half the region it sends a batch's bytes in
the message instead (still correct, a copy), so a loop that keeps old
batches never stalls the stream. Without a ring, views stay valid until
the next batch is asked for. Copy what must not hold region space —
``bytes(view)``, or ``as_tensor(view).cuda()`` / ``.clone()``. The
client holds a shared lock on the region file while any view of it
lives: a client that dies frees its leases with it.

``as_numpy`` and ``as_tensor`` view a field as an array without a copy.

When the server's memory tier is itself a shared file (``stokerd
--memory-region locked``, or ``auto`` on a GPU host; ``Stats.shm_tier_path``
names it), the stream asks for it (``shm_tier``): fields whose shard is in
the tier are then views into the tier's own pages, which the client maps
read-only once (:class:`TierMaps`: one mapping per process, shared by
its Clients and streams, kept for the next Client when one is dropped
without close), and the server copies nothing. Their lifetime is the same: the batch's
lease pins the shard in the tier while a view of it lives (the server
copies into the region instead once held views pin half the region's
size). They are read-only: ``as_numpy`` gives a read-only array, ``as_tensor`` a
tensor that must not be written to (the page is mapped read-only: a write
kills the process rather than corrupt the server's cache).

With ``gds=True`` as well, fields of shards in the server's disk tier come
as :class:`stoker.gds.Extent` (a range of a local file, for cuFile) with
the same lifetime; see :mod:`stoker.gds`.
"""

from __future__ import annotations

import collections
import fcntl
import logging
import mmap
import os
import queue
import threading
from typing import Any

import grpc

from . import errors
from ._buffers import frombuffer
from .gds import Extent, ExtentReader
from .v1 import loader_pb2

__all__ = ["LeaseHold", "ReleaseRing", "ShmReader", "TierMap", "TierMaps", "as_numpy", "as_tensor", "held_view"]

_log = logging.getLogger("stoker.shm")

# cudaHostRegister flags (cuda_runtime_api.h).
_REGISTER_PORTABLE = 0x01  # pinned for every CUDA context, not just the caller's
_REGISTER_READ_ONLY = 0x08  # the pages are mapped read-only (CUDA 11.1+)


class ShmReader:
    """One stream's mapping of its region and the leases of the batch
    being read; the server's memory tier when the stream was told of it
    (from ``tiers``, the Client's mappings); and with ``gds`` the reader of
    its extents (``gds_paths``: the order of read paths, default
    stoker.gds.device_paths). ``pin`` registers the region, and the tier
    once per mapping, with CUDA. Used by the thread that iterates the
    stream."""

    def __init__(
        self,
        stub: Any,
        metadata: tuple[tuple[str, str], ...],
        timeout: float | None,
        *,
        pin: bool = False,
        gds: bool = False,
        gds_paths: list[str] | None = None,
        tiers: TierMaps | None = None,
    ) -> None:
        self._stub = stub
        self.map_extents = False  # extents read here from mapped files (stoker._filemaps), not handed out
        self._pin = pin
        self._pinned: Any = None  # the array whose address CUDA registered
        self.pin_reason = ""  # why the region is not pinned, when asked to be
        self._metadata = metadata
        self._timeout = timeout
        self.region = ""
        self.path = ""  # the region's file
        self.size = 0
        self._map: mmap.mmap | None = None
        self._view: memoryview | None = None
        self._tiers = tiers
        self.tier: TierMap | None = None
        self._tier_view: memoryview | None = None
        self._leases: list[int] = []
        self.ring: ReleaseRing | None = None  # where leases are released, when the server made one
        self.extents = ExtentReader(gds_paths) if gds else None

    @property
    def map(self) -> mmap.mmap | None:
        """The region's mapping (None before the first message)."""
        return self._map

    def receive(self, msg: Any) -> None:
        """Map the region (and find the tier's mapping) on the first
        message; note the message's lease. A region that cannot be mapped
        raises StokerError naming it."""
        region = msg.shm_region if msg.HasField("shm_region") else None
        tier = msg.shm_tier if msg.HasField("shm_tier") else None
        lease = msg.shm_lease.id if msg.HasField("shm_lease") else None
        self.take(region, tier, lease)

    def take(self, region: Any, tier: Any, lease: int | None) -> None:
        """receive's work, from a message's region, tier and lease id
        (each None when the message has none)."""
        msg_region = region
        if msg_region is not None and self._map is None:
            path, size = msg_region.path, msg_region.size
            try:
                m, writable = _map_region(path, size)
            except OSError as err:
                # Also what a client behind on its messages sees when the
                # server failed the stream (and removed its region file):
                # the stream reads on for the server's error (Client._stream).
                raise errors.StokerError(
                    f"stoker: cannot map the shm region {path} ({size} bytes): {err} (a shared-memory client "
                    "must run on the server's host as a user that may open it)"
                ) from err
            self._map, self._view = m, memoryview(m)
            self.region = msg_region.id
            self.path, self.size = path, size
            if msg_region.release_ring and writable:  # else: ReleaseShm
                self.ring = ReleaseRing(m, msg_region.release_ring, path, lock_region(path))
            if self._pin:
                self._pin_region(m, msg_region.path, writable)
        if tier is not None and self.tier is None:
            if self._tiers is None:
                raise RuntimeError(
                    f"stoker: the server sent its memory tier {tier.path}, but the stream did not ask for it"
                )
            self.tier = self._tiers.get(tier.path, tier.size, pin=self._pin)
            self._tier_view = self.tier.view
        if lease is not None:
            if self._view is None:
                raise RuntimeError(f"stoker: shm lease {lease} before its region")
            self._leases.append(lease)

    def take_leases(self) -> list[int]:
        """The current batch's leases, which the caller now owns (they are
        no longer released by release())."""
        ids, self._leases = self._leases, []
        return ids

    def _pin_region(self, m: mmap.mmap, path: str, writable: bool) -> None:
        why = _cuda_missing()
        if why:
            self.pin_reason = why
            _log.warning("stoker shm: region %s not pinned: %s", path, why)
            return
        self._pinned, why = _cuda_register(m, 0 if writable else _REGISTER_READ_ONLY, f"the shm region {path}")
        if why:
            raise RuntimeError(f"stoker: {why}")

    def fields(self, sample: loader_pb2.Sample) -> dict[str, Any]:
        """The sample's fields as views into the region or the tier, or
        Extents."""
        out: dict[str, Any] = {}
        for f in sample.fields:
            if f.HasField("extent"):
                if self.extents is None:
                    raise RuntimeError(
                        f"stoker: field {f.name!r} of sample {sample.key!r} is an extent, "
                        "but the stream did not ask for gds"
                    )
                out[f.name] = Extent(f.extent.path, f.extent.offset, f.extent.length, self.extents)
                continue
            n = f.shm_length
            if n == 0:
                out[f.name] = memoryview(f.data)  # empty: the same type as the rest
                continue
            view, what = (self._tier_view, "the memory tier") if f.shm_tier else (self._view, "the region")
            off = f.shm_offset
            if view is None or off + n > len(view):
                size = "not mapped" if view is None else f"{len(view)} bytes"
                raise RuntimeError(
                    f"stoker: shm field {f.name!r} of sample {sample.key!r}: [{off}, +{n}) outside {what} ({size})"
                )
            out[f.name] = view[off : off + n]
        return out

    def region_bytes(self, offset: int, length: int, what: str) -> memoryview:
        """``length`` bytes at ``offset`` of the stream's region (a
        pipeline's tensor), valid as long as the batch's lease."""
        if self._view is None or offset + length > len(self._view):
            size = "not mapped" if self._view is None else f"{len(self._view)} bytes"
            raise RuntimeError(f"stoker: shm {what}: [{offset}, +{length}) outside the region ({size})")
        return self._view[offset : offset + length]

    def release(self) -> None:
        """Give the current batch's leases back to the server (first
        closing its extents' files, so the server may evict them); the
        tier's shards they pinned go with them."""
        if self.extents is not None:
            self.extents.close_files()
        if not self._leases:
            return
        ids, self._leases = self._leases, []
        if self.ring is not None and self.ring.release(ids):
            return
        req = loader_pb2.ReleaseShmRequest(region=self.region, leases=ids)
        try:
            self._stub.ReleaseShm(req, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            # NOT_FOUND: the stream ended and the server freed the region with it.
            if not (isinstance(err, grpc.Call) and err.code() == grpc.StatusCode.NOT_FOUND):
                raise

    def close(self) -> None:
        """Drop the region's mapping (views still held keep it alive until
        they go). The tier's mapping is the Client's: it stays."""
        self._leases = []
        self.ring = None
        self.tier, self._tier_view = None, None
        if self.extents is not None:
            self.extents.close()
        if self._pinned is not None:
            _cuda_unregister(self._pinned)
            self._pinned = None
        _unmap(self._map, self._view)
        self._map, self._view = None, None


class ReleaseRing:
    """The release ring at the start of a stream's region
    (``StreamBatchesRequest.shm_release_ring``; server/shm/ring.go has the
    layout): a lease is given back by writing its id and bumping the
    written counter, with no call to the server. One writer per ring:
    calls are serialised by a lock, so any thread of the process may
    release. ``release`` returns False when the ring has no room (the
    server has not read it yet): the caller then uses ReleaseShm.
    ``give_back`` never blocks nor fails: what does not go now is queued
    and written by the next call that can, or, when the ring is full, by
    a timer thread once the server has read it (for :class:`LeaseHold`,
    whose last view may go on any thread, inside a release too). The ring holds
    the mapping, and ``lock`` (the descriptor of the region file's
    shared flock, -1: none) while it lives: the server keeps a region
    whose stream ended while any process holds that lock."""

    _FIRST = 64

    def __init__(self, m: mmap.mmap, size: int, path: str, lock: int = -1) -> None:
        if size < self._FIRST + 8 or size > len(m) or size % 8:
            if lock >= 0:
                os.close(lock)
            raise errors.StokerError(f"stoker: the release ring of {path} has a bad size {size}")
        import numpy as np

        self._mmap = m  # held: the views below need it mapped
        words = np.frombuffer(m, dtype="<u8", count=size // 8)
        self._counters = words[:3]  # written (ours), read (the server's), consumed (ours)
        self._slots = words[self._FIRST // 8 :]
        self.size = size
        self.path = path
        self._lock = threading.Lock()  # guards the written counter and the slots past it
        self._queued: collections.deque[int] = collections.deque()  # ids give_back could not write yet
        self._retry: threading.Timer | None = None  # writes the queue later, while the ring is full
        self._flock = lock

    def __del__(self) -> None:
        if self._flock >= 0:
            os.close(self._flock)  # the lock goes with it
            self._flock = -1

    def release(self, ids: list[int]) -> bool:
        """Write ids to the ring; False (nothing written) when they do not fit."""
        with self._lock:
            ok = self._write(ids) == len(ids)
        self._flush()
        return ok

    def _write(self, ids: list[int], some: bool = False) -> int:
        """Write ids (with some, as many as there is room for) and return
        how many went: all or none without some."""
        c = self._counters
        written, read = int(c[0]), int(c[1])
        slots = self._slots
        n = len(slots)
        room = n - (written - read)
        if read > written or room < (1 if some else len(ids)):
            return 0
        ids = ids[:room]
        for k, lease in enumerate(ids):
            slots[(written + k) % n] = lease
        c[0] = written + len(ids)  # after the slots: the server reads up to it
        return len(ids)

    def give_back(self, ids: list[int]) -> None:
        """Queue ids and write what the ring has room for, without waiting:
        safe from a finaliser on any thread."""
        self._queued.extend(ids)
        self._flush()

    def _flush(self) -> None:
        # Whoever holds the lock writes the queue; an id queued while it
        # is held is seen by the holder's look after it lets go.
        while self._queued:
            if not self._lock.acquire(blocking=False):
                return
            try:
                ids: list[int] = []
                while self._queued:
                    ids.append(self._queued.popleft())
                done = self._write(ids, some=True)
                if done < len(ids):
                    self._queued.extendleft(reversed(ids[done:]))  # no room: the server reads the ring soon
                    if self._retry is None:
                        self._retry = threading.Timer(self._RETRY, self._flush_later)
                        self._retry.daemon = True
                        self._retry.start()
                    return
            finally:
                self._lock.release()

    _RETRY = 0.005  # seconds between writes of a queue the full ring refused (the server reads it every 10 ms)

    def _flush_later(self) -> None:
        with self._lock:
            self._retry = None
        self._flush()

    def consume(self, step: int) -> None:
        """Tell the server the client has every step before ``step`` whole
        and keeps their leases as views until they go (LeaseHold), so it
        never waits on them."""
        self._counters[2] = step

    def pending(self) -> int:
        """Ids written that the server has not read yet, and ids queued."""
        c = self._counters
        return int(c[0]) - int(c[1]) + len(self._queued)


class LeaseHold:
    """Leases of a region that go back through its release ring when
    this object does: every view made by :func:`held_view` with it
    refers to it, so the lease lives as long as the last view. ``disarm``
    hands the ids to someone else (a batch pickled to another process,
    which releases them). Only the process that made it gives them back:
    a forked child's copy goes without a word (its parent's views still
    hold the bytes)."""

    __slots__ = ("ids", "ring", "pid")

    def __init__(self, ring: ReleaseRing, ids: list[int]) -> None:
        self.ring, self.ids, self.pid = ring, ids, os.getpid()

    def disarm(self) -> list[int]:
        ids, self.ids = self.ids, []
        return ids

    def __del__(self) -> None:
        if self.ids and self.pid == os.getpid():
            try:
                self.ring.give_back(self.ids)
            except Exception:  # a finaliser must not raise; the server frees them with the region
                pass


_held_type: Any = None
_frombuffer: Any = None


def held_view(buf: Any, hold: LeaseHold) -> memoryview:
    """A memoryview of the whole of buf (a mapping) that keeps hold alive:
    its exporter is a numpy array carrying it, so every slice of the view,
    and every array or tensor made over one, holds the lease too."""
    global _held_type, _frombuffer
    if _held_type is None:
        import numpy as np

        _frombuffer = np.frombuffer
        _held_type = type("HeldBuffer", (np.ndarray,), {"__doc__": "Bytes of a leased mapping; ``hold`` is the lease."})
    arr = _frombuffer(buf, dtype="u1").view(_held_type)
    arr.hold = hold
    return memoryview(arr)


def lock_region(path: str) -> int:
    """A descriptor holding a shared flock on the region file (-1 where
    it cannot be taken): the server sees the client alive while it is
    open. Not inherited across exec."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return -1
    return fd


class TierMap:
    """The server's memory tier, mapped read-only: ``view`` is the whole
    mapping, ``size`` its length. ``pinned`` says whether it is registered
    with CUDA (asked by a ``shm="pinned"`` stream); ``pin_reason`` says how,
    or why not. Made and closed by :class:`TierMaps`."""

    def __init__(self, path: str, size: int) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                st = os.fstat(fd)
                if st.st_size < size:
                    raise OSError(f"the file has {st.st_size} bytes")
                self._mmap = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
            finally:
                os.close(fd)
        except OSError as err:
            raise RuntimeError(
                f"stoker: cannot map the server's memory tier {path} ({size} bytes): {err} (a shared-memory "
                "client must run on the server's host as a user that may read it; shm_tier=False copies instead)"
            ) from err
        self.path = path
        self.size = size
        self._file = (st.st_dev, st.st_ino)
        self.view = memoryview(self._mmap)
        self.pinned = False
        self.pin_reason = 'not asked for (shm="pinned")'
        self._pin_tried = False
        self._pinned: Any = None  # the array whose address CUDA registered
        self.users = 0  # the open TierMaps that hold it (see _SharedTier)

    def __repr__(self) -> str:
        return f"TierMap({self.path!r}, size={self.size}, pinned={self.pinned})"

    @property
    def map(self) -> mmap.mmap:
        """The mapping itself (slicing it copies: bytes of their own)."""
        return self._mmap

    def is_file(self, path: str, size: int) -> bool:
        """Whether path names the mapped file at this size: the same inode,
        since a server restarted with the same pid (in a container) makes
        a new file under the old name."""
        if path != self.path or size != self.size:
            return False
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._file

    def pin(self) -> None:
        """Register the mapping with CUDA, read-only, on the first call
        (where CUDA is usable); a failure is recorded in pin_reason and the
        mapping stays pageable."""
        if self._pin_tried:
            return
        self._pin_tried = True
        why = _cuda_missing()
        if not why:
            self._pinned, why = _cuda_register(
                self._mmap, _REGISTER_PORTABLE | _REGISTER_READ_ONLY, f"the memory tier {self.path}"
            )
        self.pinned = self._pinned is not None
        self.pin_reason = "cudaHostRegister, read-only and portable" if self.pinned else why
        if not self.pinned:
            _log.warning(
                "stoker shm: memory tier %s not pinned, so copies from it to a GPU are not DMA: %s", self.path, why
            )

    def close(self) -> None:
        """Unregister and unmap; views still held keep the mapping alive
        until they go. Safe to repeat."""
        if self._pinned is not None:
            _cuda_unregister(self._pinned)
            self._pinned, self.pinned = None, False
        _unmap(self._mmap, self.view)


class _SharedTier:
    """The process's mapping of the server's memory tier, shared by every
    Client of the process (the latest file's; a Client still reading an
    older file keeps that one until it moves on): ``map`` and, per
    TierMap, ``users`` (the open TierMaps holding it). A mapping whose
    TierMaps were all dropped without close stays mapped for the
    process's next Client, so a Client made per epoch (a torch dataset
    made anew) finds the tier's pages already mapped instead of faulting
    each in again; close() of the last TierMaps holding it unmaps it.
    ``dropped`` is where a TierMaps' finaliser puts its mapping, without
    a lock (a finaliser may run inside a locked section), to be counted
    out at the next get or close."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards map, every shared TierMap's users, pin and close
        self.pid = os.getpid()
        self.map: TierMap | None = None
        self.dropped: list[TierMap] = []

    def settle(self) -> None:
        """Count out the dropped TierMaps' uses (under lock); a forked
        child starts with none of its parent's."""
        if self.pid != os.getpid():
            self.pid, self.map, self.dropped = os.getpid(), None, []
            return
        while self.dropped:
            try:
                m = self.dropped.pop()
            except IndexError:
                break
            self.leave(m, unmap=False)

    def leave(self, m: TierMap, *, unmap: bool) -> None:
        """One user less of m: with none left, m is unmapped unless it is
        the latest file's mapping and the user was dropped (not closed)."""
        m.users -= 1
        if m.users > 0:
            return
        if m is self.map:
            if not unmap:
                return  # kept for the process's next Client
            self.map = None
        m.close()

    def after_fork(self) -> None:
        """In a forked child: a lock of its own (the parent's may have been
        held by another thread at the fork), and none of the parent's maps."""
        self.lock = threading.Lock()
        self.pid, self.map, self.dropped = os.getpid(), None, []


_shared_tier = _SharedTier()
os.register_at_fork(after_in_child=_shared_tier.after_fork)


class TierMaps:
    """A Client's mapping of the server's memory tier, by path: every
    stream of the Client that is told of the same file shares one mapping,
    and with ``shared`` (the default) so does every Client of the process
    (see _SharedTier: a Client dropped without close leaves the mapping to
    the next); a new file (the server restarted) replaces it, the old one
    unmapped once no Client holds it. Safe for concurrent use."""

    def __init__(self, shared: bool = True) -> None:
        self._lock = threading.Lock()  # guards _current, and an unshared TierMap's pin and close
        self._current: TierMap | None = None
        self._shared = shared
        self._pid = os.getpid()

    @property
    def current(self) -> TierMap | None:
        """The mapping streams use now, if any."""
        return self._current

    def get(self, path: str, size: int, *, pin: bool = False) -> TierMap:
        """The mapping of the tier file at path (mapped on first sight), registered with CUDA when pin."""
        with self._lock:
            if not self._shared:
                m = self._current
                if m is None or not m.is_file(path, size):
                    self._current = None
                    if m is not None:
                        m.close()
                    m = self._current = TierMap(path, size)
                if pin:
                    m.pin()
                return m
            s = _shared_tier
            with s.lock:
                s.settle()
                m = self._current
                if m is None or not m.is_file(path, size):
                    if m is not None:
                        self._current = None
                        s.leave(m, unmap=True)
                    m = s.map
                    if m is None or not m.is_file(path, size):
                        if m is not None and m.users == 0:
                            s.map = None
                            m.close()
                        m = s.map = TierMap(path, size)
                    m.users += 1
                    self._current = m
                if pin:
                    m.pin()
                return m

    def close(self) -> None:
        """Unmap the tier (a shared mapping: once no other Client holds it). Safe to repeat."""
        with self._lock:
            m, self._current = self._current, None
            if m is None:
                return
            if not self._shared:
                m.close()
                return
            with _shared_tier.lock:
                _shared_tier.settle()
                _shared_tier.leave(m, unmap=True)

    def __del__(self) -> None:
        m = getattr(self, "_current", None)
        if m is not None and self._shared and self._pid == os.getpid():  # a forked child's copy: not its mapping
            self._current = None
            try:
                _shared_tier.dropped.append(m)  # no lock in a finaliser: counted out at the next get or close
            except Exception:  # at interpreter exit the module may be gone: the mapping goes with the process
                pass


def _map_region(path: str, size: int) -> tuple[mmap.mmap, bool]:
    """Map a region file, writable when the file allows (torch wants a
    writable buffer), else read-only; and whether it is writable."""
    try:
        fd = os.open(path, os.O_RDWR)
        access = mmap.ACCESS_WRITE
    except PermissionError:
        fd = os.open(path, os.O_RDONLY)
        access = mmap.ACCESS_READ
    try:
        return mmap.mmap(fd, size, access=access), access == mmap.ACCESS_WRITE
    finally:
        os.close(fd)


def _unmap(m: mmap.mmap | None, view: memoryview | None, *, later_from: int | None = None) -> None:
    """Release a mapping's view and close it; where slices of it are still
    alive it is unmapped when they go. A mapping of later_from bytes or
    more (default _UNMAP_LATER_BYTES) is closed by _unmapper's thread:
    unmapping pages costs about 2 us each (130 ms for a memory tier with
    256 MiB touched), which the caller, about to read its next batch,
    should not wait for."""
    if view is not None:
        try:
            view.release()
        except BufferError:
            pass  # exported (np.frombuffer of the whole view)
    if m is None:
        return
    if len(m) >= (_UNMAP_LATER_BYTES if later_from is None else later_from) and _unmapper.put(m):
        return
    _close_map(m)


def _close_map(m: mmap.mmap) -> None:
    try:
        m.close()
    except BufferError:
        pass  # views of it are alive


_UNMAP_LATER_BYTES = 16 << 20  # smaller mappings unmap in well under a millisecond


class _Unmapper:
    """One daemon thread that closes the mappings handed to it (munmap
    runs without the GIL), started on first use; a forked child starts
    without it. drain() waits until every mapping handed over is closed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._q: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    def put(self, m: mmap.mmap) -> bool:
        """Hand m over; False when no thread can be started (the
        interpreter is shutting down), for the caller to close it."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                t = threading.Thread(target=self._run, name="stoker-unmap", daemon=True)
                try:
                    t.start()
                except RuntimeError:
                    return False
                self._thread = t
            self._pending += 1
        self._q.put(m)
        return True

    def _run(self) -> None:
        while True:
            _close_map(self._q.get())
            with self._lock:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every mapping handed over is closed; False on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]


_unmapper = _Unmapper()
os.register_at_fork(after_in_child=_unmapper.after_fork)


def _cuda_missing() -> str:
    """Why CUDA cannot be used here, or "": checked before any CUDA call,
    so a host without a GPU makes none."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    return ""


def _cuda_register(m: mmap.mmap, flags: int, what: str) -> tuple[Any, str]:
    """Page-lock a mapping for CUDA (cudaHostRegister with flags) so copies
    from it to the GPU are DMA: (the array holding its address, "") or
    (None, why not)."""
    import numpy as np
    import torch

    arr = np.frombuffer(m, dtype=np.uint8)  # its address; holds the mapping while registered
    cudart = torch.cuda.cudart()
    rc = cudart.cudaHostRegister(arr.ctypes.data, arr.nbytes, flags)
    if int(rc) == 0:
        return arr, ""
    _clear_cuda_error()
    return None, f"cudaHostRegister of {what} ({arr.nbytes} bytes, flags {flags:#x}) failed: {_cuda_error(cudart, rc)}"


def _cuda_unregister(arr: Any) -> None:
    import torch

    cudart = torch.cuda.cudart()
    rc = cudart.cudaHostUnregister(arr.ctypes.data)
    if int(rc) != 0:
        _clear_cuda_error()
        _log.warning("stoker shm: cudaHostUnregister of %d bytes failed: %s", arr.nbytes, _cuda_error(cudart, rc))


def _cuda_error(cudart: Any, rc: Any) -> str:
    try:
        return f"{cudart.cudaGetErrorString(rc)} ({int(rc)})"
    except Exception:
        return f"error {int(rc)}"


def _clear_cuda_error() -> None:
    """Reset the CUDA runtime's last error after a failed call through
    torch's cudart bindings, which leave it set: torch's next kernel-launch
    check would raise it as its own. The runtime is the libcudart torch
    loaded (dlopen of a loaded path gives the same library)."""
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = [line.split(None, 5)[5].strip() for line in maps if "libcudart.so" in line]
        if paths:
            ctypes.CDLL(paths[0]).cudaGetLastError()
            return
    except (OSError, IndexError, AttributeError) as err:
        _log.warning("stoker shm: cannot reset CUDA's last error (%s): a later CUDA call may report it", err)
        return
    _log.warning(
        "stoker shm: libcudart is not loaded as a library, so CUDA's last error stays set: "
        "a later CUDA call may report it"
    )


def as_numpy(view: Any, dtype: Any = "uint8") -> Any:
    """A numpy array over a field's bytes (no copy; read-only for a field
    in the memory tier; an Extent is read into host memory first)."""
    import numpy as np

    if isinstance(view, Extent):
        view = view.read()
    return np.frombuffer(view, dtype=dtype)


def as_tensor(view: Any, dtype: Any = None) -> Any:
    """A torch tensor over a field's bytes (no copy; uint8 by default; an
    Extent is read into host memory first: Extent.to_device reads it into
    GPU memory). A field in the memory tier is mapped read-only: copy it
    (``.to(device)``, ``.clone()``), never write to it."""
    if isinstance(view, Extent):
        view = view.read()
    return frombuffer(view, dtype)
