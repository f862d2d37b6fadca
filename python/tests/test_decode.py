"""decode= modes against webdataset's own decoders on the same shards
(served by a real stokerd from a local folder), and no warnings on the way
to torch tensors."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader

from stoker.decode import IMAGE_MODES
from stoker.torch import StokerDataset

SIZE = (7, 5)  # every image: the DataLoader stacks them


def _image(mode: str, fmt: str, i: int) -> bytes:
    rng = np.random.default_rng(i)
    channels = {"L": 1, "RGB": 3, "RGBA": 4, "P": 1}[mode]
    arr = rng.integers(0, 256, size=(SIZE[1], SIZE[0], channels), dtype=np.uint8)
    img = Image.fromarray(arr[:, :, 0] if channels == 1 else arr, "L" if mode == "P" else mode)
    if mode == "P":
        img = img.convert("P")
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def images(workdir: Path) -> tuple[str, list[str]]:
    """Shards of images in several modes and formats beside other fields,
    under the shared stokerd's --allow-file-root."""
    folder = workdir / "files" / "images"
    folder.mkdir(parents=True, exist_ok=True)
    kinds = [("L", "PNG", "png"), ("RGB", "PNG", "png"), ("RGBA", "PNG", "png"), ("P", "PNG", "png"),
             ("RGB", "JPEG", "jpg"), ("L", "JPEG", "jpeg"), ("RGB", "WEBP", "webp")]
    paths = []
    for shard in range(2):
        path = folder / f"img-{shard:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for i in range(shard * 10, shard * 10 + 10):
                mode, fmt, ext = kinds[i % len(kinds)]
                buf = io.BytesIO()
                np.save(buf, np.arange(i, dtype=np.int16))
                sink.write({"__key__": f"s{i:03d}", "cls": i % 3, "txt": f"image {i} ({mode} {fmt})",
                            "json": {"i": i}, "npy": np.arange(3, dtype=np.float32) * i, f"img.{ext}": _image(mode, fmt, i)})
        paths.append(str(path))
    return folder.as_uri() + "/", paths


def _same(a: Any, b: Any, where: str) -> None:
    if isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
    elif isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(b, Image.Image):
        assert isinstance(a, Image.Image) and (a.mode, a.size) == (b.mode, b.size), where
        assert a.tobytes() == b.tobytes(), where
    else:
        assert a == b, where


@pytest.mark.parametrize("mode", sorted(IMAGE_MODES))
def test_decode_mode_matches_webdataset(server: str, images: tuple[str, list[str]], mode: str) -> None:
    url, paths = images
    ref = {s["__key__"]: s for s in wds.WebDataset(paths, shardshuffle=False, empty_check=False).decode(mode)}
    ds = StokerDataset(url, server, batch_size=4, seed=1, decode=mode)
    n = 0
    for s in ds:
        r = ref[s["__key__"]]
        assert set(s) - {"__url__"} == set(r) - {"__url__", "__local_path__"}
        for name in set(r) - {"__key__", "__url__", "__local_path__"}:
            _same(s[name], r[name], f"{s['__key__']}.{name} ({mode})")
            if isinstance(s[name], np.ndarray):
                assert s[name].flags.writeable, f"{s['__key__']}.{name} is read-only"
        n += 1
    assert n == len(ref) == 20


def _stackable(keep_image: bool) -> Any:
    """A collate_fn: default_collate of the image (whatever its extension),
    npy and cls fields."""

    def collate(batch: list[dict[str, Any]]) -> Any:
        rows = []
        for s in batch:
            row = {"npy": s["npy"], "cls": s["cls"]}
            if keep_image:
                row["img"] = next(v for k, v in s.items() if k.startswith("img."))
            rows.append(row)
        return torch.utils.data.default_collate(rows)

    return collate


@pytest.mark.parametrize(
    "mode,shape,dtype",
    [("torchrgb", (3, SIZE[1], SIZE[0]), torch.float32), ("torchl8", (SIZE[1], SIZE[0]), torch.uint8),
     ("rgb8", (SIZE[1], SIZE[0], 3), torch.uint8), (True, None, None)],
)
def test_decoded_fields_reach_torch_without_warnings(
    server: str, images: tuple[str, list[str]], mode: Any, shape: Any, dtype: Any
) -> None:
    url, _ = images
    ds = StokerDataset(url, server, batch_size=4, seed=1, decode=mode)
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "The given NumPy array is not writable"
        for batch in DataLoader(ds, batch_size=4, collate_fn=_stackable(shape is not None)):
            if shape is not None:
                assert batch["img"].shape[1:] == shape and batch["img"].dtype == dtype
                batch["img"] += 1  # writable
            assert batch["npy"].dtype == torch.float32
            n += len(batch["cls"])
    assert n == 20


def test_auto_decode_gives_writable_arrays_torch_takes_silently(server: str, images: tuple[str, list[str]]) -> None:
    url, _ = images
    ds = StokerDataset(url, server, batch_size=1, seed=1, decode=True)
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for batch in DataLoader(ds, batch_size=1):  # default_collate: numpy -> torch.as_tensor
            img = next(v for k, v in batch.items() if k.startswith("img."))
            assert img.dtype == torch.uint8 and img.ndim in (3, 4)
            n += 1
    assert n == 20
