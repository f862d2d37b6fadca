"""Views of the server's disk tier (stoker._filemaps): with the torch
dataset's views (shm="views") a field whose shard is in the disk tier is a
memoryview of a read-only mapping of the tier's file, which stays right
after the server evicts the file and after the stream and the Client
close; a path made anew (a new inode) is mapped anew; a range past its
file is a WireError; a DataLoader worker's batches become views in the
main process too; copy=True still gives bytes. Every byte is checked
against a TCP read of the same epoch."""

from __future__ import annotations

import gc
import mmap
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from check import assert_exactly_once
from servers import S3Server, Stokerd
from test_shm import poll
from test_shm_tier import address, stop, tier_stokerd, tier_url  # noqa: F401 (fixtures)
from torch.utils.data import DataLoader

import stoker
from stoker import _filemaps, _wire
from stoker._stream import PackedBatch, Part, SampleBatch, Sources
from stoker.gds import ExtentReader
from stoker.torch import StokerDataset

Fields = dict[str, bytes]


def tcp_epoch(srv: Stokerd, url: str, **kw: Any) -> dict[str, Fields]:
    with stoker.Client(srv.address, local=False) as tcp:
        return {s.key: dict(s.fields) for b in tcp.stream(url, **kw) for s in b.samples}


def backing(view: Any) -> str:
    """The file (as /proc/self/maps names it, " (deleted)" and all) whose
    mapping holds a view's first byte; "" when none does."""
    addr = address(view)
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(None, 5)
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if lo <= addr < hi:
            return parts[5] if len(parts) == 6 else ""
    return ""


def on_disk_tier(srv: Stokerd, view: Any) -> bool:
    """Whether a field is a view of one of srv's disk-tier files."""
    return isinstance(view, memoryview) and len(view) > 0 and backing(view).startswith(str(srv.root / "cache") + "/")


# -- a server restarted on the same cache folder: files evicted and written again --


def start_on(stokerd_bin: str, s3_server: S3Server, root: Path, disk: str, n: int) -> Stokerd:
    """A shared-tier stokerd on root's cache folder whose memory tier
    holds none of tier_url's shards (4 MiB each: every field of a shard in
    the disk tier is sent as an extent), with a disk tier of disk."""
    srv = Stokerd(bin=stokerd_bin, root=root, env=s3_server.env(),
                  extra=("--unix", str(root / f"s{n}.sock"), "--memory-region", "locked",
                         "--memory-cache", "2MiB", "--disk-cache", disk))
    srv.start()
    return srv


def stop_on(srv: Stokerd) -> None:
    """Kill srv and remove its tier file, leaving its cache folder."""
    with stoker.Client(srv.address, local=False) as c:
        tier = c.stats().shm_tier_path
    srv.kill()
    Path(tier).unlink(missing_ok=True)


def views_epoch(srv: Stokerd, url: str, epoch: int, want: dict[str, Fields]) -> dict[str, memoryview]:
    """One epoch with shm="views", every field checked against want;
    the views of the disk tier's files, by sample and field."""
    out: dict[str, memoryview] = {}
    with stoker.Client(srv.address) as c:
        for b in c.stream(url, batch_size=8, seed=4, epoch=epoch, shm="views"):
            for s in b.samples:
                assert {n: bytes(v) for n, v in s.fields.items()} == want.pop(s.key), s.key
                assert all(isinstance(v, memoryview) for v in s.fields.values()), s.key
                out.update({f"{s.key}.{n}": v for n, v in s.fields.items() if on_disk_tier(srv, v)})
            del s, b
    assert not want, f"{len(want)} samples missing"
    return out


