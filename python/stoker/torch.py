"""A PyTorch ``IterableDataset`` over a Stoker stream.

``StokerDataset`` reads this rank's share of each epoch from a ``stokerd``
and yields webdataset-style sample dicts (``__key__``, ``__url__`` and one
entry per field, raw bytes unless ``decode=`` says otherwise: on the local
fast path memoryviews that hold their shared-memory lease, ``bytes``
with ``copy=True`` or over TCP), or whole batches with ``batched=True``.

Splitting: the rank and world size come from the arguments, else from
``torch.distributed`` when it is initialised, else 0 and 1. Inside a
DataLoader, worker w of W reads as the virtual rank ``w·N + r`` of a world
of ``N·W`` (worker-major, see :func:`stoker.split.worker_split`): every
sample of the epoch is read by exactly one worker of one rank, each worker
streams only its own samples, and with one rank the DataLoader (which
takes batches from its workers in turn) yields the epoch in plan order.
Give the DataLoader the same ``batch_size`` as the dataset so that each
DataLoader batch is one server batch: :class:`StokerDataLoader` does, and
a plain DataLoader with another batch size gets a warning (once per
dataset and process; from a worker it prints on stderr).

Epochs: ``set_epoch(e)`` like ``DistributedSampler``; it reaches persistent
workers too (the epoch lives in shared memory).

Columnar (Parquet / Arrow) datasets: each row is a dict of ``__url__`` (its
object) and one entry per column (``columns=`` projects): a tensor for a
fixed-width or fixed-size-list column (a view of the batch's tensor) or a
boolean one, ``None`` where the row is null, and pyarrow's Python value
(``to_pylist()``) for strings, binaries, variable lists, structs and the
rest. ``batched=True`` yields each server batch as ``{column: tensor}``
(:func:`columns_to_tensors`, zero-copy for fixed-width columns) plus
``__url__``, a list of the rows' objects; a column it cannot make a tensor
of raises an error naming it. Columnar datasets need pyarrow.

Resume: :class:`StokerDataLoader` (a DataLoader with the dataset's batch
size) has ``state_dict()``/``load_state_dict()`` holding a global cursor:
the position in the epoch before which every sample was yielded by some
rank and after which none. It resumes exactly with any ``num_workers`` and
any world size (ranks in lockstep when it is saved, as in DDP).
The dataset's own ``state_dict()`` is its process's stream: the cursor of
the step in progress and how many of its samples were yielded, which is
what ``torchdata.stateful_dataloader.StatefulDataLoader`` saves and
restores for each worker (exact, with the same num_workers and world
size). Saved in the main process at a batch boundary (or by a process
that reads the whole epoch alone) it is a global cursor too. A state that
cannot resume in a split is refused where it is loaded, saying what
changed ("num_workers changed from 2 to 3"). States name the url, seed,
batch_size, shuffle settings, drop_last and columns they were saved with,
and are refused for another dataset.

Decoding: ``decode=`` takes ``True``/``"auto"``, one of webdataset's image
modes (``"rgb8"``, ``"torchrgb"``, ``"pil"``, … see
:data:`stoker.decode.IMAGE_MODES`) or a function; decoded arrays and
tensors are writable. Ragged values (a columnar list column, images of
several sizes) do not stack in ``default_collate``: ``collate_fn=``
:func:`stoker.collate.collate` pads them (or makes nested tensors).
"""

from __future__ import annotations

from .torch_columns import columnar_rows, columns_to_tensors
from .torch_dataset import StokerDataset, distributed_rank
from .torch_loader import StokerDataLoader, from_stateful_dataloader

__all__ = [
    "StokerDataLoader",
    "StokerDataset",
    "columnar_rows",
    "columns_to_tensors",
    "distributed_rank",
    "from_stateful_dataloader",
]
