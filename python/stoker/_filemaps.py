"""Read-only mappings of the server's disk-tier files, one cache per process.

On the local path a field whose shard is in the server's disk tier comes
as an extent: a cache file on this host, an offset and a length, valid
while the message's lease (and with it the server's pin of the file)
lives. :func:`part_values` turns a part's extents into memoryview
slices of a ``MAP_SHARED``/``PROT_READ`` mapping of the file (views), or
into ``bytes`` copied out of it.

The invariant this relies on, kept by the server (prefetch/cache/file.go
and cache.go): a disk-tier file is written to a temporary file and
renamed into place, and removed with unlink on eviction; it is never
rewritten in place nor truncated. So the bytes of a mapping of one of
its inodes never change, and stay readable after the file is evicted
(an unlinked inode lives as long as a mapping of it). A path may later
name another file (evicted, then fetched again: a new inode, perhaps
with its data at another offset), so mappings are keyed by
``(st_dev, st_ino)`` from a ``stat`` of the path made while the lease
is held: the file at the path then is the pinned one. Where inotify is
to be had, the folders of mapped files are watched for removals and
renames onto a name (``_DirWatch``), and a path looked at since its
folder was watched is found again without a ``stat`` until an event
names it: one read of the inotify descriptor per part, after its lease,
sees what happened to the part's paths before the server pinned them.

A view refers to its mapping and keeps it alive by itself, past the
lease, the stream and the Client. The process keeps the mappings of
the last :data:`MAX_FILES` files used, at most :data:`MAX_BYTES` of
them (the latest always), so that the next batches of a shard find it
mapped; a mapping leaves that cache when it is the least recently used
past either bound, and as soon as the cache sees that its path no
longer names its inode (the server evicted the file: told by inotify at
the next part, or, unwatched, looked at on each new mapping and on a
lookup at most every :data:`PRUNE_EVERY` seconds). An evicted file's
disk space is therefore held only by mappings still in the cache (in a
process that reads, those evicted since its last part, or without
inotify in about the last second) and by views a user keeps. Each mapping
also holds a descriptor (Python's mmap keeps a dup). A forked child
starts with an empty cache of its own.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import time
from collections import OrderedDict
from itertools import repeat
from operator import add as _add
from operator import gt
from typing import Any

from ._wire import EXTENT, PackedSamples, WireError
from .shm import _unmap

__all__ = ["MAX_BYTES", "MAX_FILES", "PRUNE_EVERY", "FileMap", "FileMaps", "part_values", "process_maps"]

MAX_FILES = 64
"""Disk-tier files a process keeps mapped when no view holds them."""
MAX_BYTES = 4 << 30
"""Bytes of disk-tier files a process keeps mapped when no view holds
them (the most recently used file is kept whatever its size)."""
PRUNE_EVERY = 1.0
"""Seconds between looks, on lookups, for mappings of evicted files."""

_EMPTY = memoryview(b"")


class FileMap:
    """One read-only mapping of a whole disk-tier file: ``map`` (None for
    an empty file), ``size``, and the ``path`` and ``(dev, ino)`` it was
    mapped by. Read it through a view that :meth:`FileMaps.get` gives:
    a mapping the cache drops is closed by the shm module's unmapping
    thread unless a view of it is alive."""

    __slots__ = ("map", "size", "path", "key")

    def __init__(self, m: mmap.mmap | None, size: int, path: str, key: tuple[int, int]) -> None:
        self.map, self.size, self.path, self.key = m, size, path, key

    def _view(self) -> memoryview:
        return memoryview(self.map) if self.map is not None else _EMPTY

    def _drop(self) -> None:
        """Out of the cache: the shm module's unmapping thread closes the
        mapping unless views of it are alive, when it goes with the last
        of them. Not the caller: a shard file read through is mapped
        whole, and unmapping a few dozen of them (a trainer's previous
        server's, a folder the server removed) took a warm epoch's time."""
        _unmap(self.map, None, later_from=0)


class FileMaps:
    """A process's mappings of disk-tier files by inode, least recently
    used first (see the module doc). Safe for concurrent use."""

    def __init__(
        self,
        max_files: int = MAX_FILES,
        max_bytes: int = MAX_BYTES,
        prune_every: float = PRUNE_EVERY,
        *,
        watch: bool = True,
    ) -> None:
        self.max_files, self.max_bytes, self.prune_every = max_files, max_bytes, prune_every
        self._pruned = time.monotonic()  # the last look for mappings of evicted files
        self._lock = threading.Lock()  # guards _maps and _bytes
        self._maps: OrderedDict[tuple[int, int], FileMap] = OrderedDict()
        # Paths whose folder is watched, by the mapping they named when
        # looked at: nothing has removed or replaced them since (_drain).
        self._known: dict[str, FileMap] = {}
        self._watch: _DirWatch | None = None  # made on first use, unless _unwatched
        self._unwatched = not watch  # no inotify: not asked for, or not to be had
        self._bytes = 0
        self.pid = os.getpid()

    def __len__(self) -> int:
        return len(self._maps)

    def keys(self) -> list[tuple[int, int]]:
        """The (dev, ino) of the files mapped, least recently used first."""
        with self._lock:
            return list(self._maps)

    def get(self, path: str, *, drained: bool = False) -> tuple[FileMap, memoryview]:
        """The mapping of the file path names now (which the caller's
        lease pins) and a view of the whole of it, which keeps it mapped.
        An OSError names the path. drained says the caller called
        :meth:`drain` after its lease was taken (get_many does, once
        per part): a path whose folder is watched and that nothing has
        happened to since it was mapped is then found without a system
        call."""
        with self._lock:
            if not drained:
                self._drain_locked()
            fm = self._known.get(path)
            if fm is not None:
                self._maps.move_to_end(fm.key)
                return fm, fm._view()
        watched = self._watch_folder(path)
        try:
            st = os.stat(path)
        except OSError as err:
            raise OSError(err.errno, f"stoker: cannot read the disk-tier file {path}: {err.strerror}") from None
        key = (st.st_dev, st.st_ino)
        with self._lock:
            fm = self._maps.get(key)
            if fm is not None:
                self._maps.move_to_end(key)
                if watched and fm.path == path:
                    self._known[path] = fm
                if time.monotonic() - self._pruned >= self.prune_every:
                    self._prune_stale()
                return fm, fm._view()
        fm = _map_file(path)  # outside the lock: a system call per page table, not per byte
        with self._lock:
            had = self._maps.get(fm.key)
            if had is not None:  # another thread mapped it first
                self._maps.move_to_end(fm.key)
                fm._drop()
                return had, had._view()
            self._prune_stale()
            self._maps[fm.key] = fm
            self._bytes += fm.size
            if watched and fm.key == key:
                self._known[path] = fm
            view = fm._view()
            while len(self._maps) > 1 and (len(self._maps) > self.max_files or self._bytes > self.max_bytes):
                _, old = self._maps.popitem(last=False)
                self._forget_locked(old)
            return fm, view

    def get_many(self, paths: list[str]) -> list[tuple[FileMap, memoryview]]:
        """:meth:`get` of each path, after one :meth:`drain`: the paths of
        one part, each named once, looked up under one lock (the usual
        part names files already mapped; the others are mapped as get
        does). Call after the part's lease is taken."""
        out: list[Any] = []
        with self._lock:
            self._drain_locked()
            known, maps = self._known, self._maps
            for path in paths:
                fm = known.get(path)
                if fm is None:
                    out.append(path)
                    continue
                maps.move_to_end(fm.key)
                out.append((fm, fm._view()))
        for i, x in enumerate(out):
            if isinstance(x, str):
                out[i] = self.get(x, drained=True)
        return out

    def drain(self) -> None:
        """Take in what happened in the watched folders since the last
        call (one read of the inotify descriptor): a path that was
        removed, or renamed onto, is looked at again on its next get."""
        with self._lock:
            self._drain_locked()

    def _drain_locked(self) -> None:
        w = self._watch
        if w is None or not self._known:
            return
        changed = w.changed()
        if changed is None:  # the queue overflowed, or a folder went: look at everything again
            self._known.clear()
            return
        for path in changed:
            fm = self._known.pop(path, None)
            if fm is not None and self._maps.get(fm.key) is fm:
                # Its file was evicted: the mapping only holds disk space.
                del self._maps[fm.key]
                self._forget_locked(fm)

    def _forget_locked(self, fm: FileMap) -> None:
        """fm left _maps: count it out, and close it unless views hold it."""
        self._bytes -= fm.size
        if self._known.get(fm.path) is fm:
            del self._known[fm.path]
        fm._drop()

    def _watch_folder(self, path: str) -> bool:
        """Watch path's folder (once), before path is looked at, so that
        whatever happens to it from then on is seen; False where inotify
        cannot be had (then every get looks at the path)."""
        with self._lock:
            if self._watch is None and not self._unwatched:
                self._watch = _DirWatch.open()
                self._unwatched = self._watch is None
            w = self._watch
            return w is not None and w.watch(os.path.dirname(path))

    def _prune_stale(self) -> None:
        """Drop the mappings whose path names another file or none (the
        server evicted them): no extent can name them again, and only the
        views still held keep their disk space. Under _lock."""
        self._pruned = time.monotonic()
        for key, fm in list(self._maps.items()):
            if self._known.get(fm.path) is fm:
                continue  # watched, and nothing has happened to its path
            try:
                st = os.stat(fm.path)
                live = (st.st_dev, st.st_ino) == key
            except OSError:
                live = False
            if not live:
                del self._maps[key]
                self._forget_locked(fm)

    def clear(self) -> None:
        """Forget every mapping (views still held keep theirs)."""
        with self._lock:
            for fm in self._maps.values():
                fm._drop()
            self._maps.clear()
            self._known.clear()
            self._bytes = 0

    def after_fork(self) -> None:
        """In a forked child: a lock of its own (the parent's may have
        been held by another thread at the fork), none of the parent's
        mappings (which it drops: views made before the fork keep theirs)
        and an inotify descriptor of its own (the parent's copy would
        take the parent's events)."""
        self._lock = threading.Lock()
        self._maps = OrderedDict()
        self._known = {}
        self._bytes = 0
        if self._watch is not None:
            self._watch.close()
        self._watch = None
        self.pid = os.getpid()


class _DirWatch:
    """An inotify descriptor watching the folders of mapped files for the
    removal of a file and for a file renamed onto a name: what makes a path
    name another file (the server evicts with unlink, and writes a file
    under a temporary name, then renames it into place). An event is
    queued by the system call that causes it, so one read after a lease
    is taken sees everything that happened to the leased files' paths
    before the server pinned them."""

    MASK = 0x200 | 0x40 | 0x80 | 0x400 | 0x800  # IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO, IN_DELETE_SELF, IN_MOVE_SELF
    OVERFLOW, IGNORED = 0x4000, 0x8000  # IN_Q_OVERFLOW, IN_IGNORED
    MAX_DIRS = 16

    def __init__(self, fd: int, add: Any) -> None:
        self.fd, self._add = fd, add
        self.dirs: dict[int, str] = {}  # by watch descriptor
        self.wds: dict[str, int] = {}

    @classmethod
    def open(cls) -> _DirWatch | None:
        """A watch, or None where inotify is not to be had (not Linux,
        no libc, the per-user limit reached)."""
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            init, add = libc.inotify_init1, libc.inotify_add_watch
        except (OSError, AttributeError):
            return None
        add.argtypes, add.restype = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32], ctypes.c_int
        fd = init(os.O_NONBLOCK | os.O_CLOEXEC)
        return cls(fd, add) if fd >= 0 else None

    def watch(self, folder: str) -> bool:
        """Watch folder (once); False when it cannot be."""
        if folder in self.wds:
            return True
        if len(self.wds) >= self.MAX_DIRS:
            return False
        wd = self._add(self.fd, os.fsencode(folder), self.MASK)
        if wd < 0:
            return False
        self.wds[folder], self.dirs[wd] = wd, folder
        return True

    def changed(self) -> set[str] | None:
        """The paths removed or renamed onto since the last call; None when
        events were lost or a watched folder went (look at everything)."""
        out: set[str] = set()
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return out
            except OSError:
                return None
            i = 0
            while i + 16 <= len(buf):
                wd, mask, _, n = _EVENT.unpack_from(buf, i)
                name = buf[i + 16 : i + 16 + n].split(b"\0", 1)[0]
                i += 16 + n
                if mask & (self.OVERFLOW | self.IGNORED | 0x400 | 0x800):
                    if mask & self.IGNORED:  # the folder went: its watch with it
                        folder = self.dirs.pop(wd, None)
                        if folder is not None:
                            self.wds.pop(folder, None)
                    return None
                folder = self.dirs.get(wd)
                if folder is not None and name:
                    out.add(os.path.join(folder, os.fsdecode(name)))

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)


