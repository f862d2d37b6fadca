"""GPUDirect Storage: fields handed out as extents of the server's disk tier.

With ``Client.stream(..., gds=True)`` (shared memory over the server's unix
socket, plus extents) the fields of samples whose shard is in the server's
disk tier arrive as an :class:`Extent` — a file on this host, an offset
and a length — instead of bytes; the other fields are memoryviews into the
shared-memory region as with ``shm=True``. An extent's file stays in place
while its batch is held: like the region's bytes, it is valid until the
next batch is asked for.

``extent.read()`` (or ``bytes(extent)``) reads it into host memory with
``os.preadv``, on any host. ``extent.to_device("cuda")`` reads it into GPU
memory by the first path that works, in this order:

``"cufile-kvikio"``
    ``kvikio.CuFile`` (cuFile: NVMe to GPU memory). Reported as
    ``"cufile-kvikio-compat"`` when kvikio says it runs in its POSIX
    compatibility mode.
``"cufile-torch"``
    ``torch.cuda.gds.GdsFile`` (cuFile through torch).
``"pinned"``
    ``os.preadv`` into a pinned host buffer, then a DMA copy.

A cuFile path that fails falls back to the next one and is not tried again
by the same reader (``ExtentReader.failures`` says why). ``extent.via``
names the path its last read took; without a CUDA device it is ``"host"``.
cuFile's own compatibility mode (libcufile present but the nvidia-fs
driver not loaded, see :func:`nvidia_fs_loaded`) reads through host memory
too: it works, but it is not GPUDirect.

:func:`to_device` moves any field of a stream (memoryview, bytes or Extent)
to a device.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from ._buffers import frombuffer

__all__ = [
    "CUFILE_KVIKIO",
    "CUFILE_KVIKIO_COMPAT",
    "CUFILE_TORCH",
    "PINNED",
    "HOST",
    "PATHS",
    "Extent",
    "ExtentReader",
    "device_paths",
    "nvidia_fs_loaded",
    "to_device",
]

CUFILE_KVIKIO = "cufile-kvikio"
CUFILE_KVIKIO_COMPAT = "cufile-kvikio-compat"
CUFILE_TORCH = "cufile-torch"
PINNED = "pinned"
HOST = "host"
PATHS = (CUFILE_KVIKIO, CUFILE_TORCH, PINNED, HOST)
"""The paths an ExtentReader can be told to try (``paths=``)."""

_log = logging.getLogger("stoker.gds")


class Extent:
    """A byte range of a file on this host: one field of a gds stream.

    ``read()`` gives its bytes in host memory; ``to_device()`` a uint8
    tensor in GPU memory. ``via`` is how the last read travelled
    (``"cufile-kvikio"``, ``"cufile-torch"``, ``"pinned"``, ``"host"``;
    None before the first). Extents of a stream share its
    :class:`ExtentReader`, which keeps the batch's files open.
    """

    __slots__ = ("path", "offset", "length", "via", "_reader")

    def __init__(self, path: str, offset: int, length: int, reader: ExtentReader | None = None) -> None:
        self.path = path
        self.offset = offset
        self.length = length
        self.via: str | None = None
        self._reader = reader

    def __len__(self) -> int:
        return self.length

    def __bytes__(self) -> bytes:
        return bytes(self.read())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Extent):
            return NotImplemented
        return (self.path, self.offset, self.length) == (other.path, other.offset, other.length)

    def __hash__(self) -> int:
        return hash((self.path, self.offset, self.length))

    def __repr__(self) -> str:
        return f"Extent({self.path!r}, offset={self.offset}, length={self.length})"

    def read(self) -> memoryview:
        """The bytes, read into host memory (a new buffer each call)."""
        if self._reader is not None:
            return self._reader.read(self)
        with ExtentReader() as r:
            return r.read(self)

    def to_device(self, device: Any = "cuda") -> Any:
        """The bytes as a uint8 torch tensor on ``device`` (needs torch);
        see the module's doc for the paths tried."""
        if self._reader is not None:
            return self._reader.to_device(self, device)
        with ExtentReader() as r:
            return r.to_device(self, device)


def to_device(field: Any, device: Any = "cuda") -> Any:
    """Any field of a stream as a uint8 tensor on ``device``: an Extent by
    :meth:`Extent.to_device`, a memoryview or bytes by a copy that is done
    when this returns (the region's bytes may be reused after the batch)."""
    if isinstance(field, Extent):
        return field.to_device(device)
    import torch

    if len(field) == 0:
        return torch.empty(0, dtype=torch.uint8, device=device)
    return frombuffer(field).to(device, copy=True)  # the tensor over the bytes only feeds the copy


