"""Disk extents (gds=True) through a real stokerd: every byte checked
against gRPC and shared memory, leases and files given back, and the
choice of read path with kvikio absent or cuFile failing."""

from __future__ import annotations

import os
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
from conftest import Data
from servers import Stokerd
from test_shm import poll, unix_address, unix_stokerd  # noqa: F401  (the fixture)

import stoker
from stoker import _filemaps, gds
from stoker.gds import Extent, ExtentReader

Batches = list[list[tuple[str, dict[str, bytes]]]]


def read_gds(c: stoker.Client, url: str, args: dict[str, Any]) -> tuple[Batches, int, int, int]:
    """An epoch through a gds stream, every field copied to bytes (an extent
    read to the host both ways); with the count of fields, of extents and
    the extents' bytes."""
    out: Batches = []
    fields = extents = extent_bytes = 0
    for b in c.stream(url, gds=True, **args):
        batch = []
        for s in b.samples:
            raw = {}
            for name, v in s.fields.items():
                fields += 1
                if isinstance(v, Extent):
                    host = v.read()
                    assert isinstance(host, memoryview) and len(host) == len(v) == v.length
                    assert v.to_device("cpu").numpy().tobytes() == host, (s.key, name)
                    raw[name] = bytes(host)
                    extents += 1
                    extent_bytes += len(v)
                else:
                    assert isinstance(v, memoryview), (s.key, name, type(v))
                    raw[name] = bytes(v)
            batch.append((s.key, raw))
        out.append(batch)
    return out, fields, extents, extent_bytes


def leases_freed(c: stoker.Client) -> bool:
    s = c.stats()
    return s.shm_regions == 0 and s.shm_leases == 0 and s.shm_leased_bytes == 0 and s.shm_region_bytes == 0


@pytest.mark.parametrize(
    "which,args",
    [("url", dict(batch_size=7, seed=3, epoch=1)),
     ("big_url", dict(batch_size=2, seed=1, epoch=0, world_size=2, rank=1))],
)
def test_gds_epoch_has_the_grpc_and_shm_bytes(unix_stokerd: Stokerd, data: Data, which: str,  # noqa: F811
                                              args: dict[str, Any]) -> None:
    url = getattr(data, which)
    with stoker.Client(unix_stokerd.address) as tcp, stoker.Client(unix_address(unix_stokerd)) as local:
        # Reading the epoch fetches every shard: the server writes them to
        # its disk tier too (in the background).
        want = [[(s.key, s.fields) for s in b.samples] for b in tcp.stream(url, **args)]
        assert sum(len(b) for b in want) > 0
        shm = [[(s.key, {k: bytes(v) for k, v in s.fields.items()}) for s in b.samples]
               for b in local.stream(url, shm=True, **args)]
        assert shm == want
        base = local.stats().shm_extent_bytes
        # Until the disk writes are done some fields still come through the
        # region; every pass must have the same bytes, and one all extents.
        deadline, moved = time.monotonic() + 30, 0
        while True:
            got, fields, extents, extent_bytes = read_gds(local, url, args)
            assert got == want
            moved += extent_bytes
            if extents == fields:
                break
            assert time.monotonic() < deadline, f"only {extents} of {fields} fields came as extents"
        assert fields > 0 and extent_bytes > 0
        poll(lambda: leases_freed(local), "the gds streams' leases to be released")
        assert local.stats().shm_extent_bytes - base == moved


