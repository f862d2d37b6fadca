"""Shared-memory delivery for a client on the server's host.

With ``Client.stream(..., shm=True)`` over the server's unix socket
(``Client("unix:/path")``, the path of ``stokerd --unix``), the server
places each batch's bytes in a region file under /dev/shm that this module
maps, and the messages carry only offsets. Each field of a yielded
``Sample`` is then a ``memoryview`` into the mapping: no copy.

The bytes are leased: they stay valid until the next batch is asked for
(or the stream is closed), when the client gives them back to the server,
which reuses the space. Copy what must live longer — ``bytes(view)``, or
``as_tensor(view).cuda()`` / ``.clone()``. A client that dies frees its
leases with its stream.

``as_numpy`` and ``as_tensor`` view a field as an array without a copy.

With ``gds=True`` as well, fields of shards in the server's disk tier come
as :class:`stoker.gds.Extent` (a range of a local file, for cuFile) with
the same lifetime; see :mod:`stoker.gds`.
"""

from __future__ import annotations

import mmap
import os
from typing import Any

import grpc

from .gds import Extent, ExtentReader
from .v1 import loader_pb2

__all__ = ["ShmReader", "as_numpy", "as_tensor"]


class ShmReader:
    """One stream's mapping of its region and the leases of the batch
    being read, and with ``gds`` the reader of its extents (``gds_paths``:
    the order of read paths, default stoker.gds.device_paths). Used by the
    thread that iterates the stream."""

    def __init__(
        self,
        stub: Any,
        metadata: tuple[tuple[str, str], ...],
        timeout: float | None,
        *,
        pin: bool = False,
        gds: bool = False,
        gds_paths: list[str] | None = None,
    ) -> None:
        self._stub = stub
        self._pin = pin
        self._pinned: Any = None  # the ctypes view whose address CUDA registered
        self._metadata = metadata
        self._timeout = timeout
        self.region = ""
        self._map: mmap.mmap | None = None
        self._view: memoryview | None = None
        self._leases: list[int] = []
        self.extents = ExtentReader(gds_paths) if gds else None

    def receive(self, msg: loader_pb2.StreamBatchesResponse) -> None:
        """Map the region on the first message; note the message's lease."""
        if msg.HasField("shm_region") and self._map is None:
            self._map = _map_region(msg.shm_region.path, msg.shm_region.size)
            self._view = memoryview(self._map)
            self.region = msg.shm_region.id
            if self._pin:
                self._pinned = _cuda_register(self._map)
        if msg.HasField("shm_lease"):
            if self._view is None:
                raise RuntimeError(f"stoker: shm lease {msg.shm_lease.id} before its region")
            self._leases.append(msg.shm_lease.id)

    def fields(self, sample: loader_pb2.Sample) -> dict[str, Any]:
        """The sample's fields as views into the region, or Extents."""
        out: dict[str, Any] = {}
        for f in sample.fields:
            if f.HasField("extent"):
                if self.extents is None:
                    raise RuntimeError(f"stoker: field {f.name!r} of sample {sample.key!r} is an extent, "
                                       "but the stream did not ask for gds")
                out[f.name] = Extent(f.extent.path, f.extent.offset, f.extent.length, self.extents)
                continue
            if f.shm_length == 0:
                out[f.name] = memoryview(f.data)  # empty: the same type as the rest
                continue
            if self._view is None or f.shm_offset + f.shm_length > len(self._view):
                raise RuntimeError(
                    f"stoker: shm field {f.name!r} of sample {sample.key!r}: "
                    f"[{f.shm_offset}, +{f.shm_length}) outside the region"
                )
            out[f.name] = self._view[f.shm_offset : f.shm_offset + f.shm_length]
        return out

    def release(self) -> None:
        """Give the current batch's leases back to the server (first
        closing its extents' files, so the server may evict them)."""
        if self.extents is not None:
            self.extents.close_files()
        if not self._leases:
            return
        ids, self._leases = self._leases, []
        req = loader_pb2.ReleaseShmRequest(region=self.region, leases=ids)
        try:
            self._stub.ReleaseShm(req, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            # NOT_FOUND: the stream ended and the server freed the region with it.
            if not (isinstance(err, grpc.Call) and err.code() == grpc.StatusCode.NOT_FOUND):
                raise

    def close(self) -> None:
        """Drop the mapping; views still held keep it alive until they go."""
        self._leases = []
        if self.extents is not None:
            self.extents.close()
        if self._pinned is not None:
            _cuda_unregister(self._pinned)
            self._pinned = None
        if self._view is not None:
            try:
                self._view.release()
            except BufferError:
                pass  # slices of it are alive
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # views of it are alive; it is unmapped when they go
        self._map, self._view = None, None


def _map_region(path: str, size: int) -> mmap.mmap:
    """Map a region file, writable when the file allows (torch wants a
    writable buffer), else read-only."""
    try:
        fd = os.open(path, os.O_RDWR)
        access = mmap.ACCESS_WRITE
    except PermissionError:
        fd = os.open(path, os.O_RDONLY)
        access = mmap.ACCESS_READ
    try:
        return mmap.mmap(fd, size, access=access)
    finally:
        os.close(fd)


def _cuda_register(m: mmap.mmap) -> Any:
    """Page-lock a mapping for CUDA (cudaHostRegister) so copies from it
    to the GPU are DMA; returns the ctypes view holding its address."""
    import ctypes

    import torch

    buf = (ctypes.c_char * len(m)).from_buffer(m)
    rc = torch.cuda.cudart().cudaHostRegister(ctypes.addressof(buf), len(m), 0)
    if int(rc) != 0:
        raise RuntimeError(f"stoker: cudaHostRegister of the shm region ({len(m)} bytes) failed: {rc}")
    return buf


def _cuda_unregister(buf: Any) -> None:
    import ctypes

    import torch

    torch.cuda.cudart().cudaHostUnregister(ctypes.addressof(buf))


def as_numpy(view: Any, dtype: Any = "uint8") -> Any:
    """A numpy array over a field's bytes (no copy; an Extent is read into
    host memory first)."""
    import numpy as np

    if isinstance(view, Extent):
        view = view.read()
    return np.frombuffer(view, dtype=dtype)


def as_tensor(view: Any, dtype: Any = None) -> Any:
    """A torch tensor over a field's bytes (no copy; uint8 by default; an
    Extent is read into host memory first: Extent.to_device reads it into
    GPU memory)."""
    import torch

    if isinstance(view, Extent):
        view = view.read()
    return torch.frombuffer(view, dtype=dtype if dtype is not None else torch.uint8)
