"""Ready batches: the server decodes and augments, the trainer gets tensors.

A :class:`Transform` says, for each tensor of a batch, which field of each
sample to read, how to decode it and, for images, which ops to apply. The
server (``stokerd``) runs it on its own cores and sends one dense tensor per
output for each batch, so the trainer process does no decoding at all::

    from stoker.pipeline import Transform, image, label

    train = Transform({
        "image": image().random_resized_crop(224).flip().normalize().to("float32", "CHW"),
        "label": label(),
    })
    ds = StokerDataset(url, server="unix:/run/stoker.sock", batch_size=256, transform=train)
    for batch in DataLoader(ds, batch_size=None):
        batch["image"]  # torch.float32, (256, 3, 224, 224)

Over the server's unix socket the tensors are arrays built on the shared
region the server wrote them into: no copy at all, valid until the next
batch is asked for (copy what must live longer). Over TCP each tensor
arrives as one contiguous buffer.

Randomness: every random op draws from a generator keyed by (seed, epoch,
the sample's position in the epoch's order, the op's index), so a sample's
crop and flip do not depend on the world size, the number of DataLoader
workers, a resume or the node that served it. :func:`sample_rng` is that
generator and :func:`random_resized_crop_params` the crop it draws.

Ops follow torchvision: ``resize`` (shorter side, or height and width),
``center_crop``, ``random_resized_crop``, ``flip`` (horizontal),
``normalize`` (``(x/255 - mean) / std``, as ``ToDtype(scale=True)`` then
``Normalize``), resampled with Pillow's antialiased bilinear filter. An
image's ops are at most one resize or random-resized crop, then at most one
center crop, then flip and normalize; the output size must be fixed.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import errors
from .v1 import loader_pb2

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageOutput",
    "Output",
    "ReadyBatch",
    "Transform",
    "image",
    "imagenet_train",
    "imagenet_val",
    "json_value",
    "label",
    "npy",
    "random_resized_crop_params",
    "sample_rng",
    "text",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_SIZES = {
    "bool": 1,
    "uint8": 1,
    "int8": 1,
    "uint16": 2,
    "int16": 2,
    "uint32": 4,
    "int32": 4,
    "uint64": 8,
    "int64": 8,
    "float16": 2,
    "float32": 4,
    "float64": 8,
}


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


@dataclass(frozen=True)
class Output:
    """One tensor of a ready batch: a field of each sample (alternatives
    separated by ';', the first present is read) and its decoder ("npy",
    "json", "int", "text"; images are :class:`ImageOutput`)."""

    field: str
    decode: str
    dtype: str = ""
    shape: tuple[int, ...] | None = None

    def proto(self, name: str) -> loader_pb2.PipelineOutput:
        out = loader_pb2.PipelineOutput(name=name, field=self.field, decode=self.decode, dtype=self.dtype)
        if self.shape is not None:
            out.shape.dims.extend(self.shape)
        return out

    def spec(self) -> tuple[tuple[int | None, ...] | None, str]:
        """Each sample's shape (None: known only from the data) and dtype
        ("" when the data says)."""
        if self.decode == "int":
            return (), self.dtype or "int64"
        if self.decode == "text":
            return (), "string"
        if self.decode == "json":
            return self.shape, self.dtype or "float32"
        return self.shape, self.dtype


@dataclass(frozen=True)
class ImageOutput(Output):
    """An image output; each method returns a new one with an op added."""

    ops: tuple[loader_pb2.ImageOp, ...] = ()
    layout: str = "HWC"
    channels: int = 3
    with_params: bool = False
    full_res: bool = False
    _size: tuple[int, int] | None = None
    _normalized: bool = False

    def _op(self, size: tuple[int, int] | None = None, **kw: Any) -> ImageOutput:
        return replace(self, ops=(*self.ops, loader_pb2.ImageOp(**kw)), _size=size or self._size)

    def resize(self, shorter: int | None = None, *, size: int | Sequence[int] | None = None) -> ImageOutput:
        """Resize the shorter side to ``shorter`` (keeping the aspect
        ratio, as torchvision's Resize(int)) or to ``size`` (h, w)."""
        if (shorter is None) == (size is None):
            raise errors.InvalidArgument("stoker.pipeline: resize takes shorter= or size=")
        if size is not None:
            h, w = _pair(size)
            return self._op((h, w), resize=loader_pb2.Resize(height=h, width=w))
        return self._op(resize=loader_pb2.Resize(shorter=int(shorter or 0)))

    def center_crop(self, size: int | Sequence[int]) -> ImageOutput:
        """Cut ``size`` (h, w) from the middle (an image smaller than that
        is an error naming the sample)."""
        h, w = _pair(size)
        return self._op((h, w), center_crop=loader_pb2.CenterCrop(height=h, width=w))

    def random_resized_crop(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
    ) -> ImageOutput:
        """torchvision's RandomResizedCrop: a random box of ``scale`` of the
        area and ``ratio`` (w/h), resampled to ``size``. First op only."""
        h, w = _pair(size)
        rrc = loader_pb2.RandomResizedCrop(
            height=h, width=w, scale_min=scale[0], scale_max=scale[1], ratio_min=ratio[0], ratio_max=ratio[1]
        )
        return self._op((h, w), random_resized_crop=rrc)

    def flip(self, p: float = 0.5) -> ImageOutput:
        """Mirror left to right with probability ``p``."""
        return self._op(horizontal_flip=loader_pb2.HorizontalFlip(p=p))

    def normalize(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> ImageOutput:
        """``(pixel/255 - mean) / std`` per channel, in float32 (float16
        with ``to("float16")``: the float32 value rounded)."""
        out = self._op(normalize=loader_pb2.Normalize(mean=list(mean), std=list(std)))
        return replace(out, _normalized=True)

    def to(self, dtype: str | None = None, layout: str | None = None) -> ImageOutput:
        """The tensor's dtype ("uint8", "float16", "float32"; unnormalized
        floats are pixel/255) and layout ("HWC" or "CHW")."""
        return replace(
            self, dtype=dtype if dtype is not None else self.dtype, layout=layout if layout is not None else self.layout
        )

    def gray(self) -> ImageOutput:
        """One channel: Pillow's luma."""
        return replace(self, channels=1)

    def params(self) -> ImageOutput:
        """Also the tensor "<name>.params" (int32, (rows, 5)): each crop's
        top, left, height, width in the decoded image and whether it was
        flipped."""
        return replace(self, with_params=True)

    def full_resolution(self) -> ImageOutput:
        """Decode every JPEG at full size (by default a crop twice the
        output or more is decoded at 1/2, 1/4 or 1/8 in the DCT domain)."""
        return replace(self, full_res=True)

    def proto(self, name: str) -> loader_pb2.PipelineOutput:
        return loader_pb2.PipelineOutput(
            name=name,
            field=self.field,
            decode=self.decode,
            ops=list(self.ops),
            dtype=self.dtype,
            layout="" if self.layout == "HWC" else self.layout,
            channels=self.channels,
            params=self.with_params,
            full_resolution=self.full_res,
        )

    def spec(self) -> tuple[tuple[int | None, ...] | None, str]:
        dtype = self.dtype or ("float32" if self._normalized else "uint8")
        if self._size is None:
            return None, dtype
        h, w = self._size
        return ((self.channels, h, w) if self.layout == "CHW" else (h, w, self.channels)), dtype


def image(field: str = "jpg;jpeg;png;webp", decode: str = "image") -> ImageOutput:
    """An image field: JPEG, PNG or WebP told by its bytes (``decode``
    "jpeg", "png" or "webp" insists on one)."""
    return ImageOutput(field=field, decode=decode)


def label(field: str = "cls", dtype: str = "int64") -> Output:
    """An ASCII integer (WebDataset's .cls): int64 or int32."""
    return Output(field=field, decode="int", dtype=dtype)


def text(field: str = "txt") -> Output:
    """UTF-8 text: a list of str per batch."""
    return Output(field=field, decode="text", dtype="string")


def npy(field: str = "npy", *, shape: Sequence[int] | None = None, dtype: str = "") -> Output:
    """A .npy array; every sample's shape must be the same (``shape``
    declares it, which tf.data needs); ``dtype`` casts."""
    return Output(field=field, decode="npy", dtype=dtype, shape=None if shape is None else tuple(shape))


def json_value(field: str = "json", *, shape: Sequence[int] | None = None, dtype: str = "float32") -> Output:
    """A JSON number or rectangular array of numbers."""
    return Output(field=field, decode="json", dtype=dtype, shape=None if shape is None else tuple(shape))


@dataclass(frozen=True)
class Transform:
    """What the server makes of each sample: ``outputs`` maps tensor names
    to :class:`Output` s. ``seed`` keys the random ops (default: the
    dataset's shuffle seed). ``on_error`` is "fail" (a sample that cannot be
    transformed fails the stream, the error naming it) or "mask" (its rows
    are zeros, ``batch["__valid__"]`` is 0 for it and
    ``batch["__errors__"]`` says why)."""

    outputs: Mapping[str, Output]
    seed: int | None = None
    on_error: str = "fail"
    _names: tuple[str, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.outputs:
            raise errors.InvalidArgument("stoker.pipeline: a Transform needs outputs")
        if self.on_error not in ("fail", "mask"):
            raise errors.InvalidArgument(f"stoker.pipeline: on_error {self.on_error!r}: want 'fail' or 'mask'")
        for name, out in self.outputs.items():
            if not isinstance(out, Output):
                raise errors.InvalidArgument(
                    f"stoker.pipeline: output {name!r} is a {type(out).__name__}, not an Output"
                )

    def to_proto(self, default_seed: int = 0) -> loader_pb2.Pipeline:
        """The request's pipeline (the server checks it and names what is wrong)."""
        seed = self.seed if self.seed is not None else default_seed
        return loader_pb2.Pipeline(
            seed=seed & 0xFFFFFFFFFFFFFFFF,
            on_error=self.on_error,
            outputs=[o.proto(n) for n, o in self.outputs.items()],
        )

    def signature(self) -> dict[str, tuple[tuple[int | None, ...] | None, str]]:
        """Each tensor's per-sample shape (None where only the data says)
        and dtype, params and __valid__ included, in the server's order."""
        out: dict[str, tuple[tuple[int | None, ...] | None, str]] = {}
        for name, o in self.outputs.items():
            out[name] = o.spec()
            if isinstance(o, ImageOutput) and o.with_params:
                out[name + ".params"] = ((5,), "int32")
        if self.on_error == "mask":
            out["__valid__"] = ((), "uint8")
        return out

    def sample_bytes(self) -> int | None:
        """Bytes of one sample's tensors, or None when they depend on the data."""
        total = 0
        for shape, dtype in self.signature().values():
            if shape is None or dtype not in _SIZES or any(d is None for d in shape):
                return None
            total += math.prod(d for d in shape if d is not None) * _SIZES[dtype]
        return total

    def region_bytes(self, batch_size: int, batches: int = 4, floor: int = 128 << 20) -> int:
        """A shared-memory region that holds ``batches`` batches in flight
        (0: the server's default when the size depends on the data)."""
        per = self.sample_bytes()
        if per is None:
            return 0
        return max(floor, min(2 << 30, batches * (per * batch_size + 64 * (len(self.signature()) + 1))))


def imagenet_train(
    size: int = 224, *, dtype: str = "float32", layout: str = "CHW", seed: int | None = None
) -> Transform:
    """ImageNet's training transform: RandomResizedCrop(size), a flip,
    ImageNet's normalization; and the .cls label."""
    img = image().random_resized_crop(size).flip().normalize().to(dtype, layout)
    return Transform({"image": img, "label": label()}, seed=seed)


def imagenet_val(size: int = 224, resize: int = 256, *, dtype: str = "float32", layout: str = "CHW") -> Transform:
    """ImageNet's evaluation transform: Resize(resize), CenterCrop(size),
    normalization; and the label."""
    img = image().resize(resize).center_crop(size).normalize().to(dtype, layout)
    return Transform({"image": img, "label": label()})


@dataclass
class ReadyBatch:
    """A batch's tensors as numpy arrays (lists of str for text), by name,
    plus the samples' keys, positions, shards and (masking) errors."""

    tensors: dict[str, Any]
    keys: list[str]
    positions: list[int]
    shards: list[int]
    errors: list[str]


class ReadyAssembler:
    """Puts a step's tensors back together from its messages: views of the
    shared region (no copy), the one message's buffers, or arrays the
    parts are copied into."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._arrays: dict[str, Any] = {}
        self._strings: dict[str, list[str]] = {}
        self.keys: list[str] = []
        self.positions: list[int] = []
        self.shards: list[int] = []
        self.errors: list[str] = []

    def add(self, msg: loader_pb2.StreamBatchesResponse, shm: Any = None) -> None:
        """Take one message's samples and rows."""
        for s in msg.samples:
            self.keys.append(s.key)
            self.positions.append(s.position)
            self.shards.append(s.shard)
            self.errors.append(s.error)
        for t in msg.tensors:
            shape = tuple(int(d) for d in t.shape)
            rows = int(t.rows)
            first = int(t.row_offset)
            if rows != len(msg.samples) or first + rows > (shape[0] if shape else 0) and rows:
                raise errors.StokerError(
                    f"stoker: tensor {t.name!r}: rows [{first}, +{rows}) of {shape} in a message "
                    f"of {len(msg.samples)} samples"
                )
            data: Any
            if shm is not None and t.shm_length:
                data = shm.region_bytes(t.shm_offset, t.shm_length, f"tensor {t.name!r}")
            else:
                data = t.data
            if t.dtype == "string":
                self._add_strings(t.name, data, list(t.lengths), first, shape)
                continue
            dtype = np.dtype(t.dtype)
            per = math.prod(shape[1:]) if len(shape) > 1 else 1
            if len(data) != rows * per * dtype.itemsize:
                raise errors.StokerError(
                    f"stoker: tensor {t.name!r}: {len(data)} bytes for {rows} rows of {shape} {t.dtype}"
                )
            part = np.frombuffer(data, dtype=dtype, count=rows * per).reshape((rows, *shape[1:]))
            if first == 0 and rows == (shape[0] if shape else 0):
                self._arrays[t.name] = part  # the whole step in one message: no copy
                continue
            arr = self._arrays.get(t.name)
            if arr is None:
                arr = self._arrays[t.name] = np.empty(shape, dtype=dtype)
            arr[first : first + rows] = part

    def _add_strings(self, name: str, data: Any, lengths: list[int], first: int, shape: tuple[int, ...]) -> None:
        out = self._strings.setdefault(name, [""] * (shape[0] if shape else 0))
        raw = bytes(data)
        off = 0
        for i, n in enumerate(lengths):
            out[first + i] = raw[off : off + n].decode("utf-8")
            off += n

    def finish(self) -> ReadyBatch:
        """The step's batch; the assembler is then empty."""
        tensors: dict[str, Any] = dict(self._arrays)
        tensors.update(self._strings)
        b = ReadyBatch(tensors, self.keys, self.positions, self.shards, self.errors)
        self._reset()
        return b


def sample_rng(seed: int, epoch: int, position: int, op: int) -> _SplitMix64:
    """The generator the server's op ``op`` (its index in the output's
    ops) draws from for the sample at ``position`` of ``epoch``."""
    return _SplitMix64(_mix(_mix(_mix(_mix(seed) ^ epoch) ^ position) ^ op))


_M = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(z: int) -> int:
    z = (z + _GOLDEN) & _M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
    return z ^ (z >> 31)


class _SplitMix64:
    """SplitMix64, as server/pipeline/rng.go."""

    def __init__(self, state: int) -> None:
        self.state = state

    def next(self) -> int:
        self.state = (self.state + _GOLDEN) & _M
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
        return z ^ (z >> 31)

    # float() shadows the type inside the class: annotations name builtins.float.
    def float(self) -> builtins.float:
        return (self.next() >> 11) * 2.0**-53

    def uniform(self, a: builtins.float, b: builtins.float) -> builtins.float:
        return a + (b - a) * self.float()

    def intn(self, n: int) -> int:
        return (self.next() * n) >> 64


def random_resized_crop_params(
    width: int,
    height: int,
    rng: _SplitMix64,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params with the server's
    generator: (top, left, height, width) of the crop."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = rng.intn(height - h + 1)
            left = rng.intn(width - w + 1)
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w
