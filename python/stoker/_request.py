"""The requests a Client sends, made from its methods' arguments, which
are checked here (InvalidArgument names the one at fault)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import errors
from .gds import PATHS as GDS_PATHS
from .types import Cursor, window_value
from .v1 import loader_pb2

__all__ = ["StreamPlan", "stream_plan", "prefetch_request", "preprocess_on_value"]

# Where a transform's samples are preprocessed (StreamBatchesRequest.preprocess_on).
PREPROCESS_ON = {"local": loader_pb2.PREPROCESS_ON_LOCAL, "any": loader_pb2.PREPROCESS_ON_ANY}


def preprocess_on_value(preprocess_on: str) -> int:
    """``preprocess_on`` ("local" or "any") as the request's enum value."""
    try:
        return PREPROCESS_ON[preprocess_on]
    except (KeyError, TypeError):
        raise errors.InvalidArgument(f"preprocess_on {preprocess_on!r}: want one of {sorted(PREPROCESS_ON)}") from None


@dataclass(frozen=True)
class StreamPlan:
    """A stream to make: ``fixed`` are the StreamBatchesRequest's fields but
    the cursor, which starts at (position, plan_version); ``pin``,
    ``gds_paths`` and ``copy`` say how the client takes the fields in (see
    stoker._resume.stream_batches)."""

    fixed: dict[str, Any]
    position: int
    plan_version: int
    pin: bool
    gds_paths: list[str] | None
    copy: bool
    map_extents: bool = False


def stream_plan(
    url: str,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int,
    world_size: int,
    shuffle: bool,
    shuffle_window: int | str,
    drop_last: bool,
    start: int | Cursor,
    format: str,
    columns: Sequence[str],
    shm: bool | str | None,
    shm_region_bytes: int,
    shm_tier: bool,
    gds: bool | str | Sequence[str],
    transform: Any,
    local: Callable[[], bool],
    preprocess_on: str = "local",
) -> StreamPlan:
    """Client.stream's arguments (see there) as a StreamPlan. ``local()``
    says whether the client has a local fast path (asked only where the
    arguments leave it to that)."""
    if isinstance(start, Cursor):
        if start.epoch != epoch:
            raise errors.InvalidArgument(f"cursor epoch {start.epoch} does not match epoch {epoch}")
        position, plan_version = start.position, start.plan_version
    else:
        position, plan_version = start, 0
    if batch_size < 1:
        raise errors.InvalidArgument(f"batch_size must be positive, got {batch_size}")
    if not 0 <= rank < max(world_size, 1):
        raise errors.InvalidArgument(f"rank {rank} is outside world_size {world_size}")
    gds_paths = None if isinstance(gds, bool) else [gds] if isinstance(gds, str) else list(gds)
    if gds_paths is not None:
        unknown = [p for p in gds_paths if p not in GDS_PATHS]
        if unknown or not gds_paths:
            raise errors.InvalidArgument(f"gds paths {gds_paths}: want some of {GDS_PATHS}")
    on = preprocess_on_value(preprocess_on)
    if transform is None and preprocess_on != "local":
        raise errors.InvalidArgument(f"preprocess_on={preprocess_on!r} is for a transform's stream: pass transform too")
    views = bool(shm) or bool(gds)  # asked for: fields are views (holding their leases: stoker.shm)
    use_shm, use_gds = views, bool(gds)
    map_extents = False
    if shm is None and not gds and transform is None and local():
        # The local fast path: shared memory, the shared tier, and the
        # disk tier's files read here (extents), each field copied once.
        use_shm = use_gds = True
    elif shm == "views" and not gds and transform is None:
        # The torch dataset's views: the region's and the tier's fields in
        # place, the disk tier's as views of this process's mappings of
        # its files (stoker._filemaps), which the server does not read.
        use_gds = map_extents = True
    fixed = dict(
        url=url,
        format=format,
        seed=seed,
        epoch=epoch,
        rank=rank,
        world_size=world_size,
        batch_size=batch_size,
        shuffle_window=window_value(shuffle_window),
        no_shuffle=not shuffle,
        drop_last=drop_last,
        columns=list(columns),
        shm=use_shm,
        shm_region_bytes=shm_region_bytes or (transform.region_bytes(batch_size) if use_shm and transform else 0),
        shm_tier=use_shm and shm_tier,
        gds=use_gds,
        packed=transform is None,
        shm_release_ring=use_shm,
        **({} if transform is None else {"pipeline": transform.to_proto(seed), "preprocess_on": on}),
    )
    return StreamPlan(
        fixed,
        position,
        plan_version,
        pin=shm == "pinned",
        gds_paths=gds_paths,
        copy=not views,
        map_extents=map_extents,
    )


def prefetch_request(
    url: str,
    *,
    epochs: Sequence[int],
    seed: int,
    shuffle: bool,
    shuffle_window: int | str,
    deadline: float | None,
    budget_bytes: int,
    format: str,
    index_only: bool,
) -> loader_pb2.PrefetchRequest:
    """Client.prefetch's arguments (see there) as its request."""
    return loader_pb2.PrefetchRequest(
        url=url,
        format=format,
        seed=seed,
        epochs=list(epochs),
        shuffle_window=window_value(shuffle_window),
        no_shuffle=not shuffle,
        deadline_unix_ms=int(deadline * 1000) if deadline is not None else 0,
        budget_bytes=budget_bytes,
        index_only=index_only,
    )
