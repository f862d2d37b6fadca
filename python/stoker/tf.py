"""A ``tf.data`` source over a Stoker stream.

``stoker.tf.dataset(url, server=...)`` returns a ``tf.data.Dataset`` of
sample dicts built with ``tf.data.Dataset.from_generator`` and a complete
``output_signature``: ``__key__``, ``__url__`` and every field as scalar
``tf.string`` tensors (raw bytes), or, with ``decode=``, the decoded values
with their dtypes and ranks. The field names come from ``fields=`` or from
the epoch's first sample. Under ``tf.distribute`` pass the InputContext
(``strategy.distribute_datasets_from_function(lambda ctx:
stoker.tf.dataset(..., input_context=ctx))``) and each input pipeline reads
its own share.

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
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from . import errors
from .client import Client, Cursor
from .decode import DecodeOption, decoder_for
from .tls import PathLike

if TYPE_CHECKING:
    import pyarrow as pa

    from .client import Batch, DatasetInfo

__all__ = ["dataset", "signature_of", "columnar_signature"]


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


def dataset(
    url: str,
    server: str | None = None,
    *,
    batch_size: int = 64,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    shuffle_window: int | str = 0,
    drop_last: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
    input_context: tf.distribute.InputContext | None = None,
    fields: Sequence[str] | None = None,
    decode: DecodeOption = None,
    output_signature: dict[str, tf.TensorSpec] | None = None,
    start: int | Cursor = 0,
    token: str | None = None,
    format: str = "",
    columns: Sequence[str] | None = None,
    batched: bool = False,
    tls_ca: PathLike | None = None,
    tls_cert: PathLike | None = None,
    tls_key: PathLike | None = None,
    transform: Any = None,
) -> tf.data.Dataset:
    """A tf.data.Dataset of one rank's samples of one epoch.

    ``batch_size`` is the server's step size per rank (the unit of
    streaming, not of training: batch the dataset yourself with
    ``.batch``). The rank comes from ``input_context`` when given, else
    from ``rank``/``world_size`` (default 0 of 1). ``fields`` picks and
    orders the fields (default: the fields of the epoch's first sample); a
    sample that lacks one raises an error naming it (InvalidArgumentError
    inside tf.data; errors of the stream itself come out of tf.data as
    UnknownError with the server's message, which names the shard). ``decode`` is as for
    the torch dataset; decoded values get a signature inferred from the
    first sample unless ``output_signature`` is given.

    For a columnar dataset (see the module's note) ``columns`` picks the
    columns and ``batched`` yields whole server batches; ``fields`` and
    ``decode`` are for WebDataset only.

    ``tls_ca``, ``tls_cert`` and ``tls_key`` are the PEM files of a TLS
    server, as for stoker.Client (ignored for a ``unix:`` address); they
    are read each time the dataset is iterated.

    ``transform`` (a :class:`stoker.pipeline.Transform`) has the server
    decode and augment: each element is a ready batch of dense tensors
    with a static signature (see stoker.pipeline_tf).
    """
    if input_context is not None:
        rank, world_size = input_context.input_pipeline_id, input_context.num_input_pipelines
    rank = 0 if rank is None else rank
    world_size = 1 if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise errors.InvalidArgument(f"rank {rank} is outside world_size {world_size}")
    decoder = decoder_for(decode)
    connect = functools.partial(Client, server, token=token, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
    if transform is not None:
        from .pipeline_tf import ready_dataset

        args = dict(batch_size=batch_size, seed=seed, epoch=epoch, rank=rank, world_size=world_size, shuffle=shuffle,
                    shuffle_window=shuffle_window, drop_last=drop_last, start=start, format=format)
        return ready_dataset(url, connect, transform, args)
    stream_args: dict[str, Any] = dict(
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
    )

    first = None
    first_dict: dict[str, Any] = {}
    with connect() as client:
        info = client.open_dataset(url, format)
        urls = tuple(s.object for s in info.shards)
        if info.arrow_schema:
            if fields is not None or decoder is not None:
                raise errors.InvalidArgument(
                    f"stoker.tf: {url} is a columnar dataset: pick its columns with columns= (fields= and "
                    "decode= are for WebDataset)"
                )
            return _columnar_dataset(url, connect, info, columns, batched, stream_args, output_signature)
        if columns or batched:
            raise errors.InvalidArgument(f"stoker.tf: columns= and batched= are for columnar datasets, not {url}")
        if fields is None or (decoder is not None and output_signature is None):
            first = _first_sample(client, url, stream_args)
            if first is not None:
                first_dict = first.to_dict(urls[first.shard] if first.shard < len(urls) else "")
            if fields is None:
                fields = [k for k in first_dict if not k.startswith("__")]
    names = ["__key__", "__url__", *fields]
    if output_signature is None:
        if decoder is None:
            output_signature = {n: tf.TensorSpec(shape=(), dtype=tf.string, name=_spec_name(n)) for n in names}
        else:
            sample = {n: first_dict.get(n, b"") for n in names}
            output_signature = signature_of(decoder(sample))

    def generate() -> Iterator[dict[str, Any]]:
        with connect() as c:
            for batch in c.stream(url, **stream_args):
                if batch.columnar:
                    raise errors.InvalidArgument(
                        f"stoker.tf: {url} is a columnar dataset (rows arrive as Arrow); use stoker.Client.stream"
                    )
                for s in batch.samples:
                    d = s.to_dict(urls[s.shard] if s.shard < len(urls) else "")
                    try:
                        picked = {n: d[n] for n in names}
                    except KeyError as err:
                        raise errors.InvalidArgument(
                            f"stoker.tf: sample {s.key!r} of {d.get('__url__')!r} has no field {err.args[0]!r}"
                        ) from None
                    yield decoder(picked) if decoder is not None else picked

    return tf.data.Dataset.from_generator(generate, output_signature=output_signature)


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
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
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
    output_signature: dict[str, tf.TensorSpec] | None,
) -> tf.data.Dataset:
    from . import arrow

    schema = arrow.schema(info, columns)
    signature = output_signature or columnar_signature(schema, batched=batched)
    urls = np.array([s.object for s in info.shards], dtype=object)
    names = list(schema.names)

    def elements(batch: Batch) -> Iterator[dict[str, Any]]:
        rb = arrow.record_batch(batch)
        cols = {"__url__": urls[np.asarray(batch.row_shards, dtype=np.int64)]}
        cols.update((n, _column_array(n, rb.column(i))) for i, n in enumerate(rb.schema.names))
        if batched:
            yield cols
            return
        for r in range(rb.num_rows):
            yield {k: v[r] for k, v in cols.items()}

    def generate() -> Iterator[dict[str, Any]]:
        with connect() as c:
            for batch in c.stream(url, columns=names, **stream_args):
                yield from elements(batch)

    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def _first_sample(client: Client, url: str, args: dict[str, Any]) -> Any:
    """The first sample of the epoch (position 0), to learn its fields."""
    one = dict(args, batch_size=1, rank=0, world_size=1, start=0, drop_last=False)
    for batch in client.stream(url, **one):
        if batch.columnar:
            raise errors.InvalidArgument(
                f"stoker.tf: {url} is a columnar dataset (rows arrive as Arrow); use stoker.Client.stream"
            )
        if batch.samples:
            return batch.samples[0]
    return None