def nvidia_fs_loaded() -> bool:
    """Whether the nvidia-fs kernel driver is loaded. Without it cuFile
    runs in its compatibility mode (through host memory) unless the kernel
    and NVMe driver do peer-to-peer DMA by themselves."""
    return os.path.exists("/proc/driver/nvidia-fs") or os.path.exists("/sys/module/nvidia_fs")


def device_paths(device: Any = "cuda") -> list[str]:
    """The paths :meth:`ExtentReader.to_device` tries for ``device``, in
    order: what is importable and built in here, before any is tried."""
    try:
        import torch
    except ImportError:
        return [HOST]
    dev = torch.device(device)
    cuda = dev.type == "cuda" and torch.cuda.is_available()
    return candidate_paths(
        cuda=cuda, kvikio=cuda and _import_kvikio() is not None, torch_gds=cuda and _torch_gds_built()
    )


def candidate_paths(*, cuda: bool, kvikio: bool, torch_gds: bool) -> list[str]:
    """The order of paths for what a host has (pure; device_paths probes)."""
    if not cuda:
        return [HOST]
    out = []
    if kvikio:
        out.append(CUFILE_KVIKIO)
    if torch_gds:
        out.append(CUFILE_TORCH)
    out.append(PINNED)
    return out


def _import_kvikio() -> Any:
    """kvikio, or None when it does not import."""
    try:
        import kvikio
    except Exception:  # ImportError, or a broken CUDA install under it
        return None
    return kvikio


def _torch_gds_built() -> bool:
    try:
        import torch.cuda.gds

        return bool(torch.cuda.gds.is_available())
    except Exception:
        return False


def _open_torch_gds(path: str) -> Any:
    """A torch.cuda.gds.GdsFile for reading (registers it with cuFile)."""
    import torch.cuda.gds

    return torch.cuda.gds.GdsFile(path, os.O_RDONLY)


def _kvikio_compat(kvikio: Any, handle: Any) -> bool:
    """Whether kvikio does this file's reads in its POSIX compatibility
    mode. The API moved between kvikio versions: ask each form."""
    probes: list[Callable[[], Any]] = [
        lambda: handle.is_compat_mode_preferred(),
        lambda: kvikio.defaults.is_compat_mode_preferred(),
        lambda: kvikio.defaults.compat_mode(),
    ]
    for probe in probes:
        try:
            v = probe()
        except Exception:
            continue
        if isinstance(v, bool):
            return v
        name = getattr(v, "name", "")
        if name in ("ON", "OFF"):
            return bool(name == "ON")
    return False


