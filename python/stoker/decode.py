"""Decoders for the common WebDataset fields.

A field's type is its extension: the part of its name after the last dot
(``jpg``, ``seg.png`` → ``png``), as in webdataset. ``decode_sample`` turns

- ``cls``, ``cls2``, ``index``, ``inx``, ``id`` into ``int``;
- ``txt``, ``text``, ``transcript`` into ``str``;
- ``json``, ``jsn`` into the parsed object;
- ``npy`` into a numpy array (never unpickling), ``npz`` into a dict of arrays;
- images (``jpg``, ``png``, ``webp``, …) via Pillow, when it is installed
  (without it image fields stay bytes and a warning says so once): by
  default into uint8 numpy arrays in the image's own mode (H×W×C, or H×W
  for greyscale); with ``image=`` one of webdataset's modes (IMAGE_MODES):
  ``rgb8``/``l8``/``rgba8`` uint8 numpy H×W×C, ``rgb``/``l``/``rgba``
  float32 numpy in [0, 1], ``torchrgb8``… uint8 torch C×H×W,
  ``torchrgb``/``torch``… float32 torch C×H×W, ``pil``/``pill``/``pilrgba``
  PIL images. The values are webdataset's for the same mode; every array
  and tensor is a new, writable one (so torch never warns that a NumPy
  array is not writable).

Fields with other extensions, and the ``__key__``/``__url__`` entries, pass
through unchanged.
"""

from __future__ import annotations

import functools
import io
import json
import warnings
from collections.abc import Callable
from typing import Any, Union

import numpy as np

from .errors import InvalidArgument

__all__ = ["Decoder", "decode_sample", "decoder_for", "field_type", "image_decoder", "IMAGE_EXTENSIONS", "IMAGE_MODES"]

Decoder = Callable[[dict[str, Any]], Any]
"""A function from a raw sample dict to whatever the trainer wants."""

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "ppm", "pgm", "pbm", "pnm", "webp", "bmp", "tif", "tiff", "gif"})

_pillow_warned = False


def field_type(name: str) -> str:
    """The decoder type of a field name: its last extension, lower case."""
    return name.rsplit(".", 1)[-1].lower()


def _pillow() -> Any:
    """PIL.Image, or None (with one warning) when Pillow is not installed."""
    global _pillow_warned
    try:
        from PIL import Image
    except ImportError:
        if not _pillow_warned:
            warnings.warn("stoker: Pillow is not installed, image fields stay bytes (pip install pillow)", stacklevel=4)
            _pillow_warned = True
        return None
    return Image


def _image(data: bytes) -> Any:
    """An image in its own mode: H×W×C uint8 (H×W for one channel), writable."""
    Image = _pillow()
    if Image is None:
        return data
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return np.array(img)  # a copy: writable, unlike np.asarray of a PIL image


# webdataset's image specs: mode -> (array type, element type, PIL mode).
IMAGE_MODES: dict[str, tuple[str, str | None, str]] = {
    "l8": ("numpy", "uint8", "L"),
    "rgb8": ("numpy", "uint8", "RGB"),
    "rgba8": ("numpy", "uint8", "RGBA"),
    "l": ("numpy", "float", "L"),
    "rgb": ("numpy", "float", "RGB"),
    "rgba": ("numpy", "float", "RGBA"),
    "torchl8": ("torch", "uint8", "L"),
    "torchrgb8": ("torch", "uint8", "RGB"),
    "torchrgba8": ("torch", "uint8", "RGBA"),
    "torchl": ("torch", "float", "L"),
    "torchrgb": ("torch", "float", "RGB"),
    "torch": ("torch", "float", "RGB"),
    "torchrgba": ("torch", "float", "RGBA"),
    "pill": ("pil", None, "L"),
    "pil": ("pil", None, "RGB"),
    "pilrgb": ("pil", None, "RGB"),
    "pilrgba": ("pil", None, "RGBA"),
}


def image_decoder(mode: str) -> Callable[[bytes], Any]:
    """A decoder of image bytes in one of webdataset's modes (IMAGE_MODES):
    numpy ``H×W×C`` (``H×W`` for ``l``) or torch ``C×H×W`` (``H×W``), uint8
    (``…8``) or float32 in [0, 1]; ``pil…`` a PIL image. Arrays and tensors
    are new and writable. The values are webdataset's for the same mode."""
    if mode not in IMAGE_MODES:
        raise InvalidArgument(f"stoker: unknown image mode {mode!r}: want one of {', '.join(IMAGE_MODES)}")
    kind, etype, pil_mode = IMAGE_MODES[mode]

    def decode(data: bytes) -> Any:
        Image = _pillow()
        if Image is None:
            return data
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            img = img.convert(pil_mode)
        if kind == "pil":
            return img
        arr = np.array(img)  # writable
        if etype == "float":
            arr = arr.astype(np.float32) / 255.0
        if kind == "numpy":
            return arr
        import torch

        if arr.ndim == 3:
            arr = np.ascontiguousarray(arr.transpose(2, 0, 1))
        return torch.from_numpy(arr)

    return decode


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


def decode_sample(sample: dict[str, Any], image: str = "auto") -> dict[str, Any]:
    """Decode every field of a sample whose type has a decoder. ``image``
    is how images are decoded: ``"auto"`` in their own mode (uint8 H×W×C,
    H×W for one channel), or one of webdataset's modes (IMAGE_MODES)."""
    by_type = _BY_TYPE if image == "auto" else _by_type(image)
    out: dict[str, Any] = {}
    for name, value in sample.items():
        if name.startswith("__") or not isinstance(value, (bytes, bytearray, memoryview)):
            out[name] = value
            continue
        fn = by_type.get(field_type(name))
        if fn is None:
            out[name] = value
            continue
        try:
            out[name] = fn(bytes(value))
        except Exception as err:
            raise ValueError(
                f"stoker: cannot decode field {name!r} of sample {sample.get('__key__')!r}: {err}"
            ) from err
    return out


@functools.cache
def _by_type(image: str) -> dict[str, Callable[[bytes], Any]]:
    fn = image_decoder(image)
    return {**_BY_TYPE, **{ext: fn for ext in IMAGE_EXTENSIONS}}


# Union, not |: on 3.10 a union of a type and a collections.abc.Callable[...]
# alias is not sure to work at run time.
DecodeOption = Union[bool, str, Decoder, None]  # noqa: UP007


def decoder_for(decode: DecodeOption) -> Decoder | None:
    """Turn a ``decode=`` argument into a function (None: raw bytes).

    ``False``/``None`` keep bytes; ``True`` or ``"auto"`` use
    :func:`decode_sample`; an image mode of webdataset's (``"rgb8"``,
    ``"torchrgb"``, ``"pil"``, … see IMAGE_MODES) is decode_sample with
    images in that mode; a callable is used as given.
    """
    if decode is None or decode is False:
        return None
    if decode is True or decode == "auto":
        return decode_sample
    if isinstance(decode, str):
        if decode not in IMAGE_MODES:
            raise InvalidArgument(
                f"stoker: decode={decode!r}: want True, 'auto', an image mode ({', '.join(IMAGE_MODES)}) or a function"
            )
        _by_type(decode)
        return functools.partial(decode_sample, image=decode)
    if callable(decode):
        return decode
    raise InvalidArgument(f"stoker: decode must be a bool, 'auto', an image mode or a function, got {decode!r}")
