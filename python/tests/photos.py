"""Photo-like JPEGs for the pipeline's tests and benchmark, written with
Pillow: 1/f colour noise (the spectrum of natural images), shaded
ellipses, a blur and sensor noise, so that they compress like photos
(ImageNet-like sizes: about 110 KB at 500x375, quality 90)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds
from PIL import Image, ImageDraw, ImageFilter


def photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A w x h RGB image that looks (to a JPEG encoder) like a photo."""

    def field(beta: float) -> np.ndarray:
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None, :]
        f = np.sqrt(fx**2 + fy**2)
        f[0, 0] = 1
        spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**beta
        x = np.fft.irfft2(spec, s=(h, w))
        return (x - x.mean()) / (x.std() + 1e-9)

    base = field(1.0)
    a = np.stack([base * 40 + field(1.2) * 25 + m for m in rng.uniform(60, 190, 3)], -1)
    a += np.linspace(30, -30, h)[:, None, None]
    im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, max(11, w // 2))), y0 + int(rng.integers(10, max(11, h // 2)))
        d.ellipse([x0, y0, x1, y1], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 0.8))))
    out = np.asarray(im).astype(np.float32) + rng.normal(0, 9, (h, w, 1))
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


IMAGENET_SIZES = ((500, 375), (375, 500), (500, 333), (333, 500), (500, 400), (400, 300), (640, 480), (500, 500))


def jpeg(im: Image.Image, quality: int = 90) -> bytes:
    b = io.BytesIO()
    im.save(b, "JPEG", quality=quality)
    return b.getvalue()


def write_photo_shards(
    folder: Path, count: int, per_shard: int, *, sizes: Any = IMAGENET_SIZES, seed: int = 0, extra: Any = None
) -> list[Path]:
    """Shards of ``count`` samples: ``jpg`` (a photo of one of ``sizes``)
    and ``cls``; ``extra(i, sample)`` may change sample i (fields as bytes;
    a None value leaves the field out)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for s in range(0, count, per_shard):
        path = folder / f"train-{s // per_shard:06d}.tar"
        with wds.TarWriter(str(path)) as w:
            for i in range(s, min(count, s + per_shard)):
                wd, ht = sizes[int(rng.integers(len(sizes)))]
                sample: dict[str, Any] = {"__key__": f"{i:06d}", "jpg": jpeg(photo(rng, wd, ht)), "cls": str(i % 1000).encode()}
                if extra is not None:
                    extra(i, sample)
                w.write({k: v for k, v in sample.items() if v is not None})
        paths.append(path)
    return paths
