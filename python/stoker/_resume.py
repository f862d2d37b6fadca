"""A StreamBatches call that survives its connection.

:func:`stream_batches` calls StreamBatches, puts each step's messages back
together (:func:`stoker._stream.read_stream`), and on UNAVAILABLE (the
server restarts, a proxy resets) calls it again from the cursor of the last
whole batch, so nothing is lost or repeated. With shared memory it gives
each batch's leases back once the caller asks for the next batch, or,
for views that hold their leases (stoker.shm.LeaseHold), leaves that to
the views.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from . import errors
from ._stream import read_stream
from .retry import Retry
from .shm import ShmReader, TierMaps
from .types import Batch
from .v1 import loader_pb2

__all__ = ["stream_batches"]

# How many messages, and for how long, a stream whose message the client
# could not take in (its region cannot be mapped) is read on for the
# server's own error. A stream the server did not fail may be waiting for
# the batch's release, so the read is cut off after the grace.
_ERROR_READ_MESSAGES = 64
_ERROR_READ_GRACE = 5.0  # seconds


def stream_error_or(call: Any, err: BaseException) -> BaseException:
    """The stream's own error (a grpc.RpcError), if it ends with one within
    a few messages and _ERROR_READ_GRACE seconds, else err."""
    gave_up = threading.Event()

    def give_up() -> None:
        gave_up.set()
        call.cancel()

    timer = threading.Timer(_ERROR_READ_GRACE, give_up)
    timer.daemon = True
    timer.start()
    try:
        for _ in range(_ERROR_READ_MESSAGES):
            next(call)
    except StopIteration:
        return err
    except grpc.RpcError as rerr:
        cut_off = gave_up.is_set() and isinstance(rerr, grpc.Call) and rerr.code() == grpc.StatusCode.CANCELLED
        return err if cut_off else rerr
    finally:
        timer.cancel()
    return err


def stream_batches(
    channel: grpc.Channel,
    stub: Any,
    fixed: dict[str, Any],
    position: int,
    plan_version: int,
    *,
    metadata: Callable[[], tuple[tuple[str, str], ...]],
    timeout: float | None,
    retry: Retry,
    target: str,
    check: Callable[[grpc.RpcError, str], None],
    tiers: TierMaps,
    pin: bool = False,
    gds_paths: list[str] | None = None,
    copy: bool = True,
    map_extents: bool = False,
) -> Iterator[Batch]:
    """The batches of StreamBatches over channel (``stub`` its Loader stub,
    for the shm calls), from position on. ``fixed`` are the request's
    fields but the cursor; ``metadata()`` the calls' metadata as it is
    now; ``check(err, op)`` raises what must not be retried. ``copy``
    says whether fields are bytes of their own (see stoker._stream);
    ``map_extents`` that extents are read here, from this process's
    mappings of the files (views, or bytes with ``copy``), instead of
    handed out as :class:`stoker.gds.Extent`."""
    failures = 0
    call_stream = channel.unary_stream(
        "/stoker.v1.Loader/StreamBatches",
        request_serializer=loader_pb2.StreamBatchesRequest.SerializeToString,
        response_deserializer=None,  # bytes: stoker._wire reads them
    )
    while True:
        req = loader_pb2.StreamBatchesRequest(
            cursor=loader_pb2.Cursor(epoch=fixed["epoch"], position=position, plan_version=plan_version), **fixed
        )
        md = metadata()
        call = call_stream(req, metadata=md)
        pending: list[Any] = []
        shm = (
            ShmReader(
                stub,
                md,
                timeout,
                pin=pin,
                gds=fixed["gds"],
                gds_paths=gds_paths,
                tiers=tiers if fixed["shm_tier"] else None,
            )
            if fixed["shm"]
            else None
        )
        if shm is not None:
            shm.map_extents = map_extents
        try:
            for batch in read_stream(call, pending, shm, copy, stream_error_or):
                position, plan_version = batch.cursor.position, batch.cursor.plan_version
                failures = 0
                yield batch
                if shm is not None:
                    packed = batch.packed
                    if packed is not None and packed.handed_off:
                        shm.take_leases()  # the receiver of the handoff gives them back
                    elif packed is not None and copy:
                        packed.materialize()  # copies out, while the bytes are leased
                    shm.release()
                    del packed
                del batch  # views that hold their leases go with the caller's last reference
            if pending:
                raise errors.StokerError(
                    f"stoker StreamBatches at {target}: stream ended inside step "
                    f"(after position {position}) without a final message"
                )
            return
        except grpc.RpcError as err:
            check(err, "StreamBatches")
            failures = retry.after(err, failures, "StreamBatches", target)
        finally:
            call.cancel()
            if shm is not None:
                shm.close()
