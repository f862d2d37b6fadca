"""Columnar (Parquet / Arrow) batches as torch tensors: a whole batch as
``{column: tensor}`` (:func:`columns_to_tensors`, zero-copy for
fixed-width columns) and rows as dicts (:func:`columnar_rows`). Import
them from :mod:`stoker.torch`; they need pyarrow."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import errors

if TYPE_CHECKING:
    import pyarrow as pa

    from .arrow import ColumnarBatch

__all__ = ["columns_to_tensors", "columnar_rows"]


def _tensor_of(name: str, arr: pa.Array) -> torch.Tensor | None:
    """A column as a tensor: a view of the Arrow buffer for fixed-width and
    fixed-size-list columns with no nulls (timestamps and durations as
    int64), a copy for booleans. None for a type with no tensor form.
    Raises InvalidArgument, naming the column, when it holds nulls."""
    import pyarrow as pa

    from . import arrow

    is_bool = pa.types.is_boolean(arr.type)
    if arrow.fixed_layout(arr.type) is None and not is_bool:
        return None
    if is_bool:
        view = arr.to_numpy(zero_copy_only=False) if not arr.null_count else None
    else:
        view = arrow.fixed_view(arr)
    if view is None:
        raise errors.InvalidArgument(
            f"stoker.torch: column {name!r} ({arr.type}) has nulls, which a tensor cannot hold: "
            "fill them in the data, leave the column out with columns=, or read Batch.record_batch()"
        )
    if view.dtype.kind in "mM":  # datetime64 / timedelta64: their int64 storage
        view = view.view(np.int64)
    with warnings.catch_warnings():
        # The view is read-only (the message's bytes): torch warns that it
        # does not enforce that. Don't write to these tensors in place.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(view)


def columns_to_tensors(batch: ColumnarBatch | pa.RecordBatch) -> dict[str, torch.Tensor]:
    """A columnar batch (or RecordBatch) as ``{column: tensor}``.

    Fixed-width columns (integers, floats; timestamps and durations as
    their int64 values) and fixed-size lists of them, with no nulls, become
    tensors over the received Arrow buffers with no copy (a fixed-size list
    of n values: shape ``(rows, n)``); booleans are copied (Arrow stores
    them as bits). The tensors share memory with the message: don't write
    to them in place. Any other column, or one with nulls, raises
    InvalidArgument naming it: project it away with ``columns=``."""
    from . import arrow

    # A stoker.Batch has arrow_ipc; anything else (a RecordBatch, a Table)
    # is read as it is.
    rb: Any = arrow.record_batch(batch) if hasattr(batch, "arrow_ipc") else batch
    out: dict[str, torch.Tensor] = {}
    for i, name in enumerate(rb.schema.names):
        col = rb.column(i)
        t = _tensor_of(name, col)
        if t is None:
            raise errors.InvalidArgument(
                f"stoker.torch: column {name!r} ({col.type}) has no tensor form (fixed-width numbers, "
                "booleans, timestamps and fixed-size lists of them do): leave it out with columns=, or read "
                "Batch.to_numpy() / Batch.record_batch()"
            )
        out[name] = t
    return out


def _column_rows(name: str, arr: pa.Array) -> list[Any]:
    """Each row's value of one column: tensors (views of the column's
    tensor) for a column with a tensor form, None where null; Python values
    (to_pylist) for the other types."""
    import pyarrow as pa

    from . import arrow

    if arrow.fixed_layout(arr.type) is None and not pa.types.is_boolean(arr.type):
        return list(arr.to_pylist())
    if not arr.null_count:
        t = _tensor_of(name, arr)
        assert t is not None
        return list(t.unbind(0))
    # Nulls: the valid rows one by one, from their Python values.
    dtype = torch.bool if pa.types.is_boolean(arr.type) else _torch_dtype(arr.type)
    out: list[Any] = []
    for v in arr.to_pylist():
        if v is None:
            out.append(None)
            continue
        try:
            out.append(torch.tensor(v, dtype=dtype))
        except (TypeError, RuntimeError):
            raise errors.InvalidArgument(
                f"stoker.torch: column {name!r} ({arr.type}) has nulls inside a list, which a tensor cannot hold"
            ) from None
    return out


def _torch_dtype(t: pa.DataType) -> torch.dtype:
    from . import arrow

    layout = arrow.fixed_layout(t)
    assert layout is not None
    dt = layout[0]
    if dt.kind in "mM":  # timestamps and durations: their int64 values
        return torch.int64
    return torch.from_numpy(np.zeros(0, dtype=dt)).dtype


def columnar_rows(rb: pa.RecordBatch, objects: Sequence[str]) -> list[dict[str, Any]]:
    """A RecordBatch's rows as dicts: ``__url__`` (the row's object, from
    ``objects``) and one entry per column (see _column_rows)."""
    cols = [(name, _column_rows(name, rb.column(i))) for i, name in enumerate(rb.schema.names)]
    rows: list[dict[str, Any]] = []
    for r in range(rb.num_rows):
        row: dict[str, Any] = {"__url__": objects[r]}
        for name, values in cols:
            row[name] = values[r]
        rows.append(row)
    return rows
