"""Batches of a packed stream, assembled lazily.

A packed step (see :mod:`stoker._wire`) is kept as the tables of its
messages and the buffers their fields lie in: the message's own bytes, the
stream's shm region, the server's shared memory tier. Nothing is built per
sample until it is asked for: :meth:`PackedBatch.samples` makes
:class:`stoker.Sample` objects, :meth:`PackedBatch.dicts` the
webdataset-style dicts the torch dataset yields.

``copy`` says what a field is: True, ``bytes`` of its own (from an mmap
or the message's bytes, one copy), which outlive the stream; False, a
memoryview into the buffer. With shared memory and a release ring each
part's lease is a :class:`stoker.shm.LeaseHold` that its views refer
to: they stay valid as long as they are referenced, past the stream's
end, and the lease goes back when the last one goes; without a ring
they are valid until the stream's next batch is asked for.

A :class:`SampleBatch` is one batch as the torch dataset yields it with
``batched=True``. Pickled inside a DataLoader worker while its bytes are
still in shared memory, it travels as a handle (the files, offsets and
lease ids, a few KiB), and the process that unpickles it copies the bytes
out of its own mapping of the same files and gives the leases back
through the region's release ring: the batch's bytes cross no pipe. With
``views`` the receiver makes lease-held views instead of copies, and
views of its own mappings of the disk tier's files (stoker._filemaps),
which need no lease once made.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from . import errors
from ._filemaps import part_values
from ._wire import DATA, EXTENT, REGION, TIER, PackedSamples, WireError, parse
from .gds import Extent, ExtentReader
from .pipeline import ReadyAssembler
from .shm import LeaseHold, ReleaseRing, TierMaps, _map_region, held_view, lock_region
from .types import Batch, Cursor, Sample

__all__ = ["Part", "PackedBatch", "SampleBatch", "read_stream"]

_EMPTY_VIEW = memoryview(b"")


class Part:
    """One message of a step: its table, and its bytes where sample_data
    starts (fields of kind DATA are at data_at + offset of raw)."""

    __slots__ = ("table", "raw", "data_at", "data_len", "lease", "hold")

    def __init__(self, table: PackedSamples, raw: bytes, data_at: int, data_len: int, lease: int | None) -> None:
        self.table, self.raw, self.data_at, self.data_len, self.lease = table, raw, data_at, data_len, lease
        self.hold: LeaseHold | None = None  # its lease, when its views hold it


class Sources:
    """The buffers a stream's fields point into: the region's and the
    tier's mappings (None when the stream has none) and the extents'
    reader; and the files behind them, for a handoff."""

    __slots__ = (
        "region",
        "region_path",
        "region_size",
        "ring",
        "tier",
        "tier_path",
        "tier_size",
        "extents",
        "map_extents",
    )

    def __init__(self) -> None:
        self.region: mmap.mmap | None = None
        self.region_path, self.region_size, self.ring = "", 0, 0
        self.tier: mmap.mmap | None = None
        self.tier_path, self.tier_size = "", 0
        self.extents: ExtentReader | None = None
        self.map_extents = False  # extents are views of the files' mappings (bytes with copy), not Extents

    def sizes(self) -> dict[int, int | None]:
        return {
            REGION: len(self.region) if self.region is not None else None,
            TIER: len(self.tier) if self.tier is not None else None,
        }


class PackedBatch:
    """The samples of one step of a packed stream (see the module doc)."""

    __slots__ = ("parts", "src", "copy", "n", "_samples_cache", "_rows", "handed_off", "views")

    def __init__(self, parts: list[Part], src: Sources, copy: bool) -> None:
        self.parts, self.src, self.copy = parts, src, copy
        self.n = sum(p.table.n for p in parts)
        self._samples_cache: list[Any] | None = None
        self._rows: list[tuple[str, int, int, dict[str, Any]]] | None = None
        self.handed_off = False  # its leases belong to whoever unpickles it
        self.views = False  # handed off: the receiver makes lease-held views, not copies

    def leases(self) -> list[int]:
        return [p.lease for p in self.parts if p.lease is not None]

    def _values(self, part: Part) -> list[Any]:
        """Every field's value of one part, in table order: a slice of its
        kind's buffer (offsets checked against it by PackedSamples.check)."""
        t, src, copy = part.table, self.src, self.copy
        present = t.present
        data: Any = memoryview(part.raw)[part.data_at : part.data_at + part.data_len]
        region: Any = src.region if REGION in present else None
        tier: Any = src.tier if TIER in present else None
        if not copy:  # one view per mapping and part, sliced per field
            hold = part.hold
            if hold is not None:  # views that hold the part's lease
                region = held_view(region, hold) if region is not None else None
                tier = held_view(tier, hold) if tier is not None else None
            else:
                region = memoryview(region) if region is not None else None
                tier = memoryview(tier) if tier is not None else None
        empty = _EMPTY_VIEW if not copy else b""  # a kind with no buffer has only fields of no bytes
        bufs = (data, region if region is not None else empty, tier if tier is not None else empty, empty)
        mapped = EXTENT in present and (copy or src.map_extents)
        if mapped:
            # Views of (or, copy, bytes out of) the process's mappings of
            # the disk tier's files (stoker._filemaps), looked up now,
            # while the part's lease pins them; the other kinds sliced in
            # the same pass.
            out: list[Any] = part_values(t, bufs[:3], as_bytes=copy)
        elif len(present) == 1 and EXTENT not in present:
            buf = bufs[t.kinds[0]]
            out = [buf[o:e] for o, e in zip(t.offsets, t.stops, strict=True)]
        else:
            out = [bufs[k][o:e] for k, o, e in zip(t.kinds, t.offsets, t.stops, strict=True)]
        if copy and DATA in present:
            if len(present) == 1:
                out = list(map(bytes, out))
            else:
                out = [bytes(v) if k == DATA else v for k, v in zip(t.kinds, out, strict=True)]
        if EXTENT in present and not mapped:
            if src.extents is None:
                raise RuntimeError("stoker: a field is an extent, but the stream did not ask for gds")
            for j, kind in enumerate(t.kinds):  # gds: Extents, read by their holder
                if kind == EXTENT:
                    path = t.paths[t.field_paths[j]]
                    out[j] = Extent(path, t.offsets[j], t.lengths[j], src.extents)
        return out

    def dicts(self, urls: tuple[str, ...], first: int = 0) -> list[dict[str, Any]]:
        """The samples from first on as webdataset dicts, made from the
        tables now (views: each call makes its own; copies go through
        rows, made once)."""
        if self.copy or self._rows is not None:
            return _dicts_of_rows(self.rows(), urls, first)
        out: list[dict[str, Any]] = []
        for part in self.parts:
            t = part.table
            if first >= t.n:
                first -= t.n
                continue
            out.extend(_part_dicts(t, self._values(part), urls, first))
            first = 0
        return out

    def rows(self) -> list[tuple[str, int, int, dict[str, Any]]]:
        """(key, position, shard, fields) of each sample, in order, made
        once (so a copy made while the bytes were leased is the one every
        later reader gets)."""
        if self._rows is None:
            rows: list[tuple[str, int, int, dict[str, Any]]] = []
            add = rows.append
            for part in self.parts:
                t = part.table
                values, names, firsts, keys, positions, shards = (
                    self._values(part),
                    t.names,
                    t.firsts,
                    t.keys,
                    t.positions,
                    t.shards,
                )
                for i in range(t.n):
                    a, b = firsts[i], firsts[i + 1]
                    add((keys[i], positions[i], shards[i], dict(zip(names[a:b], values[a:b], strict=True))))
            self._rows = rows
        return self._rows

    def samples(self) -> list[Any]:
        """The samples as stoker.Sample, made once."""
        if self._samples_cache is None:
            self._samples_cache = [Sample(k, p, s, f) for k, p, s, f in self.rows()]
        return self._samples_cache

    def materialize(self) -> None:
        """Make the rows now, while the bytes they copy are leased."""
        self.rows()


