"""A DataLoader ``collate_fn`` for samples whose values differ in size.

``torch.utils.data.default_collate`` stacks values of the same shape and
fails on the rest (``each element in list of batch should be of equal
size``): a columnar row's list column, images of several sizes, token
sequences. :func:`collate` does what default_collate does where shapes
agree, and for values whose shapes differ

- ``ragged="pad"`` (default): one tensor padded with ``pad_value`` to the
  largest size in every dimension. In a dict sample the sizes go in
  ``batch["__lengths__"][name]``: shape ``(B,)`` for 1-d values (the
  length of each), ``(B, ndim)`` for more dimensions (each shape).
- ``ragged="nested"``: a ``torch.nested`` tensor of jagged layout, which
  keeps each value's length itself, when only the first dimension varies
  (sequences); the list of tensors when more do.
- ``ragged="list"``: the list of tensors.

Values, one sample's entry each:

- tensors and numpy arrays, Python lists of numbers (pyarrow's value of a
  list column) and lists of such lists become tensors (then stacked,
  padded, nested or listed);
- numbers and booleans a 1-d tensor; strings, bytes and anything without a
  tensor form a list;
- dicts (a sample, a struct column) are collated per key, tuples (what a
  decode function returns) per position;
- ``None`` (a null): for an array-like value it is an empty one (length 0,
  all padding); for a scalar the field stays a list with the ``None`` in
  it. In a dict of dicts a null dict is a dict of nulls.

Usage: ``DataLoader(ds, batch_size=B, collate_fn=stoker.collate.collate)``,
or ``functools.partial(collate, ragged="nested")``. Needs torch.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .errors import InvalidArgument

__all__ = ["collate", "RAGGED"]

RAGGED = ("pad", "nested", "list")


def collate(batch: Sequence[Any], *, ragged: str = "pad", pad_value: float = 0) -> Any:
    """Collate a list of samples (see the module's note)."""
    if ragged not in RAGGED:
        raise InvalidArgument(f"stoker.collate: ragged={ragged!r}: want one of {RAGGED}")
    if not batch:
        return []
    return _Collate(ragged, pad_value).values(list(batch))[0]


class _Collate:
    def __init__(self, ragged: str, pad_value: float) -> None:
        self.ragged = ragged
        self.pad_value = pad_value

    def values(self, col: list[Any]) -> tuple[Any, Any]:
        """One entry of every sample, collated, and its sizes (lengths, or
        a dict of them for a dict; None when the values were not ragged)."""
        present = [v for v in col if v is not None]
        if not present:
            return col, None
        elem = present[0]
        if isinstance(elem, Mapping):
            return self.mapping(col, elem)
        if isinstance(elem, tuple):
            if len(present) < len(col) or any(not isinstance(v, tuple) or len(v) != len(elem) for v in col):
                return col, None
            parts = [self.values(list(p))[0] for p in zip(*col, strict=True)]
            return (type(elem)(*parts) if hasattr(elem, "_fields") else tuple(parts)), None
        if isinstance(elem, (str, bytes, bytearray, memoryview)):
            return col, None
        if isinstance(elem, (bool, numbers.Number, np.generic)) and not isinstance(elem, np.ndarray):
            if len(present) < len(col):
                return col, None
            try:
                return torch.as_tensor(np.asarray(col)), None
            except (TypeError, ValueError, RuntimeError):
                return col, None
        tensors = self.tensors(col)
        if tensors is None:
            return col, None
        return self.join(tensors)

    def mapping(self, col: list[Any], elem: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
        keys = list(elem)
        for v in col:
            if v is not None and isinstance(v, Mapping):
                keys += [k for k in v if k not in keys]
        out: dict[str, Any] = {}
        lengths: dict[str, Any] = {}
        for k in keys:
            vals = [v.get(k) if isinstance(v, Mapping) else None for v in col]
            out[k], ln = self.values(vals)
            if ln is not None:
                lengths[k] = ln
        if lengths:
            out["__lengths__"] = lengths
        return out, None

    def tensors(self, col: list[Any]) -> list[torch.Tensor] | None:
        """Each value as a tensor (None: empty, with the others' trailing
        shape and dtype), or None when one has no tensor form."""
        out: list[torch.Tensor | None] = []
        for v in col:
            if v is None:
                out.append(None)
            elif isinstance(v, torch.Tensor):
                out.append(v)
            elif isinstance(v, np.ndarray):
                if v.dtype == object:
                    return None
                out.append(torch.from_numpy(v if v.flags.writeable else v.copy()))
            elif isinstance(v, (list, tuple)):
                if not v:  # empty: the others' dtype, not numpy's float64
                    out.append(None)
                    continue
                try:
                    arr = np.asarray(v)
                except ValueError:  # ragged nested lists
                    return None
                if arr.dtype == object or arr.dtype.kind in "USV":
                    return None
                out.append(torch.from_numpy(arr))
            else:
                return None
        known = [t for t in out if t is not None]
        if not known:
            return None
        like = known[0]
        return [t if t is not None else like.new_empty((0, *like.shape[1:])) for t in out]

    def join(self, ts: list[torch.Tensor]) -> tuple[Any, Any]:
        shapes = [tuple(t.shape) for t in ts]
        if all(s == shapes[0] for s in shapes):
            return torch.stack(ts), None
        if len({len(s) for s in shapes}) != 1:
            return ts, None  # different ranks: no common form
        dtype = ts[0].dtype
        for t in ts[1:]:
            dtype = torch.promote_types(dtype, t.dtype)
        ts = [t.to(dtype) for t in ts]
        if self.ragged == "list":
            return ts, None
        if self.ragged == "nested":
            if all(s[1:] == shapes[0][1:] for s in shapes):
                return torch.nested.nested_tensor(ts, layout=torch.jagged), None
            return ts, None  # a jagged tensor has one ragged dimension
        size = [max(s[d] for s in shapes) for d in range(len(shapes[0]))]
        out = torch.full((len(ts), *size), self.pad_value, dtype=dtype)
        for i, t in enumerate(ts):
            where: tuple[int | slice, ...] = (i, *(slice(0, n) for n in t.shape))
            out[where] = t
        lengths = torch.tensor(shapes, dtype=torch.int64)
        return out, lengths[:, 0] if lengths.shape[1] == 1 else lengths
