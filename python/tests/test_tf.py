"""stoker.tf.dataset through real tf.data pipelines, stokerd and versitygw."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from check import assert_exactly_once, assert_matches_reference
from conftest import COUNTS, Data

import stoker
import stoker.tf
from stoker.torch import StokerDataset

FIELDS = ["bin", "cls", "json", "npy", "seg.png", "txt"]


def as_python(element: dict[str, tf.Tensor]) -> dict[str, Any]:
    return {k: (v.numpy().decode() if k.startswith("__") else v.numpy()) for k, v in element.items()}


def test_signature_is_complete(server: str, data: Data) -> None:
    ds = stoker.tf.dataset(data.url, server, batch_size=8, seed=1)
    spec = ds.element_spec
    assert set(spec) == {"__key__", "__url__", *FIELDS}
    assert all(s.dtype == tf.string and s.shape == () for s in spec.values())


def test_same_samples_as_the_torch_path(server: str, data: Data) -> None:
    tf_samples = [as_python(e) for e in stoker.tf.dataset(data.url, server, batch_size=8, seed=11, epoch=1)]
    torch_samples = list(StokerDataset(data.url, server, batch_size=8, seed=11, epoch=1))
    assert [s["__key__"] for s in tf_samples] == [s["__key__"] for s in torch_samples]
    for a, b in zip(tf_samples, torch_samples):
        assert a == b
        assert_matches_reference(a, data.reference)
    assert_exactly_once((s["__key__"] for s in tf_samples), data.keys)


def test_map_batch_prefetch_pipeline(server: str, data: Data) -> None:
    ds = stoker.tf.dataset(data.url, server, batch_size=16, seed=4, fields=["cls", "txt"])
    assert set(ds.element_spec) == {"__key__", "__url__", "cls", "txt"}
    pipeline = (
        ds.map(lambda s: (s["__key__"], tf.strings.to_number(s["cls"], out_type=tf.int64)),
               num_parallel_calls=tf.data.AUTOTUNE)
        .batch(10)
        .prefetch(tf.data.AUTOTUNE)
    )
    keys: list[str] = []
    labels: list[int] = []
    for k, y in pipeline:
        assert k.shape[0] == y.shape[0] <= 10
        keys += [x.decode() for x in k.numpy()]
        labels += y.numpy().tolist()
    assert_exactly_once(keys, data.keys)
    assert labels == [int(data.reference[k]["cls"]) for k in keys]


def test_input_context_shards_between_pipelines(server: str, data: Data) -> None:
    keys: list[str] = []
    sizes = []
    for pipeline in range(3):
        ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=pipeline, num_replicas_in_sync=3)
        got = [e["__key__"].numpy().decode() for e in stoker.tf.dataset(data.url, server, batch_size=5,
                                                                       input_context=ctx, fields=["cls"])]
        sizes.append(len(got))
        keys += got
    assert_exactly_once(keys, data.keys)
    assert all(n > 0 for n in sizes)


def test_distribute_datasets_from_function(server: str, data: Data) -> None:
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: stoker.tf.dataset(data.url, server, batch_size=8, input_context=ctx, fields=["cls"]).batch(8)
    )
    keys = [k.decode() for batch in dist for k in batch["__key__"].numpy()]
    assert_exactly_once(keys, data.keys)


def test_decoded_tensors(server: str, data: Data) -> None:
    ds = stoker.tf.dataset(data.url, server, batch_size=8, seed=2, decode=True, fields=["cls", "npy", "seg.png", "txt"])
    spec = ds.element_spec
    assert spec["cls"].dtype == tf.int64 and spec["cls"].shape == ()
    assert spec["npy"].dtype == tf.float32 and spec["npy"].shape.as_list() == [None]
    assert spec["seg.png"].dtype == tf.uint8 and spec["seg.png"].shape.as_list() == [None, None, None]
    assert spec["txt"].dtype == tf.string
    n = 0
    for e in ds:
        key = e["__key__"].numpy().decode()
        i = int(key.rsplit("x", 1)[1])
        assert int(e["cls"]) == i % 10
        np.testing.assert_array_equal(e["npy"].numpy(), np.arange(i % 7 + 1, dtype=np.float32) * i)
        assert e["seg.png"].shape[2] == 3
        n += 1
    assert n == sum(COUNTS)


def test_json_needs_a_signature(server: str, data: Data) -> None:
    with pytest.raises(stoker.InvalidArgument, match="json"):
        stoker.tf.dataset(data.url, server, batch_size=8, decode=True, fields=["json"])


def test_missing_field_is_an_error_naming_the_sample(server: str, data: Data) -> None:
    ds = stoker.tf.dataset(data.url, server, batch_size=8, fields=["cls", "nope"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="has no field 'nope'"):
        list(ds)


def test_wrong_url_is_a_clear_error(server: str, data: Data) -> None:
    with pytest.raises(stoker.DatasetNotFound, match="no-such-prefix"):
        stoker.tf.dataset(data.missing_url, server, batch_size=8)


def test_corrupt_shard_is_a_clear_error(server: str, data: Data) -> None:
    # The dataset's fields come from every shard's index: the open fails.
    with pytest.raises(stoker.CorruptShard, match="truncated-000000.tar"):
        stoker.tf.dataset(data.corrupt_url, server, batch_size=8)
    # Fields given: the stream fails when it reaches the shard.
    ds = stoker.tf.dataset(data.corrupt_url, server, batch_size=8, fields=["cls"])
    with pytest.raises(tf.errors.OpError, match="truncated-000000.tar"):
        list(ds)
