"""``StokerDataLoader``: a DataLoader for a StokerDataset whose state is a
global cursor.

Import it from :mod:`stoker.torch`. The loader gives the DataLoader the
dataset's batch size (so each DataLoader batch is one server batch) and
counts the batches it has yielded. With its workers split worker-major
(:func:`stoker.split.worker_split`), once every rank has yielded i batches
the ranks have together yielded exactly the epoch's first ``i·N·B``
positions from where the iteration started (:func:`stoker.split.loader_cursor`):
``state_dict()`` is that cursor, and ``load_state_dict`` resumes from it
with any num_workers and any world size. Ranks must be in lockstep when
the state is saved (as DDP keeps them: every rank has taken the same
number of batches); rank 0's state is then every rank's.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

from . import errors
from .split import loader_cursor
from .torch_dataset import StokerDataset
from .torch_state import Position, split_changed, upgrade

__all__ = ["StokerDataLoader", "from_stateful_dataloader"]

_SAME: Any = object()  # batch_size not given: the dataset's


class StokerDataLoader(DataLoader):  # type: ignore[type-arg]
    """A ``torch.utils.data.DataLoader`` over a :class:`StokerDataset`, with
    ``state_dict()``/``load_state_dict()`` that resume exactly with any
    ``num_workers`` and any world size.

    ``batch_size`` is the dataset's (``None`` for ``batched=True``); another
    one is refused. The other arguments are DataLoader's; ``sampler``,
    ``batch_sampler``, ``shuffle`` (the server shuffles) and
    ``in_order=False`` (the count of yielded batches must be in order) are
    refused.

    The state is ``{"version": 3, "epoch", "position", "plan_version",
    "world_size", "num_workers"}`` plus the dataset's settings: ``position``
    is the global cursor (every sample before it was yielded by some rank,
    none after), so it resumes on any split. Save it at a step boundary
    with every rank at the same step (what DDP does); without
    ``drop_last=True`` the short last step of an epoch may give ranks
    different numbers of batches, and a state saved inside it may repeat a
    few of that step's samples. After the last batch the state is the end
    of the epoch (loading it yields nothing until ``set_epoch`` moves on).
    """

    def __init__(self, dataset: StokerDataset, batch_size: int | None = _SAME, **kwargs: Any) -> None:
        if not isinstance(dataset, StokerDataset):
            raise errors.InvalidArgument(f"StokerDataLoader reads a StokerDataset, got {type(dataset).__name__}")
        want = None if dataset.batched else dataset.batch_size
        if batch_size is _SAME:
            batch_size = want
        elif batch_size != want:
            raise errors.InvalidArgument(
                f"StokerDataLoader: batch_size {batch_size} is not the dataset's "
                + (
                    "(batched=True yields whole server batches: leave batch_size out, or None)"
                    if dataset.batched
                    else f"{dataset.batch_size}: leave batch_size out to take the dataset's"
                )
            )
        for name in ("sampler", "batch_sampler"):
            if kwargs.get(name) is not None:
                raise errors.InvalidArgument(f"StokerDataLoader: no {name}: the server plans every epoch's order")
        if kwargs.get("shuffle"):
            raise errors.InvalidArgument(
                "StokerDataLoader: no shuffle=True: the server shuffles (StokerDataset(shuffle=...))"
            )
        if kwargs.get("in_order") is False:
            raise errors.InvalidArgument(
                "StokerDataLoader: in_order=False would make the state miscount what was yielded"
            )
        super().__init__(dataset, batch_size=batch_size, **kwargs)
        dataset._loader = weakref.ref(self)
        self._origin: Position | None = None  # where the iteration in progress (or the last) started
        self._batches = 0  # batches it yielded
        self._done = False  # it yielded its last batch

    # -- iteration ---------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        ds: StokerDataset = self.dataset  # type: ignore[assignment]
        start, batches = ds._global_start(), 0
        st = ds._loaded_for_epoch()
        grid = st.get("grid") if st is not None else None
        if (
            grid is not None
            and st is not None
            and self.num_workers > 0
            and (st["world_size"], st["num_workers"]) == (ds.world_size, self.num_workers)
        ):
            # The workers go on on the grid of the run that saved it (see
            # StokerDataset._resolve), and so does the count.
            start, batches = Position(start.epoch, int(grid["origin"]), 0, start.plan_version), int(grid["batches"])
        it = super().__iter__()  # workers start here, each with the dataset's loaded state
        if self.num_workers > 0:
            ds._drop_loaded()
        self._origin, self._batches, self._done = start, batches, False
        return self._count(it)

    def _count(self, it: Iterator[Any]) -> Iterator[Any]:
        for batch in it:
            self._batches += 1
            yield batch
        self._done = True

    def _owns_state(self) -> bool:
        """Whether the dataset's state in the main process is this loader's:
        its workers read the dataset."""
        return self.num_workers > 0 and self._origin is not None

    # -- state -------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The global cursor after what this loader yielded (see the class's note)."""
        ds: StokerDataset = self.dataset  # type: ignore[assignment]
        if self.num_workers == 0 or self._origin is None:
            # The dataset itself read (or reads next) in this process.
            return {**ds.state_dict(), "num_workers": self.num_workers}
        o = self._origin
        end = ds._progress.end_of(o.epoch)
        if self._done and end is not None:
            position = end
        else:
            position = loader_cursor(
                end if end is not None else 1 << 62, o.position, self._batches, ds.world_size, ds.batch_size
            )
        state = {
            "version": 3,
            "epoch": o.epoch,
            "position": position,
            "plan_version": ds._progress.plan_version or o.plan_version,
            "world_size": ds.world_size,
            "num_workers": self.num_workers,
            **ds._settings(),
        }
        if not self._done:
            # The same split resumes each worker's own stream on the grid of
            # steps it was on, so a run with drop_last drops what an
            # uninterrupted one would (the global position may be mid-step).
            state["grid"] = {"origin": o.position, "batches": self._batches, "end": end}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from a state on the next iteration, with this loader's
        num_workers and the dataset's world size, whatever they were when
        it was saved. A state only its own split resumes (one DataLoader
        worker's, as StatefulDataLoader keeps them) is refused here, saying
        what changed."""
        ds: StokerDataset = self.dataset  # type: ignore[assignment]
        if "_snapshot" in state or "_num_yielded" in state:
            state = from_stateful_dataloader(state, ds)
        st = upgrade(state)
        if self.num_workers > 0:
            if st.get("position") is None:
                raise errors.InvalidArgument(split_changed(st, ds.world_size, self.num_workers))
            st = {k: v for k, v in st.items() if k != "stream"}  # every worker goes on from the global cursor (or grid)
        ds.load_state_dict(st)
        self._origin, self._batches, self._done = None, 0, False
        # Persistent workers made before the load hold no copy of it: the
        # next iteration starts new ones (as StatefulDataLoader does).
        self._iterator = None


def from_stateful_dataloader(state: dict[str, Any], dataset: StokerDataset) -> dict[str, Any]:
    """The global state of a ``torchdata`` ``StatefulDataLoader.state_dict()``
    over ``dataset`` (its batch size the dataset's), which a StokerDataLoader
    resumes with any num_workers and world size.

    Without workers the dataset's own state is in it. With workers it holds
    each worker's state as of the last batch the loader yielded from it,
    plus the batches yielded since that snapshot. The DataLoader takes
    batches from its workers in turn, so the workers one step ahead of the
    others yielded the latest batches: the global cursor is the step the
    others are at, plus a batch of every rank for each worker ahead and
    for each batch since the snapshot."""
    if "_num_yielded" in state:  # no workers
        inner = state.get("dataset_state")
        if not isinstance(inner, dict):
            raise errors.InvalidArgument("StokerDataLoader: this StatefulDataLoader state holds no dataset state")
        return inner
    snap = state["_snapshot"]
    workers = [w.get("dataset_state") for w in snap.get("_worker_snapshots", {}).values()]
    if not workers or any(not isinstance(w, dict) for w in workers):
        raise errors.InvalidArgument("StokerDataLoader: this StatefulDataLoader state holds no state of its workers")
    workers = [upgrade(w) for w in workers]
    streams = [w["stream"] for w in workers]
    if any(int(s["skip"]) for s in streams):
        raise errors.InvalidArgument(
            "StokerDataLoader: this StatefulDataLoader's batches were not the dataset's server batches (a worker "
            "stopped inside one: its batch_size differed), so what it yielded is no prefix of the epoch: resume it "
            "with StatefulDataLoader and the same num_workers"
        )
    world = int(workers[0].get("world_size", dataset.world_size))
    step = int(streams[0]["world_size"]) * dataset.batch_size
    positions = [int(s["position"]) for s in streams]
    low, high = min(positions), max(positions)
    ahead = sum(p > low for p in positions)
    end = high if any(p - low not in (0, step) for p in positions) else None  # a stream at the epoch's end
    since = int(state.get("_steps_since_snapshot", 0))
    position = low + (ahead + since) * world * dataset.batch_size
    if end is not None:
        position = min(position, end)
    first = workers[0]
    return {
        "version": 3,
        "epoch": int(first["epoch"]),
        "position": position,
        "plan_version": max(int(w.get("plan_version", 0)) for w in workers),
        "world_size": world,
        "num_workers": len(workers),
        **{k: first[k] for k in dataset._settings() if k in first},
    }