def test_disk_views_outlive_eviction_and_close(stokerd_bin: str, s3_server: S3Server, tier_url: str) -> None:
    """Views of the disk tier's files kept past the stream, the Client
    and the eviction of those files hold the bytes they had; the files
    written again at the same paths (new inodes) are mapped anew, and
    their views are right too."""
    root = Path(tempfile.mkdtemp(prefix="stoker-dv-", dir="/tmp"))
    srv = start_on(stokerd_bin, s3_server, root, "12MiB", 0)
    try:
        want = {e: tcp_epoch(srv, tier_url, batch_size=8, seed=4, epoch=e) for e in (0,)}
        kept = views_epoch(srv, tier_url, 0, dict(want[0]))  # a copy: views_epoch empties it
        assert len(kept) > 8, f"only {len(kept)} fields were views of the disk tier's files"
        files = {backing(v) for v in kept.values()}
        stop_on(srv)
        # A server on the same folder whose disk tier holds no shard: it
        # evicts (unlinks) every file at its start.
        srv = start_on(stokerd_bin, s3_server, root, "1MiB", 1)
        assert not any(os.path.exists(f) for f in files), "the files were not evicted"
        assert all(backing(v) == f"{backing(v).split(' (deleted)')[0]} (deleted)" for v in kept.values())
        for name, v in kept.items():
            key, field = name.rsplit(".", 1)
            assert bytes(v) == want[0][key][field], name
        stop_on(srv)
        # And one with room again: the same shards' files are written
        # again at the same paths, other inodes, which are mapped anew.
        srv = start_on(stokerd_bin, s3_server, root, "12MiB", 2)
        want[1] = tcp_epoch(srv, tier_url, batch_size=8, seed=4, epoch=1)
        anew = {backing(v) for v in views_epoch(srv, tier_url, 1, dict(want[1])).values()}
        assert anew >= files, f"no file came back at its path: {sorted(files)}, {sorted(anew)}"
        assert not any(f.endswith(" (deleted)") for f in anew), "a view of a file made anew maps the evicted one"
        for name, v in kept.items():
            key, field = name.rsplit(".", 1)
            assert bytes(v) == want[0][key][field], name
        # The process keeps no mapping of an evicted file but the last it made.
        maps = _filemaps.process_maps()
        stale = 0
        for dev_ino in maps.keys():
            try:
                st = os.stat(maps._maps[dev_ino].path)
                stale += (st.st_dev, st.st_ino) != dev_ino
            except FileNotFoundError:
                stale += 1
        assert stale <= 1, f"{stale} mappings of evicted files kept"
    finally:
        stop_on(srv)
        shutil.rmtree(root, ignore_errors=True)


def test_views_and_copies_through_the_dataset(tier_stokerd: Stokerd, tier_url: str) -> None:
    """The torch dataset (w0): views where the shard is in the disk tier,
    bytes with copy=True; both equal TCP's."""
    want = tcp_epoch(tier_stokerd, tier_url, batch_size=8, seed=2)
    for copy in (None, True):
        ds = StokerDataset(tier_url, tier_stokerd.address, batch_size=8, seed=2, batched=True, copy=copy)
        got = [s for b in DataLoader(ds, batch_size=None, num_workers=0) for s in b]
        assert_exactly_once([s["__key__"] for s in got], want)
        for s in got:
            fields = {k: v for k, v in s.items() if not k.startswith("__")}
            assert {k: bytes(v) for k, v in fields.items()} == want[s["__key__"]]
            want_type = bytes if copy else memoryview
            assert all(type(v) is want_type for v in fields.values()), (copy, s["__key__"])
        disk = sum(on_disk_tier(tier_stokerd, v) for s in got for v in s.values())
        assert (disk > 0) == (copy is None), (copy, disk)
        del got, s, fields


@pytest.mark.parametrize("copy", [None, True])
def test_handoff_gives_disk_views(tier_stokerd: Stokerd, tier_url: str, copy: bool | None) -> None:
    """Batches handed from DataLoader workers (num_workers=2): the main
    process maps the disk tier's files itself and makes views of them
    (bytes with copy=True); every sample once, every byte right."""
    want = tcp_epoch(tier_stokerd, tier_url, batch_size=8, seed=2)
    ds = StokerDataset(tier_url, tier_stokerd.address, batch_size=8, seed=2, batched=True, copy=copy)
    batches = list(DataLoader(ds, batch_size=None, num_workers=2))
    assert all(type(b) is SampleBatch for b in batches)
    got = [s for b in batches for s in b]
    assert_exactly_once([s["__key__"] for s in got], want)
    for s in got:
        fields = {k: v for k, v in s.items() if not k.startswith("__")}
        assert {k: bytes(v) for k, v in fields.items()} == want[s["__key__"]], s["__key__"]
        want_type = bytes if copy else memoryview
        assert all(type(v) is want_type for v in fields.values()), (copy, s["__key__"], fields.keys())
    disk = sum(on_disk_tier(tier_stokerd, v) for s in got for v in s.values())
    assert (disk > 0) == (copy is None), (copy, disk)
    del batches, got, s, fields
    with stoker.Client(tier_stokerd.address, local=False) as tcp:
        poll(lambda: tcp.stats().shm_leases == 0 and tcp.stats().shm_regions == 0, "the handed-off leases")