def open_files() -> set[str]:
    """The files this process has open."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(os.path.realpath(f"/proc/self/fd/{fd}"))
        except OSError:
            pass  # closed meanwhile
    return out


def test_gds_extents_are_cache_files_held_with_their_batch(unix_stokerd: Stokerd, data: Data) -> None:  # noqa: F811
    """Extents are ranges of the disk tier's files; the stream keeps them
    open while their batch is held, and closing it early closes them and
    frees the leases."""
    cache = os.path.realpath(unix_stokerd.root / "cache")
    with stoker.Client(unix_address(unix_stokerd)) as c:
        list(c.stream(data.url, batch_size=16))  # every shard fetched, so written to the disk tier
        # That stream's copies came out of the process's mappings of the
        # disk tier's files (stoker._filemaps), which keep a descriptor
        # each: forget them, so the files open below are the gds stream's.
        _filemaps.process_maps().clear()
        assert stoker.shm._unmapper.drain(timeout=60)  # the shm module's thread closes them
        deadline = time.monotonic() + 30
        while True:
            stream = c.stream(data.url, batch_size=4, gds=True)
            batch = next(stream)
            extents = [v for s in batch.samples for v in s.fields.values() if isinstance(v, Extent)]
            if extents:
                break
            stream.close()  # the first shard's file is not written yet
            assert time.monotonic() < deadline, "no extents"
        files = {os.path.realpath(e.path) for e in extents}
        assert all(f.startswith(cache + os.sep) for f in files), (files, cache)
        for e in extents:
            assert len(bytes(e)) == e.length and e.via == gds.HOST
        assert files <= open_files(), "the batch's extent files are not held open"
        assert c.stats().shm_leases > 0
        stream.close()
        assert not files & open_files(), "extent files left open after the stream closed"
        poll(lambda: leases_freed(c), "the closed stream's leases to be freed")


def test_gds_paths_given_to_the_stream(unix_stokerd: Stokerd, data: Data) -> None:  # noqa: F811
    """gds="pinned" reads extents through the pinned buffer, cuFile never
    tried (here the device is the CPU, so the buffer is not page-locked)."""
    with stoker.Client(unix_stokerd.address) as tcp, stoker.Client(unix_address(unix_stokerd)) as c:
        want = {s.key: s.fields for b in tcp.stream(data.url, batch_size=16) for s in b.samples}
        deadline, extents = time.monotonic() + 30, 0
        while not extents:
            for b in c.stream(data.url, batch_size=16, gds=gds.PINNED):
                for s in b.samples:
                    for name, v in s.fields.items():
                        if isinstance(v, Extent):
                            assert v.to_device("cpu").numpy().tobytes() == want[s.key][name]
                            assert v.via == gds.PINNED
                            extents += 1
            assert extents or time.monotonic() < deadline, "no extents"
        for bad in (["cufile"], [], "nvme"):
            with pytest.raises(stoker.InvalidArgument, match="gds paths"):
                c.stream(data.url, batch_size=4, gds=bad)


def test_gds_over_tcp_is_refused(unix_stokerd: Stokerd, data: Data) -> None:  # noqa: F811
    with stoker.Client(unix_stokerd.address, local=False) as c, pytest.raises(stoker.StokerError, match="unix socket"):
        list(c.stream(data.url, batch_size=8, gds=True))


# -- choosing the read path (no server) ------------------------------------


@pytest.fixture()
def extent_file(tmp_path: Path) -> tuple[Path, bytes]:
    raw = os.urandom(3 * 4096 + 123)
    path = tmp_path / "entry"
    path.write_bytes(raw)
    return path, raw


def test_candidate_paths_order() -> None:
    assert gds.candidate_paths(cuda=False, kvikio=True, torch_gds=True) == [gds.HOST]
    assert gds.candidate_paths(cuda=True, kvikio=True, torch_gds=True) == [gds.CUFILE_KVIKIO, gds.CUFILE_TORCH, gds.PINNED]
    assert gds.candidate_paths(cuda=True, kvikio=False, torch_gds=True) == [gds.CUFILE_TORCH, gds.PINNED]
    assert gds.candidate_paths(cuda=True, kvikio=False, torch_gds=False) == [gds.PINNED]


def test_device_paths_probe_kvikio_and_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setitem(sys.modules, "kvikio", None)  # import kvikio raises ImportError
    assert gds._import_kvikio() is None
    assert gds.device_paths("cpu") == [gds.HOST]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gds, "_torch_gds_built", lambda: True)
    assert gds.device_paths("cuda") == [gds.CUFILE_TORCH, gds.PINNED]
    monkeypatch.setitem(sys.modules, "kvikio", types.ModuleType("kvikio"))
    assert gds.device_paths("cuda") == [gds.CUFILE_KVIKIO, gds.CUFILE_TORCH, gds.PINNED]


def fake_kvikio(fail: bool, compat: bool = False) -> tuple[types.ModuleType, list[str]]:
    """A kvikio whose CuFile reads with pread into a CPU tensor, or fails."""
    calls: list[str] = []

    class CuFile:
        def __init__(self, path: str, flags: str) -> None:
            assert flags == "r"
            self.fd = os.open(path, os.O_RDONLY)

        def is_compat_mode_preferred(self) -> bool:
            return compat

        def pread(self, buf: Any, size: int, file_offset: int) -> Any:
            calls.append("pread")
            if fail:
                raise RuntimeError("cuFile: cuFileRead failed (fake)")
            buf.numpy()[:size] = memoryview(os.pread(self.fd, size, file_offset))
            return types.SimpleNamespace(get=lambda: size)

        def close(self) -> None:
            calls.append("close")
            os.close(self.fd)

    mod = types.ModuleType("kvikio")
    mod.CuFile = CuFile  # type: ignore[attr-defined]
    return mod, calls


def test_failing_cufile_falls_back_to_pinned(monkeypatch: pytest.MonkeyPatch, extent_file: tuple[Path, bytes]) -> None:
    path, raw = extent_file
    kv, calls = fake_kvikio(fail=True)
    monkeypatch.setitem(sys.modules, "kvikio", kv)

    def no_torch_gds(p: str) -> Any:
        raise RuntimeError("cuFileHandleRegister failed (fake)")

    monkeypatch.setattr(gds, "_open_torch_gds", no_torch_gds)
    with ExtentReader(paths=[gds.CUFILE_KVIKIO, gds.CUFILE_TORCH, gds.PINNED]) as r:
        for off, n in [(4096, 5000), (1, 3 * 4096), (len(raw) - 7, 7), (0, 0)]:
            e = Extent(str(path), off, n, r)
            t = e.to_device("cpu")
            assert e.via == gds.PINNED and t.numpy().tobytes() == raw[off : off + n]
        assert set(r.failures) == {gds.CUFILE_KVIKIO, gds.CUFILE_TORCH}
        assert "fake" in r.failures[gds.CUFILE_KVIKIO]
        assert calls.count("pread") == 1, "a failed path was tried again"
    assert calls.count("close") == 1


def test_working_cufile_is_used_and_compat_is_named(monkeypatch: pytest.MonkeyPatch,
                                                    extent_file: tuple[Path, bytes]) -> None:
    path, raw = extent_file
    for compat, want in [(False, gds.CUFILE_KVIKIO), (True, gds.CUFILE_KVIKIO_COMPAT)]:
        kv, calls = fake_kvikio(fail=False, compat=compat)
        monkeypatch.setitem(sys.modules, "kvikio", kv)
        with ExtentReader(paths=[gds.CUFILE_KVIKIO, gds.PINNED]) as r:
            e = Extent(str(path), 100, 9000, r)
            assert e.to_device("cpu").numpy().tobytes() == raw[100:9100]
            assert e.via == want and not r.failures
            r.close_files()
            assert calls == ["pread", "close"]


def test_last_path_failing_raises(extent_file: tuple[Path, bytes]) -> None:
    path, raw = extent_file
    with ExtentReader(paths=[gds.PINNED]) as r:
        with pytest.raises(OSError, match="end of file"):
            Extent(str(path), len(raw) - 10, 11, r).to_device("cpu")
        with pytest.raises(FileNotFoundError):
            Extent(str(path) + ".gone", 0, 1, r).to_device("cpu")


def test_without_cuda_extents_are_host_bytes(monkeypatch: pytest.MonkeyPatch, extent_file: tuple[Path, bytes]) -> None:
    import numpy as np
    import torch

    from stoker.shm import as_numpy, as_tensor

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path, raw = extent_file
    e = Extent(str(path), 10, 4096)  # no reader: opens the file for each read
    assert gds.device_paths("cuda") == [gds.HOST]
    host = e.read()
    assert isinstance(host, memoryview) and bytes(host) == raw[10:4106] and e.via == gds.HOST
    assert bytes(e) == raw[10:4106]
    assert as_numpy(e).tobytes() == raw[10:4106] and as_numpy(e).dtype == np.uint8
    assert as_tensor(e).numpy().tobytes() == raw[10:4106]
    assert gds.to_device(e, "cpu").numpy().tobytes() == raw[10:4106] and e.via == gds.HOST
    assert gds.to_device(memoryview(raw)[5:9], "cpu").numpy().tobytes() == raw[5:9]
    assert gds.to_device(b"", "cpu").numel() == 0
    assert e == Extent(str(path), 10, 4096) and len(e) == 4096
