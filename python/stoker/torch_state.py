"""Where a StokerDataset's stream is, as a state_dict: the versions of
states, the global cursor a state holds, and why one cannot resume in a
split. See stoker.torch's note on resume."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
from dataclasses import dataclass
from typing import Any

from . import errors

__all__ = ["STATE_VERSION", "Position", "SharedProgress", "global_position", "upgrade", "split_changed"]

STATE_VERSION = 3  # 2: with the plan version of the server's cursor; 3: a global position, workers worker-major


@dataclass
class Position:
    """Where one worker's stream is: the step in progress starts at
    ``position`` of ``epoch``, and ``skip`` of its samples were yielded."""

    epoch: int
    position: int
    skip: int
    plan_version: int = 0  # of the cursor position came from; 0 before the first step
    vrank: int | None = None  # the stream's virtual rank, when not this worker's own (a StokerDataLoader resume)


class SharedProgress:
    """What the processes streaming an epoch learn and the main process
    needs for a global state (see StokerDataLoader.state_dict): the plan
    version of the server's cursors, and where an epoch ends once a stream
    reached its end (or its short last step). Shared like stoker.torch._SharedEpoch."""

    _PLAN, _END_EPOCH, _END = range(3)

    def __init__(self) -> None:
        self._shared: Any = multiprocessing.Array("q", [0, -1, -1], lock=False)

    @property
    def plan_version(self) -> int:
        return int(self._shared[self._PLAN])

    def saw(self, plan_version: int) -> None:
        self._shared[self._PLAN] = plan_version

    def ended(self, epoch: int, position: int) -> None:
        """The epoch ends at position (its last step's cursor)."""
        self._shared[self._END] = position
        self._shared[self._END_EPOCH] = epoch

    def end_of(self, epoch: int) -> int | None:
        """Where epoch ends, when a stream of it told."""
        end, end_epoch = int(self._shared[self._END]), int(self._shared[self._END_EPOCH])
        return end if end_epoch == epoch and end >= 0 else None

    def __getstate__(self) -> dict[str, Any]:
        if multiprocessing.context.get_spawning_popen() is not None:
            return {"shared": self._shared}
        return {"plain": list(self._shared)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "shared" in state:
            self._shared = state["shared"]
        else:
            self._shared = multiprocessing.Array("q", state["plain"], lock=False)


def global_position(pos: Position, vworld: int) -> int | None:
    """The global cursor of a main-process stream at pos, ranks in lockstep
    (every rank has yielded as many batches): the step start at a batch
    boundary, or the sample itself when the process reads the whole epoch
    alone. None mid-batch with other ranks: no prefix of the epoch is what
    was yielded then."""
    if pos.skip == 0:
        return pos.position
    if vworld == 1:
        return pos.position + pos.skip
    return None


def upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """A state of an earlier version in version 3's terms, or an error
    saying why it cannot resume."""
    version = state.get("version")
    if version == 1 and int(state.get("position", 0)) == 0 and int(state.get("skip", 0)) == 0:
        version, state = 2, {**state, "plan_version": 0}  # the start of an epoch is the same in every plan
    if version == 1:
        raise errors.InvalidArgument(
            "stoker: this state_dict was saved by a Stoker whose servers planned epochs with plan version 1; "
            "the server now plans another order, so the saved position cannot resume its epoch: "
            "start that epoch again (load_state_dict of a state at a new epoch's start works)"
        )
    if version == 2:
        # A stream of one virtual rank. Workers were then split rank-major,
        # which is the same split with one rank or no workers.
        pos, skip, vworld = int(state["position"]), int(state["skip"]), int(state["virtual_world_size"])
        return {
            **state,
            "version": STATE_VERSION,
            "position": pos if pos == 0 and skip == 0 else (pos + skip if vworld == 1 else None),
            "stream": {"position": pos, "skip": skip, "rank": int(state["virtual_rank"]), "world_size": vworld},
        }
    if version != STATE_VERSION:
        raise errors.InvalidArgument(f"stoker: unknown state version {version!r}")
    return state


def split_changed(state: dict[str, Any], world_size: int, num_workers: int) -> str:
    """Why a worker's (or a mid-batch) state cannot resume in this split."""
    stream = state.get("stream") or {}
    saved_world, saved_workers = state.get("world_size"), state.get("num_workers")
    what = []
    if saved_workers is not None and saved_workers != num_workers:
        what.append(f"num_workers changed from {saved_workers} to {num_workers}")
    if saved_world is not None and saved_world != world_size:
        what.append(f"world size changed from {saved_world} to {world_size}")
    if not what:
        what.append(
            f"this process reads another stream (virtual rank {stream.get('rank')} of {stream.get('world_size')} saved)"
        )
    return (
        f"stoker: cannot resume this state_dict: {', '.join(what)}. It holds one stream's place "
        f"({'a DataLoader worker' if saved_workers else 'mid-batch, with other ranks'}), which only the same "
        "split resumes exactly. Resume with the same num_workers and world size, or load the whole "
        "StatefulDataLoader state into stoker.torch.StokerDataLoader (or save a StokerDataLoader's state, a "
        "global cursor), which resumes with any."
    )