# -- the map cache, on files of its own --------------------------------------------


def write_atomically(path: Path, data: bytes) -> None:
    """As the server writes a disk-tier file: a new file renamed over the path."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.rename(tmp, path)


def test_a_path_made_anew_is_mapped_anew(tmp_path: Path) -> None:
    maps = _filemaps.FileMaps()
    p = tmp_path / "shard.bin"
    write_atomically(p, b"A" * 100)
    first, whole = maps.get(str(p))
    view = whole[10:20]
    del whole
    assert isinstance(view.obj, mmap.mmap) and view.readonly and bytes(view) == b"A" * 10
    assert maps.get(str(p))[0] is first, "the same file was mapped twice"
    write_atomically(p, b"xy" + b"B" * 200)  # evicted and fetched again: another inode, another layout
    second, view2 = maps.get(str(p))
    assert second is not first and second.size == 202 and bytes(view2[2:12]) == b"B" * 10
    assert bytes(view) == b"A" * 10, "a view of the old file changed"
    assert maps.keys() == [second.key], "the evicted file's mapping was kept"
    os.unlink(p)
    assert bytes(view) == b"A" * 10 and bytes(view2[-3:]) == b"BBB"
    with pytest.raises(OSError, match="shard.bin"):
        maps.get(str(p))


def test_evicted_files_leave_the_cache(tmp_path: Path) -> None:
    """Without inotify, a mapping whose file the server unlinked (or
    replaced) leaves the cache at the next new mapping, and at a lookup
    once prune_every has passed; views of it stay right."""
    maps = _filemaps.FileMaps(prune_every=3600, watch=False)
    a, b, c = (tmp_path / n for n in "abc")
    for i, p in enumerate((a, b, c)):
        p.write_bytes(bytes([i]) * 10)
    (fa, va), (fb, vb) = maps.get(str(a)), maps.get(str(b))
    view = va[:4]
    del va
    os.unlink(a)
    maps.get(str(b))
    assert maps.keys() == [fa.key, fb.key], "pruned before prune_every"
    fc = maps.get(str(c))[0]  # a new mapping: a look
    assert maps.keys() == [fb.key, fc.key]
    write_atomically(b, b"new")
    maps.prune_every = 0
    maps.get(str(c))  # a lookup past prune_every: a look
    assert maps.keys() == [fc.key]
    assert bytes(view) == bytes(4) and bytes(vb) == bytes([1]) * 10
    assert stoker.shm._unmapper.drain(timeout=60)  # dropped mappings are closed by its thread
    assert fb.map is not None and not fb.map.closed, "a mapping with a view was closed"
    del vb
    maps.clear()
    assert stoker.shm._unmapper.drain(timeout=60)
    assert fc.map is not None and fc.map.closed, "a mapping with no view was not closed"


def test_watched_paths_are_found_without_a_system_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the folder watched (inotify), a path looked at once is found
    again with no stat while nothing happens to it; a file renamed onto it
    or a removal (the server's eviction and rewrite) is seen at the next
    drain, and an evicted file's mapping leaves the cache then."""
    stats = []
    real = os.stat

    def counted(path: Any, *a: Any, **k: Any) -> Any:
        stats.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(os, "stat", counted)
    maps = _filemaps.FileMaps(prune_every=3600)
    p, q = tmp_path / "shard.bin", tmp_path / "other.bin"
    write_atomically(p, b"A" * 100)
    write_atomically(q, b"Q" * 50)
    first, _ = maps.get(str(p))
    if maps._watch is None:
        pytest.skip("inotify is not available here")
    maps.get(str(q))
    stats.clear()
    for _ in range(3):
        maps.drain()
        assert maps.get(str(p), drained=True)[0] is first and maps.get(str(q), drained=True)[0].size == 50
    assert stats == [], "a watched path nothing happened to was looked at again"
    write_atomically(p, b"xy" + b"B" * 200)  # evicted and fetched again: renamed onto the path
    maps.drain()
    second, view = maps.get(str(p), drained=True)
    assert second is not first and bytes(view[2:6]) == b"BBBB" and stats == [str(p)]
    assert first.key not in maps.keys(), "the replaced file's mapping stayed"
    os.unlink(q)
    maps.drain()
    assert [k for k in maps.keys()] == [second.key], "the removed file's mapping stayed"
    write_atomically(q, b"R" * 70)
    assert bytes(maps.get(str(q))[1][:2]) == b"RR", "a path made anew was not looked at again"