def dicts_of(batch: PackedBatch, urls: tuple[str, ...], first: int = 0) -> list[dict[str, Any]]:
    """The samples from first on as webdataset dicts (``__key__``,
    ``__url__``, fields)."""
    return batch.dicts(urls, first)


def _dicts_of_rows(rows: list[tuple[str, int, int, dict[str, Any]]], urls: tuple[str, ...], first: int) -> list[Any]:
    out: list[dict[str, Any]] = []
    add = out.append
    nurls = len(urls)
    for key, _, shard, fields in rows[first:] if first else rows:
        d = {"__key__": key, "__url__": urls[shard]} if shard < nurls else {"__key__": key}
        d.update(fields)
        add(d)
    return out


def _part_dicts(t: PackedSamples, values: list[Any], urls: tuple[str, ...], first: int) -> list[Any]:
    """One part's samples from first on as webdataset dicts. Where every
    sample has the same fields (the usual table) and a url, one dict
    display per sample (see _builder); else field ranges one by one."""
    n, keys, shards, names, firsts = t.n, t.keys, t.shards, t.names, t.firsts
    k = firsts[1] if n else 0
    if (
        0 < k <= _BUILDERS_MAX
        and len(names) == n * k
        and max(shards) < len(urls)
        and firsts == list(range(0, n * k + 1, k))
        and names == names[:k] * n
    ):
        us = [urls[s] for s in shards[first:]]
        cols = [values[first * k + j :: k] for j in range(k)]
        return _builder(k)(keys[first:] if first else keys, us, names[:k], cols)
    out: list[dict[str, Any]] = []
    add = out.append
    nurls = len(urls)
    for i in range(first, n):
        a, b, sh = firsts[i], firsts[i + 1], shards[i]
        d = {"__key__": keys[i], "__url__": urls[sh]} if sh < nurls else {"__key__": keys[i]}
        d.update(zip(names[a:b], values[a:b], strict=True))
        add(d)
    return out


