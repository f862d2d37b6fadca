"""Disk extents to the GPU: run only where CUDA torch sees a GPU."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Data
from servers import S3Server, Stokerd
from test_gds import leases_freed
from test_shm import poll, unix_address

import stoker
from stoker import gds
from stoker.gds import Extent, ExtentReader

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"),
]


@pytest.fixture(scope="module")
def heap_stokerd(stokerd_bin: str, s3_server: S3Server, data: Data) -> Iterator[Stokerd]:
    """A stokerd whose memory tier is private (on a GPU host the default
    shares it, and a field in the shared tier is sent as a view of the tier,
    never as a disk extent)."""
    root = Path(tempfile.mkdtemp(prefix="stoker-gds-", dir="/tmp"))
    srv = Stokerd(bin=stokerd_bin, root=root, env=s3_server.env(),
                  extra=("--unix", str(root / "s.sock"), "--memory-region", "heap"))
    srv.start()
    yield srv
    srv.kill()
    shutil.rmtree(root, ignore_errors=True)


def test_extents_to_gpu_by_each_path_bytes_and_rate(heap_stokerd: Stokerd, data: Data) -> None:
    """Every extent of an epoch lands in GPU memory with the right bytes by
    each path this host has (a cuFile path that fails falls back to pinned,
    and says so); each path's rate is printed next to a plain pinned torch
    copy of the same bytes measured in the same run. cuFile in its
    compatibility mode (no nvidia-fs) goes through host memory: its rate
    is no GPUDirect figure."""
    dev = torch.device("cuda")
    paths = gds.device_paths(dev)
    assert paths[-1] == gds.PINNED
    readers = {p: ExtentReader(paths=[p] if p == gds.PINNED else [p, gds.PINNED]) for p in paths}
    seconds = dict.fromkeys(paths, 0.0)
    via: dict[str, dict[str, int]] = {p: {} for p in paths}
    total, largest = 0, 0
    with stoker.Client(unix_address(heap_stokerd)) as c:
        list(c.stream(data.many_url, batch_size=8))  # every shard fetched: written to the disk tier
        deadline = time.monotonic() + 30
        while True:
            extents = fields = 0
            for b in c.stream(data.many_url, batch_size=8, gds=True):
                ext = [v for s in b.samples for v in s.fields.values() if isinstance(v, Extent) and len(v)]
                fields += sum(len(s.fields) for s in b.samples)
                extents += sum(1 for s in b.samples for v in s.fields.values() if isinstance(v, Extent))
                want = [bytes(e) for e in ext]  # host reads: the reference bytes
                for p, r in readers.items():
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    on_gpu = []
                    for e in ext:
                        on_gpu.append(r.to_device(e, dev))
                        via[p][e.via or ""] = via[p].get(e.via or "", 0) + 1
                    torch.cuda.synchronize()
                    seconds[p] += time.perf_counter() - t
                    for w, g in zip(want, on_gpu):
                        assert g.device.type == "cuda" and g.cpu().numpy().tobytes() == w, p
                    r.close_files()
                total += sum(len(w) for w in want)
                largest = max([largest, *map(len, want)])
            if extents == fields:
                break
            assert time.monotonic() < deadline, f"{extents} of {fields} fields came as extents"
            total, seconds, via = 0, dict.fromkeys(paths, 0.0), {p: {} for p in paths}
        poll(lambda: leases_freed(c), "the gds stream's leases to be released")
    for r in readers.values():
        r.close()
    pinned = torch.empty(largest, dtype=torch.uint8, pin_memory=True)
    n = max(total // largest, 1)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        pinned.to(dev, non_blocking=True)
    torch.cuda.synchronize()
    plain = n * largest / (time.perf_counter() - t)
    print(f"\ntorch pinned copy (baseline) {plain / 1e9:.2f} GB/s; nvidia-fs loaded: {gds.nvidia_fs_loaded()}")
    for p in paths:
        rate = total / seconds[p]
        fails = readers[p].failures
        print(f"{p}: {rate / 1e9:.2f} GB/s, {rate / plain:.2f}x the pinned copy; extents by {via[p]}"
              + (f"; fell back: {fails}" if fails else ""))
