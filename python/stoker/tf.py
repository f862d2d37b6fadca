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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from . import errors
from .client import Client, Cursor
from .decode import DecodeOption, decoder_for

__all__ = ["dataset", "signature_of"]


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
    shuffle_window: int = 0,
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
    """
    if input_context is not None:
        rank, world_size = input_context.input_pipeline_id, input_context.num_input_pipelines
    rank = 0 if rank is None else rank
    world_size = 1 if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise errors.InvalidArgument(f"rank {rank} is outside world_size {world_size}")
    decoder = decoder_for(decode)
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
    with Client(server, token=token) as client:
        info = client.open_dataset(url, format)
        urls = tuple(s.object for s in info.shards)
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
        with Client(server, token=token) as c:
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
