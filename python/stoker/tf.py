"""A ``tf.data`` source over a Stoker stream.

``stoker.tf.dataset(url, server=...)`` returns a ``tf.data.Dataset`` of
sample dicts with a complete ``output_signature``: ``__key__``, ``__url__``
and every field as scalar ``tf.string`` tensors (raw bytes), or, with
``decode=``, the decoded values with their dtypes and ranks. Under
``tf.distribute`` pass the InputContext
(``strategy.distribute_datasets_from_function(lambda ctx:
stoker.tf.dataset(..., input_context=ctx))``) and each input pipeline reads
its own share.

Epochs: each pass over the dataset (each iterator made of it: every epoch
of ``model.fit(ds, epochs=N)``, each repetition of ``ds.repeat()``) reads
the next epoch of the plan, from ``epoch=`` on, as ``shuffle`` with
``reshuffle_each_iteration`` does. ``epochs=k`` makes each pass read k
epochs in a row instead of one.

Fields: by default the dataset's own, the union of every sample's fields,
which the server reads from every shard's index (``stoker index`` writes
one beside the shards; without it the first open reads every shard). A
field that only some samples have is *optional*: a sample without it has
an empty value there (``b""``; decoded, ``""``, ``0`` or an empty array)
and ``False`` in ``element["__present__"][field]``, a dict of one
``tf.bool`` per optional field (absent when there are none). ``fields=``
picks and orders fields: those are required (a sample without one is an
error naming it) unless listed in ``optional=``.

Raw elements are made a server batch at a time (one Python call per batch
of numpy arrays, ``unbatch`` in TensorFlow), so the GIL is not taken per
element; ``decode=`` decodes in Python, an element at a time. To decode
outside the GIL, read raw bytes and ``ds.map(lambda s:
tf.io.decode_image(s["jpg"]), num_parallel_calls=tf.data.AUTOTUNE)``.

A columnar (Parquet / Arrow) dataset's elements are rows: ``__url__`` (the
row's object) and one tensor per column (``columns=`` projects), with a
signature derived from the Arrow schema (:func:`columnar_signature`):
fixed-width numbers and booleans are scalars, fixed-size lists have their
fixed shape, timestamps and durations are int64, strings and binaries
scalar ``tf.string``. ``batched=True`` yields each server batch instead,
with a leading ``None`` dimension. A column of another type is refused,
naming it, when the dataset is made; a null in a row, when it is read.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from . import errors
from ._request import preprocess_on_value
from .client import Client
from .decode import DecodeOption, decode_sample, decoder_for
from .split import batch_range, num_steps, rank_count
from .tls import PathLike
from .types import Cursor

if TYPE_CHECKING:
    import pyarrow as pa

    from .types import DatasetInfo, Sample

__all__ = ["dataset", "signature_of", "columnar_signature", "PRESENT"]

PRESENT = "__present__"
"""The key of an element's presence flags of its optional fields."""


def signature_of(sample: dict[str, Any]) -> dict[str, tf.TensorSpec]:
    """A tf.data signature that fits samples shaped like ``sample``: bytes
    and str are scalar strings, numbers scalars, arrays keep their rank
    with every dimension unknown."""
    spec: dict[str, tf.TensorSpec] = {}
    for name, value in sample.items():
        if isinstance(value, (bytes, str)):
            spec[name] = tf.TensorSpec(shape=(), dtype=tf.string, name=_spec_name(name))
            continue
        if isinstance(value, dict):
            raise errors.InvalidArgument(
                f"stoker.tf: field {name!r} decodes to a dict; give output_signature= or a decode= "
                "function that returns tensors"
            )
        arr = np.asarray(value)
        if arr.dtype == object:
            raise errors.InvalidArgument(f"stoker.tf: field {name!r} has no tensor type ({type(value).__name__})")
        spec[name] = tf.TensorSpec(shape=(None,) * arr.ndim, dtype=tf.as_dtype(arr.dtype), name=_spec_name(name))
    return spec


def _spec_name(field: str) -> str:
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in field).lstrip("_.-") or "field"