_BUILDERS_MAX = 32  # fields per sample that get a builder of their own
_builders: dict[int, Callable[..., list[Any]]] = {}


def _builder(k: int) -> Callable[..., list[Any]]:
    """A function (keys, urls, names, columns) -> the dicts of samples of
    k > 0 fields each, one dict display per sample: made from a fixed
    template in which only k varies (nothing from the wire is code)."""
    fn = _builders.get(k)
    if fn is None:
        vs = [f"v{j}" for j in range(k)]
        ns = [f"n{j}" for j in range(k)]
        unpack = f"    {', '.join(ns)}, = names\n"
        items = "".join(f", {a}: {b}" for a, b in zip(ns, vs, strict=True))
        targets = "".join(f"{v}, " for v in vs)
        src = (
            "def build(keys, urls, names, cols):\n"
            + unpack
            + f"    return [{{'__key__': kk, '__url__': u{items}}} for kk, u, {targets}in zip(keys, urls, *cols)]\n"
        )
        scope: dict[str, Any] = {}
        exec(src, scope)  # noqa: S102 - a template of k alone
        fn = _builders[k] = scope["build"]
    return fn


class SampleBatch:
    """One batch of the torch dataset's ``batched=True``: a sequence of
    webdataset-style sample dicts, made on first use (from a step's
    PackedBatch, or cut from another SampleBatch's: StokerDataset's merged
    steps, whose dicts are made once for all their batches). It is not a list
    (nor registered as a Sequence), so a DataLoader with
    ``batch_size=None`` hands it over as it is; ``list(batch)`` makes
    one. See the module doc for how it crosses from a DataLoader worker."""

    __slots__ = ("_packed", "_urls", "_first", "_dicts", "_decode", "_cut")

    def __init__(
        self,
        packed: PackedBatch | None,
        urls: tuple[str, ...],
        first: int = 0,
        dicts: list[Any] | None = None,
        decode: Callable[[dict[str, Any]], Any] | None = None,
        cut: tuple[SampleBatch, int, int] | None = None,
    ) -> None:
        self._packed, self._urls, self._first, self._dicts, self._decode = packed, urls, first, dicts, decode
        self._cut = cut

    def _items(self) -> list[Any]:
        if self._dicts is None:
            if self._cut is not None:
                whole, lo, hi = self._cut
                d = whole._items()[lo:hi]
                self._cut = None
            else:
                assert self._packed is not None
                d = dicts_of(self._packed, self._urls, self._first)
            self._dicts = [self._decode(x) for x in d] if self._decode is not None else d
        return self._dicts

    def __len__(self) -> int:
        if self._dicts is not None:
            return len(self._dicts)
        if self._cut is not None:
            return self._cut[2] - self._cut[1]
        assert self._packed is not None
        return self._packed.n - self._first

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items())

    def __getitem__(self, i: Any) -> Any:
        return self._items()[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SampleBatch):
            other = other._items()
        return self._items() == other

    def __repr__(self) -> str:
        return f"SampleBatch({len(self)} samples)"

    def __reduce__(self) -> Any:
        p = self._packed
        if self._dicts is None and p is not None and p.handed_off:
            for x in p.parts:
                if x.hold is not None:
                    x.hold.disarm()  # the receiver gives them back
            src = p.src
            parts = [(bytes(x.table.raw_table), x.raw[x.data_at : x.data_at + x.data_len]) for x in p.parts]
            return _unpickle_handoff, (
                src.region_path,
                src.region_size,
                src.ring,
                src.tier_path,
                src.tier_size,
                p.leases(),
                parts,
                self._urls,
                self._first,
                p.views,
            )
        return _unpickle_plain, (self._items(),)


