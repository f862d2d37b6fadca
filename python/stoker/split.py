"""Pure arithmetic of how ranks and DataLoader workers split an epoch.

The server's epoch is one global sequence S. With ``world_size`` N and a
per-rank ``batch_size`` B, step k (counted from a start position c) covers
S[c + k·N·B : c + (k+1)·N·B] and rank r reads the r-th B-slice of it. The
cursor after a step is where the next step starts. These functions mirror
the server's ``shuffle.Batching`` so the client can reason about what a
rank will read without asking.

DataLoader workers become *virtual ranks*, worker-major: worker w of W on
rank r reads as rank ``w·N + r`` of a world of ``N·W``. Every position of S
still belongs to exactly one (rank, worker) and each worker's stream is a
plain server stream with its own cursor. A DataLoader takes batches from
its workers in turn, so rank r's i-th batch is step ``i // W``'s slice
``(i % W)·N + r``: once every rank has yielded i batches of B samples,
what they yielded together is exactly the prefix ``S[c : c + i·N·B]``, a
global cursor from which any world size and any number of workers can go
on (see stoker.torch.StokerDataLoader). With one rank the DataLoader sees
S in order.
"""

from __future__ import annotations

__all__ = [
    "worker_split",
    "step_size",
    "num_steps",
    "batch_range",
    "cursor_after",
    "rank_positions",
    "rank_count",
    "loader_cursor",
]


def worker_split(rank: int, world_size: int, worker: int, num_workers: int) -> tuple[int, int]:
    """Return (virtual rank, virtual world size) of one DataLoader worker:
    ``(worker·world_size + rank, world_size·num_workers)``, worker-major
    (see the module's note). num_workers 0 (no workers, the main process
    reads) is the same as 1.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be positive, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    workers = max(num_workers, 1)
    if not 0 <= worker < workers:
        raise ValueError(f"worker {worker} is outside num_workers {num_workers}")
    return worker * world_size + rank, world_size * workers


def step_size(world_size: int, batch_size: int) -> int:
    """Number of positions one step covers across all ranks."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return max(world_size, 1) * batch_size


def num_steps(total: int, start: int, world_size: int, batch_size: int, drop_last: bool = False) -> int:
    """Steps from position start to the end of an epoch of total samples.

    Without drop_last the last step may be short (some ranks get a short or
    empty batch); with it, every rank stops after the last full step.
    """
    rest = total - start
    if rest <= 0:
        return 0
    size = step_size(world_size, batch_size)
    return rest // size if drop_last else -(-rest // size)


def batch_range(total: int, start: int, step: int, rank: int, world_size: int, batch_size: int) -> tuple[int, int]:
    """Positions [lo, hi) of rank's batch at step (counted from start)."""
    lo = min(start + step * step_size(world_size, batch_size) + rank * batch_size, total)
    return lo, min(lo + batch_size, total)


def cursor_after(total: int, start: int, step: int, world_size: int, batch_size: int) -> int:
    """Cursor position after step (counted from start): where the next step begins."""
    return min(start + (step + 1) * step_size(world_size, batch_size), total)


def rank_positions(
    total: int, start: int, rank: int, world_size: int, batch_size: int, drop_last: bool = False
) -> list[int]:
    """Every position of S that rank reads from start, in stream order."""
    out: list[int] = []
    for k in range(num_steps(total, start, world_size, batch_size, drop_last)):
        lo, hi = batch_range(total, start, k, rank, world_size, batch_size)
        out.extend(range(lo, hi))
    return out


def rank_count(total: int, start: int, rank: int, world_size: int, batch_size: int, drop_last: bool = False) -> int:
    """How many samples rank reads from start (len of rank_positions)."""
    n = 0
    for k in range(num_steps(total, start, world_size, batch_size, drop_last)):
        lo, hi = batch_range(total, start, k, rank, world_size, batch_size)
        n += hi - lo
    return n


def loader_cursor(total: int, start: int, batches: int, world_size: int, batch_size: int) -> int:
    """The global cursor once every rank's DataLoader, its batch size the
    dataset's, has yielded ``batches`` batches of an epoch started at
    ``start`` (any number of workers): ``start + batches·N·B``, at most
    ``total``. Every position before it was yielded by some rank."""
    return min(start + batches * step_size(world_size, batch_size), total)
