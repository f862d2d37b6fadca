"""Ready batches: the server's decode and augmentations against Pillow and
torchvision pixel for pixel, the same augmentation for a sample whatever
the world size, worker count or resume, shared memory and TCP alike, and
bad samples named."""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from photos import jpeg, photo, write_photo_shards
from PIL import Image
from servers import S3Server, Stokerd
from torch.utils.data import DataLoader

import stoker
from stoker.pipeline import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Transform,
    image,
    imagenet_train,
    json_value,
    label,
    npy,
    random_resized_crop_params,
    sample_rng,
    text,
)
from stoker.torch import StokerDataset

tv = pytest.importorskip("torchvision")
import torchvision.transforms.v2 as T  # noqa: E402
import torchvision.transforms.v2.functional as F  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.io import decode_jpeg  # noqa: E402

COUNT = 36
SIZES = ((160, 120), (120, 160), (200, 150), (96, 96), (250, 180), (181, 133))


def _extra(i: int, s: dict[str, Any]) -> None:
    s["txt"] = f"photo {i} ✓".encode()
    buf = io.BytesIO()
    np.save(buf, np.arange(6, dtype=np.float32).reshape(2, 3) + i)
    s["npy"] = buf.getvalue()
    s["json"] = f"[{i}, {i + 1}]".encode()


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="stoker-pl-", dir="/tmp"))  # short: the unix socket's path
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def photos(root: Path) -> str:
    """A WebDataset of photo-like JPEGs with labels, text, npy and json."""
    write_photo_shards(root / "files" / "photos", COUNT, 10, sizes=SIZES, seed=3, extra=_extra)
    return f"file://{root}/files/photos/"


@pytest.fixture(scope="module")
def big(root: Path) -> str:
    """Larger photos (crops twice the output or more: DCT scaling)."""
    write_photo_shards(root / "files" / "big", 8, 8, sizes=((800, 600), (640, 640)), seed=4)
    return f"file://{root}/files/big/"