def _map_file(path: str) -> FileMap:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise OSError(err.errno, f"stoker: cannot read the disk-tier file {path}: {err.strerror}") from None
    try:
        st = os.fstat(fd)
        size = st.st_size
        m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ) if size > 0 else None
    except OSError as err:
        raise OSError(err.errno, f"stoker: cannot map the disk-tier file {path}: {err.strerror}") from None
    finally:
        os.close(fd)
    return FileMap(m, size, path, (st.st_dev, st.st_ino))


_process: FileMaps = FileMaps()
os.register_at_fork(after_in_child=_process.after_fork)


def process_maps() -> FileMaps:
    """This process's mappings of disk-tier files."""
    return _process


_NO_END = 1 << 66  # past any field's end: a buffer PackedSamples.check has checked
_FILE0 = 4  # part_values' index of a part's first file among its sources


def part_values(t: PackedSamples, bufs: tuple[Any, Any, Any], as_bytes: bool) -> list[Any]:
    """Every field's value of a part with extents, in table order: a
    slice of bufs[kind] (the message's data, the region, the tier; their
    ranges checked by PackedSamples.check) or, for an extent, of the
    mapping of its file: a memoryview, or (as_bytes) bytes copied out of
    it. Each file of the part is looked up once, each extent's range
    checked against its file (WireError naming it): the check is one
    ``map`` over the fields, the values one comprehension. Call while the
    part's lease is held."""
    kinds, fps = t.kinds, t.field_paths
    got = _process.get_many(t.paths)  # after the lease, in one lock: see FileMaps.get_many
    # Sources by index: the three buffers, then one per file (index 4 + path).
    srcs: list[Any] = [*bufs, None]
    srcs += [(fm.map if fm.map is not None else b"") if as_bytes else view for fm, view in got]
    if len(t.present) == 1:  # extents alone
        idx: list[int] = list(map(_add, fps, repeat(_FILE0)))
    else:  # kind, or 4 + path for an extent
        idx = [k if k != EXTENT else _FILE0 + p for k, p in zip(kinds, fps, strict=True)]
    sizes = [_NO_END] * 4 + [fm.size for fm, _ in got]
    stops = t.stops
    if any(map(gt, stops, map(sizes.__getitem__, idx))):
        # A range past its file, or (not an error) a field of no bytes
        # at an offset past it: sort them out field by field.
        lengths = t.lengths
        for j, i in enumerate(idx):
            if i >= _FILE0 and lengths[j] and stops[j] > sizes[i]:
                n = lengths[j]
                raise WireError(
                    f"sample_table: the extent [{stops[j] - n}, +{n}) of {t.paths[i - _FILE0]} "
                    f"runs past the file ({sizes[i]} bytes)"
                )
        empty = b"" if as_bytes else _EMPTY
        return [
            empty if i >= _FILE0 and not n else srcs[i][o:e]
            for i, o, e, n in zip(idx, t.offsets, stops, lengths, strict=True)
        ]
    return [srcs[i][o:e] for i, o, e in zip(idx, t.offsets, stops, strict=True)]
