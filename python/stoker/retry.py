"""How a Client retries: calls and streams that fail with UNAVAILABLE (the
server restarts, a proxy resets) are tried again after a jittered
exponential backoff, until ``retries`` attempts in a row made no progress.
Any other error, and a failed TLS handshake, is raised at once."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc

from . import errors

__all__ = ["Retry", "retriable"]

_T = TypeVar("_T")


def retriable(err: grpc.RpcError) -> bool:
    """Whether err is worth another attempt (UNAVAILABLE)."""
    return isinstance(err, grpc.Call) and err.code() == grpc.StatusCode.UNAVAILABLE


@dataclass
class Retry:
    """How a Client retries calls and resumes streams on UNAVAILABLE."""

    retries: int = 8  # attempts in a row without progress before giving up
    first: float = 0.05  # first wait, seconds
    longest: float = 2.0  # longest wait, seconds
    rng: random.Random = field(default_factory=random.Random)

    def wait(self, failures: int) -> float:
        """Jittered exponential backoff for the n-th failure in a row."""
        base = min(self.longest, self.first * (1.6 ** (failures - 1)))
        return base * (0.8 + 0.4 * self.rng.random())

    def after(self, err: grpc.RpcError, failures: int, op: str, target: str) -> int:
        """Sleep before the next attempt after err, the failures-th in a
        row before it, and return the count with it; or raise err as a
        StokerError when it is not retriable or the attempts are spent."""
        if not retriable(err) or failures >= self.retries:
            raise errors.from_rpc_error(err, op=op, target=target) from None
        failures += 1
        time.sleep(self.wait(failures))
        return failures

    def call(
        self,
        op: str,
        target: str,
        fn: Callable[[], _T],
        check: Callable[[grpc.RpcError, str], None] = lambda err, op: None,
    ) -> _T:
        """fn's result, retried per the policy; ``check(err, op)`` may
        raise first (a TLS handshake that failed)."""
        failures = 0
        while True:
            try:
                return fn()
            except grpc.RpcError as err:
                check(err, op)
                failures = self.after(err, failures, op, target)
