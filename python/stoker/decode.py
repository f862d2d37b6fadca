"""Decoders for the common WebDataset fields.

A field's type is its extension: the part of its name after the last dot
(``jpg``, ``seg.png`` → ``png``), as in webdataset. ``decode_sample`` turns

- ``cls``, ``cls2``, ``index``, ``inx``, ``id`` into ``int``;
- ``txt``, ``text``, ``transcript`` into ``str``;
- ``json``, ``jsn`` into the parsed object;
- ``npy`` into a numpy array (never unpickling), ``npz`` into a dict of arrays;
- images (``jpg``, ``png``, ``webp``, …) into uint8 numpy arrays (H×W×C, or
  H×W for greyscale) via Pillow, when Pillow is installed; without it image
  fields stay bytes and a warning says so once.

Fields with other extensions, and the ``__key__``/``__url__`` entries, pass
through unchanged.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable
from typing import Any, Union

import numpy as np

__all__ = ["Decoder", "decode_sample", "decoder_for", "field_type", "IMAGE_EXTENSIONS"]

Decoder = Callable[[dict[str, Any]], Any]
"""A function from a raw sample dict to whatever the trainer wants."""

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "ppm", "pgm", "pbm", "pnm", "webp", "bmp", "tif", "tiff", "gif"})

_pillow_warned = False


def field_type(name: str) -> str:
    """The decoder type of a field name: its last extension, lower case."""
    return name.rsplit(".", 1)[-1].lower()


def _image(data: bytes) -> Any:
    global _pillow_warned
    try:
        from PIL import Image
    except ImportError:
        if not _pillow_warned:
            warnings.warn("stoker: Pillow is not installed, image fields stay bytes (pip install pillow)", stacklevel=3)
            _pillow_warned = True
        return data
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return np.asarray(img)


def _npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


_BY_TYPE: dict[str, Callable[[bytes], Any]] = {
    "cls": lambda b: int(b),
    "cls2": lambda b: int(b),
    "index": lambda b: int(b),
    "inx": lambda b: int(b),
    "id": lambda b: int(b),
    "txt": lambda b: b.decode("utf-8"),
    "text": lambda b: b.decode("utf-8"),
    "transcript": lambda b: b.decode("utf-8"),
    "json": json.loads,
    "jsn": json.loads,
    "npy": lambda b: np.load(io.BytesIO(b), allow_pickle=False),
    "npz": _npz,
    **{ext: _image for ext in IMAGE_EXTENSIONS},
}


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Decode every field of a sample whose type has a decoder."""
    out: dict[str, Any] = {}
    for name, value in sample.items():
        if name.startswith("__") or not isinstance(value, (bytes, bytearray, memoryview)):
            out[name] = value
            continue
        fn = _BY_TYPE.get(field_type(name))
        if fn is None:
            out[name] = value
            continue
        try:
            out[name] = fn(bytes(value))
        except Exception as err:
            raise ValueError(f"stoker: cannot decode field {name!r} of sample {sample.get('__key__')!r}: {err}") from err
    return out


DecodeOption = Union[bool, str, Decoder, None]


def decoder_for(decode: DecodeOption) -> Decoder | None:
    """Turn a ``decode=`` argument into a function (None: raw bytes).

    ``False``/``None`` keep bytes; ``True`` or ``"auto"`` use
    :func:`decode_sample`; a callable is used as given.
    """
    if decode is None or decode is False:
        return None
    if decode is True or decode == "auto":
        return decode_sample
    if callable(decode):
        return decode
    raise ValueError(f"stoker: decode must be a bool, 'auto' or a function, got {decode!r}")
