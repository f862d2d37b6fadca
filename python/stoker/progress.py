"""Progress bars (tqdm, when it is installed or asked for) of
``Client.iter_samples`` / ``read_epoch``, and the wait of
``Client.wait_prefetch`` with its bar."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .split import rank_count
from .types import Cursor, DatasetInfo, PrefetchStatus

__all__ = ["tqdm_or_none", "epoch_bar", "wait_prefetch"]


def tqdm_or_none(progress: bool | None) -> Any:
    """tqdm.auto.tqdm where a bar is wanted: progress None when tqdm is
    installed, True always (ImportError without it); else None."""
    if progress is not None and not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from None
        return None
    return tqdm


def epoch_bar(info: Any, batch_size: int, args: dict[str, Any], progress: bool | None) -> Any:
    """The bar of iter_samples, its total rank's share of the epoch; None
    where tqdm_or_none gives no bar. ``info`` is a function that opens the
    dataset (called only for a bar); ``args`` are the stream's."""
    tqdm = tqdm_or_none(progress)
    if tqdm is None:
        return None
    opened: DatasetInfo = info()
    desc = f"epoch {args.get('epoch', 0)}"
    if not opened.counted:  # counted as the epoch reads the shards: no total yet
        return tqdm(total=None, unit="sample", desc=desc, dynamic_ncols=True)
    start = args.get("start", 0)
    total = rank_count(
        opened.num_samples,
        start.position if isinstance(start, Cursor) else int(start),
        args.get("rank", 0),
        max(args.get("world_size", 1), 1),
        batch_size,
        args.get("drop_last", False),
    )
    return tqdm(total=total, unit="sample", desc=desc, dynamic_ncols=True)


def wait_prefetch(
    status: Callable[[], PrefetchStatus], timeout: float, poll: float, progress: bool | None
) -> PrefetchStatus:
    """Call status() every poll seconds until it is done, with a bar of
    bytes where tqdm_or_none gives one; TimeoutError after timeout seconds."""
    tqdm = tqdm_or_none(progress)
    bar = tqdm(unit="B", unit_scale=True, desc="prefetch", dynamic_ncols=True) if tqdm is not None else None
    deadline = time.monotonic() + timeout
    try:
        while True:
            st = status()
            if bar is not None:
                bar.total = st.bytes_total
                bar.update(st.bytes_done - bar.n)
            if st.done:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"stoker: prefetch {st.hint_id} not done after {timeout}s ({st.bytes_done}/{st.bytes_total} bytes)"
                )
            time.sleep(poll)
    finally:
        if bar is not None:
            bar.close()