class ExtentReader:
    """Reads extents into host or GPU memory for one stream.

    It keeps the files of the batch being read open (``close_files``, at
    each batch's release, lets the server evict them), a pinned staging
    buffer for the pinned path, and which cuFile paths failed. ``paths``
    fixes the order of paths, taken as given whatever the device (default:
    :func:`device_paths` of each read's device); a failing cuFile path
    falls back to the next, and another path's error is raised. Used by
    one thread at a time.
    """

    def __init__(self, paths: Sequence[str] | None = None) -> None:
        if paths is not None and any(p not in PATHS for p in paths):
            raise ValueError(f"stoker: extent paths {list(paths)}: want some of {PATHS}")
        self._paths = list(paths) if paths is not None else None
        self._fds: dict[str, int] = {}  # host reads, by file
        self._cufiles: dict[tuple[str, str], tuple[Any, str]] = {}  # (path kind, file) -> (handle, name)
        self._staging: Any = None  # pinned uint8 tensor
        self._staged: Any = None  # CUDA event: the last copy out of _staging is done
        self.failures: dict[str, str] = {}  # path -> why it is not tried again

    def __enter__(self) -> ExtentReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- host --------------------------------------------------------------

    def read(self, e: Extent) -> memoryview:
        """The extent's bytes in a new host buffer, read with os.preadv."""
        buf = bytearray(e.length)
        view = memoryview(buf)
        self._pread(e, view)
        e.via = HOST
        return view

    def _fd(self, path: str) -> int:
        fd = self._fds.get(path)
        if fd is None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            self._fds[path] = fd
        return fd

    def _pread(self, e: Extent, into: memoryview) -> None:
        """Fill ``into`` (e.length bytes) from the extent's file."""
        fd, done = self._fd(e.path), 0
        while done < e.length:
            n = os.preadv(fd, [into[done : e.length]], e.offset + done)
            if n == 0:
                raise OSError(f"stoker: extent {e.path} [{e.offset}, +{e.length}): end of file after {done} bytes")
            done += n

    # -- device ------------------------------------------------------------

    def to_device(self, e: Extent, device: Any = "cuda") -> Any:
        """The extent's bytes as a uint8 tensor on ``device``; sets e.via.

        A CUDA device is read by the paths of the module's doc; cuFile reads
        are synchronous and first wait for the device's current stream (the
        new tensor's memory may have been in use by work queued there). The
        pinned path's copy is queued on the current stream. Any other device
        gets the host bytes.
        """
        import torch

        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None and torch.cuda.is_available():
            dev = torch.device("cuda", torch.cuda.current_device())
        paths = self._paths if self._paths is not None else device_paths(dev)
        last: BaseException | None = None
        for p in paths:
            if p in self.failures:
                continue
            try:
                out, name = self._read_by(p, e, dev)
            except Exception as err:
                last = err
                if p in (CUFILE_KVIKIO, CUFILE_TORCH):
                    self.failures[p] = f"{type(err).__name__}: {err}"
                    _log.warning("stoker gds: %s failed on %s, falling back: %s", p, e.path, err)
                    continue
                raise
            e.via = name
            return out
        raise RuntimeError(f"stoker: no path could read {e!r} to {dev} (failures: {self.failures})") from last

    def _read_by(self, path: str, e: Extent, dev: Any) -> tuple[Any, str]:
        if path == CUFILE_KVIKIO:
            return self._read_kvikio(e, dev)
        if path == CUFILE_TORCH:
            return self._read_torch(e, dev), CUFILE_TORCH
        if path == PINNED:
            return self._read_pinned(e, dev), PINNED
        if path == HOST:
            import torch

            host = self.read(e)
            t = torch.frombuffer(host, dtype=torch.uint8) if e.length else torch.empty(0, dtype=torch.uint8)
            return t.to(dev), HOST
        raise ValueError(f"stoker: unknown extent path {path!r}")

    def _device_buffer(self, e: Extent, dev: Any) -> Any:
        import torch

        out = torch.empty(e.length, dtype=torch.uint8, device=dev)
        if dev.type == "cuda":
            torch.cuda.current_stream(dev).synchronize()
        return out

    def _read_kvikio(self, e: Extent, dev: Any) -> tuple[Any, str]:
        key = (CUFILE_KVIKIO, e.path)
        if key not in self._cufiles:
            kvikio = _import_kvikio()
            if kvikio is None:
                raise ImportError("kvikio does not import")
            handle = kvikio.CuFile(e.path, "r")
            name = CUFILE_KVIKIO_COMPAT if _kvikio_compat(kvikio, handle) else CUFILE_KVIKIO
            self._cufiles[key] = (handle, name)
        handle, name = self._cufiles[key]
        out = self._device_buffer(e, dev)
        if e.length:
            n = handle.pread(out, e.length, e.offset).get()
            if n != e.length:
                raise OSError(f"kvikio read {n} of {e.length} bytes of {e!r}")
        return out, name

    def _read_torch(self, e: Extent, dev: Any) -> Any:
        key = (CUFILE_TORCH, e.path)
        if key not in self._cufiles:
            self._cufiles[key] = (_open_torch_gds(e.path), CUFILE_TORCH)
        gds_file, _ = self._cufiles[key]
        out = self._device_buffer(e, dev)
        if e.length:
            gds_file.load_storage(out.untyped_storage(), e.offset)
        return out

    def _read_pinned(self, e: Extent, dev: Any) -> Any:
        import torch

        cuda = dev.type == "cuda"
        if self._staged is not None:
            self._staged.synchronize()  # the last copy out of the buffer is done
        if self._staging is None or self._staging.numel() < e.length:
            size = max(1 << 20, 1 << max(e.length - 1, 0).bit_length())
            self._staging = torch.empty(size, dtype=torch.uint8, pin_memory=cuda and torch.cuda.is_available())
        if e.length == 0:
            return torch.empty(0, dtype=torch.uint8, device=dev)
        view = memoryview(self._staging.numpy()).cast("B")
        self._pread(e, view[: e.length])
        part = self._staging[: e.length]
        if not cuda:
            return part.to(dev, copy=True)  # never a view of the reused buffer
        out = part.to(dev, non_blocking=True)
        self._staged = torch.cuda.Event()
        self._staged.record(torch.cuda.current_stream(dev))
        return out

    # -- lifetime ----------------------------------------------------------

    def close_files(self) -> None:
        """Close the files read so far (their extents may go once the
        batch is released); later reads open them again."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)
        cufiles, self._cufiles = self._cufiles, {}
        for (kind, _), (handle, _) in cufiles.items():
            try:
                if kind == CUFILE_KVIKIO:
                    handle.close()
                else:
                    handle.deregister_handle()  # GdsFile closes its fd when dropped
            except Exception as err:
                _log.warning("stoker gds: closing a %s file: %s", kind, err)

    def close(self) -> None:
        """Close the files and free the staging buffer. Safe to repeat."""
        self.close_files()
        if self._staged is not None:
            self._staged.synchronize()
            self._staged = None
        self._staging = None