class _Passes:
    """The epochs each pass over a dataset reads: pass k reads epochs
    ``first + k·per`` … ``first + k·per + per - 1``; the first pass starts
    at ``start``. Passes are counted as they begin, from any thread."""

    def __init__(self, first: int, per: int, start: int | Cursor) -> None:
        self._lock = threading.Lock()  # guards _next
        self._next = 0
        self.first, self.per, self.start = first, per, start

    def begin(self) -> list[tuple[int, int | Cursor]]:
        """This pass's epochs, each with where it starts."""
        with self._lock:
            k, self._next = self._next, self._next + 1
        epochs = range(self.first + k * self.per, self.first + (k + 1) * self.per)
        return [(e, self.start if k == 0 and i == 0 else 0) for i, e in enumerate(epochs)]


def _url_of(urls: tuple[str, ...], shard: int) -> str:
    return urls[shard] if 0 <= shard < len(urls) else ""


def dataset(
    url: str,
    server: str | None = None,
    *,
    batch_size: int = 64,
    seed: int = 0,
    epoch: int = 0,
    epochs: int = 1,
    shuffle: bool = True,
    shuffle_window: int | str = 0,
    drop_last: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
    input_context: tf.distribute.InputContext | None = None,
    fields: Sequence[str] | None = None,
    optional: Sequence[str] = (),
    decode: DecodeOption = None,
    output_signature: dict[str, Any] | None = None,
    start: int | Cursor = 0,
    token: str | None = None,
    format: str = "",
    columns: Sequence[str] | None = None,
    batched: bool = False,
    tls_ca: PathLike | None = None,
    tls_cert: PathLike | None = None,
    tls_key: PathLike | None = None,
    transform: Any = None,
    preprocess_on: str = "local",
) -> tf.data.Dataset:
    """A tf.data.Dataset of one rank's samples, an epoch per pass.

    ``batch_size`` is the server's step size per rank (the unit of
    streaming, not of training: batch the dataset yourself with
    ``.batch``). The rank comes from ``input_context`` when given, else
    from ``rank``/``world_size`` (default 0 of 1). The first pass reads
    epoch ``epoch`` from ``start`` (a position or a Cursor), each later
    pass the next epoch from its beginning; ``epochs`` is how many epochs
    one pass reads. ``fields`` picks and orders the fields (default: the
    dataset's, see the module's note on optional fields); ``optional``
    names picked fields a sample may lack. Errors of the stream come out of
    tf.data as UnknownError with the server's message, which names the
    shard; a sample without a required field as InvalidArgumentError
    naming it. ``decode`` is as for the torch dataset (True, an image mode
    such as ``"rgb8"``, or a function of the raw sample dict, which gets
    samples as they are, a missing field missing); decoded values get a
    signature inferred from samples of the first epoch unless
    ``output_signature`` is given.

    For a columnar dataset (see the module's note) ``columns`` picks the
    columns and ``batched`` yields whole server batches; ``fields``,
    ``optional`` and ``decode`` are for WebDataset only.

    ``tls_ca``, ``tls_cert`` and ``tls_key`` are the PEM files of a TLS
    server, as for stoker.Client (ignored for a ``unix:`` address); they
    are read each time the dataset is iterated.

    ``transform`` (a :class:`stoker.pipeline.Transform`) has the server
    decode and augment: each element is a ready batch of dense tensors
    with a static signature (see stoker.pipeline_tf). ``preprocess_on``
    is as for stoker.Client.stream ("local" or "any").
    """
    if input_context is not None:
        rank, world_size = input_context.input_pipeline_id, input_context.num_input_pipelines
    rank = 0 if rank is None else rank
    world_size = 1 if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise errors.InvalidArgument(f"rank {rank} is outside world_size {world_size}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise errors.InvalidArgument(f"stoker.tf: epochs must be a positive int (epochs per pass), got {epochs!r}")
    if isinstance(start, Cursor) and start.epoch != epoch:
        raise errors.InvalidArgument(f"stoker.tf: start cursor of epoch {start.epoch}, but epoch={epoch}")
    decoder = decoder_for(decode)
    connect = functools.partial(Client, server, token=token, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
    if transform is not None or preprocess_on != "local":
        preprocess_on_value(preprocess_on)  # raises InvalidArgument
    if transform is None and preprocess_on != "local":
        raise errors.InvalidArgument(f"preprocess_on={preprocess_on!r} is for ready batches: pass transform too")
    if transform is not None:
        from .pipeline_tf import ready_dataset

        args = dict(
            batch_size=batch_size,
            seed=seed,
            epoch=epoch,
            rank=rank,
            world_size=world_size,
            shuffle=shuffle,
            shuffle_window=shuffle_window,
            drop_last=drop_last,
            start=start,
            format=format,
            preprocess_on=preprocess_on,
        )
        return ready_dataset(url, connect, transform, args)
    stream_args: dict[str, Any] = dict(
        batch_size=batch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
        shuffle=shuffle,
        shuffle_window=shuffle_window,
        drop_last=drop_last,
        format=format,
    )
    passes = _Passes(epoch, epochs, start)

    with connect() as client:
        info = client.open_dataset(url, format)
        if info.arrow_schema:
            if fields is not None or optional or decoder is not None:
                raise errors.InvalidArgument(
                    f"stoker.tf: {url} is a columnar dataset: pick its columns with columns= (fields=, optional= "
                    "and decode= are for WebDataset)"
                )
            return _with_cardinality(
                _columnar_dataset(url, connect, info, columns, batched, stream_args, passes, output_signature),
                info,
                stream_args,
                passes,
                batched,
            )
        if columns or batched:
            raise errors.InvalidArgument(f"stoker.tf: columns= and batched= are for columnar datasets, not {url}")
        if fields is None:
            info = client.open_dataset(url, format, fields=True)
            fields = [f.name for f in info.fields]
            optional = [*optional, *(f.name for f in info.fields if f.samples < info.num_samples)]
        unknown = sorted(set(optional) - set(fields))
        if unknown:
            raise errors.InvalidArgument(f"stoker.tf: optional= names fields not in fields=: {unknown}")
        src = _Source(
            url,
            connect,
            tuple(s.object for s in info.shards),
            list(fields),
            [f for f in fields if f in set(optional)],
            stream_args,
            passes,
        )
        if decoder is None:
            return _with_cardinality(src.raw(), info, stream_args, passes, batched=False)
        if output_signature is None:
            output_signature = src.infer_signature(client, decoder, decode)
    return _with_cardinality(src.decoded(decoder, output_signature), info, stream_args, passes, batched=False)


def _with_cardinality(
    ds: tf.data.Dataset, info: DatasetInfo, args: dict[str, Any], passes: _Passes, batched: bool
) -> tf.data.Dataset:
    """ds with its number of elements a pass, when it is known (every
    shard counted, every pass from an epoch's start): Keras then knows an
    epoch's steps from the first one on."""
    if not info.counted or passes.start not in (0, Cursor(passes.first, 0)):
        return ds
    total, rank, world, size = info.num_samples, args["rank"], max(args["world_size"], 1), args["batch_size"]
    if batched:
        steps = num_steps(total, 0, world, size, args["drop_last"])
        n = sum(
            1
            for k in range(steps)
            if batch_range(total, 0, k, rank, world, size)[1] > batch_range(total, 0, k, rank, world, size)[0]
        )
    else:
        n = rank_count(total, 0, rank, world, size, args["drop_last"])
    return ds.apply(tf.data.experimental.assert_cardinality(n * passes.per))


class _Source:
    """A WebDataset's elements for tf.data (see the module's note)."""

    def __init__(
        self,
        url: str,
        connect: Callable[[], Client],
        urls: tuple[str, ...],
        fields: list[str],
        optional: list[str],
        stream_args: dict[str, Any],
        passes: _Passes,
    ) -> None:
        self.url, self.connect, self.urls = url, connect, urls
        self.fields, self.optional = fields, optional
        self.required = [f for f in fields if f not in set(optional)]
        self.stream_args, self.passes = stream_args, passes

    def batches(self) -> Iterator[list[Sample]]:
        """This pass's server batches, whole, of every epoch it reads."""
        with self.connect() as c:
            for epoch, start in self.passes.begin():
                for batch in c.stream(self.url, epoch=epoch, start=start, **self.stream_args):
                    if batch.columnar:
                        raise errors.InvalidArgument(
                            f"stoker.tf: {self.url} is a columnar dataset (rows arrive as Arrow); "
                            "use stoker.Client.stream"
                        )
                    if batch.samples:
                        yield batch.samples

    def _check(self, s: Sample) -> None:
        for name in self.required:
            if name not in s.fields:
                raise errors.InvalidArgument(
                    f"stoker.tf: sample {s.key!r} of {_url_of(self.urls, s.shard)!r} has no field {name!r} "
                    "(name the fields samples may lack in optional=)"
                )

    # -- raw bytes: a batch per Python call ----------------------------------

    def raw(self) -> tf.data.Dataset:
        def spec(shape: tuple[int | None, ...], dtype: tf.DType, name: str) -> tf.TensorSpec:
            return tf.TensorSpec(shape=shape, dtype=dtype, name=_spec_name(name))

        signature: dict[str, Any] = {n: spec((None,), tf.string, n) for n in ("__key__", "__url__", *self.fields)}
        if self.optional:
            signature[PRESENT] = {n: spec((None,), tf.bool, "present_" + n) for n in self.optional}

        def generate() -> Iterator[dict[str, Any]]:
            for samples in self.batches():
                for s in samples:
                    self._check(s)
                cols: dict[str, Any] = {
                    "__key__": np.array([s.key for s in samples], dtype=object),
                    "__url__": np.array([_url_of(self.urls, s.shard) for s in samples], dtype=object),
                }
                for name in self.fields:
                    cols[name] = np.array([s.fields.get(name, b"") for s in samples], dtype=object)
                if self.optional:
                    cols[PRESENT] = {n: np.array([n in s.fields for s in samples], dtype=bool) for n in self.optional}
                yield cols

        return tf.data.Dataset.from_generator(generate, output_signature=signature).unbatch()

    # -- decoded: an element per Python call ---------------------------------

    def infer_signature(self, client: Client, decoder: Callable[[dict[str, Any]], Any], decode: DecodeOption) -> Any:
        """The signature of decoded elements, from samples of the first
        epoch: the first with every field (a decode function), or the first
        with each field (the built-in decoders, which decode each field on
        its own)."""
        builtin = not callable(decode) or decode is decode_sample
        want = set(self.fields) if builtin else set(self.required)
        found: dict[str, Sample] = {}
        scanned = 0
        one = dict(self.stream_args, batch_size=256, rank=0, world_size=1, drop_last=False)
        for batch in client.stream(self.url, epoch=self.passes.first, **one):
            for s in batch.samples:
                scanned += 1
                if builtin:
                    found.update((n, s) for n in s.fields if n in want and n not in found)
                elif all(n in s.fields for n in want):
                    found = {"": s}
                if (builtin and len(found) == len(want)) or (not builtin and found):
                    break
            else:
                if scanned < _SCAN_SAMPLES:
                    continue
            break
        if not builtin:
            if not found:
                raise errors.InvalidArgument(
                    f"stoker.tf: no sample among the first {scanned} of {self.url} has every required field "
                    f"{sorted(want)}: give output_signature="
                )
            out = decoder(self._dict(found[""]))
            if isinstance(out, dict) and self.optional:
                out = {k: v for k, v in out.items() if k != PRESENT}
                return {**signature_of(out), PRESENT: self._present_spec()}
            return signature_of(out) if isinstance(out, dict) else _structure_signature(out)
        missing = sorted(want - set(found))
        if missing:
            raise errors.InvalidArgument(
                f"stoker.tf: fields {missing} are in none of the first {scanned} samples of {self.url}, so their "
                "decoded type is unknown: give output_signature=, or leave them out with fields="
            )
        spec = signature_of(decoder({"__key__": "", "__url__": ""}))
        for name in self.fields:
            s = found[name]
            spec.update(signature_of({name: decoder({"__key__": s.key, name: s.fields[name]})[name]}))
        if self.optional:
            spec[PRESENT] = self._present_spec()
        return spec

    def _present_spec(self) -> dict[str, tf.TensorSpec]:
        return {n: tf.TensorSpec(shape=(), dtype=tf.bool, name=_spec_name("present_" + n)) for n in self.optional}

    def _dict(self, s: Sample) -> dict[str, Any]:
        d: dict[str, Any] = {"__key__": s.key, "__url__": _url_of(self.urls, s.shard)}
        d.update((n, s.fields[n]) for n in self.fields if n in s.fields)
        return d

    def decoded(self, decoder: Callable[[dict[str, Any]], Any], signature: Any) -> tf.data.Dataset:
        empty = _empties(signature)
        fill = isinstance(signature, dict)

        def generate() -> Iterator[Any]:
            for samples in self.batches():
                for s in samples:
                    self._check(s)
                    out = decoder(self._dict(s))
                    if fill and isinstance(out, dict):
                        for name in self.optional:
                            if name not in s.fields and name in empty:
                                out[name] = empty[name]
                        if self.optional:
                            out[PRESENT] = {n: n in s.fields for n in self.optional}
                    yield out

        return tf.data.Dataset.from_generator(generate, output_signature=signature)


_SCAN_SAMPLES = 4096  # samples read at most to learn decoded types


def _empties(signature: Any) -> dict[str, Any]:
    """An empty value of each top-level spec: what a missing optional
    field decodes to."""
    if not isinstance(signature, dict):
        return {}
    out: dict[str, Any] = {}
    for name, spec in signature.items():
        if isinstance(spec, tf.TensorSpec):
            if spec.dtype == tf.string:
                out[name] = b"" if spec.shape.rank == 0 else np.zeros([d or 0 for d in spec.shape], dtype=object)
            else:
                out[name] = np.zeros([d or 0 for d in spec.shape], dtype=spec.dtype.as_numpy_dtype)
    return out


def _structure_signature(out: Any) -> Any:
    """The signature of a decode function's tuple or single value."""
    if isinstance(out, tuple):
        return tuple(_structure_signature(v) for v in out)
    return signature_of({"value": out})["value"]


def columnar_signature(schema: pa.Schema, *, batched: bool = False) -> dict[str, tf.TensorSpec]:
    """The signature of a columnar dataset's elements: ``__url__`` and each
    column of ``schema`` (see the module's note); with ``batched`` every
    spec gets a leading None dimension. Raises InvalidArgument naming every
    column with no tensor form."""
    import pyarrow as pa

    from . import arrow

    lead: tuple[int | None, ...] = (None,) if batched else ()
    spec = {"__url__": tf.TensorSpec(shape=lead, dtype=tf.string, name="url")}
    unmapped: list[str] = []
    for f in schema:
        t = f.type
        layout = arrow.fixed_layout(t)
        if layout is not None:
            dt, shape = layout
            dtype = tf.int64 if dt.kind in "mM" else tf.as_dtype(dt)
        elif pa.types.is_boolean(t):
            dtype, shape = tf.bool, ()
        elif (
            pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
        ):
            dtype, shape = tf.string, ()
        else:
            unmapped.append(f"{f.name!r} ({t})")
            continue
        spec[f.name] = tf.TensorSpec(shape=lead + shape, dtype=dtype, name=_spec_name(f.name))
    if unmapped:
        raise errors.InvalidArgument(
            f"stoker.tf: column{'s' if len(unmapped) > 1 else ''} {', '.join(unmapped)} have no tensor form "
            "(fixed-width numbers, booleans, timestamps, strings, binaries and fixed-size lists of numbers do): "
            "leave them out with columns="
        )
    return spec


def _column_array(name: str, arr: pa.Array) -> np.ndarray:
    """One column as the numpy array its TensorSpec takes."""
    from . import arrow

    if arr.null_count:
        raise errors.InvalidArgument(
            f"stoker.tf: column {name!r} ({arr.type}) has a null, which a tensor cannot hold: fill it in the "
            "data or leave the column out with columns="
        )
    view = arrow.column_to_numpy(arr)
    return view.view(np.int64) if view.dtype.kind in "mM" else view


def _columnar_dataset(
    url: str,
    connect: Callable[[], Client],
    info: DatasetInfo,
    columns: Sequence[str] | None,
    batched: bool,
    stream_args: dict[str, Any],
    passes: _Passes,
    output_signature: dict[str, tf.TensorSpec] | None,
) -> tf.data.Dataset:
    """Rows (or batches) of a columnar dataset: each server batch's columns
    as numpy arrays in one Python call, unbatched in TensorFlow."""
    from . import arrow

    schema = arrow.schema(info, columns)
    signature = output_signature or columnar_signature(schema, batched=batched)
    if not batched:  # what the generator yields: a leading dimension of rows
        signature = tf.nest.map_structure(
            lambda sp: tf.TensorSpec(shape=(None, *sp.shape), dtype=sp.dtype, name=sp.name), signature
        )
    urls = np.array([s.object for s in info.shards], dtype=object)
    names = list(schema.names)

    def generate() -> Iterator[dict[str, Any]]:
        with connect() as c:
            for epoch, start in passes.begin():
                for batch in c.stream(url, columns=names, epoch=epoch, start=start, **stream_args):
                    if not batch.num_rows:
                        continue
                    rb = arrow.record_batch(batch)
                    cols = {"__url__": urls[np.asarray(batch.row_shards, dtype=np.int64)]}
                    cols.update((n, _column_array(n, rb.column(i))) for i, n in enumerate(rb.schema.names))
                    yield cols

    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return ds if batched else ds.unbatch()
