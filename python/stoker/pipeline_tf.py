"""Ready batches for tf.data: ``stoker.tf.dataset(url, transform=...)``.

Each element is one server batch: a dense tensor per output of the
:class:`stoker.pipeline.Transform` (``tf.string`` for text) and
``__key__``, with a complete, static ``output_signature``: an image's
shape is known from its ops, an npy or json output's from its declared
``shape``; the batch dimension is the batch size when ``drop_last`` (every
batch is full), else None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from .client import Client
from .pipeline import Transform

__all__ = ["ready_dataset", "ready_signature"]


def ready_signature(transform: Transform, batch_size: int | None) -> dict[str, tf.TensorSpec]:
    """The signature of the ready batches of ``transform``: a leading
    ``batch_size`` dimension (None: unknown) and each output's shape (rank
    unknown where neither the ops nor a declared shape fix it)."""
    spec: dict[str, tf.TensorSpec] = {}
    for name, (shape, dtype) in transform.signature().items():
        tf_dtype = tf.string if dtype == "string" else tf.as_dtype(np.dtype(dtype)) if dtype else None
        if tf_dtype is None:  # an npy output keeping the file's dtype: declare dtype= for tf.data
            raise ValueError(
                f"stoker.tf: output {name!r}: give its dtype (npy(..., dtype=...)) for a tf.data signature"
            )
        full = None if shape is None else (batch_size, *shape)
        spec[name] = tf.TensorSpec(shape=full, dtype=tf_dtype, name=_spec_name(name))
    spec["__key__"] = tf.TensorSpec(shape=(batch_size,), dtype=tf.string, name="key")
    return spec


def _spec_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name).lstrip("_.-") or "tensor"


def ready_dataset(
    url: str, connect: Callable[[], Client], transform: Transform, stream_args: dict[str, Any]
) -> tf.data.Dataset:
    """A tf.data.Dataset of ready batches (see the module's note)."""
    batch = stream_args["batch_size"] if stream_args.get("drop_last") else None
    signature = ready_signature(transform, batch)

    def generate() -> Iterator[dict[str, Any]]:
        with connect() as c:
            for b in c.stream(url, transform=transform, shm=c.address.startswith("unix:"), **stream_args):
                if not b.num_rows:
                    continue
                out: dict[str, Any] = {}
                for name in signature:
                    if name == "__key__":
                        out[name] = np.array(b.ready.keys, dtype=object)
                        continue
                    v = b.ready.tensors[name]
                    # tf.data copies what it is given: the arrays may be views of the region.
                    out[name] = np.array(v, dtype=object) if isinstance(v, list) else v
                yield out

    return tf.data.Dataset.from_generator(generate, output_signature=signature)
