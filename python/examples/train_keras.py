#!/usr/bin/env python3
"""Train a Keras model with model.fit(epochs=N) on data streamed by stokerd.

    mkdir -p /tmp/stoker-keras
    stokerd --listen 127.0.0.1:7470 --allow-file-root /tmp/stoker-keras &
    python examples/train_keras.py --server 127.0.0.1:7470 --data-dir /tmp/stoker-keras --epochs 3

With no --url it writes synthetic shards into --data-dir once: a "cls"
label and an "input.f32" feature vector (raw float32 bytes) that the label
can be learned from. The features are decoded in TensorFlow
(tf.io.decode_raw in a parallel map), outside the GIL. One
stoker.tf.dataset serves every epoch: each pass Keras makes over it reads
the next epoch of the server's plan, and its length is known, so Keras
knows an epoch's steps from the start.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
import webdataset as wds

import stoker.tf

FEATURES = 32
CLASSES = 10


def write_synthetic(folder: Path, shards: int, per_shard: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(CLASSES, FEATURES)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for sh in range(shards):
        with wds.TarWriter(str(folder / f"train-{sh:06d}.tar")) as sink:
            for i in range(per_shard):
                label = int(rng.integers(CLASSES))
                x = centroids[label] + 0.5 * rng.normal(size=FEATURES).astype(np.float32)
                sink.write({"__key__": f"{sh * per_shard + i:06d}", "cls": label, "input.f32": x.tobytes()})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default=None, help="stokerd address (default $STOKER_SERVER or 127.0.0.1:7470)")
    ap.add_argument("--url", default=None, help="dataset URL (default: synthetic shards in --data-dir)")
    ap.add_argument("--data-dir", type=Path, help="folder under a stokerd --allow-file-root for synthetic shards")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--samples", type=int, default=128, help="samples per synthetic shard")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    url = args.url
    if url is None:
        if args.data_dir is None:
            ap.error("give --url or --data-dir")
        if not any(args.data_dir.glob("train-*.tar")):
            write_synthetic(args.data_dir, args.shards, args.samples)
        url = args.data_dir.resolve().as_uri() + "/"

    epochs_read: list[int] = []

    class EpochLog(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
            epochs_read.append(epoch)

    def example(e: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.io.decode_raw(e["input.f32"], tf.float32)
        y = tf.strings.to_number(e["cls"], out_type=tf.int64)
        return tf.reshape(x, (FEATURES,)), y

    ds = stoker.tf.dataset(url, args.server, batch_size=args.batch_size, seed=args.seed)
    train = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE).batch(args.batch_size).prefetch(tf.data.AUTOTUNE)
    print(f"dataset {url}: fields {sorted(k for k in ds.element_spec if not k.startswith('__'))}, "
          f"{int(ds.cardinality())} samples an epoch")

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([
        tf.keras.Input((FEATURES,)),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(CLASSES),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    # shuffle=False: the server already shuffles every epoch (Keras cannot shuffle a tf.data.Dataset).
    hist = model.fit(train, epochs=args.epochs, shuffle=False, verbose=2, callbacks=[EpochLog()])
    acc = hist.history["accuracy"]
    print(f"epochs read: {epochs_read}; accuracy {acc[0]:.3f} -> {acc[-1]:.3f}")
    return 0 if acc[-1] > 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