def test_dropped_mappings_are_closed_off_the_readers_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mapping the cache drops goes to the shm module's unmapping thread,
    whatever its size: unmapping a few dozen shard files read through (a
    previous server's, after its folder went) had taken a warm epoch's
    time in the reader."""
    handed: list[Any] = []

    class Recorder:
        def put(self, m: Any) -> bool:
            handed.append(m)
            return True

    monkeypatch.setattr(stoker.shm, "_unmapper", Recorder())
    maps = _filemaps.FileMaps()
    p = tmp_path / "f"
    p.write_bytes(b"x" * 10)
    fm, view = maps.get(str(p))
    del view
    maps.clear()
    assert handed == [fm.map] and fm.map is not None and not fm.map.closed, "the reader closed the mapping itself"
    fm.map.close()


def test_the_map_cache_is_bounded(tmp_path: Path) -> None:
    maps = _filemaps.FileMaps(max_files=3, max_bytes=250)
    got = []
    for i in range(5):
        p = tmp_path / f"f{i}"
        p.write_bytes(bytes([i]) * 100)
        got.append(maps.get(str(p)))
    assert maps.keys() == [g.key for g, _ in got[3:]], "more than 250 bytes kept mapped"
    maps.max_bytes = 1 << 20
    for i in range(5, 9):
        p = tmp_path / f"f{i}"
        p.write_bytes(bytes([i]) * 100)
        got.append(maps.get(str(p)))
    assert maps.keys() == [g.key for g, _ in got[6:]], "more than 3 files kept mapped"
    assert [bytes(v[:1]) for _, v in got] == [bytes([i]) for i in range(9)], "a dropped mapping's views changed"


def test_a_forked_child_maps_for_itself(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"abc" * 10)
    maps = _filemaps.process_maps()
    maps.get(str(p))
    assert len(maps) >= 1
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: an empty cache of its own, which maps
        try:
            ok = len(maps) == 0 and bytes(maps.get(str(p))[1][:3]) == b"abc" and len(maps) == 1
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"1", "the forked child used its parent's map cache"
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    assert len(maps) >= 1, "the parent lost its mappings"


def extent_table(path: str, fields: list[tuple[int, int]]) -> bytes:
    """A sample_table (server/pack.go's layout) of one sample whose fields
    are extents (offset, length) of path."""
    names = [f"f{i}" for i in range(len(fields))]
    nb = b"".join(struct.pack("<I", len(n)) + n.encode() for n in names)
    pb = struct.pack("<I", len(path.encode())) + path.encode()
    out = struct.pack("<8I", 0x314B5453, 1, len(fields), len(names), len(nb), 1, 1, len(pb))
    out += struct.pack("<QIIII", 0, 0, 0, 0, 1)
    for i, (off, n) in enumerate(fields):
        out += struct.pack("<IIQQII", i, _wire.EXTENT, off, n, 0, 0)
    return out + nb + b"k" + pb


@pytest.mark.parametrize("copy", [False, True])
def test_an_extent_past_its_file_is_a_wire_error(tmp_path: Path, copy: bool) -> None:
    p = tmp_path / "shard.bin"
    p.write_bytes(bytes(range(100)))

    def values(fields: list[tuple[int, int]]) -> list[Any]:
        t = _wire.PackedSamples(memoryview(extent_table(str(p), fields)))
        src = Sources()
        src.extents, src.map_extents = ExtentReader(), True  # as a views stream has them
        return PackedBatch([Part(t, b"", 0, 0, None)], src, copy).samples()[0].fields

    got = values([(0, 4), (96, 4), (200, 0)])
    assert [bytes(v) for v in got.values()] == [bytes([0, 1, 2, 3]), bytes([96, 97, 98, 99]), b""]
    assert all(type(v) is (bytes if copy else memoryview) for v in got.values())
    for off, n in ((90, 20), (100, 1), (2**64 - 1, 2)):
        with pytest.raises(_wire.WireError, match=rf"\[{off}, \+{n}\) of {p} runs past the file \(100 bytes\)"):
            values([(0, 1), (off, n)])
