"""The shared memory tier to the GPU: run only where CUDA torch sees a GPU."""

from __future__ import annotations

import time

import pytest
from servers import Stokerd
from test_shm import unix_address
from test_shm_gpu import warm_up
from test_shm_tier import address, tier_range, tier_stokerd, tier_url  # noqa: F401  (the fixtures)

import stoker
from stoker.shm import as_tensor

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"),
]


def test_pinned_tier_to_gpu_bytes_and_rate(tier_stokerd: Stokerd, tier_url: str) -> None:  # noqa: F811
    """Fields in the tier land in GPU memory from the registered (read-only)
    mapping with the right bytes; the copy rate is printed next to a plain
    pinned torch copy of the same sizes measured in the same run."""
    dev = torch.device("cuda")
    warm_up(dev)
    with stoker.Client(tier_stokerd.address) as tcp, stoker.Client(unix_address(tier_stokerd)) as c:
        want = {s.key: s.fields for b in tcp.stream(tier_url, batch_size=16) for s in b.samples}  # fills the tier
        tier_s, sizes = 0.0, []
        for b in c.stream(tier_url, batch_size=16, shm="pinned"):
            lo, hi = tier_range(c)
            views = [(s.key, name, v) for s in b.samples for name, v in s.fields.items()
                     if len(v) > 0 and lo <= address(v) < hi]
            torch.cuda.synchronize()
            t = time.perf_counter()
            on_gpu = [as_tensor(v).to(dev, non_blocking=True) for _, _, v in views]
            torch.cuda.synchronize()
            tier_s += time.perf_counter() - t
            for (key, name, _), g in zip(views, on_gpu):
                assert g.cpu().numpy().tobytes() == want[key][name], (key, name)
            sizes += [len(v) for _, _, v in views]
        assert c.shm_tier is not None and c.shm_tier.pinned, c.shm_tier and c.shm_tier.pin_reason
    assert sizes, "no field came from the tier"
    total = sum(sizes)
    pinned = torch.empty(max(sizes), dtype=torch.uint8, pin_memory=True)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for n in sizes:
        pinned[:n].to(dev, non_blocking=True)
    torch.cuda.synchronize()
    plain_s = time.perf_counter() - t
    print(f"shm tier (registered read-only) -> GPU {total / tier_s / 1e9:.2f} GB/s, "
          f"torch pinned {total / plain_s / 1e9:.2f} GB/s, ratio {plain_s / tier_s:.2f} "
          f"({len(sizes)} fields, {total} bytes)")
