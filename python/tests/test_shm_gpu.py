"""Shared memory to the GPU: run only where CUDA torch sees a GPU."""

from __future__ import annotations

import time

import pytest
from conftest import Data
from servers import Stokerd
from test_shm import unix_address, unix_stokerd  # noqa: F401  (the fixture)

import stoker
from stoker.shm import as_tensor

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"),
]


def test_pinned_region_to_gpu_bytes_and_rate(unix_stokerd: Stokerd, data: Data) -> None:  # noqa: F811
    """A batch lands in GPU memory from the registered region with the right
    bytes; its copy rate is printed next to a plain pinned torch copy of the
    same bytes measured in the same run (the goal is >= 0.9 of it)."""
    dev = torch.device("cuda")
    with stoker.Client(unix_address(unix_stokerd)) as c:
        shm_s, total, batches = 0.0, 0, 0
        for b in c.stream(data.many_url, batch_size=8, shm="pinned"):
            views = [v for s in b.samples for v in s.fields.values() if len(v) > 0]
            torch.cuda.synchronize()
            t = time.perf_counter()
            on_gpu = [as_tensor(v).to(dev, non_blocking=True) for v in views]
            torch.cuda.synchronize()
            shm_s += time.perf_counter() - t
            for v, g in zip(views, on_gpu):
                assert bytes(g.cpu().numpy().tobytes()) == bytes(v)
            total += sum(len(v) for v in views)
            batches += 1
    pinned = torch.empty(total // batches, dtype=torch.uint8, pin_memory=True)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(batches):
        pinned.to(dev, non_blocking=True)
    torch.cuda.synchronize()
    plain_s = time.perf_counter() - t
    ratio = (total / shm_s) / (total / plain_s)
    print(f"shm pinned region -> GPU {total / shm_s / 1e9:.2f} GB/s, torch pinned {total / plain_s / 1e9:.2f} GB/s, ratio {ratio:.2f}")