def _bad(i: int, s: dict[str, Any]) -> None:
    if i == 2:
        s["jpg"] = s["jpg"][: len(s["jpg"]) // 3]  # truncated
    if i == 4:
        s["jpg"] = None
        s["png"] = _png_bomb(100_000, 100_000)
    if i == 6:
        s["cls"] = None


def _png_bomb(w: int, h: int) -> bytes:
    """A valid PNG header of w x h pixels with almost no data."""
    import struct
    import zlib

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bad(root: Path) -> str:
    write_photo_shards(root / "files" / "bad", 8, 8, sizes=SIZES, seed=5, extra=_bad)
    return f"file://{root}/files/bad/"


@pytest.fixture(scope="module")
def srv(stokerd_bin: str, s3_server: S3Server, root: Path, photos: str, big: str, bad: str) -> Iterator[Stokerd]:
    """A stokerd serving the photos on TCP and a unix socket."""
    d = Stokerd(bin=stokerd_bin, root=root / "stokerd", env=s3_server.env(),
                extra=("--unix", str(root / "s.sock"), "--allow-file-root", str(root / "files")))
    d.start()
    yield d
    d.kill()


def _unix(srv: Stokerd) -> str:
    return "unix:" + str(srv.root.parent / "s.sock")


def _raw(url: str) -> dict[str, dict[str, bytes]]:
    import tarfile

    out: dict[str, dict[str, bytes]] = {}
    for p in sorted(Path(url[len("file://"):]).glob("*.tar")):
        with tarfile.open(p) as tf:
            for m in tf:
                key, _, ext = m.name.partition(".")
                f = tf.extractfile(m)
                assert f is not None
                out.setdefault(key, {})[ext] = f.read()
    return out


def _read(server: str, url: str, transform: Transform, **kw: Any) -> dict[str, dict[str, Any]]:
    """{key: {tensor: row}} of one epoch through stoker.Client."""
    out: dict[str, dict[str, Any]] = {}
    with stoker.Client(server) as c:
        for b in c.stream(url, transform=transform, shm=server.startswith("unix:"), **{"batch_size": 8, **kw}):
            for i, k in enumerate(b.ready.keys):
                out[k] = {n: (v[i].copy() if isinstance(v, np.ndarray) else v[i]) for n, v in b.ready.tensors.items()}
                out[k]["__position__"] = b.ready.positions[i]
    return out


# -- pixels --------------------------------------------------------------


def _pillow_resample(a: np.ndarray, ow: int, oh: int) -> np.ndarray:
    """Pillow's published antialiased bilinear resample (libImaging/
    Resample.c: precompute_coeffs, 22-bit fixed point, the horizontal pass
    then the vertical), in numpy: the reference Stoker follows."""
    def coeffs(n_in: int, n_out: int) -> list[tuple[int, list[int]]]:
        scale = n_in / n_out
        fs = max(scale, 1.0)
        out = []
        for xx in range(n_out):
            center = (xx + 0.5) * scale
            xmin = max(int(center - fs + 0.5), 0)
            xmax = min(int(center + fs + 0.5), n_in) - xmin
            k = [max(0.0, 1.0 - abs((x + xmin - center + 0.5) / fs)) for x in range(xmax)]
            ww = sum(k)
            out.append((xmin, [int(0.5 + (w / ww) * (1 << 22)) for w in k]))
        return out

    def hpass(img: np.ndarray, n_out: int) -> np.ndarray:
        res = np.zeros((img.shape[0], n_out, img.shape[2]), np.uint8)
        for xx, (xmin, k) in enumerate(coeffs(img.shape[1], n_out)):
            s = np.full((img.shape[0], img.shape[2]), 1 << 21, np.int64)
            for t, w in enumerate(k):
                s += img[:, xmin + t, :].astype(np.int64) * w
            res[:, xx, :] = np.clip(s >> 22, 0, 255)
        return res

    h = hpass(a, ow) if ow != a.shape[1] else a
    return hpass(h.transpose(1, 0, 2), oh).transpose(1, 0, 2) if oh != a.shape[0] else h


def test_pixels_match_pillow_and_torchvision(srv: Stokerd, photos: str) -> None:
    """decode + random-resized crop + flip, uint8: the same integers as
    Pillow's published algorithm on Pillow's decode; within 1 level of
    Pillow 13 itself (which may run the vertical pass first) and of
    torchvision (decode_jpeg, resized_crop antialias=True, its own
    fixed point)."""
    t = Transform({"image": image().random_resized_crop(56).flip().params().full_resolution()}, seed=11)
    got = _read(srv.address, photos, t, seed=2, epoch=1)
    raw = _raw(photos)
    worst_pil = worst_tv = 0
    for key, row in got.items():
        top, left, h, w, flip = (int(v) for v in row["image.params"])
        data = raw[key]["jpg"]
        pil = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        crop = pil[top : top + h, left : left + w]
        ref = _pillow_resample(crop, 56, 56)
        pil13 = np.asarray(Image.fromarray(crop).resize((56, 56), Image.BILINEAR))
        tvi = F.resized_crop(decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8)), top, left, h, w, [56, 56],
                             antialias=True).permute(1, 2, 0).numpy()
        if flip:
            ref, pil13, tvi = ref[:, ::-1], pil13[:, ::-1], tvi[:, ::-1]
        img = row["image"]
        assert img.shape == (56, 56, 3) and img.dtype == np.uint8
        assert np.array_equal(img, ref), f"{key}: differs from Pillow's algorithm by {np.abs(img.astype(int) - ref).max()}"
        worst_pil = max(worst_pil, int(np.abs(img.astype(int) - pil13).max()))
        worst_tv = max(worst_tv, int(np.abs(img.astype(int) - tvi).max()))
    assert len(got) == COUNT
    assert worst_pil <= 1 and worst_tv <= 1, (worst_pil, worst_tv)


def test_dct_scaled_decode_is_close(srv: Stokerd, big: str) -> None:
    """A crop at least twice the output decodes at 1/2..1/8 in the DCT
    domain: faster, and within a few levels of the full decode's result
    on average (the documented tolerance: mean <= 2, max <= 40)."""
    fast = _read(srv.address, big, Transform({"image": image().random_resized_crop(64, scale=(0.5, 1.0)).params()}, seed=1))
    exact = _read(srv.address, big, Transform({"image": image().random_resized_crop(64, scale=(0.5, 1.0)).params().full_resolution()}, seed=1))
    means, worst = [], 0
    for key in exact:
        assert np.array_equal(fast[key]["image.params"], exact[key]["image.params"])
        d = np.abs(fast[key]["image"].astype(int) - exact[key]["image"].astype(int))
        means.append(d.mean())
        worst = max(worst, int(d.max()))
    print(f"DCT-scaled vs full decode: mean {np.mean(means):.3f}, max {worst}")
    assert 0 < np.mean(means) <= 2 and worst <= 40, (np.mean(means), worst)


