"""Columnar (Parquet / Arrow) batches as pyarrow and numpy.

A columnar dataset's batch arrives as one or more Arrow IPC streams (a big
batch in several messages), each the projected schema and one record
batch. This module, the only one of the framework-free client that imports
pyarrow (``pip install 'stoker[arrow]'``), turns them into:

- :func:`record_batch` — one ``pyarrow.RecordBatch`` (the parts joined);
- :func:`to_numpy` — a dict of numpy arrays, one per column.

Zero-copy: the IPC reader's buffers are slices of the received message
(``pa.py_buffer`` over the message's ``bytes``), and a column of a
fixed-width type (integers, floats, timestamps and durations) or a
fixed-size list of one, with no nulls, becomes a read-only numpy view of
that buffer (:func:`fixed_view`). A batch in one message is therefore never
copied; one sent in several parts is copied once, when the parts are
joined. Other columns (strings, binaries, variable lists, structs, maps,
booleans, which Arrow stores as bits, and any column with nulls) are
converted as pyarrow's ``Array.to_numpy(zero_copy_only=False)`` does:
strings and nested values as object arrays, nulls as ``None`` or NaN.

The views share memory with the message: don't write to them in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.ipc

from . import errors


class ColumnarBatch(Protocol):
    """What this module reads of a :class:`stoker.Batch` (it does not
    import stoker.types, whose Batch calls it)."""

    @property
    def step(self) -> int: ...
    @property
    def arrow_ipc(self) -> list[bytes]: ...


class ColumnarInfo(Protocol):
    """What :func:`schema` reads of a :class:`stoker.DatasetInfo`."""

    @property
    def url(self) -> str: ...
    @property
    def arrow_schema(self) -> bytes: ...


__all__ = [
    "schema",
    "record_batch",
    "to_numpy",
    "fixed_view",
    "fixed_layout",
    "column_to_numpy",
]


def schema(info: ColumnarInfo | bytes, columns: Sequence[str] | None = None) -> pa.Schema:
    """A columnar dataset's Arrow schema (from ``Client.open_dataset``),
    projected to ``columns`` in their order when given. Raises
    InvalidArgument for a WebDataset dataset or an unknown column."""
    raw = info if isinstance(info, bytes) else info.arrow_schema
    where = "" if isinstance(info, bytes) else f" {info.url}"
    if not raw:
        raise errors.InvalidArgument(f"stoker: dataset{where} is not columnar (it has no Arrow schema)")
    s = pa.ipc.read_schema(pa.py_buffer(raw))
    if not columns:
        return s
    fields = []
    for name in columns:
        i = s.get_field_index(name)
        if i < 0:
            raise errors.InvalidArgument(
                f"stoker: dataset{where} has no column {name!r} (columns: {', '.join(s.names)})"
            )
        fields.append(s.field(i))
    return pa.schema(fields, metadata=s.metadata)


def _read_part(data: bytes) -> list[pa.RecordBatch]:
    # py_buffer wraps the bytes object without copying; the batches' buffers
    # are slices of it and keep it alive.
    return list(pa.ipc.open_stream(pa.py_buffer(data)))


def record_batch(batch: ColumnarBatch) -> pa.RecordBatch:
    """A columnar batch's rows as one RecordBatch, in the epoch's order.

    One message's batch is read in place (its buffers are the message's
    bytes); the parts of a bigger one are joined into new buffers."""
    if not batch.arrow_ipc:
        raise errors.InvalidArgument(
            f"stoker: step {batch.step} is not columnar: its rows are WebDataset samples (Batch.samples)"
        )
    parts = [rb for data in batch.arrow_ipc for rb in _read_part(data)]
    if len(parts) == 1:
        return parts[0]
    try:
        return pa.concat_batches(parts)
    except pa.ArrowInvalid as err:  # parts whose schemas differ
        raise errors.StokerError(f"stoker: step {batch.step}: joining {len(parts)} parts: {err}") from None


def fixed_layout(t: pa.DataType) -> tuple[np.dtype[Any], tuple[int, ...]] | None:
    """The numpy dtype and per-row shape of a type whose values are laid
    out as one fixed-width array: a fixed-width number, timestamp or
    duration (shape ``()``), or a fixed-size list of one (``(n, ...)``).
    None for every other type (booleans too: Arrow packs them in bits)."""
    if pa.types.is_fixed_size_list(t):
        inner = fixed_layout(t.value_type)
        if inner is None:
            return None
        return inner[0], (t.list_size, *inner[1])
    if pa.types.is_timestamp(t):
        return np.dtype(f"datetime64[{t.unit}]"), ()
    if pa.types.is_duration(t):
        return np.dtype(f"timedelta64[{t.unit}]"), ()
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return np.dtype(t.to_pandas_dtype()), ()
    return None


def fixed_view(arr: pa.Array) -> np.ndarray | None:
    """A read-only numpy view of ``arr``'s values buffer (no copy) when its
    type has a fixed layout (see fixed_layout) and it holds no nulls, at any
    level; else None. A fixed-size list of n values per row becomes a
    ``(len(arr), n)`` array (deeper lists add dimensions)."""
    if arr.null_count:
        return None
    t = arr.type
    if pa.types.is_fixed_size_list(t):
        # flatten() slices the child array by the list's own offset (no copy).
        inner = fixed_view(arr.flatten())
        if inner is None:
            return None
        return inner.reshape(len(arr), t.list_size, *inner.shape[1:])
    if fixed_layout(t) is None:
        return None
    view = arr.to_numpy(zero_copy_only=True)
    view.flags.writeable = False
    return view


def column_to_numpy(arr: pa.Array) -> np.ndarray:
    """One column as numpy: a view when fixed_view gives one, else what
    pyarrow's ``to_numpy(zero_copy_only=False)`` gives."""
    view = fixed_view(arr)
    if view is not None:
        return view
    return arr.to_numpy(zero_copy_only=False)


def to_numpy(batch: ColumnarBatch | pa.RecordBatch) -> dict[str, np.ndarray]:
    """A columnar batch (or a RecordBatch) as ``{column: numpy array}``, in
    the schema's column order (see the module's note on zero-copy)."""
    rb = batch if isinstance(batch, pa.RecordBatch) else record_batch(batch)
    return {name: column_to_numpy(rb.column(i)) for i, name in enumerate(rb.schema.names)}