def _unpickle_plain(dicts: list[Any]) -> SampleBatch:
    return SampleBatch(None, (), dicts=dicts)


class _Mappings:
    """What a process that unpickles handed-off batches maps: the tier
    (one mapping per file, as a Client's) and the regions' first pages
    for their rings, the last few regions kept. Safe for concurrent use."""

    KEEP = 16  # regions kept mapped: a few streams' worth (DataLoader workers x epochs in flight)

    def __init__(self) -> None:
        self.tiers = TierMaps(shared=False)  # its own: kept for as long as the process
        self._lock = threading.Lock()  # guards _regions
        self._regions: OrderedDict[str, tuple[mmap.mmap, ReleaseRing | None]] = OrderedDict()
        self._pid = os.getpid()

    def region(self, path: str, size: int, ring: int) -> tuple[mmap.mmap, ReleaseRing | None]:
        with self._lock:
            got = self._regions.get(path)
            if got is not None:
                self._regions.move_to_end(path)
                return got
            try:
                m, writable = _map_region(path, size)
            except OSError as err:
                raise errors.StokerError(
                    f"stoker: cannot map the shm region {path} of a DataLoader worker's stream: {err}"
                ) from err
            got = (m, ReleaseRing(m, ring, path, lock_region(path)) if ring and writable else None)
            self._regions[path] = got
            while len(self._regions) > self.KEEP:
                self._regions.popitem(last=False)  # its mapping goes with its last view
            return got


_mappings: _Mappings | None = None
_mappings_lock = threading.Lock()


def _process_mappings() -> _Mappings:
    """This process's mappings for handed-off batches (a forked child
    makes its own)."""
    global _mappings
    with _mappings_lock:
        if _mappings is None or _mappings._pid != os.getpid():
            _mappings = _Mappings()
        return _mappings


def _unpickle_handoff(
    region_path: str,
    region_size: int,
    ring: int,
    tier_path: str,
    tier_size: int,
    leases: list[int],
    parts: list[tuple[bytes, bytes]],
    urls: tuple[str, ...],
    first: int,
    views: bool = False,
) -> SampleBatch:
    """A handed-off batch in the process that receives it: its bytes
    copied out of this process's mappings, then its leases given back;
    with views, lease-held views into those mappings instead."""
    maps = _process_mappings()
    src = Sources()
    region, rring = maps.region(region_path, region_size, ring) if region_path else (None, None)
    src.region = region
    if tier_path:
        src.tier = maps.tiers.get(tier_path, tier_size).map
    tables = [PackedSamples(memoryview(t)) for t, _ in parts]
    # The disk tier's files are mapped here (stoker._filemaps) while the
    # leases, and with them the server's pins of the files, are not given back.
    src.map_extents = True
    if views and rring is not None:
        hold = LeaseHold(rring, leases)
        held = PackedBatch(
            [Part(t, d, 0, len(d), None) for t, (_, d) in zip(tables, parts, strict=True)], src, copy=False
        )
        for p in held.parts:
            p.hold = hold
            p.table.check({**src.sizes(), DATA: len(p.raw)})
        return SampleBatch(held, urls, first)
    # Copies (fields of the disk tier's files among them: copied here, now).
    batch = PackedBatch([Part(t, d, 0, len(d), None) for t, (_, d) in zip(tables, parts, strict=True)], src, copy=True)
    for p in batch.parts:
        p.table.check({**src.sizes(), DATA: len(p.raw)})
    dicts = dicts_of(batch, urls, first)
    if leases:
        if rring is None or not _release_blocking(rring, leases):
            raise errors.StokerError(
                f"stoker: cannot give back {len(leases)} leases of the shm region {region_path}: "
                "it has no release ring this process can write"
            )
    return SampleBatch(None, urls, dicts=dicts)


def _release_blocking(ring: ReleaseRing, ids: list[int], timeout: float = 60.0) -> bool:
    """Write ids to the ring, waiting (the server reads it at its next
    message, or every millisecond while it waits for room) while it is full."""
    deadline = time.monotonic() + timeout
    while not ring.release(ids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)  # the server's next look at the ring
    return True


def _sources(shm: Any) -> Sources:
    """A stream's buffers, from its ShmReader (None: the bytes travel in
    the messages)."""
    src = Sources()
    if shm is not None:
        src.region = shm.map
        src.region_path, src.region_size = shm.path, shm.size
        src.ring = shm.ring.size if shm.ring is not None else 0
        if shm.tier is not None:
            src.tier, src.tier_path, src.tier_size = shm.tier.map, shm.tier.path, shm.tier.size
        src.extents = shm.extents
        src.map_extents = shm.map_extents
    return src