def test_normalize_and_dtype_exact(srv: Stokerd, photos: str) -> None:
    """float32 is torchvision's ToDtype(float32, scale=True) then
    Normalize of the uint8 result, bit for bit; float16 is that rounded;
    CHW is the transpose."""
    base = image().random_resized_crop(40).flip()
    u8 = _read(srv.address, photos, Transform({"x": base}, seed=5))
    f32 = _read(srv.address, photos, Transform({"x": base.normalize().to("float32", "CHW")}, seed=5))
    f16 = _read(srv.address, photos, Transform({"x": base.normalize().to("float16")}, seed=5))
    plain = _read(srv.address, photos, Transform({"x": base.to("float32")}, seed=5))
    norm = T.Compose([T.ToDtype(torch.float32, scale=True), T.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))])
    for key, row in u8.items():
        chw = torch.from_numpy(row["x"]).permute(2, 0, 1)
        want = norm(tv_tensors.Image(chw)).numpy()
        assert f32[key]["x"].dtype == np.float32 and np.array_equal(f32[key]["x"], want), key
        assert np.array_equal(f16[key]["x"], want.transpose(1, 2, 0).astype(np.float16)), key
        assert np.array_equal(plain[key]["x"], T.ToDtype(torch.float32, scale=True)(tv_tensors.Image(chw)).numpy().transpose(1, 2, 0)), key


def test_resize_center_crop_matches_torchvision(srv: Stokerd, photos: str) -> None:
    """Resize(shorter) then CenterCrop, fused into one resample, is
    torchvision's two steps within a level (exactly Pillow's algorithm)."""
    got = _read(srv.address, photos, Transform({"x": image().resize(64).center_crop(56).full_resolution()}))
    raw = _raw(photos)
    worst = 0
    for key, row in got.items():
        pil = np.asarray(Image.open(io.BytesIO(raw[key]["jpg"])).convert("RGB"))
        h, w = pil.shape[:2]
        nh, nw = (64, int(64 * w / h)) if h <= w else (int(64 * h / w), 64)
        full = _pillow_resample(pil, nw, nh)
        top, left = int(round((nh - 56) / 2.0)), int(round((nw - 56) / 2.0))
        assert np.array_equal(row["x"], full[top : top + 56, left : left + 56]), key
        tvi = T.Compose([T.Resize(64, antialias=True), T.CenterCrop(56)])(
            decode_jpeg(torch.frombuffer(bytearray(raw[key]["jpg"]), dtype=torch.uint8)))
        worst = max(worst, int(np.abs(row["x"].astype(int) - tvi.permute(1, 2, 0).numpy()).max()))
    assert worst <= 1, worst


def test_draws_are_the_documented_generator(srv: Stokerd, photos: str) -> None:
    """The crops and flips come from SplitMix64 keyed by (seed, epoch,
    position, op): stoker.pipeline's copy of it predicts every one."""
    t = Transform({"x": image().random_resized_crop(32, scale=(0.2, 0.9)).flip(0.3).params()}, seed=77)
    got = _read(srv.address, photos, t, seed=9, epoch=4)
    raw = _raw(photos)
    flips = 0
    for key, row in got.items():
        w, h = Image.open(io.BytesIO(raw[key]["jpg"])).size
        pos = row["__position__"]
        box = random_resized_crop_params(w, h, sample_rng(77, 4, pos, 0), scale=(0.2, 0.9))
        flip = sample_rng(77, 4, pos, 1).float() < 0.3
        assert tuple(int(v) for v in row["x.params"][:4]) == box and bool(row["x.params"][4]) == flip, key
        flips += flip
    assert 0 < flips < len(got)


def test_value_outputs(srv: Stokerd, photos: str) -> None:
    t = Transform({"caption": text(), "emb": npy(), "pair": json_value(dtype="int32"), "label": label(dtype="int32")})
    got = _read(srv.address, photos, t)
    for key, row in got.items():
        i = int(key)
        assert row["caption"] == f"photo {i} ✓"
        assert row["emb"].dtype == np.float32 and np.array_equal(row["emb"], np.arange(6, dtype=np.float32).reshape(2, 3) + i)
        assert row["pair"].dtype == np.int32 and list(row["pair"]) == [i, i + 1]
        assert row["label"] == i % 1000


# -- determinism -----------------------------------------------------------


