"""Shared memory to the GPU: run only where CUDA torch sees a GPU."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import Data
from servers import Stokerd
from test_shm import unix_address, unix_stokerd  # noqa: F401  (the fixture)

import stoker
from stoker.shm import as_tensor

torch = pytest.importorskip("torch")

def warm_up(dev: Any) -> None:
    """Start CUDA and the copy engines before anything is timed: the first
    copies of a process pay for the context and the caching allocator."""
    for _ in range(3):
        torch.empty(1 << 20, dtype=torch.uint8, pin_memory=True).to(dev, non_blocking=True)
    torch.cuda.synchronize()


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"),
]


@pytest.mark.parametrize("tier", [False, True], ids=["region", "tier"])
def test_pinned_region_to_gpu_bytes_and_rate(unix_stokerd: Stokerd, data: Data, tier: bool) -> None:  # noqa: F811
    """A batch lands in GPU memory from the registered stream region (or,
    on a host whose stokerd shares its memory tier, from the tier) with the
    right bytes, and torch sees the views as pinned (so the copy is a DMA,
    not a staged copy); the copy rate is printed next to a plain pinned
    torch copy of the same sizes measured in the same run (the goal is
    >= 0.9 of it)."""
    dev = torch.device("cuda")
    warm_up(dev)
    with stoker.Client(unix_address(unix_stokerd)) as c:
        shm_s, total, sizes = 0.0, 0, []
        unpinned = 0
        for b in c.stream(data.many_url, batch_size=8, shm="pinned", shm_tier=tier):
            views = [v for s in b.samples for v in s.fields.values() if len(v) > 0]
            unpinned += sum(1 for v in views if not as_tensor(v).is_pinned())
            torch.cuda.synchronize()
            t = time.perf_counter()
            on_gpu = [as_tensor(v).to(dev, non_blocking=True) for v in views]
            torch.cuda.synchronize()
            shm_s += time.perf_counter() - t
            for v, g in zip(views, on_gpu):
                assert bytes(g.cpu().numpy().tobytes()) == bytes(v)
            total += sum(len(v) for v in views)
            sizes += [len(v) for v in views]
    pinned = torch.empty(max(sizes), dtype=torch.uint8, pin_memory=True)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for n in sizes:
        pinned[:n].to(dev, non_blocking=True)
    torch.cuda.synchronize()
    plain_s = time.perf_counter() - t
    print(f"shm pinned {'tier' if tier else 'region'} -> GPU {total / shm_s / 1e9:.2f} GB/s, torch pinned "
          f"{total / plain_s / 1e9:.2f} GB/s, ratio {plain_s / shm_s:.2f} ({len(sizes)} fields, {total} bytes, "
          f"{unpinned} views torch saw as not pinned)")
    assert unpinned == 0, f"{unpinned} of {len(sizes)} views are not pinned for torch: its copies are staged"
