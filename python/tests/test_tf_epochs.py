"""stoker.tf.dataset over several epochs (each pass the next one; Keras
fit(epochs=N)) and with optional fields, through a real stokerd."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
import webdataset as wds
from check import assert_exactly_once
from conftest import Data

import stoker
import stoker.tf
from stoker.tf import PRESENT


def plan_order(server: str, url: str, seed: int, epoch: int) -> list[str]:
    with stoker.Client(server) as c:
        return [s.key for b in c.stream(url, batch_size=32, seed=seed, epoch=epoch) for s in b.samples]


def keys_of(ds: tf.data.Dataset) -> list[str]:
    return [k.decode() for k in ds.map(lambda e: e["__key__"]).as_numpy_iterator()]


def test_each_pass_reads_the_next_epoch(server: str, data: Data) -> None:
    ds = stoker.tf.dataset(data.url, server, batch_size=8, seed=3, epoch=1, fields=["cls"])
    passes = [keys_of(ds) for _ in range(3)]
    for k, keys in enumerate(passes):
        assert keys == plan_order(server, data.url, seed=3, epoch=1 + k)
    assert passes[0] != passes[1]
    # repeat() makes passes too; epochs=2 reads two epochs in one pass.
    assert keys_of(stoker.tf.dataset(data.url, server, batch_size=8, seed=3, fields=["cls"]).repeat(2)) == \
        plan_order(server, data.url, 3, 0) + plan_order(server, data.url, 3, 1)
    two = stoker.tf.dataset(data.url, server, batch_size=8, seed=3, epoch=4, epochs=2, fields=["cls"])
    assert keys_of(two) == plan_order(server, data.url, 3, 4) + plan_order(server, data.url, 3, 5)


def test_a_start_cursor_applies_to_the_first_pass(server: str, data: Data) -> None:
    ds = stoker.tf.dataset(data.url, server, batch_size=8, seed=3, epoch=2, start=stoker.Cursor(2, 40), fields=["cls"])
    assert keys_of(ds) == plan_order(server, data.url, 3, 2)[40:]
    assert keys_of(ds) == plan_order(server, data.url, 3, 3)


def test_keras_fit_epochs(server: str, data: Data) -> None:
    seen: list[str] = []

    def record(key: tf.Tensor) -> tf.Tensor:
        seen.append(key.numpy().decode())
        return key

    def example(e: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        tf.py_function(record, [e["__key__"]], tf.string)
        label = tf.strings.to_number(e["cls"], out_type=tf.int64)
        return tf.one_hot(label, 10), label

    ds = stoker.tf.dataset(data.url, server, batch_size=16, seed=8)  # its fields counted the shards: steps known
    model = tf.keras.Sequential([tf.keras.Input((10,)), tf.keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings():
        # e.g. Keras' "Your input ran out of data" when it cannot know an epoch's steps
        warnings.simplefilter("error")
        history = model.fit(ds.map(example).batch(16), epochs=3, verbose=0, shuffle=False)  # the server shuffles
    assert len(history.history["loss"]) == 3
    n = len(data.keys)
    assert len(seen) == 3 * n
    for epoch in range(3):
        assert_exactly_once(seen[epoch * n : (epoch + 1) * n], data.keys)
        assert seen[epoch * n : (epoch + 1) * n] == plan_order(server, data.url, 8, epoch)


# -- optional fields ---------------------------------------------------------


@pytest.fixture(scope="module")
def optional_data(workdir: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    """Shards whose samples do not all have the same fields: txt in every
    third, meta.json in the last shard only."""
    folder = workdir / "files" / "optional"
    folder.mkdir(parents=True, exist_ok=True)
    ref: dict[str, dict[str, Any]] = {}
    for shard in range(3):
        with wds.TarWriter(str(folder / f"opt-{shard:06d}.tar")) as sink:
            for i in range(shard * 11, shard * 11 + 11):
                s: dict[str, Any] = {"__key__": f"o{i:03d}", "cls": i % 4}
                if i % 3 == 0:
                    s["txt"] = f"text of {i}"
                if shard == 2:
                    s["meta.json"] = {"i": i}
                sink.write(s)
                ref[s["__key__"]] = s
    return folder.as_uri() + "/", ref


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_optional_fields_are_kept_and_marked(server: str, optional_data: tuple[str, Any], seed: int) -> None:
    url, ref = optional_data
    ds = stoker.tf.dataset(url, server, batch_size=4, seed=seed)
    spec = ds.element_spec
    assert set(spec) == {"__key__", "__url__", "cls", "meta.json", "txt", PRESENT}
    assert set(spec[PRESENT]) == {"meta.json", "txt"}  # cls is in every sample
    n = 0
    for e in ds.as_numpy_iterator():
        want = ref[e["__key__"].decode()]
        assert int(e["cls"]) == want["cls"]
        assert bool(e[PRESENT]["txt"]) == ("txt" in want)
        assert e["txt"] == (want["txt"].encode() if "txt" in want else b"")
        assert bool(e[PRESENT]["meta.json"]) == ("meta.json" in want)
        assert (json.loads(e["meta.json"]) if e[PRESENT]["meta.json"] else None) == want.get("meta.json")
        n += 1
    assert n == len(ref)


def test_optional_fields_decoded(server: str, optional_data: tuple[str, Any]) -> None:
    url, ref = optional_data
    ds = stoker.tf.dataset(url, server, batch_size=4, seed=5, decode=True, fields=["cls", "txt"], optional=["txt"])
    assert ds.element_spec["cls"].dtype == tf.int64 and ds.element_spec["txt"].dtype == tf.string
    got = {e["__key__"].decode(): e for e in ds.as_numpy_iterator()}
    assert set(got) == set(ref)
    for key, e in got.items():
        assert int(e["cls"]) == ref[key]["cls"]
        assert e["txt"].decode() == ref[key].get("txt", "") and bool(e[PRESENT]["txt"]) == ("txt" in ref[key])


def test_a_required_field_missing_is_an_error_naming_the_sample(server: str, optional_data: tuple[str, Any]) -> None:
    url, _ = optional_data
    ds = stoker.tf.dataset(url, server, batch_size=4, seed=5, fields=["cls", "txt"])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"has no field 'txt' \(name the fields samples may lack"):
        list(ds)
    with pytest.raises(stoker.InvalidArgument, match="not in fields="):
        stoker.tf.dataset(url, server, batch_size=4, fields=["cls"], optional=["txt"])


def test_dataset_info_fields(server: str, optional_data: tuple[str, Any]) -> None:
    url, ref = optional_data
    with stoker.Client(server) as c:
        info = c.open_dataset(url, fields=True)
    assert [(f.name, f.samples) for f in info.fields] == [
        ("cls", len(ref)), ("meta.json", 11), ("txt", sum("txt" in s for s in ref.values()))]
    assert info.num_samples == len(ref)
