"""Properties of the pure split arithmetic (no servers)."""

from __future__ import annotations

import itertools

import pytest

from stoker.split import batch_range, cursor_after, loader_cursor, num_steps, rank_count, rank_positions, worker_split

CASES = list(itertools.product([0, 1, 7, 24, 137], [0, 5], [1, 2, 3], [1, 4], [False, True]))


@pytest.mark.parametrize("total,start,world,batch,drop_last", CASES)
def test_ranks_partition_the_rest_of_the_epoch(total: int, start: int, world: int, batch: int, drop_last: bool) -> None:
    start = min(start, total)
    seen = [p for r in range(world) for p in rank_positions(total, start, r, world, batch, drop_last)]
    assert len(seen) == len(set(seen))
    steps = num_steps(total, start, world, batch, drop_last)
    end = min(total, start + steps * world * batch) if drop_last else total
    assert sorted(seen) == list(range(start, end))
    for r in range(world):
        assert rank_count(total, start, r, world, batch, drop_last) == len(rank_positions(total, start, r, world, batch, drop_last))


@pytest.mark.parametrize("total,start,world,batch,drop_last", CASES)
@pytest.mark.parametrize("workers", [0, 1, 2, 3])
def test_workers_partition_their_rank_world(total: int, start: int, world: int, batch: int, drop_last: bool, workers: int) -> None:
    start = min(start, total)
    seen = []
    for r in range(world):
        for w in range(max(workers, 1)):
            vr, vw = worker_split(r, world, w, workers)
            seen += rank_positions(total, start, vr, vw, batch, drop_last)
    assert len(seen) == len(set(seen))
    if not drop_last:
        assert sorted(seen) == list(range(start, total))


def test_one_rank_round_robin_over_workers_is_plan_order() -> None:
    total, batch, workers = 137, 4, 3
    streams = [rank_positions(total, 0, *worker_split(0, 1, w, workers), batch) for w in range(workers)]
    chunks = [[s[i : i + batch] for i in range(0, len(s), batch)] for s in streams]
    order = [p for k in range(max(map(len, chunks))) for c in chunks if k < len(c) for p in c[k]]
    assert order == list(range(total))


def test_cursor_after_is_where_the_next_step_starts() -> None:
    total, start, world, batch = 50, 3, 2, 4
    for k in range(num_steps(total, start, world, batch)):
        nxt = cursor_after(total, start, k, world, batch)
        assert batch_range(total, nxt, 0, 0, world, batch)[0] == min(nxt, total)
        assert nxt == min(start + (k + 1) * world * batch, total)


def test_bad_split_arguments() -> None:
    with pytest.raises(ValueError):
        worker_split(2, 2, 0, 1)
    with pytest.raises(ValueError):
        worker_split(0, 1, 3, 3)
    with pytest.raises(ValueError):
        num_steps(10, 0, 1, 0)


@pytest.mark.parametrize("total,start,world,batch,drop_last", CASES)
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_ranks_in_lockstep_yield_a_prefix(total: int, start: int, world: int, batch: int, drop_last: bool, workers: int) -> None:
    """Each rank's DataLoader takes batches from its workers in turn: once
    every rank has yielded i batches, they yielded the prefix that
    loader_cursor names (the global cursor a resume starts from)."""
    start = min(start, total)
    per_rank = []
    for r in range(world):
        streams = [rank_positions(total, start, *worker_split(r, world, w, workers), batch, drop_last)
                   for w in range(workers)]
        chunks = [[s[i : i + batch] for i in range(0, len(s), batch)] for s in streams]
        per_rank.append([c[k] for k in range(max(map(len, chunks), default=0)) for c in chunks if k < len(c)])
    for i in range(max(map(len, per_rank)) + 1):
        yielded = sorted(p for batches in per_rank for b in batches[:i] for p in b)
        end = loader_cursor(total, start, i, world, batch)
        if all(len(b) >= i for b in per_rank):
            assert yielded == list(range(start, end)), (i, end)