def _digests(server: str, url: str, transform: Transform, world: int, workers: int, **kw: Any) -> dict[str, str]:
    """{key: digest of its image and label} over every rank of a world,
    each through a DataLoader of ``workers`` workers."""
    out: dict[str, str] = {}
    for rank in range(world):
        ds = StokerDataset(url, server=server, batch_size=5, seed=3, rank=rank, world_size=world, transform=transform, **kw)
        for b in DataLoader(ds, batch_size=None, num_workers=workers):
            for i, k in enumerate(b["__key__"]):
                assert k not in out, f"{k} read twice"
                out[k] = hashlib.sha256(b["image"][i].numpy().tobytes() + b["label"][i].numpy().tobytes()).hexdigest()
    return out


@pytest.mark.parametrize("transport", ["tcp", "shm"])
def test_same_augmentation_any_world_size_workers_resume(srv: Stokerd, photos: str, transport: str) -> None:
    server = srv.address if transport == "tcp" else _unix(srv)
    t = imagenet_train(48, seed=123)
    ref = _digests(server, photos, t, 1, 0)
    assert len(ref) == COUNT
    for world, workers in ((2, 0), (3, 0), (1, 2), (2, 2), (3, 2)):
        assert _digests(server, photos, t, world, workers) == ref, f"world {world}, {workers} workers"
    # Resume after two batches, from the state the dataset saved.
    ds = StokerDataset(photos, server=server, batch_size=5, seed=3, transform=t)
    it = iter(DataLoader(ds, batch_size=None))
    seen = [k for _ in range(2) for k in next(it)["__key__"]]
    state = ds.state_dict()
    again = StokerDataset(photos, server=server, batch_size=5, seed=3, transform=t)
    again.load_state_dict(state)
    rest: dict[str, str] = {}
    for b in DataLoader(again, batch_size=None):
        for i, k in enumerate(b["__key__"]):
            rest[k] = hashlib.sha256(b["image"][i].numpy().tobytes() + b["label"][i].numpy().tobytes()).hexdigest()
    assert set(rest) | set(seen) == set(ref) and not set(rest) & set(seen)
    assert all(ref[k] == v for k, v in rest.items())
    # Another epoch, another augmentation.
    ds.set_epoch(1)
    other = {k: hashlib.sha256(b["image"][i].numpy().tobytes()).hexdigest()
             for b in DataLoader(ds, batch_size=None) for i, k in enumerate(b["__key__"])}
    assert sum(other[k] != ref[k] for k in ref) > COUNT // 2


def test_shm_tensors_are_the_region(srv: Stokerd, photos: str) -> None:
    """Over the unix socket a batch's tensors are arrays over the mapped
    region (no copy); over TCP one buffer per tensor."""
    t = imagenet_train(32)
    with stoker.Client(_unix(srv)) as c:
        b = next(iter(c.stream(photos, batch_size=8, transform=t, shm=True)))
        arr = b.ready.tensors["image"]
        assert not arr.flags.owndata and arr.flags.c_contiguous and arr.shape == (8, 3, 32, 32)
        root = _root(arr)
        assert isinstance(root, memoryview) and root.obj.__class__.__name__ == "mmap"
    with stoker.Client(srv.address) as c:
        b = next(iter(c.stream(photos, batch_size=8, transform=t)))
        arr = b.ready.tensors["image"]
        assert arr.flags.c_contiguous and arr.shape == (8, 3, 32, 32) and isinstance(_root(arr), bytes)


def _root(arr: np.ndarray) -> Any:
    """The buffer an array's memory belongs to."""
    b: Any = arr
    while isinstance(b, np.ndarray):
        b = b.base
    return b


def test_tf_signature_is_static(srv: Stokerd, photos: str) -> None:
    tf = pytest.importorskip("tensorflow")
    import stoker.tf as stf

    t = Transform({"image": image().random_resized_crop(40).normalize().to("float32", "CHW"), "label": label(),
                   "caption": text(), "emb": npy(shape=(2, 3), dtype="float32")}, seed=8)
    ds = stf.dataset(photos, server=srv.address, batch_size=6, seed=3, drop_last=True, transform=t)
    spec = ds.element_spec
    assert spec["image"].shape == (6, 3, 40, 40) and spec["image"].dtype == tf.float32
    assert spec["label"].shape == (6,) and spec["caption"].dtype == tf.string and spec["emb"].shape == (6, 2, 3)
    torch_rows = _read(srv.address, photos, t, seed=3, batch_size=6)
    n = 0
    for e in ds:
        for i, k in enumerate(e["__key__"].numpy()):
            k = k.decode()
            assert np.array_equal(e["image"][i].numpy(), torch_rows[k]["image"])
            assert e["caption"][i].numpy().decode() == torch_rows[k]["caption"]
            n += 1
    assert n == COUNT // 6 * 6