def read_stream(
    call: Iterator[bytes],
    pending: list[Any],
    shm: Any,
    copy: bool,
    error_of: Callable[[Any, BaseException], BaseException],
) -> Iterator[Any]:
    """Put the messages of each step back together into Batches.
    ``pending`` holds what a step still in progress has, so the caller can
    tell a stream that stopped inside a step. ``shm`` is the stream's
    ShmReader; ``error_of(call, err)`` is the error to raise when a
    message cannot be taken in (the server's own, if one follows)."""
    messages = 0
    arrow: list[bytes] = []
    row_shards: list[int] = []
    first: int | None = None
    legacy: list[Any] = []  # Sample messages of a server that does not pack
    ready: Any = None  # a pipeline stream's tensors (stoker.pipeline.ReadyAssembler)
    src: Sources | None = None
    for raw in call:
        m = parse(raw)
        pb = m.pb
        try:
            if shm is not None:
                if shm.ring is not None:
                    shm.ring.give_back([])  # what finalisers queued
                if pb is not None:
                    shm.receive(pb)
                else:
                    shm.take(m.region, m.tier, m.lease[0] if m.lease is not None else None)
                if (
                    src is None
                    or (src.region is None and shm.map is not None)
                    or (src.tier is None and shm.tier is not None)
                ):
                    src = _sources(shm)
            if pb is None and m.table is not None:
                if src is None:
                    src = _sources(None)
                t = PackedSamples(m.table)
                t.check({**src.sizes(), DATA: m.data[1] - m.data[0]})
                pending.append(Part(t, raw, m.data[0], m.data[1] - m.data[0], m.lease[0] if m.lease else None))
        except (WireError, errors.StokerError, RuntimeError, OSError) as err:
            # A stream the server failed takes its region file with it,
            # so a client behind on its messages cannot map it: the
            # server's error, if one follows, is the one that says why.
            raise error_of(call, err) from None
        if pb is not None:
            legacy.extend(pb.samples)
            pending.extend(pb.samples)
            if pb.tensors:
                if ready is None:
                    ready = ReadyAssembler()
                ready.add(pb, shm)
            if pb.arrow_ipc:
                if first is None:
                    first = pb.first_position
                arrow.append(pb.arrow_ipc)
                row_shards.extend(pb.row_shards)
            final, epoch, step, rank = pb.final, pb.epoch, pb.step, pb.rank
            cursor = (pb.cursor.epoch, pb.cursor.position, pb.cursor.plan_version)
        else:
            final, epoch, step, rank = m.final, m.epoch, m.step, m.rank
            cursor = m.cursor or (0, 0, 0)
        messages += 1
        if not final:
            continue
        parts = [p for p in pending if isinstance(p, Part)]
        samples = None
        if ready is not None:
            samples = [Sample(s.key, s.position, s.shard, {}) for s in legacy]
        elif legacy:
            if shm is not None:
                samples = [Sample(s.key, s.position, s.shard, shm.fields(s)) for s in legacy]
                if copy:
                    for smp in samples:
                        smp.fields = {k: v if isinstance(v, Extent) else bytes(v) for k, v in smp.fields.items()}
            else:
                samples = [Sample(s.key, s.position, s.shard, {f.name: f.data for f in s.fields}) for s in legacy]
        elif not parts:
            samples = []
        packed = PackedBatch(parts, src if src is not None else _sources(None), copy) if parts and not legacy else None
        pending.clear()
        # Extents handed out are read later by their holder, with no hold
        # of the lease: only a stream whose extents are read here (mapped,
        # while the part's hold lives) lets views hold leases.
        ring = shm.ring if shm is not None and (shm.extents is None or shm.map_extents) else None
        if packed is not None and not copy and ring is not None:
            # Views hold their leases (stoker.shm.LeaseHold): the stream
            # no longer gives them back, and the server, told the step is
            # the client's, never waits for them.
            shm.take_leases()
            for p in parts:
                if p.lease is not None:
                    p.hold = LeaseHold(ring, [p.lease])
            ring.consume(step + 1)
        yield Batch(
            epoch=epoch,
            step=step,
            rank=rank,
            samples=samples,
            cursor=Cursor(*cursor),
            parts=messages,
            arrow_ipc=arrow,
            row_shards=row_shards,
            first_position=first,
            packed=packed,
            ready=ready.finish() if ready is not None else None,
        )
        messages, arrow, row_shards, first, legacy, ready = 0, [], [], None, [], None
        parts, packed, samples = [], None, None  # held views go when the caller lets go of them