# -- bad input -------------------------------------------------------------


def _vmhwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def test_bad_samples_named(srv: Stokerd, bad: str) -> None:
    """A truncated JPEG fails the stream as corrupt data naming the
    sample; a PNG bomb (100000 x 100000) is refused before decoding, the
    server's peak memory unmoved; a missing field names the field; with
    on_error="mask" the stream goes on and says which and why."""
    t = Transform({"image": image().random_resized_crop(32), "label": label()})
    assert srv.proc is not None
    before = _vmhwm(srv.proc.pid)

    def first_error(start: int) -> BaseException:
        with stoker.Client(srv.address) as c, pytest.raises(stoker.StokerError) as err:
            for _ in c.stream(bad, batch_size=1, shuffle=False, transform=t, start=start):
                pass
        return err.value

    e = first_error(0)
    assert isinstance(e, stoker.CorruptShard) and '"000002"' in str(e) and "train-000000.tar" in str(e), e
    e = first_error(3)
    assert isinstance(e, stoker.ResourceExhausted) and '"000004"' in str(e) and "100000x100000" in str(e), e
    e = first_error(5)
    assert isinstance(e, stoker.InvalidArgument) and '"000006"' in str(e) and "cls" in str(e), e
    assert _vmhwm(srv.proc.pid) - before < 64 << 20
    masked = Transform(t.outputs, on_error="mask")
    ds = StokerDataset(bad, server=srv.address, batch_size=4, shuffle=False, transform=masked)
    valid, errs = [], []
    for b in DataLoader(ds, batch_size=None):
        valid += b["__valid__"].tolist()
        errs += b.get("__errors__", [""] * len(b["__key__"]))
        for i, v in enumerate(b["__valid__"].tolist()):
            if not v:
                assert not b["image"][i].any() and b["label"][i] == 0
    assert valid == [1, 1, 0, 1, 0, 1, 0, 1]
    assert "cannot decode" in errs[2] and "too large" in errs[4] and "missing field" in errs[6]
    # The server goes on serving.
    assert len(_read(srv.address, bad, Transform({"label": label()}, on_error="mask"), batch_size=2)) == 8


def test_bad_pipeline_refused(srv: Stokerd, photos: str) -> None:
    with stoker.Client(srv.address) as c:
        with pytest.raises(stoker.InvalidArgument, match="random_resized_crop must be the first op"):
            next(iter(c.stream(photos, batch_size=4, transform=Transform({"x": image().resize(64).random_resized_crop(32)}))))
        with pytest.raises(stoker.InvalidArgument, match="not fixed"):
            next(iter(c.stream(photos, batch_size=4, transform=Transform({"x": image().resize(64)}))))


def test_preprocess_on(srv: Stokerd, photos: str) -> None:
    """preprocess_on goes into the request; a single server does the work
    itself either way, with the same tensors; a bad value is refused."""
    from stoker._request import stream_plan
    from stoker.v1 import loader_pb2

    t = imagenet_train(48, seed=123)
    args: dict[str, Any] = dict(
        batch_size=4,
        seed=0,
        epoch=0,
        rank=0,
        world_size=1,
        shuffle=True,
        shuffle_window=0,
        drop_last=False,
        start=0,
        format="",
        columns=(),
        shm=False,
        shm_region_bytes=0,
        shm_tier=False,
        gds=False,
        local=lambda: False,
    )
    req = loader_pb2.StreamBatchesRequest(**stream_plan(photos, transform=t, preprocess_on="any", **args).fixed)
    assert req.preprocess_on == loader_pb2.PREPROCESS_ON_ANY
    req = loader_pb2.StreamBatchesRequest(**stream_plan(photos, transform=t, **args).fixed)
    assert req.preprocess_on == loader_pb2.PREPROCESS_ON_LOCAL
    assert _digests(srv.address, photos, t, 1, 0, preprocess_on="any") == _digests(srv.address, photos, t, 1, 0)
    with stoker.Client(srv.address) as c:
        with pytest.raises(stoker.InvalidArgument, match="preprocess_on 'anywhere'"):
            next(iter(c.stream(photos, batch_size=4, transform=t, preprocess_on="anywhere")))
        with pytest.raises(stoker.InvalidArgument, match="pass transform too"):
            next(iter(c.stream(photos, batch_size=4, preprocess_on="any")))
    with pytest.raises(stoker.InvalidArgument, match="preprocess_on"):
        StokerDataset(photos, server=srv.address, transform=t, preprocess_on="remote")
